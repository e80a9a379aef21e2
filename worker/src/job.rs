//! One resize job, start to end: the step the consumer loop runs per message.
//!
//! [`run`] reads the original, makes the thumbnails, writes each atomically,
//! and says how the message is to be settled. Running a job twice is
//! harmless: the same files are written again, whole, by rename.
//!
//! An image can be deleted while its job runs. The web server writes the
//! tombstone before it removes any file; the job looks for the tombstone
//! before it starts and again after it has written, removing what it wrote.
//! Whatever the order of the two, no file of a deleted image survives.

use std::sync::Arc;

use base64::Engine as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thumbq_contract::timeline::{self, Timeline};
use thumbq_contract::{FailureRecord, ImageId, ResizeJob, Sizes, Storage, StorageKey, ThumbFormat, ThumbSize};
use thumbq_store::{BlockingStore, Durability, Store};

use crate::metrics::WorkerMetrics;
use crate::pipeline::{self, MediaLimits, PipelineError, Preview, WebP};

/// What a job needs besides its message.
#[derive(Clone)]
pub struct JobContext {
    /// The local data directory: the embedded queue's spool.
    pub storage: Storage,
    /// Where originals are read and thumbnails written: the data directory unless set otherwise.
    pub store: BlockingStore,
    pub sizes: Sizes,
    pub limits: MediaLimits,
    pub metrics: WorkerMetrics,
    /// One permit per job allowed to run at once. A job's thread holds its
    /// permit until it really ends, even after its message was given up on
    /// for running too long, so abandoned jobs still count against the bound.
    pub cpu_slots: Arc<tokio::sync::Semaphore>,
    /// Called before each baseline thumbnail (JPEG or PNG) is written: a test deletes the image
    /// here to force the race with a delete, or holds back the large size.
    pub before_writing: Option<Arc<dyn Fn(ImageId, ThumbSize) + Send + Sync>>,
    /// How long a job waits when the disk is full before it is tried again.
    pub disk_full_retry: Duration,
    /// How long a job whose original is missing waits before its next try, times the tries so far.
    pub missing_original_wait: Duration,
    /// This worker in timelines: `worker@host:pid`.
    pub name: String,
    /// Whether each size is also written as WebP, and with what effort.
    pub webp: WebP,
}

impl JobContext {
    pub fn new(storage: Storage, sizes: Sizes, limits: MediaLimits, concurrency: u16) -> Self {
        let cpu_slots = Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency.max(1))));
        Self {
            store: Store::local(storage.root()).blocking(),
            storage,
            sizes,
            limits,
            metrics: WorkerMetrics::default(),
            cpu_slots,
            before_writing: None,
            disk_full_retry: Duration::from_secs(30),
            missing_original_wait: Duration::from_secs(1),
            name: timeline::process_name("worker"),
            webp: WebP::default(),
        }
    }

    /// This context, reading and writing in `store`.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = store.blocking();
        self
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
    /// The image was deleted: nothing of it was left behind.
    Deleted,
}

/// How the consumer must settle the message of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    Requeue,
    DeadLetter,
    /// Acked without a word: the image was deleted, there is nothing to announce.
    Forget,
    /// The disk is full: the job waits [`JobContext::disk_full_retry`], then
    /// goes back to the queue as a fresh message, its tries not counted.
    Postpone,
}

/// What the consumer that took a job asks of it besides its message.
pub struct Progress {
    /// Whether the small size comes first, from a decode of its own: the
    /// consumer asks for it when nothing else waits for this worker.
    pub preview: Preview,
    /// Told of each thumbnail as soon as it is written, before the job is
    /// settled, so that pages can show it while the others are made; the
    /// first one brings the image's placeholder (ThumbHash, base64).
    pub written: Box<dyn Fn(ImageId, ThumbSize, Option<String>) + Send + Sync>,
}

impl Progress {
    /// No preview, and nobody to tell.
    pub fn silent() -> Self {
        Self { preview: Preview::WithTheRest, written: Box::new(|_, _, _| {}) }
    }
}

/// What people read when the original was still missing at the last try.
pub const UPLOAD_GONE: &str = "The upload is gone: there is no original to make thumbnails from.";

/// What people read when a job was tried [`ResizeJob::MAX_ATTEMPTS`] times without an answer.
pub const GAVE_UP: &str = "The thumbnails could not be made: the worker stopped or timed out on this image again and again.";

/// Runs `job`, tried `attempt` times before (0 the first time), and records a
/// permanent failure where the web server will find it.
pub fn run(context: &JobContext, job: &ResizeJob, attempt: u32, progress: &Progress) -> Settlement {
    let id = job.image_id;
    let last_attempt = attempt + 1 >= ResizeJob::MAX_ATTEMPTS;
    if attempt >= ResizeJob::MAX_ATTEMPTS {
        // Only a worker that died on the last try gets here: the broker allows
        // one delivery more than the tries, so that this one can say why.
        return give_up(context, id, GAVE_UP, Fault::Ours);
    }
    match process(context, job, progress) {
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
        Ok(Outcome::Deleted) => forget_deleted(context, id),
        // A full disk or a store away is the operator's to fix, not the image's fault: never a reason to give up.
        // (Whether the image was deleted meanwhile is for the next try to find out.)
        Err(JobError::Retry(error)) if waits(&error) => {
            tracing::warn!(image.id = %id, %error, retry_in_secs = context.disk_full_retry.as_secs(), "The disk is full or the store unavailable; the job waits and is tried again.");
            context.metrics.job("postponed");
            Settlement::Postpone
        }
        // A write that failed may have left thumbnails of an image deleted meanwhile.
        Err(JobError::Retry(_)) if is_deleted(&context.store, id) == Some(true) => forget_deleted(context, id),
        Err(JobError::Retry(error)) if last_attempt && error.kind() == std::io::ErrorKind::NotFound => give_up(context, id, UPLOAD_GONE, Fault::Image),
        // Shared storage may show a new file late: wait a little more each try before the next.
        Err(JobError::Retry(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(image.id = %id, attempt, "The original is not there (yet); trying again shortly.");
            std::thread::sleep(context.missing_original_wait * (attempt + 1));
            context.metrics.job("retried");
            Settlement::Requeue
        }
        Err(JobError::Retry(error)) if last_attempt => {
            tracing::warn!(image.id = %id, %error, attempt, "The job failed on its last try.");
            give_up(context, id, &format!("The thumbnails could not be made after {} tries; the last error was: {error}.", attempt + 1), Fault::Ours)
        }
        Err(JobError::Retry(error)) => {
            tracing::warn!(image.id = %id, %error, attempt, "The job failed for now; it goes back to the queue.");
            context.metrics.job("retried");
            Settlement::Requeue
        }
        Err(JobError::Abort(reason)) => give_up(context, id, &reason, Fault::Image),
    }
}

/// Whose fault a failure is, which says whether trying again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The image's (not an image, damaged, over the limits): no replay will help.
    Image,
    /// thumbq's or its machine's: a replay may, once the cause is fixed.
    Ours,
}

/// Records why `id` will get no thumbnails, and says to dead-letter its job.
pub fn give_up(context: &JobContext, id: ImageId, reason: &str, fault: Fault) -> Settlement {
    // A failed image has no thumbnails: not even a small one an earlier step
    // wrote first. Should that fail, the failure is still recorded: it is what
    // the page says, and a job must not loop on a directory it cannot remove.
    if let Err(error) = context.store.remove_thumbnails(id) {
        tracing::warn!(image.id = %id, %error, "Could not remove the thumbnails of an image that failed.");
    }
    match record_failure(&context.store, id, reason, fault).map(|()| is_deleted(&context.store, id)) {
        // Deleted meanwhile: the record is removed again, and nobody needs the job.
        Ok(Some(true)) => forget_deleted(context, id),
        Ok(Some(false)) => {
            tracing::info!(image.id = %id, reason, "The job cannot succeed; its failure is recorded.");
            context.metrics.job("failed");
            Settlement::DeadLetter
        }
        // Whether it was deleted is unknown: the next try looks again.
        Ok(None) => Settlement::Requeue,
        Err(error) if waits(&error) => Settlement::Postpone,
        Err(error) => {
            tracing::warn!(image.id = %id, %error, "Could not record the job's failure; it goes back to the queue.");
            Settlement::Requeue
        }
    }
}

/// Removes whatever a job of a deleted image may have written, and says to ack its job.
fn forget_deleted(context: &JobContext, id: ImageId) -> Settlement {
    match remove_written(&context.store, id) {
        Ok(()) => {
            tracing::info!(image.id = %id, "The image was deleted; nothing of it is kept.");
            context.metrics.job("deleted");
            Settlement::Forget
        }
        Err(error) => {
            tracing::warn!(image.id = %id, %error, "Could not remove the files of a deleted image; the job goes back to the queue.");
            Settlement::Requeue
        }
    }
}

/// Whether a failed step is to be waited out rather than counted as a try:
/// a full disk, or an object store that does not answer.
fn waits(error: &std::io::Error) -> bool {
    thumbq_broker::durable::is_disk_full(error) || thumbq_store::is_unavailable(error)
}

/// Whether the image was deleted; `None` when the store cannot tell. Only a
/// tombstone seen lets a job remove what it wrote and be acked: when in
/// doubt, the job is tried again, and the next try looks again.
fn is_deleted(store: &BlockingStore, id: ImageId) -> Option<bool> {
    store.exists(StorageKey::Tombstone(id)).ok()
}

/// Removes the thumbnails, timelines and failure record of `id`.
fn remove_written(store: &BlockingStore, id: ImageId) -> std::io::Result<()> {
    store.remove_thumbnails_and_timelines(id)?;
    store.remove(StorageKey::Failure(id))
}

/// Keeps the worker's steps beside the image, for its timeline. Best effort:
/// a timeline that cannot be written costs the picture, not the job.
fn record_steps(store: &BlockingStore, id: ImageId, timeline: &Timeline) {
    let written = serde_json::to_vec(timeline)
        .map_err(std::io::Error::other)
        .and_then(|bytes| store.put(StorageKey::Timeline(id, "worker"), bytes, Durability::BestEffort));
    if let Err(error) = written {
        tracing::debug!(image.id = %id, %error, "Could not keep the job's timeline.");
    }
}

/// Makes and writes the thumbnails of `job`'s image, each as soon as it is made.
pub fn process(context: &JobContext, job: &ResizeJob, progress: &Progress) -> Result<Outcome, JobError> {
    let started = Instant::now();
    let mut timeline = Timeline::default();
    timeline.push("taken", timeline::now_ms(), &context.name);
    let store = &context.store;
    let id = job.image_id;
    if store.exists(StorageKey::Tombstone(id)).map_err(JobError::Retry)? {
        return Ok(Outcome::Deleted);
    }
    if all_thumbnails_exist(store, id, context.webp).map_err(JobError::Retry)? {
        // An earlier try may have been cut off between its last rename and its sync.
        store.sync_thumbnails(id).map_err(JobError::Retry)?;
        remove_failure(store, id)?;
        return Ok(Outcome::AlreadyDone);
    }
    let original = match read_original(context, id) {
        // The original goes after the tombstone is written: look again.
        Err(JobError::Retry(_)) if is_deleted(store, id) == Some(true) => return Ok(Outcome::Deleted),
        read => read?,
    };
    let mut writing = Duration::ZERO;
    let mut placeholder = None;
    let write = |made: pipeline::Made| {
        let thumbnail = match made {
            pipeline::Made::Placeholder(hash) => {
                // Beside the thumbnails, made durable with them; announced with the first.
                store.put(StorageKey::Placeholder(id), hash.clone(), Durability::WithThumbnails)?;
                placeholder = Some(base64::engine::general_purpose::STANDARD.encode(hash));
                return Ok(());
            }
            pipeline::Made::Decoded(ThumbSize::Large) => {
                timeline.push("decoded", timeline::now_ms(), &context.name);
                return Ok(());
            }
            pipeline::Made::Decoded(size) => {
                timeline.push(&format!("decoded for the {size} size"), timeline::now_ms(), &context.name);
                return Ok(());
            }
            pipeline::Made::Thumbnail(thumbnail) => thumbnail,
        };
        if let Some(hook) = context.before_writing.as_ref().filter(|_| thumbnail.format != ThumbFormat::Webp) {
            hook(id, thumbnail.size);
        }
        let started = Instant::now();
        let key = StorageKey::Thumbnail(id, thumbnail.size, thumbnail.format);
        // Whole or not at all, but not yet durable: one sync after the last
        // makes all three so, before the job is acked.
        store.put(key, thumbnail.bytes, Durability::WithThumbnails)?;
        writing += started.elapsed();
        if thumbnail.format == ThumbFormat::Webp {
            // Pages already show this size; a WebP serves later views of it with fewer bytes.
            if thumbnail.size == ThumbSize::Large {
                timeline.push("WebP written", timeline::now_ms(), &context.name);
                record_steps(store, id, &timeline);
            }
            return Ok(());
        }
        timeline.push(&format!("{} written", thumbnail.size), timeline::now_ms(), &context.name);
        // Kept as it grows: a page drawing the timeline of an image that just
        // turned done finds the worker's steps there too.
        record_steps(store, id, &timeline);
        (progress.written)(id, thumbnail.size, placeholder.take());
        Ok::<_, std::io::Error>(())
    };
    let times = pipeline::make_thumbnails_each(original, job.format, &context.sizes, &context.limits, progress.preview, context.webp, write).map_err(|stop| match stop {
        pipeline::Stop::Made(error) => JobError::Retry(error),
        // The machine's fault, not the file's: tried again, its tries counted.
        pipeline::Stop::Pipeline(PipelineError::DecoderUnavailable { format, detail }) => {
            JobError::Retry(std::io::Error::other(format!("the {format} decoder could not run: {detail}")))
        }
        pipeline::Stop::Pipeline(error) => {
            if let PipelineError::Corrupt { detail, .. } = &error {
                tracing::info!(image.id = %id, detail, "The decoder refused the image.");
            }
            // `give_up` removes a small size made first: a failed image has no thumbnails.
            JobError::Abort(reason_for(&error))
        }
    })?;
    let synced = Instant::now();
    store.sync_thumbnails(id).map_err(JobError::Retry)?;
    writing += synced.elapsed();
    // Deleted while we worked: the delete may have run before these files
    // existed, so they are ours to remove.
    if store.exists(StorageKey::Tombstone(id)).map_err(JobError::Retry)? {
        return Ok(Outcome::Deleted);
    }
    context.metrics.stage("decode", times.decode);
    context.metrics.stage("resize", times.resize);
    context.metrics.stage("encode", times.encode);
    context.metrics.stage("webp", times.webp);
    context.metrics.stage("write", writing);
    remove_failure(store, id)?;
    Ok(Outcome::Made { duration: started.elapsed() })
}

/// A job that succeeds after an earlier failure (a replay, or a last try
/// recorded ahead) clears the failure.
fn remove_failure(store: &BlockingStore, id: ImageId) -> Result<(), JobError> {
    store.remove(StorageKey::Failure(id)).map_err(JobError::Retry)
}

/// Looks at each size until one is missing (on a first try, the small one in both baseline formats),
/// then at the WebPs, written last (when this worker makes them).
fn all_thumbnails_exist(store: &BlockingStore, id: ImageId, webp: WebP) -> std::io::Result<bool> {
    for size in ThumbSize::ALL {
        if store.thumbnail(id, size)?.is_none() {
            return Ok(false);
        }
    }
    // The large WebP is written last of all: one look answers for the three.
    Ok(webp == WebP::Without || store.exists(StorageKey::Thumbnail(id, ThumbSize::Large, ThumbFormat::Webp))?)
}

/// Reads the original whole, after checking its size: the only allocation
/// that depends on the upload before the decoder's own limits apply.
fn read_original(context: &JobContext, id: ImageId) -> Result<Vec<u8>, JobError> {
    // Tried again when missing: on shared storage a new file can show up late.
    let gone = || JobError::Retry(std::io::Error::new(std::io::ErrorKind::NotFound, UPLOAD_GONE));
    match context.store.get_at_most(StorageKey::Original(id), context.limits.max_file_bytes).map_err(JobError::Retry)?.ok_or_else(gone)? {
        Ok(bytes) => Ok(bytes),
        Err(length) => Err(JobError::Abort(format!("The file has {length} bytes, more than the limit of {}.", context.limits.max_file_bytes))),
    }
}

/// Turns a pipeline error into a sentence for the person who uploaded the file.
fn reason_for(error: &PipelineError) -> String {
    // Decoders' messages may span lines; a reason is one sentence.
    let mut reason = error.to_string().split_whitespace().collect::<Vec<_>>().join(" ").replace(" )", ")");
    if let Some(first) = reason.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    reason.push('.');
    // Where a person can do something about it, say what.
    let next = match error {
        PipelineError::Corrupt { .. } | PipelineError::Unsupported { .. } | PipelineError::DecoderFailed { .. } => " Open it in a photo app, export it again as JPEG or PNG, and upload that.",
        PipelineError::OverLimits(_) | PipelineError::DimensionsOverLimits | PipelineError::OverMemoryLimit => " Export a smaller copy and upload that.",
        PipelineError::Internal(_) | PipelineError::DecoderUnavailable { .. } => "",
    };
    reason.push_str(next);
    reason
}

fn record_failure(store: &BlockingStore, id: ImageId, reason: &str, fault: Fault) -> std::io::Result<()> {
    let record = FailureRecord { reason: reason.to_owned(), failed_at_ms: timeline::now_ms(), retryable: fault == Fault::Ours };
    let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
    store.put(StorageKey::Failure(id), bytes, Durability::Now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use thumbq_contract::{MediaLimits, SourceFormat};

    fn context(dir: &Path) -> JobContext {
        let storage = Storage::new(dir);
        storage.create_dirs().unwrap();
        JobContext::new(storage, Sizes::default(), MediaLimits::default(), 1)
    }

    fn png() -> Vec<u8> {
        let image = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 99]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image).write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// What the web server does to delete: the tombstone first, then the files.
    /// Asked again (the hook runs before each size), it finds them gone.
    fn delete(storage: &Storage, id: ImageId) {
        thumbq_broker::durable::write_atomically(&storage.path(&StorageKey::Tombstone(id)), b"").unwrap();
        thumbq_broker::durable::remove_if_present(&storage.path(&StorageKey::Original(id))).unwrap();
        let _ = std::fs::remove_dir_all(storage.thumbnail_dir(id));
    }

    fn files_naming(dir: &Path, id: ImageId) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                if entry.path().to_string_lossy().contains(&id.to_string()) {
                    found.push(entry.path().display().to_string());
                }
                if entry.path().is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        found
    }

    fn thumbnail_files(context: &JobContext, id: ImageId) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(context.storage.thumbnail_dir(id)).unwrap().flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_job_writes_each_size_in_jpeg_and_webp_with_the_placeholder_and_runs_again_only_where_one_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path());
        let id = ImageId::new();
        std::fs::write(context.storage.path(&StorageKey::Original(id)), png()).unwrap();
        let job = ResizeJob::new(id, SourceFormat::Png, 0);
        assert!(matches!(process(&context, &job, &Progress::silent()).unwrap(), Outcome::Made { .. }));
        let all = ["large.jpg", "large.webp", "medium.jpg", "medium.webp", "placeholder.thumbhash", "small.jpg", "small.webp"];
        assert_eq!(thumbnail_files(&context, id), all);
        assert_eq!(process(&context, &job, &Progress::silent()).unwrap(), Outcome::AlreadyDone);
        // A try cut off before its WebPs: the next one makes them.
        std::fs::remove_file(context.storage.path(&StorageKey::Thumbnail(id, ThumbSize::Large, ThumbFormat::Webp))).unwrap();
        assert!(matches!(process(&context, &job, &Progress::silent()).unwrap(), Outcome::Made { .. }));
        assert_eq!(thumbnail_files(&context, id), all);
    }

    #[test]
    fn with_webp_off_a_job_writes_the_baseline_sizes_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut context = context(dir.path());
        context.webp = WebP::Without;
        let id = ImageId::new();
        std::fs::write(context.storage.path(&StorageKey::Original(id)), png()).unwrap();
        let job = ResizeJob::new(id, SourceFormat::Png, 0);
        assert!(matches!(process(&context, &job, &Progress::silent()).unwrap(), Outcome::Made { .. }));
        assert_eq!(thumbnail_files(&context, id), ["large.jpg", "medium.jpg", "placeholder.thumbhash", "small.jpg"]);
        assert_eq!(process(&context, &job, &Progress::silent()).unwrap(), Outcome::AlreadyDone);
    }

    #[test]
    fn an_image_deleted_while_its_thumbnails_are_made_keeps_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut context = context(dir.path());
        let id = ImageId::new();
        std::fs::write(context.storage.path(&StorageKey::Original(id)), png()).unwrap();
        let storage = context.storage.clone();
        // The delete runs after the original was read and before anything is written.
        context.before_writing = Some(Arc::new(move |id, _| delete(&storage, id)));

        let settlement = run(&context, &ResizeJob::new(id, SourceFormat::Png, 0), 0, &Progress::silent());

        assert_eq!(settlement, Settlement::Forget);
        assert_eq!(files_naming(dir.path(), id), Vec::<String>::new());
    }

    #[test]
    fn a_job_of_an_image_deleted_before_it_started_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path());
        let id = ImageId::new();
        std::fs::write(context.storage.path(&StorageKey::Original(id)), png()).unwrap();
        delete(&context.storage, id);

        let settlement = run(&context, &ResizeJob::new(id, SourceFormat::Png, 0), 0, &Progress::silent());

        assert_eq!(settlement, Settlement::Forget);
        assert_eq!(files_naming(dir.path(), id), Vec::<String>::new());
    }

    #[test]
    fn an_image_given_up_on_keeps_no_thumbnail_written_before_the_failure() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path());
        let id = ImageId::new();
        // A small size written first, then the job failed (a panic, say).
        std::fs::create_dir_all(context.storage.thumbnail_dir(id)).unwrap();
        std::fs::write(context.storage.path(&StorageKey::Thumbnail(id, ThumbSize::Small, thumbq_contract::ThumbFormat::Jpeg)), b"jpeg").unwrap();

        assert_eq!(give_up(&context, id, "It broke.", Fault::Ours), Settlement::DeadLetter);

        assert!(!context.storage.thumbnail_dir(id).exists());
        assert!(context.storage.path(&StorageKey::Failure(id)).exists());
    }

    #[test]
    fn a_missing_original_is_waited_for_and_at_the_last_try_fails_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut context = context(dir.path());
        context.missing_original_wait = Duration::ZERO;
        let id = ImageId::new();
        let job = ResizeJob::new(id, SourceFormat::Png, 0);

        assert_eq!(run(&context, &job, 0, &Progress::silent()), Settlement::Requeue, "shared storage may show it late");
        assert!(!context.storage.path(&StorageKey::Failure(id)).exists());

        assert_eq!(run(&context, &job, ResizeJob::MAX_ATTEMPTS - 1, &Progress::silent()), Settlement::DeadLetter);
        let record = std::fs::read_to_string(context.storage.path(&StorageKey::Failure(id))).unwrap();
        assert!(record.contains("The upload is gone"), "{record}");
    }
}
