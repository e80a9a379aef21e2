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
    let data_dir = settings.deployment.data_dir.display();
    // A worker never sets a data directory up: on a wrong path, or a share not
    // mounted, it would fail every job with "the upload is gone".
    let manifest = storage.read_manifest().with_context(|| format!("cannot read {}", storage.manifest_path().display()))?.with_context(|| {
        format!("{data_dir} is not a thumbq data directory (it has no thumbq.json): start thumbq-web on it first, or check the path and that it is mounted")
    })?;
    if let Some(mismatch) = manifest.worker_mismatch(&settings.sizes, &settings.limits()) {
        anyhow::bail!("this worker does not match the data directory {data_dir} ({manifest}): {mismatch}");
    }
    storage.create_dirs().with_context(|| format!("cannot use the data directory {data_dir}"))?;
    let mut context = job::JobContext::new(storage, settings.sizes, settings.limits(), settings.concurrency);
    context.disk_full_retry = std::time::Duration::from_secs(settings.disk_full_retry_secs);
    prepare(&mut context);
    if let Some(bind) = settings.metrics_bind {
        // Bound here, so that an address in use or not ours stops the start.
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot serve metrics on --metrics-bind {bind}"))?;
        let (metrics, shutdown) = (context.metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(listener, metrics, shutdown).await {
                tracing::error!(%error, "Cannot serve the worker's metrics.");
            }
        });
    }
    match settings.deployment.amqp_url.clone() {
        Some(url) => consumer::run(settings, url, context, shutdown).await,
        None => embedded::run(settings, context, shutdown).await,
    }
}
