//! The bench's dealings with RabbitMQ besides thumbq's own: whether it is
//! there at all, waiting on a queue's counts, removing what a run declared on
//! it, and the scale-out table's cluster of its own.

use std::time::{Duration, Instant};

use anyhow::Context;
use thumbq_broker::admin::QueueReport;
use thumbq_broker::lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use thumbq_contract::Topology;

use crate::process::script_output;

/// How often a queue's counts are read while waiting on them.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// Where the scale-out table's cluster listens (AMQP on 5721 to 5723) and
/// keeps its data: apart from the tests' cluster, so that both can run.
const CLUSTER_ENVIRONMENT: [(&str, &str); 2] = [("THUMBQ_CLUSTER_PORT", "5721"), ("THUMBQ_CLUSTER_DIR", "/tmp/thumbq-bench-cluster")];

/// Fails, saying how to fix it, when RabbitMQ cannot be reached at `url`:
/// the offloaded setup cannot run without it, and a missing row would hide that.
pub async fn check_reachable(url: &str) -> anyhow::Result<()> {
    let connection = thumbq_broker::connect(url, "thumbq-bench")
        .await
        .with_context(|| format!("RabbitMQ is not reachable at {url}: this table needs it. Start it with scripts/ensure-rabbitmq (or pass --amqp-url)"))?;
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
    for name in topology.queues() {
        channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.with_context(|| format!("cannot delete the queue {name}"))?;
    }
    for name in [topology.dead_letter_exchange(), topology.events_exchange()] {
        channel.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await.with_context(|| format!("cannot delete the exchange {name}"))?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// Reads `queue`'s counts until `enough` holds for them; fails past `within`,
/// or as soon as `alive` fails (a process that should feed or drain it exited).
pub async fn wait_for_queue(
    url: &str,
    queue: &str,
    within: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
    enough: impl Fn(&QueueReport) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let topology = Topology::new(queue);
    loop {
        alive()?;
        let report = thumbq_broker::admin::report(url, &topology).await.with_context(|| format!("cannot read the queue {queue}"))?;
        if enough(&report) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{queue} after {within:?}: {report:?}");
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// A three-node cluster of the bench's own (`scripts/rabbitmq-cluster`),
/// stopped and its data removed when dropped, also when the bench fails midway.
pub struct Cluster {
    /// The nodes' AMQP URLs, comma-separated, as `THUMBQ_AMQP_URL` takes them.
    pub urls: String,
}

impl Cluster {
    /// Starts the three nodes and waits until they form one cluster (tens of seconds).
    pub fn start() -> anyhow::Result<Self> {
        // Made first, so that nodes started by a start that then fails are stopped too.
        let mut cluster = Self { urls: String::new() };
        cluster.urls = script_output("rabbitmq-cluster", &["start"], &CLUSTER_ENVIRONMENT)?;
        Ok(cluster)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = script_output("rabbitmq-cluster", &["stop"], &CLUSTER_ENVIRONMENT) {
            eprintln!("The bench's RabbitMQ cluster may still run: {error:#}");
        }
    }
}

/// What a run measured, once its queues are deleted: the run's error first,
/// else the cleanup's; a cleanup that failed after a failed run is said too.
pub fn after_cleanup<T>(measured: anyhow::Result<T>, deleted: anyhow::Result<()>) -> anyhow::Result<T> {
    match (measured, deleted) {
        (Ok(measured), deleted) => deleted.map(|()| measured),
        (Err(error), deleted) => {
            if let Err(cleanup) = deleted {
                eprintln!("{cleanup:#}");
            }
            Err(error)
        }
    }
}
