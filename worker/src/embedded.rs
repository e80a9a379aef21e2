//! The embedded consumer: takes jobs from the spool in the data directory
//! when no RabbitMQ is configured. Any number of worker processes may share it.

use std::sync::Arc;
use std::time::Duration;

use thumbq_broker::Spool;
use thumbq_contract::RetryDelays;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Settings;
use crate::job::{JobContext, Progress, Settlement};
use crate::pipeline::Preview;
use crate::runner::run_job;

/// How long an idle lane waits before looking at the spool again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a lane waits after the spool could not be read (a full disk, say).
const AFTER_READ_ERROR: Duration = Duration::from_secs(1);
/// How often claims of dead worker processes are put back.
const ORPHAN_CHECK: Duration = Duration::from_secs(1);

/// Consumes jobs until `shutdown` becomes true, then finishes those in flight.
pub async fn run(settings: Settings, context: JobContext, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let spool = Arc::new(Spool::open(context.storage.job_spool())?);
    let context = Arc::new(context);
    tracing::info!(spool = %spool.root().display(), concurrency = settings.concurrency, "Waiting for resize jobs in the embedded queue.");
    let mut lanes = JoinSet::new();
    for _ in 0..settings.concurrency {
        let retry_delays = settings.topology().retry_delays().clone();
        lanes.spawn(lane(Arc::clone(&spool), Arc::clone(&context), settings.job_time_limit(), retry_delays, shutdown.clone()));
    }
    lanes.spawn(recover_orphans(Arc::clone(&spool), shutdown));
    while let Some(lane) = lanes.join_next().await {
        lane??;
    }
    Ok(())
}

/// One job at a time, until shutdown; a job in flight at shutdown is finished first.
async fn lane(
    spool: Arc<Spool>,
    context: Arc<JobContext>,
    time_limit: Duration,
    retry_delays: RetryDelays,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    while !*shutdown.borrow() {
        let claim = {
            let spool = Arc::clone(&spool);
            tokio::task::spawn_blocking(move || spool.claim()).await?
        };
        let claim = match claim {
            Ok(Some(claim)) => claim,
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
        // No events without RabbitMQ (pages poll), but the small size may still come first.
        let progress = Progress { preview: preview_when_idle(&spool).await, ..Progress::silent() };
        let settlement = run_job(Arc::clone(&context), &claim.payload, claim.attempts, time_limit, progress).await.settlement;
        if settlement == Settlement::Postpone {
            // Held meanwhile, so no other lane takes it at once; put back with its tries as they were.
            tokio::select! {
                () = tokio::time::sleep(context.disk_full_retry) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        }
        let (spool, retry_delays) = (Arc::clone(&spool), retry_delays.clone());
        let settled = tokio::task::spawn_blocking(move || match settlement {
            Settlement::Ack | Settlement::Forget => spool.ack(claim),
            Settlement::Postpone => spool.unclaim(claim),
            Settlement::Retry => {
                let after = retry_delays.after(claim.attempts);
                spool.retry_later(claim, after)
            }
            Settlement::DeadLetter => spool.dead_letter(claim),
        })
        .await?;
        if let Err(error) = settled {
            // The claim stays with this process; it returns to the queue when the process ends.
            tracing::warn!(%error, ?settlement, "Could not settle a job in the embedded queue.");
        }
    }
    Ok(())
}

/// [`Preview::First`] when no other job waits in the spool: the spare time
/// goes to showing the first thumbnail sooner.
async fn preview_when_idle(spool: &Arc<Spool>) -> Preview {
    let spool = Arc::clone(spool);
    match tokio::task::spawn_blocking(move || spool.is_empty()).await {
        Ok(Ok(true)) => Preview::First,
        _ => Preview::WithTheRest,
    }
}

async fn recover_orphans(spool: Arc<Spool>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    loop {
        let recovered = {
            let spool = Arc::clone(&spool);
            tokio::task::spawn_blocking(move || spool.recover_orphans()).await?
        };
        match recovered {
            Ok(0) => {}
            Ok(jobs) => tracing::info!(jobs, "Put back the jobs of a worker that died."),
            Err(error) => tracing::warn!(%error, "Could not check for the jobs of dead workers."),
        }
        tokio::select! {
            () = tokio::time::sleep(ORPHAN_CHECK) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}
