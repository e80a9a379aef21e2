//! The offload table's dealings with RabbitMQ besides thumbq's own: whether
//! it is there at all, and removing what this run declared on it.

use anyhow::Context;
use thumbq_broker::lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use thumbq_contract::Topology;

/// Fails, saying how to fix it, when RabbitMQ cannot be reached at `url`:
/// the offloaded setup cannot run without it, and a missing row would hide that.
pub async fn check_reachable(url: &str) -> anyhow::Result<()> {
    let connection = thumbq_broker::connect(url, "thumbq-bench").await.with_context(|| {
        format!("RabbitMQ is not reachable at {url}: the offload table needs it. Start it with scripts/ensure-rabbitmq (or pass --amqp-url)")
    })?;
    let _ = connection.close(200, "checked".into()).await;
    Ok(())
}

/// A resize queue name no other run uses.
pub fn unique_queue() -> String {
    format!("thumbq.bench.offload.{}.{}", std::process::id(), thumbq_contract::timeline::now_ms())
}

/// Deletes the queues and exchanges that thumbq's processes declared for
/// `queue` (each web server's own events queue goes with its connection).
pub async fn delete_topology(url: &str, queue: &str) -> anyhow::Result<()> {
    let topology = Topology::new(queue);
    let connection = thumbq_broker::connect(url, "thumbq-bench").await.with_context(|| format!("cannot reach RabbitMQ at {url} to delete {queue}"))?;
    let channel = connection.create_channel().await?;
    for name in [topology.resize_queue().to_owned(), topology.dead_letter_queue()] {
        channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.with_context(|| format!("cannot delete the queue {name}"))?;
    }
    for name in [topology.dead_letter_exchange(), topology.events_exchange()] {
        channel.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await.with_context(|| format!("cannot delete the exchange {name}"))?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
