//! One resize job, start to end: the step the consumer loop runs per message.
//!
//! [`process`] reads the image's record and its original, makes the
//! thumbnails, writes each atomically and records it; [`run`] (in `settle`)
//! runs it and says how the message is to be settled. Running a job twice
//! is harmless: the same files are written again, whole, by rename, and the
//! record says a finished job is finished.
//!
//! An image can be deleted while its job runs. The web server marks its
//! record deleted before it removes any file; each of the job's records is an
//! update refused for a deleted image, and a job refused removes what it
//! wrote. Whatever the order of the two, no file of a deleted image survives.

use std::sync::Arc;

use base64::Engine as _;
use std::time::{Duration, Instant};

use thumbq_contract::timeline::{self, Timeline};
use thumbq_contract::{ImageId, ResizeJob, Sizes, Storage, StorageKey, ThumbFormat, ThumbSize};
use thumbq_repo::{RepoError, Repository};
use thumbq_store::{BlockingStore, Durability, Store};

use crate::metrics::WorkerMetrics;
use crate::pipeline::{self, MediaLimits, PipelineError, Preview, WebP};

mod settle;

pub use settle::{Fault, GAVE_UP, Settlement, UPLOAD_GONE, give_up, run};

/// What a job needs besides its message.
#[derive(Clone)]
pub struct JobContext {
    /// The local data directory, where the store is one.
    pub storage: Storage,
    /// Where originals are read and thumbnails written: the data directory unless set otherwise.
    pub store: BlockingStore,
    /// Where each image's record is read and the job's progress written.
    pub repo: Repository,
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
    /// This worker in timelines: `worker@host:pid`.
    pub name: String,
    /// Whether each size is also written as WebP, and with what effort.
    pub webp: WebP,
}

impl JobContext {
    pub fn new(storage: Storage, repo: Repository, sizes: Sizes, limits: MediaLimits, concurrency: u16) -> Self {
        let cpu_slots = Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency.max(1))));
        Self {
            store: Store::local(storage.root()).blocking(),
            repo,
            storage,
            sizes,
            limits,
            metrics: WorkerMetrics::default(),
            cpu_slots,
            before_writing: None,
            disk_full_retry: Duration::from_secs(30),
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

/// What the consumer that took a job asks of it besides its message.
pub struct JobOptions {
    /// Whether the small size comes first, from a decode of its own: the
    /// consumer asks for it when nothing else waits for this worker.
    pub preview: Preview,
    /// Told of each thumbnail as soon as it is written, before the job is
    /// settled, so that pages can show it while the others are made; the
    /// first one brings the image's placeholder (ThumbHash, base64).
    pub written: Box<dyn Fn(ImageId, ThumbSize, Option<String>) + Send + Sync>,
}

impl JobOptions {
    /// No preview, and nobody to tell.
    pub fn silent() -> Self {
        Self { preview: Preview::WithTheRest, written: Box::new(|_, _, _| {}) }
    }
}

/// Why a job finds no record of its image.
const NO_RECORD: &str = "the repository has no record of this image";

/// Whether the image was deleted for good; `None` when the database cannot
/// tell. Only a record seen deleted lets a job remove what it wrote and be
/// acked: when in doubt, the job is tried again, and the next try looks again.
/// An image in the trash is made as any other: its owner may take it back.
fn is_deleted(context: &JobContext, id: ImageId) -> Option<bool> {
    wait(context.repo.image(id)).ok().map(|record| record.is_some_and(|record| record.is_deleted_for_good()))
}

/// Waits for `future` on the runtime whose blocking thread runs the job.
fn wait<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(future)
}

/// A database error as the job's I/O error, which [`settle`] reads (a database away is waited out).
fn database(error: RepoError) -> std::io::Error {
    std::io::Error::other(error)
}

/// Says that a record was refused because the image was deleted meanwhile.
#[derive(Debug, thiserror::Error)]
#[error("the image was deleted while its thumbnails were made")]
struct DeletedMeanwhile;

/// Makes and writes the thumbnails of `job`'s image, each as soon as it is
/// made, and records each in the repository before it is announced.
pub fn process(context: &JobContext, job: &ResizeJob, options: &JobOptions) -> Result<Outcome, JobError> {
    let started = Instant::now();
    let mut timeline = Timeline::default();
    timeline.push("taken", timeline::now_ms(), &context.name);
    let (store, repo) = (&context.store, &context.repo);
    let id = job.image_id;
    let record = wait(repo.image(id)).map_err(|error| JobError::Retry(database(error)))?;
    // A job that reached the queue before its record was visible (a replica behind, say) is tried again.
    let record = record.ok_or_else(|| JobError::Retry(std::io::Error::new(std::io::ErrorKind::NotFound, NO_RECORD)))?;
    if record.is_deleted_for_good() {
        return Ok(Outcome::Deleted);
    }
    if record.done_ms.is_some() && record.thumbnails.iter().all(Option::is_some) && (record.webp || context.webp == WebP::Without) {
        return Ok(Outcome::AlreadyDone);
    }
    let original = match read_original(context, id) {
        // The original goes after the record is marked deleted: look again.
        Err(JobError::Retry(_)) if is_deleted(context, id) == Some(true) => return Ok(Outcome::Deleted),
        read => read?,
    };
    let mut writing = Duration::ZERO;
    let mut placeholder = None;
    let mut upright = None;
    let write = |made: pipeline::Made| {
        let thumbnail = match made {
            pipeline::Made::Placeholder(hash) => {
                // Recorded with the first thumbnail, and announced with it.
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
            pipeline::Made::Upright(width, height) => {
                upright = Some((width, height));
                return Ok(());
            }
            // Its thumbnails are still made: what there is of the picture is worth seeing, and the owner is told.
            pipeline::Made::CutOff => {
                timeline.push("the file ended early: decoded what there was", timeline::now_ms(), &context.name);
                if !wait(repo.cut_off(id)).map_err(database)? {
                    return Err(std::io::Error::other(DeletedMeanwhile));
                }
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
        // makes all three so, before the job is recorded finished and acked.
        store.put(key, thumbnail.bytes, Durability::WithThumbnails)?;
        writing += started.elapsed();
        if thumbnail.format == ThumbFormat::Webp {
            // Pages already show this size; a WebP serves later views of it with fewer bytes.
            if thumbnail.size == ThumbSize::Large {
                timeline.push("WebP written", timeline::now_ms(), &context.name);
            }
            return Ok(());
        }
        timeline.push(&format!("{} written", thumbnail.size), timeline::now_ms(), &context.name);
        let steps = std::mem::take(&mut timeline.steps);
        let recorded = wait(repo.thumbnail_written(id, thumbnail.size, thumbnail.format, placeholder.as_deref(), &steps)).map_err(database)?;
        if !recorded {
            return Err(std::io::Error::other(DeletedMeanwhile));
        }
        (options.written)(id, thumbnail.size, placeholder.take());
        Ok::<_, std::io::Error>(())
    };
    let made = pipeline::make_thumbnails_each(original, job.format, &context.sizes, &context.limits, options.preview, context.webp, write);
    if let Err(pipeline::Stop::Writing(error)) = &made
        && error.get_ref().is_some_and(|inner| inner.is::<DeletedMeanwhile>())
    {
        return Ok(Outcome::Deleted);
    }
    let times = made.map_err(|stop| match stop {
        pipeline::Stop::Writing(error) => JobError::Retry(error),
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
    let finished = wait(repo.finished(id, context.webp != WebP::Without, timeline::now_ms(), upright, &timeline.steps));
    if !finished.map_err(|error| JobError::Retry(database(error)))? {
        return Ok(Outcome::Deleted);
    }
    context.metrics.stage("decode", times.decode);
    context.metrics.stage("resize", times.resize);
    context.metrics.stage("encode", times.encode);
    context.metrics.stage("webp", times.webp);
    context.metrics.stage("write", writing);
    Ok(Outcome::Made { duration: started.elapsed() })
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
        PipelineError::Corrupt { .. } | PipelineError::Unsupported { .. } | PipelineError::DecoderFailed { .. } => {
            " Open it in a photo app, export it again as JPEG or PNG, and upload that."
        }
        PipelineError::OverLimits(_) | PipelineError::DimensionsOverLimits | PipelineError::OverMemoryLimit => " Export a smaller copy and upload that.",
        PipelineError::Internal(_) | PipelineError::DecoderUnavailable { .. } => "",
    };
    reason.push_str(next);
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use thumbq_contract::{MediaLimits, SourceFormat};
    use thumbq_repo::{ImageState, Location};

    /// A job's context on a data directory of its own, with the runtime its repository needs.
    struct Fixture {
        dir: tempfile::TempDir,
        runtime: tokio::runtime::Runtime,
        context: JobContext,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path());
        thumbq_store::data_dir::create_dirs(&storage).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let repo = runtime.block_on(Repository::open_now(&Location::Sqlite(dir.path().join("thumbq.db")))).unwrap();
        let context = JobContext::new(storage, repo, Sizes::default(), MediaLimits::default(), 1);
        Fixture { dir, runtime, context }
    }

    /// An uploaded PNG: its original and its record.
    fn upload(context: &JobContext) -> ImageId {
        let id = ImageId::new();
        std::fs::write(context.storage.path(&StorageKey::Original(id)), png()).unwrap();
        wait(context.repo.add_image(&thumbq_repo::testing::uploaded(id, SourceFormat::Png, 640, 480), &[], None, &thumbq_repo::Lease::none())).unwrap();
        id
    }

    fn png() -> Vec<u8> {
        let image = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 99]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image).write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// What the web server does to delete: the record first, then the files.
    /// Asked again (the hook runs before each size), it finds them gone.
    fn delete(context: &JobContext, id: ImageId) {
        wait(context.repo.mark_deleted(id, 1)).unwrap();
        thumbq_store::durable::remove_if_present(&context.storage.path(&StorageKey::Original(id))).unwrap();
        let _ = std::fs::remove_dir_all(context.storage.thumbnail_dir(id));
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
        let mut names: Vec<String> =
            std::fs::read_dir(context.storage.thumbnail_dir(id)).unwrap().flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    fn record(context: &JobContext, id: ImageId) -> thumbq_repo::ImageRecord {
        wait(context.repo.image(id)).unwrap().unwrap()
    }

    #[test]
    fn a_job_writes_each_size_in_jpeg_and_webp_records_them_with_the_placeholder_and_runs_only_once() {
        let fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let context = &fixture.context;
        let id = upload(context);
        let job = ResizeJob::new(id, SourceFormat::Png, 0);
        assert!(matches!(process(context, &job, &JobOptions::silent()).unwrap(), Outcome::Made { .. }));
        assert_eq!(thumbnail_files(context, id), ["large.jpg", "large.webp", "medium.jpg", "medium.webp", "small.jpg", "small.webp"]);
        let record = record(context, id);
        assert_eq!((record.state(), record.webp, record.thumbnail(ThumbSize::Medium)), (ImageState::Done, true, Some(ThumbFormat::Jpeg)));
        assert!(record.placeholder.is_some() && record.done_ms.is_some());
        let steps: Vec<String> = wait(context.repo.timeline(id)).unwrap().into_iter().map(|step| step.step).collect();
        assert_eq!(steps.first().map(String::as_str), Some("taken"));
        assert!(steps.iter().any(|step| step == "large written") && steps.last().is_some_and(|step| step == "WebP written"), "{steps:?}");
        assert_eq!(process(context, &job, &JobOptions::silent()).unwrap(), Outcome::AlreadyDone);
    }

    #[test]
    fn with_webp_off_a_job_writes_the_baseline_sizes_only() {
        let mut fixture = fixture();
        let _runtime = fixture.runtime.enter();
        fixture.context.webp = WebP::Without;
        let context = &fixture.context;
        let id = upload(context);
        let job = ResizeJob::new(id, SourceFormat::Png, 0);
        assert!(matches!(process(context, &job, &JobOptions::silent()).unwrap(), Outcome::Made { .. }));
        assert_eq!(thumbnail_files(context, id), ["large.jpg", "medium.jpg", "small.jpg"]);
        assert!(!record(context, id).webp);
        assert_eq!(process(context, &job, &JobOptions::silent()).unwrap(), Outcome::AlreadyDone);
    }

    #[test]
    fn an_image_deleted_while_its_thumbnails_are_made_keeps_none_of_them() {
        let mut fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let id = upload(&fixture.context);
        let deleting = fixture.context.clone();
        // The delete runs after the original was read and before anything is written.
        fixture.context.before_writing = Some(Arc::new(move |id, _| delete(&deleting, id)));

        let settlement = run(&fixture.context, &ResizeJob::new(id, SourceFormat::Png, 0), 0, &JobOptions::silent());

        assert_eq!(settlement, Settlement::Forget);
        assert_eq!(files_naming(fixture.dir.path(), id), Vec::<String>::new());
    }

    #[test]
    fn an_image_deleted_after_its_first_thumbnail_keeps_none_of_them() {
        let mut fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let id = upload(&fixture.context);
        let deleting = fixture.context.clone();
        // The small size is written and recorded; the delete comes before the medium one.
        fixture.context.before_writing = Some(Arc::new(move |id, size| {
            if size == ThumbSize::Medium {
                delete(&deleting, id);
            }
        }));

        let settlement = run(&fixture.context, &ResizeJob::new(id, SourceFormat::Png, 0), 0, &JobOptions::silent());

        assert_eq!(settlement, Settlement::Forget);
        assert_eq!(files_naming(fixture.dir.path(), id), Vec::<String>::new());
        assert_eq!(record(&fixture.context, id).state(), ImageState::Deleted);
    }

    #[test]
    fn a_job_of_an_image_deleted_before_it_started_writes_nothing() {
        let fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let context = &fixture.context;
        let id = upload(context);
        delete(context, id);

        let settlement = run(context, &ResizeJob::new(id, SourceFormat::Png, 0), 0, &JobOptions::silent());

        assert_eq!(settlement, Settlement::Forget);
        assert_eq!(files_naming(fixture.dir.path(), id), Vec::<String>::new());
    }

    #[test]
    fn an_image_in_its_owners_trash_is_made_whole_so_that_undo_gives_it_back() {
        let fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let context = &fixture.context;
        let id = upload(context);
        wait(context.repo.trash(id, 1)).unwrap();

        let settlement = run(context, &ResizeJob::new(id, SourceFormat::Png, 0), 0, &JobOptions::silent());

        assert_eq!(settlement, Settlement::Ack);
        assert_eq!(wait(context.repo.restore(id, 0)).unwrap(), thumbq_repo::Restoration::Restored);
        assert_eq!(record(context, id).state(), ImageState::Done);
    }

    #[test]
    fn an_image_given_up_on_keeps_no_thumbnail_written_before_the_failure() {
        let fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let context = &fixture.context;
        let id = upload(context);
        // A small size written first, then the job failed (a panic, say).
        std::fs::create_dir_all(context.storage.thumbnail_dir(id)).unwrap();
        std::fs::write(context.storage.path(&StorageKey::Thumbnail(id, ThumbSize::Small, ThumbFormat::Jpeg)), b"jpeg").unwrap();
        wait(context.repo.thumbnail_written(id, ThumbSize::Small, ThumbFormat::Jpeg, None, &[])).unwrap();

        assert_eq!(give_up(context, id, "It broke.", Fault::Ours), Settlement::DeadLetter);

        assert!(!context.storage.thumbnail_dir(id).exists());
        let record = record(context, id);
        assert_eq!((record.state(), record.thumbnail(ThumbSize::Small)), (ImageState::Failed, None));
        assert_eq!(record.failure.map(|failure| (failure.reason, failure.retryable)), Some(("It broke.".to_owned(), true)));
    }

    #[test]
    fn a_missing_original_is_waited_for_and_at_the_last_try_fails_with_a_reason() {
        let fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let context = &fixture.context;
        let id = upload(context);
        std::fs::remove_file(context.storage.path(&StorageKey::Original(id))).unwrap();
        let job = ResizeJob::new(id, SourceFormat::Png, 0);

        assert_eq!(run(context, &job, 0, &JobOptions::silent()), Settlement::Retry, "shared storage may show it late");
        assert_eq!(record(context, id).state(), ImageState::Pending);

        assert_eq!(run(context, &job, ResizeJob::MAX_ATTEMPTS - 1, &JobOptions::silent()), Settlement::DeadLetter);
        let reason = record(context, id).failure.unwrap().reason;
        assert!(reason.contains("The upload is gone"), "{reason}");
    }

    #[test]
    fn a_job_for_an_image_the_database_does_not_know_is_dead_lettered_at_its_last_try() {
        let fixture = fixture();
        let _runtime = fixture.runtime.enter();
        let job = ResizeJob::new(ImageId::new(), SourceFormat::Png, 0);
        assert_eq!(run(&fixture.context, &job, 0, &JobOptions::silent()), Settlement::Retry);
        assert_eq!(run(&fixture.context, &job, ResizeJob::MAX_ATTEMPTS - 1, &JobOptions::silent()), Settlement::DeadLetter);
    }
}
