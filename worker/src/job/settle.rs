//! What becomes of a job's message once the job has run: acked, tried again
//! after a delay, postponed without counting the try (a full disk, a store or
//! database away), forgotten (the image was deleted), or dead-lettered with
//! its failure recorded where the web server finds it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thumbq_contract::timeline;
use thumbq_contract::{FailureRecord, ImageId, ResizeJob};
use thumbq_repo::RepoError;

use super::{JobContext, JobError, JobOptions, Outcome, is_deleted, process, wait};

/// How the consumer must settle the message of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    /// This try failed, and trying again may help: the job goes back to the queue
    /// after [`thumbq_contract::ResizeJob::retry_delay`] of its tries, this one counted.
    Retry,
    DeadLetter,
    /// Acked without a word: the image was deleted, there is nothing to announce.
    Forget,
    /// The disk is full: the job waits [`JobContext::disk_full_retry`], then
    /// goes back to the queue as a fresh message, its tries not counted.
    Postpone,
}

/// What people read when the original was still missing at the last try.
pub const UPLOAD_GONE: &str = "The upload is gone: there is no original to make thumbnails from.";

/// What people read when a job was tried [`ResizeJob::MAX_ATTEMPTS`] times without an answer.
pub const GAVE_UP: &str = "The thumbnails could not be made: the worker stopped or timed out on this image again and again.";

/// Runs `job`, tried `attempt` times before (0 the first time), and records a
/// permanent failure where the web server will find it.
pub fn run(context: &JobContext, job: &ResizeJob, attempt: u32, options: &JobOptions) -> Settlement {
    let id = job.image_id;
    let last_attempt = attempt + 1 >= ResizeJob::MAX_ATTEMPTS;
    if attempt >= ResizeJob::MAX_ATTEMPTS {
        // Only a worker that died on the last try gets here: the broker allows
        // one delivery more than the tries, so that this one can say why.
        return give_up(context, id, GAVE_UP, Fault::Ours);
    }
    match process(context, job, options) {
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
        Err(JobError::Retry(error)) if is_to_wait_out(&error) => {
            tracing::warn!(image.id = %id, %error, retry_in_secs = context.disk_full_retry.as_secs(), "The disk is full or the store unavailable; the job waits and is tried again.");
            context.metrics.job("postponed");
            Settlement::Postpone
        }
        // A write that failed may have left thumbnails of an image deleted meanwhile.
        Err(JobError::Retry(_)) if is_deleted(context, id) == Some(true) => forget_deleted(context, id),
        Err(JobError::Retry(error)) if last_attempt && error.kind() == std::io::ErrorKind::NotFound => give_up(context, id, UPLOAD_GONE, Fault::Image),
        // Shared storage may show a new file late: the retry's delay gives it time.
        Err(JobError::Retry(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(image.id = %id, attempt, "The original is not there (yet); trying again shortly.");
            context.metrics.job("retried");
            Settlement::Retry
        }
        Err(JobError::Retry(error)) if last_attempt => {
            tracing::warn!(image.id = %id, %error, attempt, "The job failed on its last try.");
            give_up(context, id, &format!("The thumbnails could not be made after {} tries; the last error was: {error}.", attempt + 1), Fault::Ours)
        }
        Err(JobError::Retry(error)) => {
            tracing::warn!(image.id = %id, %error, attempt, "The job failed for now; it is tried again after a delay.");
            context.metrics.job("retried");
            Settlement::Retry
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
    let failure = FailureRecord { reason: reason.to_owned(), failed_at_ms: timeline::now_ms(), retryable: fault == Fault::Ours };
    let steps = [thumbq_contract::Step { step: "failed".to_owned(), at: failure.failed_at_ms, by: context.name.clone() }];
    match wait(context.repo.failed(id, &failure, &steps)) {
        Ok(true) => {
            tracing::info!(image.id = %id, reason, "The job cannot succeed; its failure is recorded.");
            context.metrics.job("failed");
            Settlement::DeadLetter
        }
        // Refused: the image was deleted meanwhile, and nobody needs the job; or it has no record at all.
        Ok(false) => match wait(context.repo.image(id)) {
            Ok(Some(_)) => forget_deleted(context, id),
            Ok(None) => {
                tracing::error!(image.id = %id, reason, database = %context.repo.describe(), "A job failed for an image the database has no record of; dead-lettering it. Is this worker on the web server's database?");
                context.metrics.job("failed");
                Settlement::DeadLetter
            }
            Err(_) => Settlement::Retry,
        },
        Err(error) if error.is_unavailable() => Settlement::Postpone,
        Err(error) => {
            tracing::warn!(image.id = %id, %error, "Could not record the job's failure; it goes back to the queue.");
            Settlement::Retry
        }
    }
}

/// Removes whatever a job of a deleted image may have written, and says to ack its job.
fn forget_deleted(context: &JobContext, id: ImageId) -> Settlement {
    match context.store.remove_thumbnails(id) {
        Ok(()) => {
            tracing::info!(image.id = %id, "The image was deleted; nothing of it is kept.");
            context.metrics.job("deleted");
            Settlement::Forget
        }
        Err(error) => {
            tracing::warn!(image.id = %id, %error, "Could not remove the files of a deleted image; the job goes back to the queue.");
            Settlement::Retry
        }
    }
}

/// Whether a failed step is to be waited out rather than counted as a try:
/// a full disk, or an object store or database that does not answer.
fn is_to_wait_out(error: &std::io::Error) -> bool {
    let database_away = error.get_ref().and_then(|inner| inner.downcast_ref::<RepoError>()).is_some_and(RepoError::is_unavailable);
    thumbq_store::durable::is_disk_full(error) || thumbq_store::is_unavailable(error) || database_away
}
