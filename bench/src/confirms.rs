//! How many jobs per second one broker confirms: `thumbq_broker::Publisher`,
//! as the web server uses it, publishing fresh resize jobs to a queue of the
//! bench's own, one at a time and with many in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use thumbq_broker::Publisher;
use thumbq_contract::{ImageId, ResizeJob, SourceFormat, TraceParent};

/// Jobs each measurement publishes.
pub const JOBS: usize = 3_000;

/// Publishes [`JOBS`] jobs to a fresh queue at `urls` with `in_flight` publishes
/// waiting for their confirms at any time; returns confirmed jobs per second.
/// The queue is deleted afterwards.
pub async fn rate(urls: &str, in_flight: usize) -> anyhow::Result<f64> {
    let queue = crate::rabbitmq::unique_queue();
    let publisher = Arc::new(Publisher::new(urls, "thumbq-bench-confirms", thumbq_contract::Topology::new(queue.clone()), Duration::from_secs(30)));
    publisher.check_connection().await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let publishers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (publisher, next) = (Arc::clone(&publisher), Arc::clone(&next));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < JOBS {
                    let job = ResizeJob::new(ImageId::new(), SourceFormat::Jpeg, 0).traced(TraceParent::new());
                    publisher.publish(&job).await?;
                }
                Ok::<_, thumbq_broker::PublishError>(())
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await??;
    }
    let per_second = JOBS as f64 / started.elapsed().as_secs_f64();
    crate::rabbitmq::delete_topology(urls, &queue).await?;
    Ok(per_second)
}
