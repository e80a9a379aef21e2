//! Runs one job off the async runtime, with a time limit and a panic boundary;
//! both consumers (RabbitMQ and embedded) go through here.

use std::sync::Arc;
use std::time::Duration;

use thumbq_contract::ResizeJob;

use crate::job::{self, JobContext, Settlement};

/// Decodes the message and runs its job on a blocking thread.
///
/// A job over `time_limit` is abandoned (its thread finishes in the
/// background) and goes back to the queue, where its tries are counted; a
/// panic fails the job for good instead of taking the worker down.
pub async fn run_job(context: Arc<JobContext>, payload: &[u8], attempt: u32, time_limit: Duration) -> Settlement {
    let job = match ResizeJob::from_bytes(payload) {
        Ok(job) => job,
        Err(error) => {
            tracing::error!(%error, "A message on the queue is not a resize job; dead-lettering it.");
            return Settlement::DeadLetter;
        }
    };
    let id = job.image_id;
    let task = {
        let context = Arc::clone(&context);
        tokio::task::spawn_blocking(move || job::run(&context, &job, attempt))
    };
    match tokio::time::timeout(time_limit, task).await {
        Ok(Ok(settlement)) => settlement,
        Ok(Err(panic)) => {
            tracing::error!(image.id = %id, error = %panic, "The job panicked.");
            let context = Arc::clone(&context);
            tokio::task::spawn_blocking(move || {
                job::give_up(&context, id, "The thumbnails could not be made because of an error in thumbq; it has been logged.")
            })
            .await
            .unwrap_or(Settlement::Requeue)
        }
        Err(_elapsed) => {
            tracing::warn!(image.id = %id, time_limit_ms = time_limit.as_millis() as u64, attempt, "The job ran over its time limit; abandoning this try.");
            Settlement::Requeue
        }
    }
}
