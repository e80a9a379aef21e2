//! The thumbq worker: takes `resize` jobs from RabbitMQ and writes three
//! thumbnail sizes per image into the shared data directory.
//!
//! - [`settings`]: flags and environment variables.
//! - [`consumer`]: the RabbitMQ loop: prefetch, ack/nack, reconnects, shutdown.
//! - [`embedded`]: the loop over the embedded queue, when no RabbitMQ is configured.
//! - [`runner`]: one job off the async runtime, with a time limit and a panic boundary.
//! - [`job`]: the step: one job, from original to written thumbnails, and its settlement.
//! - [`pipeline`]: the pure image work: decode, orient, resize, encode.
//! - [`metrics`]: counters, served on `--metrics-bind`.

pub mod consumer;
pub mod embedded;
pub mod job;
pub mod metrics;
pub mod pipeline;
pub mod runner;
pub mod settings;

use anyhow::Context;
use tokio::sync::watch;

pub use settings::Settings;

/// Runs a worker until `shutdown` is set to `true`, then finishes its jobs in flight.
pub async fn run(settings: Settings, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    run_with(settings, |_| {}, shutdown).await
}

/// [`run`], with the job context changed by `prepare` first (tests set hooks there).
pub async fn run_with(settings: Settings, prepare: impl FnOnce(&mut job::JobContext), shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let storage = settings.deployment.storage();
    storage.create_dirs().with_context(|| format!("cannot use the data directory {}", settings.deployment.data_dir.display()))?;
    let mut context = job::JobContext::new(storage, settings.sizes, settings.limits(), settings.concurrency);
    prepare(&mut context);
    if let Some(bind) = settings.metrics_bind {
        let (metrics, shutdown) = (context.metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(bind, metrics, shutdown).await {
                tracing::error!(%error, "Cannot serve the worker's metrics.");
            }
        });
    }
    match settings.deployment.amqp_url.clone() {
        Some(url) => consumer::run(settings, url, context, shutdown).await,
        None => embedded::run(settings, context, shutdown).await,
    }
}
