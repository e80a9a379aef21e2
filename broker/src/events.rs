//! Image events over RabbitMQ: workers announce, every web server listens.
//!
//! Events are not kept for a listener that is away: each web server's queue
//! is its own and lives only while it listens. So each time the listener
//! (re)connects it says [`Heard::Resync`], and open pages look again at
//! what they follow instead of waiting for events that went by.

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

/// What the listener passes on to the open pages.
#[derive(Debug, Clone)]
pub enum Heard {
    /// A worker's news of one image.
    Event(ImageEvent),
    /// The listener has just begun listening (again): events may have gone by unheard.
    Resync,
}

/// Listens for image events and sends each to `events`, reconnecting with
/// backoff, until `shutdown` becomes true.
pub async fn listen(url: String, topology: Topology, events: broadcast::Sender<Heard>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = crate::Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let mut lost_said = false;
    loop {
        let outcome = tokio::select! {
            outcome = listen_once(&url, &topology, &events, &mut lost_said, &mut backoff) => outcome,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let error = match outcome {
            Ok(()) => "the broker closed the stream".to_owned(),
            Err(error) => error.to_string(),
        };
        if !lost_said {
            tracing::warn!(%error, "Lost the events exchange: pages poll until it is back, then look again at what they follow.");
            lost_said = true;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_pause()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn listen_once(
    url: &str,
    topology: &Topology,
    events: &broadcast::Sender<Heard>,
    lost_said: &mut bool,
    backoff: &mut crate::Backoff,
) -> Result<(), lapin::Error> {
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
    *lost_said = false;
    backoff.reset();
    // No receiver is fine: no page is open.
    let _ = events.send(Heard::Resync);
    while let Some(delivery) = deliveries.next().await {
        if let Some(event) = ImageEvent::from_bytes(&delivery?.data) {
            let _ = events.send(Heard::Event(event));
        }
    }
    Ok(())
}
