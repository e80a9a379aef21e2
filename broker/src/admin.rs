//! What the operators' dashboard reads from and does to RabbitMQ, over AMQP
//! alone (passive declares and basic.get), so it needs no management plugin.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
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
    /// The jobs in the dead-letter queue.
    pub dead: Vec<ResizeJob>,
    /// Messages in the dead-letter queue that are not jobs at all.
    pub dead_unreadable: usize,
}

/// Reads the queues. The dead-lettered messages are taken and put back, so
/// their order in the dead-letter queue may change.
pub async fn report(url: &str, topology: &Topology) -> Result<QueueReport, lapin::Error> {
    let link = AdminLink::open(url, topology).await?;
    let report = read_report(&link.channel, topology).await;
    link.close().await;
    report
}

async fn read_report(channel: &Channel, topology: &Topology) -> Result<QueueReport, lapin::Error> {
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let queue = channel.queue_declare(topology.resize_queue().into(), passive, FieldTable::default()).await?;
    let mut dead = Vec::new();
    let mut dead_unreadable = 0;
    let mut held = Vec::new();
    while held.len() < MAX_DEAD_MESSAGES {
        let Some(message) = channel.basic_get(topology.dead_letter_queue().as_str().into(), BasicGetOptions::default()).await? else { break };
        match ResizeJob::from_bytes(&message.delivery.data) {
            Ok(job) => dead.push(job),
            Err(_) => dead_unreadable += 1,
        }
        held.push(message.delivery);
    }
    for delivery in held {
        delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
    }
    Ok(QueueReport { waiting: queue.message_count(), consumers: queue.consumer_count(), dead, dead_unreadable })
}

/// Moves the dead-lettered jobs that `select` picks back to the resize queue,
/// each confirmed there before it leaves the dead-letter queue; the rest stay.
/// Returns the jobs replayed.
pub async fn replay(url: &str, topology: &Topology, select: impl FnMut(&ResizeJob) -> bool) -> Result<Vec<ResizeJob>, lapin::Error> {
    let link = AdminLink::open(url, topology).await?;
    let replayed = replay_on(&link.channel, topology, select).await;
    link.close().await;
    replayed
}

async fn replay_on(channel: &Channel, topology: &Topology, mut select: impl FnMut(&ResizeJob) -> bool) -> Result<Vec<ResizeJob>, lapin::Error> {
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut replayed = Vec::new();
    let mut kept = Vec::new();
    while replayed.len() + kept.len() < MAX_DEAD_MESSAGES {
        let Some(message) = channel.basic_get(topology.dead_letter_queue().as_str().into(), BasicGetOptions::default()).await? else { break };
        let delivery = message.delivery;
        let job = match ResizeJob::from_bytes(&delivery.data) {
            Ok(job) if select(&job) => job,
            _ => {
                kept.push(delivery);
                continue;
            }
        };
        // A fresh message: its tries start again from nought.
        let properties =
            BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()).with_message_id(job.image_id.to_string().into());
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let confirm = channel.basic_publish("".into(), topology.resize_queue().into(), options, &job.to_bytes(), properties).await?.await?;
        if matches!(confirm, Confirmation::Ack(None)) {
            delivery.ack(BasicAckOptions::default()).await?;
            replayed.push(job);
        } else {
            kept.push(delivery);
        }
    }
    for delivery in kept {
        delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
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
