//! The embedded consumer: with no RabbitMQ configured, takes jobs from the
//! repository's outbox, where each upload's commit queued its job (see
//! `thumbq_repo::queue`). Any number of worker processes may share it, on
//! this machine with SQLite, or on any with PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use thumbq_contract::RetryDelays;
use thumbq_repo::{Lease, TakenJob};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Settings;
use crate::job::{JobContext, JobOptions, Settlement};
use crate::pipeline::Preview;
use crate::runner::run_job;

/// How long an idle lane waits before looking for a job again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a lane waits after the database could not be read.
const AFTER_READ_ERROR: Duration = Duration::from_secs(1);
/// How long a job stays with a worker that stops renewing its lease (it
/// died): then another takes it.
const LEASE: Duration = Duration::from_secs(10);
/// How often a lane renews the lease on the job it works on.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Consumes jobs until `shutdown` becomes true, then finishes those in flight.
pub async fn run(settings: Settings, context: JobContext, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let context = Arc::new(context);
    tracing::info!(database = %context.repo.describe(), concurrency = settings.concurrency, "Waiting for resize jobs in the embedded queue.");
    let mut lanes = JoinSet::new();
    for lane_number in 0..settings.concurrency {
        let holder = format!("{} lane {lane_number}", context.name);
        let retry_delays = settings.topology().retry_delays().clone();
        lanes.spawn(lane(holder, Arc::clone(&context), settings.job_time_limit(), retry_delays, shutdown.clone()));
    }
    while let Some(lane) = lanes.join_next().await {
        lane??;
    }
    Ok(())
}

/// One job at a time, until shutdown; a job in flight at shutdown is finished first.
async fn lane(
    holder: String,
    context: Arc<JobContext>,
    time_limit: Duration,
    retry_delays: RetryDelays,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let repo = &context.repo;
    while !*shutdown.borrow() {
        let TakenJob { job, attempts } = match repo.take_job(now_ms(), &lease(&holder)).await {
            Ok(Some(taken)) => taken,
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot read the embedded queue; trying again in a second.");
                tokio::time::sleep(AFTER_READ_ERROR).await;
                continue;
            }
        };
        let id = job.image_id;
        // No events without RabbitMQ (pages poll), but the small size may still come first.
        let preview = if repo.jobs_free(now_ms()).await.unwrap_or(true) { Preview::WithTheRest } else { Preview::First };
        let payload = job.to_bytes();
        let running = run_job(Arc::clone(&context), &payload, attempts, time_limit, JobOptions { preview, ..JobOptions::silent() });
        let settlement = tokio::select! {
            ran = running => ran.settlement,
            never = renew(repo, id, &holder) => match never {},
        };
        let settled = match settlement {
            // A dead letter's image has its failure recorded, or, when even that failed,
            // stays pending for the reconciler to queue again: nothing to keep the row for.
            Settlement::Ack | Settlement::Forget | Settlement::DeadLetter => repo.job_settled(id).await,
            Settlement::Postpone => repo.job_later(id, &holder, now_ms() + millis(context.disk_full_retry), attempts).await,
            Settlement::Retry => repo.job_later(id, &holder, now_ms() + millis(retry_delays.after(attempts)), attempts + 1).await,
        };
        if let Err(error) = settled {
            // The row stays leased to this lane until the lease runs out; then the job is taken again.
            tracing::warn!(image.id = %id, %error, ?settlement, "Could not settle a job in the embedded queue.");
        }
    }
    Ok(())
}

/// Keeps the lease on the job of `id` for as long as it runs.
async fn renew(repo: &thumbq_repo::Repository, id: thumbq_contract::ImageId, holder: &str) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match repo.renew_job(id, &lease(holder)).await {
            Ok(true) => {}
            // Deleted meanwhile, or taken by another after a stall: the job finds out for itself.
            Ok(false) => tracing::debug!(image.id = %id, "The lease on a job is no longer this worker's."),
            Err(error) => tracing::warn!(image.id = %id, %error, "Could not renew the lease on a job."),
        }
    }
}

fn lease(holder: &str) -> Lease {
    Lease { holder: holder.to_owned(), until_ms: now_ms() + millis(LEASE) }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    thumbq_contract::timeline::now_ms()
}
