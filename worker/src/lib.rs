//! The thumbq worker: takes `resize` jobs from RabbitMQ and writes three
//! thumbnail sizes per image into the store (the shared data directory, or a bucket).
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
    let store = settings.deployment.store().map_err(anyhow::Error::msg)?;
    let place = store.describe();
    // A worker never sets a store up: on a wrong path, a share not mounted or
    // another bucket, it would fail every job with "the upload is gone". It
    // waits for a web server to set it up instead, so that they may start in any order.
    let manifest =
        read_manifest_when_there(&store, shutdown.clone()).await.with_context(|| format!("cannot read thumbq.json in {place}"))?.with_context(|| {
            format!("stopped before {place} was set up (it has no thumbq.json): start thumbq-web on it, or check the path and that it is mounted")
        })?;
    if let Some(mismatch) = manifest.worker_mismatch(&settings.sizes, &settings.limits()) {
        anyhow::bail!("this worker does not match the store {place} ({manifest}): {mismatch}");
    }
    // Waited for, like the store; opened only once the store is known to be thumbq's, so
    // that a worker on a wrong path sets nothing up there.
    let database = settings.deployment.database();
    let repo =
        thumbq_repo::Repository::open(&database, shutdown.clone()).await.with_context(|| format!("cannot open the database, {}", database.describe()))?;
    if store.is_bucket() && !repo.is_shared() {
        tracing::warn!(database = %repo.describe(), "With a bucket, workers on other machines need the web servers' database: set --database-url postgres://….");
    }
    // HEIC and AVIF need libheif with its HEVC and AV1 plugins: without them
    // every such photo would fail, one job at a time, long after the start.
    let heif =
        tokio::task::spawn_blocking(pipeline::heif::check_decoder).await?.map_err(|missing| anyhow::anyhow!("cannot decode HEIC and AVIF: {missing}"))?;
    tracing::info!(decoder = %heif, "HEIC and AVIF are decoded in a child process.");
    // With a bucket, the worker keeps nothing in a data directory.
    if !store.is_bucket() {
        let data_dir = settings.deployment.data_dir.display();
        thumbq_store::data_dir::create_dirs(&storage).with_context(|| format!("cannot use the data directory {data_dir}"))?;
    }
    let mut context = job::JobContext::new(storage, repo, settings.sizes, settings.limits(), settings.concurrency).with_store(store);
    context.disk_full_retry = std::time::Duration::from_secs(settings.disk_full_retry_secs);
    context.webp = settings.webp_method;
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

/// The store's manifest, or `None` at shutdown. An object store that does
/// not answer is waited for (a worker started during an outage takes jobs once
/// it is back), and so is a store with no manifest yet (a worker started before
/// the first web server), each said once; any other error stops the start.
async fn read_manifest_when_there(store: &thumbq_store::Store, mut shutdown: watch::Receiver<bool>) -> std::io::Result<Option<thumbq_contract::Manifest>> {
    let (mut said_unavailable, mut said_missing) = (false, false);
    loop {
        let read = store.read_manifest().await;
        let waits = matches!(&read, Ok(None)) || read.as_ref().is_err_and(thumbq_store::is_unavailable);
        if waits && *shutdown.borrow() {
            return Ok(None);
        }
        match read {
            Err(error) if thumbq_store::is_unavailable(&error) => {
                if !said_unavailable {
                    tracing::warn!(store = %store.describe(), %error, "The store does not answer; waiting for it before taking jobs.");
                    said_unavailable = true;
                }
            }
            Ok(None) => {
                if !said_missing {
                    tracing::warn!(
                        store = %store.describe(),
                        "No thumbq.json here yet: waiting for thumbq-web to set it up before taking jobs (if none will, check the path and that it is mounted)."
                    );
                    said_missing = true;
                }
            }
            read => return read,
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
