//! One resize job, start to end: the step the consumer loop runs per message.
//!
//! [`run`] reads the original, makes the thumbnails, writes each atomically,
//! and says how the message is to be settled. Running a job twice is
//! harmless: the same files are written again, whole, by rename.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thumbq_contract::{FailureRecord, ImageId, ResizeJob, Sizes, Storage, StorageKey, ThumbFormat, ThumbSize};

use crate::metrics::WorkerMetrics;
use crate::pipeline::{self, MediaLimits, PipelineError};

/// What a job needs besides its message.
#[derive(Clone)]
pub struct JobContext {
    pub storage: Storage,
    pub sizes: Sizes,
    pub limits: MediaLimits,
    pub metrics: WorkerMetrics,
    /// One permit per job allowed to run at once. A job's thread holds its
    /// permit until it really ends, even after its message was given up on
    /// for running too long, so abandoned jobs still count against the bound.
    pub cpu_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl JobContext {
    pub fn new(storage: Storage, sizes: Sizes, limits: MediaLimits, concurrency: u16) -> Self {
        let cpu_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency.max(1))));
        Self { storage, sizes, limits, metrics: WorkerMetrics::default(), cpu_slots }
    }
}

/// How a job ended when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Might work later (a disk or network hiccup): the message goes back to the queue.
    #[error("will retry: {0}")]
    Retry(#[source] std::io::Error),
    /// Can never work (not an image after all, over the limits): the failure is recorded, the message dead-lettered.
    #[error("{0}")]
    Abort(String),
}

/// What a successful job did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The thumbnails were made and written.
    Made { duration: Duration },
    /// Every thumbnail was there already (a redelivered job): nothing was done.
    AlreadyDone,
}

/// How the consumer must settle the message of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    Requeue,
    DeadLetter,
}

/// What people read when a job was tried [`ResizeJob::MAX_ATTEMPTS`] times without an answer.
pub const GAVE_UP: &str = "The thumbnails could not be made: the worker stopped or timed out on this image again and again.";

/// Runs `job`, tried `attempt` times before (0 the first time), and records a
/// permanent failure where the web server will find it.
pub fn run(context: &JobContext, job: &ResizeJob, attempt: u32) -> Settlement {
    let id = job.image_id;
    let last_attempt = attempt + 1 >= ResizeJob::MAX_ATTEMPTS;
    if attempt >= ResizeJob::MAX_ATTEMPTS {
        // Only a worker that died on the last try gets here: the broker allows
        // one delivery more than the tries, so that this one can say why.
        return give_up(context, id, GAVE_UP);
    }
    match process(context, job) {
        Ok(Outcome::Made { duration }) => {
            tracing::info!(image.id = %id, duration_ms = duration.as_millis() as u64, "Made the thumbnails.");
            context.metrics.job("done");
            let uploaded = UNIX_EPOCH + Duration::from_millis(job.uploaded_at_ms);
            if let Ok(waited) = SystemTime::now().duration_since(uploaded) {
                context.metrics.upload_to_ready(waited);
            }
            Settlement::Ack
        }
        Ok(Outcome::AlreadyDone) => {
            tracing::info!(image.id = %id, "The thumbnails were already there; nothing to do.");
            context.metrics.job("already_done");
            Settlement::Ack
        }
        Err(JobError::Retry(error)) if last_attempt => {
            tracing::warn!(image.id = %id, %error, attempt, "The job failed on its last try.");
            give_up(context, id, &format!("The thumbnails could not be made after {} tries; the last error was: {error}.", attempt + 1))
        }
        Err(JobError::Retry(error)) => {
            tracing::warn!(image.id = %id, %error, attempt, "The job failed for now; it goes back to the queue.");
            context.metrics.job("retried");
            Settlement::Requeue
        }
        Err(JobError::Abort(reason)) => give_up(context, id, &reason),
    }
}

/// Records why `id` will get no thumbnails, and says to dead-letter its job.
pub fn give_up(context: &JobContext, id: ImageId, reason: &str) -> Settlement {
    match record_failure(&context.storage, id, reason) {
        Ok(()) => {
            tracing::info!(image.id = %id, reason, "The job cannot succeed; its failure is recorded.");
            context.metrics.job("failed");
            Settlement::DeadLetter
        }
        Err(error) => {
            tracing::warn!(image.id = %id, %error, "Could not record the job's failure; it goes back to the queue.");
            Settlement::Requeue
        }
    }
}

/// Makes and writes the thumbnails of `job`'s image.
pub fn process(context: &JobContext, job: &ResizeJob) -> Result<Outcome, JobError> {
    let started = Instant::now();
    let storage = &context.storage;
    let id = job.image_id;
    if all_thumbnails_exist(storage, id) {
        remove_failure(storage, id)?;
        return Ok(Outcome::AlreadyDone);
    }
    let original = read_original(context, id)?;
    let (thumbnails, times) = pipeline::make_thumbnails_timed(original, job.format, &context.sizes, &context.limits).map_err(|error| {
        if let PipelineError::Corrupt { detail, .. } = &error {
            tracing::info!(image.id = %id, detail, "The decoder refused the image.");
        }
        JobError::Abort(reason_for(&error))
    })?;
    std::fs::create_dir_all(storage.path(&StorageKey::Thumbnail(id, ThumbSize::Small, ThumbFormat::Jpeg)).with_file_name("")).map_err(JobError::Retry)?;
    let writing = Instant::now();
    for thumbnail in &thumbnails {
        let path = storage.path(&StorageKey::Thumbnail(id, thumbnail.size, thumbnail.format));
        write_atomically(&path, &thumbnail.bytes).map_err(JobError::Retry)?;
    }
    context.metrics.stage("decode", times.decode);
    context.metrics.stage("resize", times.resize);
    context.metrics.stage("encode", times.encode);
    context.metrics.stage("write", writing.elapsed());
    remove_failure(storage, id)?;
    Ok(Outcome::Made { duration: started.elapsed() })
}

/// A job that succeeds after an earlier failure (a replay, or a last try
/// recorded ahead) clears the failure.
fn remove_failure(storage: &Storage, id: ImageId) -> Result<(), JobError> {
    match std::fs::remove_file(storage.path(&StorageKey::Failure(id))) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(JobError::Retry(error)),
        _ => Ok(()),
    }
}

fn all_thumbnails_exist(storage: &Storage, id: ImageId) -> bool {
    ThumbSize::ALL.into_iter().all(|size| ThumbFormat::ALL.into_iter().any(|format| storage.path(&StorageKey::Thumbnail(id, size, format)).exists()))
}

/// Reads the original whole, after checking its size: the only allocation
/// that depends on the upload before the decoder's own limits apply.
fn read_original(context: &JobContext, id: ImageId) -> Result<Vec<u8>, JobError> {
    let path = context.storage.path(&StorageKey::Original(id));
    let length = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(JobError::Abort("The upload is gone: there is no original to make thumbnails from.".into()));
        }
        Err(error) => return Err(JobError::Retry(error)),
    };
    if length > context.limits.max_file_bytes {
        return Err(JobError::Abort(format!("The file has {length} bytes, more than the limit of {}.", context.limits.max_file_bytes)));
    }
    std::fs::read(&path).map_err(JobError::Retry)
}

/// Turns a pipeline error into a sentence for the person who uploaded the file.
fn reason_for(error: &PipelineError) -> String {
    // Decoders' messages may span lines; a reason is one sentence.
    let mut reason = error.to_string().split_whitespace().collect::<Vec<_>>().join(" ").replace(" )", ")");
    if let Some(first) = reason.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    reason.push('.');
    reason
}

/// Writes `bytes` to `path` so that a reader sees either no file or the whole
/// file: a temporary file in the same directory, flushed to disk, then renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::Builder::new().prefix(".tmp-").tempfile_in(directory)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    // The rename itself must survive a power cut too.
    thumbq_broker::spool::sync_dir(directory)
}

fn record_failure(storage: &Storage, id: ImageId, reason: &str) -> std::io::Result<()> {
    let record = FailureRecord { reason: reason.to_owned(), failed_at_ms: now_ms() };
    let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
    write_atomically(&storage.path(&StorageKey::Failure(id)), &bytes)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}
