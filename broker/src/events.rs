//! Image events over RabbitMQ: workers announce, every web server listens.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use thumbq_contract::{ImageEvent, Topology};
use tokio::sync::{broadcast, watch};

use crate::{connect, declare_topology};

/// Announces `event` on the events exchange. Best effort: not confirmed, and
/// a failure is only logged, since pages fall back to polling.
pub async fn announce(channel: &Channel, topology: &Topology, event: ImageEvent) {
    let published = channel
        .basic_publish(
            topology.events_exchange().as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            &event.to_bytes(),
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await;
    if let Err(error) = published {
        tracing::debug!(%error, image.id = %event.image_id, "Could not announce an image event.");
    }
}

/// Listens for image events and sends each to `events`, reconnecting with
/// backoff, until `shutdown` becomes true.
pub async fn listen(url: String, topology: Topology, events: broadcast::Sender<ImageEvent>, mut shutdown: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let outcome = tokio::select! {
            outcome = listen_once(&url, &topology, &events) => outcome,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if let Err(error) = outcome {
            tracing::debug!(%error, "Lost the events exchange; listening again soon.");
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(url: &str, topology: &Topology, events: &broadcast::Sender<ImageEvent>) -> Result<(), lapin::Error> {
    let connection = connect(url, "thumbq-web-events").await?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, topology).await?;
    // A queue of this process's own, gone when the process is.
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let queue = channel.queue_declare("".into(), options, FieldTable::default()).await?;
    channel.queue_bind(queue.name().clone(), topology.events_exchange().as_str().into(), "".into(), QueueBindOptions::default(), FieldTable::default()).await?;
    let consume = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut deliveries = channel.basic_consume(queue.name().clone(), "".into(), consume, FieldTable::default()).await?;
    tracing::info!("Listening for image events.");
    while let Some(delivery) = deliveries.next().await {
        if let Some(event) = ImageEvent::from_bytes(&delivery?.data) {
            // No receiver is fine: no page is open.
            let _ = events.send(event);
        }
    }
    Ok(())
}
