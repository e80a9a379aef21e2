//! Publishing jobs so that a confirmed job is a stored job.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation, Connection};
use thumbq_contract::{ImageEvent, ResizeJob, Topology};
use tokio::sync::Mutex;
use tokio::time::timeout;

use crate::{connect, declare_topology};

/// Why a job may not be on the queue. In every case the caller must assume it is not.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("could not connect to the broker: {0}")]
    Unreachable(lapin::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the job (nack)")]
    Refused,
    #[error("the broker could not route the job to its queue")]
    Unroutable,
    #[error("the channel to the broker failed: {0}")]
    Channel(#[from] lapin::Error),
    #[error("the broker could not be reached a moment ago; not trying again yet")]
    Resting,
}

/// Publishes resize jobs over one confirm-mode channel, reconnecting when it breaks.
///
/// The connection is opened lazily by the first publish, and again by the
/// first publish after it broke; concurrent publishes share one channel.
pub struct Publisher {
    url: String,
    connection_name: String,
    topology: Topology,
    timeout: Duration,
    link: Mutex<Option<(Connection, Channel)>>,
    /// When connecting last failed: for [`RETRY_CONNECT_AFTER`] after it,
    /// publishes fail at once instead of each waiting out a connect of its own.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after a failed connect publishes go straight to the outbox.
pub const RETRY_CONNECT_AFTER: Duration = Duration::from_secs(1);

impl Publisher {
    pub fn new(url: impl Into<String>, connection_name: impl Into<String>, topology: Topology, timeout: Duration) -> Self {
        Self { url: url.into(), connection_name: connection_name.into(), topology, timeout, link: Mutex::new(None), failed_at: Default::default() }
    }

    /// Publishes `job` persistently and waits for the broker's confirm.
    ///
    /// Only a plain ack counts: a nack, a returned (unroutable) message, an
    /// error or no answer within the timeout all mean "not stored".
    pub async fn publish(&self, job: &ResizeJob) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let properties = crate::job_properties(job);
        // `mandatory` makes the broker return, rather than silently drop, a job
        // for a queue that does not exist.
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let payload = job.to_bytes();
        let publish = async { channel.basic_publish("".into(), self.topology.resize_queue().into(), options, &payload, properties).await?.await };
        let outcome = match timeout(self.timeout, publish).await {
            Err(_elapsed) => Err(PublishError::Timeout(self.timeout)),
            Ok(Err(error)) => Err(PublishError::Channel(error)),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_returned)))) => Err(PublishError::Unroutable),
            Ok(Ok(Confirmation::Nack(_) | Confirmation::NotRequested)) => Err(PublishError::Refused),
        };
        if matches!(outcome, Err(PublishError::Timeout(_) | PublishError::Channel(_))) {
            self.forget(&channel).await;
        }
        outcome
    }

    /// Announces `event` to every web server, best effort (see [`crate::events::announce`]).
    pub async fn announce(&self, event: ImageEvent) {
        match self.channel().await {
            Ok(channel) => crate::events::announce(&channel, &self.topology, event).await,
            Err(error) => tracing::debug!(%error, image.id = %event.image_id, "Could not announce an image event."),
        }
    }

    /// The resize queue's waiting messages and consumers, as the broker counts them.
    pub async fn queue_status(&self) -> Result<(u32, u32), PublishError> {
        let channel = self.channel().await?;
        let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let inspect = channel.queue_declare(self.topology.resize_queue().into(), options, lapin::types::FieldTable::default());
        let queue = timeout(self.timeout, inspect).await.map_err(|_| PublishError::Timeout(self.timeout))??;
        Ok((queue.message_count(), queue.consumer_count()))
    }

    /// Connects now if not connected, for readiness checks.
    pub async fn check_connection(&self) -> Result<(), PublishError> {
        self.channel().await.map(drop)
    }

    /// The current channel, or a new one on a new connection.
    async fn channel(&self) -> Result<Channel, PublishError> {
        // Holding the lock while connecting makes concurrent publishes wait for
        // one reconnect instead of each opening a connection of its own.
        let mut link = self.link.lock().await;
        if let Some((_, channel)) = link.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *link = None;
        // Publishes that queued behind a failed connect do not each try again:
        // during an outage, many uploads at once must not wait in line.
        let resting = self.failed_at.lock().map(|failed_at| failed_at.is_some_and(|at| at.elapsed() < RETRY_CONNECT_AFTER)).unwrap_or(false);
        if resting {
            return Err(PublishError::Resting);
        }
        let open = async {
            let connection = connect(&self.url, &self.connection_name).await.map_err(PublishError::Unreachable)?;
            let channel = connection.create_channel().await?;
            declare_topology(&channel, &self.topology).await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            Ok::<_, PublishError>((connection, channel))
        };
        let opened = timeout(self.timeout, open).await.map_err(|_| PublishError::Timeout(self.timeout)).and_then(|opened| opened);
        if let Ok(mut failed_at) = self.failed_at.lock() {
            *failed_at = opened.is_err().then(std::time::Instant::now);
        }
        let (connection, channel) = opened?;
        tracing::info!(queue = self.topology.resize_queue(), "Connected to the broker for publishing.");
        *link = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Drops a channel that failed, so that the next publish opens a new one.
    async fn forget(&self, failed: &Channel) {
        let mut link = self.link.lock().await;
        if link.as_ref().is_some_and(|(_, channel)| channel.id() == failed.id()) {
            *link = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publishes_during_an_outage_fail_together_not_one_connect_after_another() {
        // A "broker" that accepts connections and never answers: each connect waits out its timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("amqp://guest:guest@{}/%2f", silent.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let publisher = std::sync::Arc::new(Publisher::new(url, "thumbq-test", Topology::new("thumbq.unused"), Duration::from_millis(500)));
        let job = ResizeJob::new(thumbq_contract::ImageId::new(), thumbq_contract::SourceFormat::Jpeg, 0);
        let started = std::time::Instant::now();
        let publishes: Vec<_> = (0..8)
            .map(|_| {
                let (publisher, job) = (std::sync::Arc::clone(&publisher), job.clone());
                tokio::spawn(async move { publisher.publish(&job).await })
            })
            .collect();
        for publish in publishes {
            assert!(publish.await.unwrap().is_err());
        }
        // One connect's timeout for all eight, not eight of them in a row.
        assert!(started.elapsed() < Duration::from_millis(500) * 3, "took {:?}", started.elapsed());
    }
}
