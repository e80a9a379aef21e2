//! What the operators' dashboard reads from and does to RabbitMQ, over AMQP
//! alone (passive declares, and basic.get for a replay), so it needs no
//! management plugin.
//!
//! Looking never touches a message: each requeue would count as a delivery,
//! and RabbitMQ 4 drops a quorum queue's message after 20 of them. A replay
//! moves the jobs it does not take into fresh messages instead of requeueing them.

use std::sync::atomic::{AtomicUsize, Ordering};

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection};
use thumbq_contract::{ResizeJob, Topology};

use crate::{connect, declare_topology};

/// The most dead-lettered messages one look or one replay goes through.
const MAX_DEAD_MESSAGES: usize = 10_000;

/// The state of the queues, as the dashboard shows it.
#[derive(Debug)]
pub struct QueueReport {
    /// Jobs waiting in the resize queue (not counting those workers hold).
    pub waiting: u32,
    /// Workers consuming the resize queue.
    pub consumers: u32,
    /// Messages in the dead-letter queue.
    pub dead: u32,
}

/// Reads the queues' counts, with passive declares only.
pub async fn report(url: &str, topology: &Topology) -> Result<QueueReport, lapin::Error> {
    let link = AdminLink::open(url, topology).await?;
    let report = read_report(&link.channel, topology).await;
    link.close().await;
    report
}

async fn read_report(channel: &Channel, topology: &Topology) -> Result<QueueReport, lapin::Error> {
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let queue = channel.queue_declare(topology.resize_queue().into(), passive, FieldTable::default()).await?;
    let dead = channel.queue_declare(topology.dead_letter_queue().as_str().into(), passive, FieldTable::default()).await?;
    Ok(QueueReport { waiting: queue.message_count(), consumers: queue.consumer_count(), dead: dead.message_count() })
}

/// How far a replay has gone, for the dashboard to show while it runs.
#[derive(Debug, Default)]
pub struct ReplayProgress {
    /// Dead-lettered messages the replay will look at.
    pub total: AtomicUsize,
    pub looked_at: AtomicUsize,
    pub replayed: AtomicUsize,
}

/// Moves the dead-lettered jobs that `select` picks back to the resize queue,
/// each confirmed there before it leaves the dead-letter queue; the rest stay,
/// as fresh messages at the queue's end. Counts in `progress` as it goes;
/// returns the jobs replayed.
pub async fn replay(url: &str, topology: &Topology, select: impl FnMut(&ResizeJob) -> bool, progress: &ReplayProgress) -> Result<Vec<ResizeJob>, lapin::Error> {
    let link = AdminLink::open(url, topology).await?;
    let replayed = replay_on(&link.channel, topology, select, progress, Fate::Replay).await;
    link.close().await;
    replayed
}

/// Removes the dead-lettered jobs that `select` picks for good (jobs that
/// would only fail again: their images keep their failure, and say why); the
/// rest stay, as [`replay`] leaves them. `progress.replayed` counts those removed.
pub async fn discard(
    url: &str,
    topology: &Topology,
    select: impl FnMut(&ResizeJob) -> bool,
    progress: &ReplayProgress,
) -> Result<Vec<ResizeJob>, lapin::Error> {
    let link = AdminLink::open(url, topology).await?;
    let discarded = replay_on(&link.channel, topology, select, progress, Fate::Discard).await;
    link.close().await;
    discarded
}

/// What becomes of the dead-lettered jobs chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Replay,
    Discard,
}

async fn replay_on(
    channel: &Channel,
    topology: &Topology,
    mut select: impl FnMut(&ResizeJob) -> bool,
    progress: &ReplayProgress,
    fate: Fate,
) -> Result<Vec<ResizeJob>, lapin::Error> {
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let dead_letter_queue = topology.dead_letter_queue();
    // Each message is looked at once: the count taken now, before kept ones are put back at the end.
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let waiting = channel.queue_declare(dead_letter_queue.as_str().into(), passive, FieldTable::default()).await?.message_count() as usize;
    let mut replayed = Vec::new();
    progress.total.store(waiting.min(MAX_DEAD_MESSAGES), Ordering::Relaxed);
    for _ in 0..waiting.min(MAX_DEAD_MESSAGES) {
        let Some(message) = channel.basic_get(dead_letter_queue.as_str().into(), BasicGetOptions::default()).await? else { break };
        let delivery = message.delivery;
        let chosen = ResizeJob::from_bytes(&delivery.data).ok().filter(|job| select(job));
        if let (Some(job), Fate::Discard) = (&chosen, fate) {
            delivery.ack(BasicAckOptions::default()).await?;
            progress.replayed.fetch_add(1, Ordering::Relaxed);
            progress.looked_at.fetch_add(1, Ordering::Relaxed);
            replayed.push(job.clone());
            continue;
        }
        // A fresh message either way: a replayed job's tries start again from
        // nought, and a kept one's requeues are not counted against it.
        let (queue, payload) = match &chosen {
            Some(job) => (topology.resize_queue(), job.to_bytes()),
            None => (dead_letter_queue.as_str(), delivery.data.clone()),
        };
        let properties = match &chosen {
            Some(job) => crate::job_properties(job),
            None => delivery.properties.clone(),
        };
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let confirm = channel.basic_publish("".into(), queue.into(), options, &payload, properties).await?.await?;
        if matches!(confirm, Confirmation::Ack(None)) {
            delivery.ack(BasicAckOptions::default()).await?;
            progress.replayed.fetch_add(usize::from(chosen.is_some()), Ordering::Relaxed);
            replayed.extend(chosen);
        } else {
            // Not stored anew: it stays where it was.
            delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
        }
        progress.looked_at.fetch_add(1, Ordering::Relaxed);
    }
    Ok(replayed)
}

/// A connection for one look or one replay, closed when it is done.
struct AdminLink {
    connection: Connection,
    channel: Channel,
}

impl AdminLink {
    async fn open(url: &str, topology: &Topology) -> Result<Self, lapin::Error> {
        let connection = connect(url, "thumbq-admin").await?;
        let channel = connection.create_channel().await?;
        declare_topology(&channel, topology).await?;
        Ok(Self { connection, channel })
    }

    async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}
