//! The RabbitMQ consumer: takes jobs from the broker, runs each through
//! [`run_job`], settles each message, reconnects when the link breaks, and on
//! shutdown stops taking jobs and finishes the ones it holds.
//!
//! `THUMBQ_AMQP_URL` may name several nodes of a cluster: each connection
//! starts at a node of its own and moves to the next one that answers. The
//! prefetch is the worker's concurrency. A try that failed but may succeed
//! later is published again, with its tries so far in the `x-thumbq-tries`
//! header, to the retry queue of its delay (`{queue}.retry.{n}s`, a quorum
//! queue whose messages expire back into the resize queue), and only then acked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use thumbq_broker::lapin::Channel;
use thumbq_broker::lapin::message::Delivery;
use thumbq_broker::lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueDeclareOptions};
use thumbq_broker::lapin::types::{AMQPValue, FieldTable};
use thumbq_broker::{Backoff, connect, declare_topology};
use thumbq_contract::{ImageEvent, ImageId, ThumbSize, Topology};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Settings;
use crate::job::{JobContext, JobOptions, Settlement};
use crate::pipeline::Preview;
use crate::runner::{Ran, run_job};

/// Consumes jobs until `shutdown` changes to `true`, then drains and returns.
pub async fn run(settings: Settings, amqp_url: String, context: JobContext, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let context = Arc::new(context);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        match consume(&settings, &amqp_url, &context, &mut shutdown, &mut backoff).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                let delay = backoff.next_pause();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "Lost the broker; reconnecting.");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                }
            }
        }
    }
}

/// One connection's life: returns `Ok` on shutdown, `Err` when the link broke.
async fn consume(
    settings: &Settings,
    amqp_url: &str,
    context: &Arc<JobContext>,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> anyhow::Result<()> {
    let topology = settings.topology();
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect(amqp_url, "thumbq-worker")).await??;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, &topology).await?;
    // Postponed and retried jobs go back as fresh messages, each confirmed before its original is acked.
    let republisher = connection.create_channel().await?;
    republisher.confirm_select(thumbq_broker::lapin::options::ConfirmSelectOptions::default()).await?;
    // A channel of its own for asking the queue's depth: a failed question closes only it.
    let inspector = connection.create_channel().await?;
    // Per-consumer prefetch: the broker hands this worker at most as many jobs
    // as it works on at once, so the others stay free for other workers.
    channel.basic_qos(settings.concurrency, BasicQosOptions { global: false }).await?;
    let mut deliveries = channel.basic_consume(topology.resize_queue().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    tracing::info!(queue = topology.resize_queue(), concurrency = settings.concurrency, "Waiting for resize jobs.");
    backoff.reset();

    let mut in_flight = JoinSet::new();
    let depth = Arc::new(QueueDepth::default());
    let outcome = loop {
        tokio::select! {
            delivery = deliveries.next() => match delivery {
                Some(Ok(delivery)) => {
                    let preview = depth.preview();
                    depth.ask(&inspector, &topology);
                    let announcer = Announcer { channel: channel.clone(), republisher: republisher.clone(), topology: topology.clone() };
                    in_flight.spawn(handle(Arc::clone(context), delivery, settings.job_time_limit(), announcer, preview));
                }
                Some(Err(error)) => break Err(error.into()),
                None => break Err(anyhow::anyhow!("the broker ended the consumer")),
            },
            Some(_) = in_flight.join_next() => {}
            _ = shutdown.wait_for(|stop| *stop) => break Ok(()),
        }
    };
    if outcome.is_ok() {
        // Take no more jobs, finish those held; what is not finished in time
        // is redelivered to another worker when this connection closes.
        let _ = channel.basic_cancel(deliveries.tag(), BasicCancelOptions::default()).await;
        tracing::info!(jobs = in_flight.len(), "Stopping: finishing the jobs in flight.");
        let drained = tokio::time::timeout(settings.shutdown_timeout(), async { while in_flight.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(jobs = in_flight.len(), "Jobs still in flight at the shutdown timeout go back to the queue.");
        }
        let _ = connection.close(200, "worker shutting down".into()).await;
    }
    outcome
}

/// What the worker last heard of how many jobs wait on the resize queue.
/// It is asked as each job is taken, in the background: no job waits for the
/// broker's answer (a round trip to a quorum queue's leader, tens of
/// milliseconds when it is busy), and the next job decides on it. One
/// question per job, so that the last job of a burst asks too (and hears the
/// queue empty); an answer out of date costs one job a preview it need not
/// have had, or one it would have had.
#[derive(Default)]
struct QueueDepth {
    /// Jobs ready at the last answer; none until one comes, so that an idle
    /// worker's first job shows its small thumbnail first.
    waiting: AtomicU32,
}

/// How long a question about the depth may take before it is given up.
const DEPTH_ANSWER_WITHIN: Duration = Duration::from_secs(5);

impl QueueDepth {
    /// [`Preview::First`] when no other job was waiting at the last answer: the
    /// spare time goes to showing the first thumbnail sooner. At the head of a
    /// burst that answer is old, and one job pays for a preview it need not have.
    fn preview(&self) -> Preview {
        if self.waiting.load(Ordering::Relaxed) == 0 { Preview::First } else { Preview::WithTheRest }
    }

    /// Asks the broker how many jobs wait, for the next job to know.
    fn ask(self: &Arc<Self>, inspector: &Channel, topology: &Topology) {
        let (depth, inspector, queue) = (Arc::clone(self), inspector.clone(), topology.resize_queue().to_owned());
        tokio::spawn(async move {
            let options = QueueDeclareOptions { passive: true, ..Default::default() };
            if let Ok(Ok(queue)) =
                tokio::time::timeout(DEPTH_ANSWER_WITHIN, inspector.queue_declare(queue.as_str().into(), options, FieldTable::default())).await
            {
                depth.waiting.store(queue.message_count(), Ordering::Relaxed);
            }
        });
    }
}

/// Where finished images are announced, and postponed jobs put back.
struct Announcer {
    channel: Channel,
    republisher: Channel,
    topology: Topology,
}

impl Announcer {
    /// Announces each size as it is written, from the job's thread, without
    /// waiting, and in the order written: one task publishes them all.
    fn written(&self) -> Box<dyn Fn(ImageId, ThumbSize, Option<String>) + Send + Sync> {
        let (channel, topology) = (self.channel.clone(), self.topology.clone());
        let (sender, mut written) = tokio::sync::mpsc::unbounded_channel::<ImageEvent>();
        // Ends once the job is over and its end of the channel dropped.
        tokio::spawn(async move {
            while let Some(event) = written.recv().await {
                thumbq_broker::events::announce(&channel, &topology, event).await;
            }
        });
        Box::new(move |id, size, placeholder| {
            let _ = sender.send(ImageEvent::written(id, size, placeholder));
        })
    }
}

/// Runs one delivery's job, settles its message and announces the result.
async fn handle(context: Arc<JobContext>, delivery: Delivery, time_limit: Duration, announcer: Announcer, preview: Preview) {
    let options = JobOptions { preview, written: announcer.written() };
    let tries = earlier_tries(&delivery);
    let Ran { settlement, event } = run_job(Arc::clone(&context), &delivery.data, tries, time_limit, options).await;
    let sent = match settlement {
        // Its tries as they were: a postponed try does not count.
        Settlement::Postpone => {
            tokio::time::sleep(context.disk_full_retry).await;
            send_again(&announcer, &delivery, announcer.topology.resize_queue(), tries).await
        }
        // Back to the resize queue through the retry queue of its delay, with this try counted.
        Settlement::Retry => {
            let delay_secs = announcer.topology.retry_delays().after(tries).as_secs();
            send_again(&announcer, &delivery, &announcer.topology.retry_queue(delay_secs), tries + 1).await
        }
        Settlement::Ack | Settlement::Forget => delivery.ack(BasicAckOptions::default()).await,
        Settlement::DeadLetter => delivery.reject(BasicRejectOptions { requeue: false }).await,
    };
    match sent {
        Ok(true) => {
            if let Some(event) = event {
                thumbq_broker::events::announce(&announcer.channel, &announcer.topology, event).await;
            }
        }
        // The channel is gone: the broker will redeliver, and the job is idempotent.
        Ok(false) => tracing::warn!(?settlement, "Could not settle a message; the broker will redeliver it."),
        Err(error) => tracing::warn!(?settlement, %error, "Could not settle a message; the broker will redeliver it."),
    }
}

/// Sends the delivery's job again, to `queue`, as having had `tries` tries, then acks
/// the delivery. Should the broker not take it, the delivery goes back to the queue as it is.
async fn send_again(announcer: &Announcer, delivery: &Delivery, queue: &str, tries: u32) -> Result<bool, thumbq_broker::lapin::Error> {
    match republish(announcer, &delivery.data, queue, tries).await {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await,
        Err(error) => {
            tracing::warn!(%error, queue, "Could not send a job again as a fresh message; requeueing it at once.");
            // basic.reject, not nack: newer RabbitMQ counts only rejects in x-delivery-count.
            delivery.reject(BasicRejectOptions { requeue: true }).await
        }
    }
}

/// Publishes `payload` anew on `queue`, as having had `tries` tries, and waits for the broker's confirm.
async fn republish(announcer: &Announcer, payload: &[u8], queue: &str, tries: u32) -> Result<(), thumbq_broker::lapin::Error> {
    use thumbq_broker::lapin::options::BasicPublishOptions;
    use thumbq_broker::lapin::{BasicProperties, Confirmation};
    // A job that is no job would not have been sent again; its bytes go back as they came.
    let properties = thumbq_contract::ResizeJob::from_bytes(payload)
        .map(|job| thumbq_broker::job_properties_after(&job, tries))
        .unwrap_or_else(|_| BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()));
    let options = BasicPublishOptions { mandatory: true, ..Default::default() };
    let confirm = announcer.republisher.basic_publish("".into(), queue.into(), options, payload, properties).await?.await?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        _ => Err(thumbq_broker::lapin::Error::from(thumbq_broker::lapin::ErrorKind::InvalidChannelState(
            thumbq_broker::lapin::ChannelState::Error,
            "the broker did not take the postponed job",
        ))),
    }
}

/// How many times the job was tried before: the tries its message carries (it
/// was sent again after them), and the broker's deliveries of this message
/// (quorum queues count them in `x-delivery-count`, including deliveries to workers that died).
fn earlier_tries(delivery: &Delivery) -> u32 {
    header_count(delivery, thumbq_broker::TRIES_HEADER).saturating_add(header_count(delivery, "x-delivery-count"))
}

fn header_count(delivery: &Delivery, name: &str) -> u32 {
    let count = delivery.properties.headers().as_ref().and_then(|headers| headers.inner().get(name).cloned());
    let count = match count {
        Some(AMQPValue::LongLongInt(count)) => count,
        Some(AMQPValue::LongInt(count)) => i64::from(count),
        Some(AMQPValue::LongUInt(count)) => i64::from(count),
        Some(AMQPValue::ShortInt(count)) => i64::from(count),
        Some(AMQPValue::ShortUInt(count)) => i64::from(count),
        _ => 0,
    };
    u32::try_from(count).unwrap_or(0)
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
