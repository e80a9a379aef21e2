//! Runs one job off the async runtime, with a time limit and a panic boundary;
//! both consumers (RabbitMQ and embedded) go through here.

use std::sync::Arc;
use std::time::Duration;

use thumbq_contract::{EventState, ImageEvent, ResizeJob};

use crate::job::{self, JobContext, JobOptions, Settlement};

/// How a message's job ended, and what to announce of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub settlement: Settlement,
    /// What pages should hear: `None` when the job goes back to the queue, or the message was no job.
    pub event: Option<ImageEvent>,
}

/// Decodes the message and runs its job on a blocking thread.
///
/// A job over `time_limit` is abandoned (its thread finishes in the
/// background) and goes back to the queue, where its tries are counted; a
/// panic fails the job for good instead of taking the worker down.
pub async fn run_job(context: Arc<JobContext>, payload: &[u8], attempt: u32, time_limit: Duration, options: JobOptions) -> Ran {
    let job = match ResizeJob::from_bytes(payload) {
        Ok(job) => job,
        Err(error) => {
            tracing::error!(%error, "A message on the queue is not a resize job; dead-lettering it.");
            return Ran { settlement: Settlement::DeadLetter, event: None };
        }
    };
    let id = job.image_id;
    let settlement = settle(context, job, attempt, time_limit, options).await;
    // A job gives up after its tries and records why; should even that keep
    // failing (the database refusing the failure record), it is tried no more
    // than this, and waits in the dead-letter queue for an operator (the
    // image is not failed: nothing is announced).
    if settlement == Settlement::Retry && attempt + 1 >= MOST_TRIES {
        tracing::error!(image.id = %id, attempt, "A job still could not settle after all its tries, nor record why; dead-lettering it.");
        return Ran { settlement: Settlement::DeadLetter, event: None };
    }
    let state = match settlement {
        Settlement::Ack => Some(EventState::Done),
        Settlement::DeadLetter => Some(EventState::Failed),
        Settlement::Retry | Settlement::Forget | Settlement::Postpone => None,
    };
    Ran { settlement, event: state.map(|state| ImageEvent::new(id, state)) }
}

/// Tries of one job, counting those spent giving it up: twice the tries it has.
const MOST_TRIES: u32 = 2 * ResizeJob::MAX_ATTEMPTS;

async fn settle(context: Arc<JobContext>, job: ResizeJob, attempt: u32, time_limit: Duration, options: JobOptions) -> Settlement {
    let id = job.image_id;
    let Ok(slot) = Arc::clone(&context.cpu_slots).acquire_owned().await else {
        return Settlement::Retry;
    };
    let task = {
        let context = Arc::clone(&context);
        // Every log line of the job, wherever it is written, names the image
        // and the upload's trace, as the web server's lines about it do.
        let trace_id = job.traceparent.map(|trace| trace.trace_id()).unwrap_or_default();
        let span = tracing::info_span!("job", image.id = %id, trace_id, attempt);
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            span.in_scope(|| job::run(&context, &job, attempt, &options))
        })
    };
    match tokio::time::timeout(time_limit, task).await {
        Ok(Ok(settlement)) => settlement,
        Ok(Err(panic)) => {
            tracing::error!(image.id = %id, error = %panic, "The job panicked.");
            let context = Arc::clone(&context);
            tokio::task::spawn_blocking(move || {
                job::give_up(&context, id, "The thumbnails could not be made because of an error in thumbq; it has been logged.", job::Fault::Ours)
            })
            .await
            .unwrap_or(Settlement::Retry)
        }
        Err(_elapsed) => {
            tracing::warn!(image.id = %id, time_limit_ms = time_limit.as_millis() as u64, attempt, "The job ran over its time limit; abandoning this try.");
            Settlement::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thumbq_contract::{ImageId, MediaLimits, Sizes, SourceFormat, Storage, StorageKey};

    async fn context(dir: &std::path::Path) -> Arc<JobContext> {
        let storage = Storage::new(dir);
        thumbq_store::data_dir::create_dirs(&storage).unwrap();
        let repo = thumbq_repo::Repository::open_now(&thumbq_repo::Location::Sqlite(dir.join("thumbq.db"))).await.unwrap();
        Arc::new(JobContext::new(storage, repo, Sizes::default(), MediaLimits::default(), 1))
    }

    /// Records an uploaded JPEG of `bytes`, as the web server does.
    async fn upload(context: &JobContext, bytes: Vec<u8>) -> ImageId {
        let id = ImageId::new();
        std::fs::write(context.storage.path(&StorageKey::Original(id)), bytes).unwrap();
        context.repo.add_image(&thumbq_repo::testing::uploaded(id, SourceFormat::Jpeg, 3000, 2000), &[], None, &thumbq_repo::Lease::none()).await.unwrap();
        id
    }

    fn large_jpeg() -> Vec<u8> {
        let image = image::RgbImage::from_fn(3000, 2000, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image).write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_over_its_time_limit_is_abandoned_and_goes_back_to_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path()).await;
        let id = upload(&context, large_jpeg()).await;
        let job = ResizeJob::new(id, SourceFormat::Jpeg, 0);

        let ran = run_job(context, &job.to_bytes(), 0, Duration::from_millis(1), JobOptions::silent()).await;

        assert_eq!(ran, Ran { settlement: Settlement::Retry, event: None });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_that_cannot_settle_is_tried_no_more_than_twice_its_tries() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path()).await;
        let id = upload(&context, large_jpeg()).await;
        let job = ResizeJob::new(id, SourceFormat::Jpeg, 0).to_bytes();
        // No slot to run in (as when the worker stops): every try, giving up included, goes back.
        context.cpu_slots.close();
        let ran = run_job(Arc::clone(&context), &job, MOST_TRIES - 2, Duration::from_secs(60), JobOptions::silent()).await;
        assert_eq!(ran, Ran { settlement: Settlement::Retry, event: None });
        let ran = run_job(context, &job, MOST_TRIES - 1, Duration::from_secs(60), JobOptions::silent()).await;
        assert_eq!(ran, Ran { settlement: Settlement::DeadLetter, event: None });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_delivered_after_its_last_try_is_given_up_with_a_reason_without_running() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path()).await;
        let id = upload(&context, large_jpeg()).await;
        let job = ResizeJob::new(id, SourceFormat::Jpeg, 0);

        let ran = run_job(Arc::clone(&context), &job.to_bytes(), ResizeJob::MAX_ATTEMPTS, Duration::from_secs(60), JobOptions::silent()).await;

        assert_eq!(ran.settlement, Settlement::DeadLetter);
        assert_eq!(ran.event, Some(ImageEvent::new(id, EventState::Failed)));
        let reason = context.repo.image(id).await.unwrap().unwrap().failure.unwrap().reason;
        assert!(reason.contains("again and again"), "{reason}");
        assert!(!context.storage.path(&StorageKey::Thumbnail(id, thumbq_contract::ThumbSize::Small, thumbq_contract::ThumbFormat::Jpeg)).exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_message_that_is_not_a_job_is_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let ran = run_job(context(dir.path()).await, b"{\"hello\":1}", 0, Duration::from_secs(5), JobOptions::silent()).await;
        assert_eq!(ran, Ran { settlement: Settlement::DeadLetter, event: None });
    }
}
