//! The RabbitMQ side of the contract, used by both the web server and the workers.
//!
//! - [`connect`] opens a connection that names the process in the broker's UI.
//! - [`declare_topology`] declares the queues of [`Topology`], identically on both sides.
//! - [`Publisher`] publishes jobs and returns only once the broker confirmed it stored them.
//! - [`Backoff`] paces the tries at a broker or queue that is away.

pub mod admin;
mod backoff;
pub mod events;
mod publisher;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use thumbq_contract::Topology;
use thumbq_contract::topology::ArgumentValue;

pub use backoff::Backoff;
pub use lapin;
pub use publisher::{PublishError, Publisher};

/// The properties of a job's message: persistent, JSON, named by its image,
/// and carrying the upload's trace context in the `traceparent` header.
pub fn job_properties(job: &thumbq_contract::ResizeJob) -> lapin::BasicProperties {
    let mut properties = lapin::BasicProperties::default()
        .with_delivery_mode(2) // persistent: survives a broker restart
        .with_content_type("application/json".into())
        .with_message_id(job.image_id.to_string().into());
    if let Some(trace) = job.traceparent {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert(thumbq_contract::trace::HEADER.into(), lapin::types::AMQPValue::LongString(trace.to_string().into()));
        properties = properties.with_headers(headers);
    }
    properties
}

/// The header of a job sent again (after a delay, or postponed) that says how
/// many tries it had before: a message sent again starts its own delivery count.
pub const TRIES_HEADER: &str = "x-thumbq-tries";

/// [`job_properties`], for a job sent again after `tries` tries.
pub fn job_properties_after(job: &thumbq_contract::ResizeJob, tries: u32) -> lapin::BasicProperties {
    let properties = job_properties(job);
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(TRIES_HEADER.into(), lapin::types::AMQPValue::LongUInt(tries));
    properties.with_headers(headers)
}

/// How long one node of a cluster may take to accept a connection before the next is tried.
const NODE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens a connection, named `name` in the broker's connection list, to one
/// node of `urls`: one AMQP URL, or a comma-separated list of a cluster's
/// nodes. Each connect starts at a node chosen at random (so that a fleet
/// spreads over the cluster, and a caller whose own deadline cut a silent
/// node short starts elsewhere next time) and moves on while one is refused
/// or silent.
pub async fn connect(urls: &str, name: &str) -> Result<Connection, lapin::Error> {
    let nodes: Vec<&str> = node_urls(urls).collect();
    let first = (uuid::Uuid::new_v4().as_u128() % nodes.len().max(1) as u128) as usize;
    let mut last_error = None;
    for node in nodes.iter().cycle().skip(first).take(nodes.len()) {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(NODE_CONNECT_TIMEOUT, Connection::connect(node, properties)).await {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(error)) => {
                if nodes.len() > 1 {
                    tracing::info!(%error, "A RabbitMQ node refused the connection; trying the next.");
                }
                last_error = Some(error);
            }
            Err(_) => {
                tracing::info!(timeout_secs = NODE_CONNECT_TIMEOUT.as_secs(), "A RabbitMQ node did not answer; trying the next.");
                last_error = Some(lapin::Error::from(lapin::ErrorKind::IOError(std::sync::Arc::new(std::io::Error::from(std::io::ErrorKind::TimedOut)))));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed))))
}

/// The node URLs of a setting that names one node or several, comma-separated.
pub fn node_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|url| !url.is_empty())
}

/// Declares the resize queue, its retry queues, its dead-letter exchange and queue, and the events exchange.
///
/// Declaring is idempotent, so every process does it on every (re)connect.
pub async fn declare_topology(channel: &Channel, topology: &Topology) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let dead_letter_exchange = topology.dead_letter_exchange();
    let dead_letter_queue = topology.dead_letter_queue();
    declare_fanout(channel, &dead_letter_exchange).await?;
    channel.queue_declare(dead_letter_queue.as_str().into(), durable, field_table(topology.dead_letter_queue_arguments())).await?;
    channel
        .queue_bind(dead_letter_queue.as_str().into(), dead_letter_exchange.as_str().into(), "".into(), QueueBindOptions::default(), FieldTable::default())
        .await?;
    channel.queue_declare(topology.resize_queue().into(), durable, field_table(topology.resize_queue_arguments())).await?;
    for &delay_secs in topology.retry_delays().secs() {
        let retry_queue = topology.retry_queue(delay_secs);
        channel.queue_declare(retry_queue.as_str().into(), durable, field_table(topology.retry_queue_arguments(delay_secs))).await?;
    }
    declare_fanout(channel, &topology.events_exchange()).await
}

async fn declare_fanout(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(name.into(), ExchangeKind::Fanout, durable, FieldTable::default()).await
}

fn field_table(arguments: Vec<(&'static str, ArgumentValue)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in arguments {
        let value = match value {
            ArgumentValue::Text(text) => AMQPValue::LongString(text.into()),
            ArgumentValue::Int(number) => AMQPValue::LongLongInt(number),
        };
        table.insert(name.into(), value);
    }
    table
}

/// Checks the AMQP URL, or the comma-separated URLs of a cluster's nodes,
/// given in the settings; the error says what is wrong and with which.
pub fn check_url(urls: &str) -> Result<String, String> {
    let mut nodes = 0;
    for url in node_urls(urls) {
        url.parse::<lapin::uri::AMQPUri>().map_err(|error| format!("{url}: {error}"))?;
        nodes += 1;
    }
    if nodes == 0 {
        return Err("no AMQP URL is given".to_owned());
    }
    Ok(urls.to_owned())
}
