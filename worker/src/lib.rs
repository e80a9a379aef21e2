//! The thumbq worker: takes `resize` jobs from RabbitMQ and writes three
//! thumbnail sizes per image into the shared data directory.
//!
//! - [`settings`]: flags and environment variables.
//! - [`consumer`]: the loop: prefetch, ack/nack, reconnects, shutdown.
//! - [`job`]: the step: one job, from original to written thumbnails.
//! - [`pipeline`]: the pure image work: decode, orient, resize, encode.

pub mod consumer;
pub mod job;
pub mod pipeline;
pub mod settings;

use anyhow::Context;
use thumbq_contract::Storage;
use tokio::sync::watch;

pub use settings::Settings;

/// Runs a worker until `shutdown` is set to `true`, then finishes its jobs in flight.
pub async fn run(settings: Settings, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let storage = Storage::new(&settings.data_dir);
    storage
        .create_dirs()
        .with_context(|| format!("cannot use the data directory {}", settings.data_dir.display()))?;
    let context = job::JobContext {
        storage,
        sizes: settings.sizes,
        limits: settings.limits(),
        max_upload_bytes: settings.max_upload_bytes,
    };
    consumer::run(settings, context, shutdown).await
}
