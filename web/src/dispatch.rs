//! Where the web server sends each job, so that an accepted upload always ends up queued.
//!
//! - With RabbitMQ: the job is written to the outbox as claimed by this
//!   process, then published; the broker's confirm deletes it. If the broker
//!   is down or does not confirm in time, it is left waiting in the outbox,
//!   and [`Dispatcher::relay`] publishes it, oldest first, once the broker is
//!   back. If this process dies meanwhile (even by SIGKILL), the claim outlives
//!   it, and the relay of any web server sharing the directory takes it over.
//! - Embedded (no AMQP URL): the job goes to the spool the workers read.

use std::sync::Arc;
use std::time::Duration;

use thumbq_broker::{PublishError, Publisher, Spool};
use thumbq_contract::{ImageEvent, ImageId, ResizeJob};
use tokio::sync::{Notify, watch};

use crate::metrics::WebMetrics;

/// How a job was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// RabbitMQ confirmed it.
    Published,
    /// RabbitMQ was unavailable; it waits on disk for the relay.
    Outbox,
    /// It is in the embedded queue.
    Embedded,
}

pub struct Dispatcher {
    mode: Mode,
    outbox_filled: Notify,
    metrics: WebMetrics,
}

enum Mode {
    Broker { publisher: Box<Publisher>, outbox: Arc<Spool> },
    Embedded { jobs: Arc<Spool> },
}

/// What `/readyz` reports.
pub struct Readiness {
    /// `None` in embedded mode; otherwise whether RabbitMQ takes jobs now.
    pub broker: Option<Result<(), PublishError>>,
    /// Jobs waiting on disk: in the outbox, or in the embedded queue.
    pub waiting_on_disk: usize,
}

impl Dispatcher {
    pub fn broker(publisher: Publisher, outbox: Spool, metrics: WebMetrics) -> Self {
        Self { mode: Mode::Broker { publisher: Box::new(publisher), outbox: Arc::new(outbox) }, outbox_filled: Notify::new(), metrics }
    }

    pub fn embedded(jobs: Spool, metrics: WebMetrics) -> Self {
        Self { mode: Mode::Embedded { jobs: Arc::new(jobs) }, outbox_filled: Notify::new(), metrics }
    }

    /// Queues `job`, counting the route it took.
    pub async fn dispatch(&self, job: &ResizeJob) -> std::io::Result<Route> {
        let route = self.route(job).await?;
        self.metrics.dispatched(match route {
            Route::Published => "published",
            Route::Outbox => "outbox",
            Route::Embedded => "embedded",
        });
        Ok(route)
    }

    /// Removes the jobs of `id` still waiting on disk, in the outbox or the
    /// embedded queue; returns how many. Jobs already on RabbitMQ stay there:
    /// a worker acks them without work once the image is gone.
    pub async fn discard(&self, id: ImageId) -> std::io::Result<usize> {
        let spool = match &self.mode {
            Mode::Embedded { jobs } => jobs,
            Mode::Broker { outbox, .. } => outbox,
        };
        blocking(spool, move |spool| spool.discard(|payload| ResizeJob::from_bytes(payload).is_ok_and(|job| job.image_id == id))).await
    }

    /// Tells every web server's pages about `event`, through RabbitMQ; best effort.
    pub async fn announce(&self, event: ImageEvent) {
        if let Mode::Broker { publisher, .. } = &self.mode {
            publisher.announce(event).await;
        }
    }

    /// The resize queue's waiting messages and consumers on RabbitMQ, if it is there.
    pub async fn queue_status(&self) -> Option<(u32, u32)> {
        match &self.mode {
            Mode::Broker { publisher, .. } => publisher.queue_status().await.ok(),
            Mode::Embedded { .. } => None,
        }
    }

    /// Publishes, timing the confirm.
    async fn publish(&self, publisher: &Publisher, job: &ResizeJob) -> Result<(), PublishError> {
        let started = std::time::Instant::now();
        let published = publisher.publish(job).await;
        if published.is_ok() {
            self.metrics.publish_confirm_seconds.observe(started.elapsed().as_secs_f64());
        }
        published
    }

    /// Queues `job`. Fails only when the job cannot even be written to disk.
    async fn route(&self, job: &ResizeJob) -> std::io::Result<Route> {
        match &self.mode {
            Mode::Embedded { jobs } => {
                push(jobs, job).await?;
                Ok(Route::Embedded)
            }
            Mode::Broker { publisher, outbox } => {
                // While older jobs wait in the outbox, newer ones queue behind them.
                if blocking(outbox, |outbox| outbox.is_empty()).await? {
                    let payload = job.to_bytes();
                    let claim = blocking(outbox, move |outbox| outbox.push_claimed(&payload)).await?;
                    match self.publish(publisher, job).await {
                        Ok(()) => {
                            // Confirmed: the record is no longer needed. Should deleting it
                            // fail, the job is published twice, which is harmless.
                            if let Err(error) = blocking(outbox, move |outbox| outbox.ack(claim)).await {
                                tracing::warn!(image.id = %job.image_id, %error, "Could not clear a published job from the outbox.");
                            }
                            return Ok(Route::Published);
                        }
                        Err(error) => {
                            tracing::warn!(image.id = %job.image_id, %error, "RabbitMQ did not take the job; keeping it in the outbox.");
                            blocking(outbox, move |outbox| outbox.unclaim(claim)).await?;
                        }
                    }
                } else {
                    push(outbox, job).await?;
                }
                self.outbox_filled.notify_one();
                Ok(Route::Outbox)
            }
        }
    }

    /// Publishes the outbox's jobs, oldest first, deleting each only once
    /// RabbitMQ confirmed it; returns when `shutdown` becomes true.
    pub async fn relay(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Mode::Broker { publisher, outbox } = &self.mode else { return };
        let mut pause = RETRY_FIRST;
        let mut last_recovery = std::time::Instant::now();
        loop {
            // The jobs of a web process that died mid-publish, here or on another machine sharing the directory.
            if last_recovery.elapsed() >= IDLE_CHECK {
                last_recovery = std::time::Instant::now();
                match blocking(outbox, |outbox| outbox.recover_orphans()).await {
                    Ok(0) => {}
                    Ok(jobs) => tracing::warn!(jobs, "Took over the outbox jobs of a web process that stopped."),
                    Err(error) => tracing::warn!(%error, "Could not look for the outbox jobs of stopped web processes."),
                }
            }
            let claim = {
                let outbox = Arc::clone(outbox);
                tokio::task::spawn_blocking(move || outbox.claim()).await
            };
            let wait = match claim {
                Ok(Ok(Some(claim))) => match ResizeJob::from_bytes(&claim.payload) {
                    Ok(job) => match self.publish(publisher, &job).await {
                        Ok(()) => {
                            // Should the delete fail, the job is published again later: harmless.
                            if let Err(error) = blocking(outbox, move |outbox| outbox.ack(claim)).await {
                                tracing::warn!(image.id = %job.image_id, %error, "Could not clear a relayed job from the outbox.");
                            }
                            tracing::info!(image.id = %job.image_id, "Relayed a job from the outbox to RabbitMQ.");
                            pause = RETRY_FIRST;
                            continue;
                        }
                        Err(error) => {
                            // Should this fail, the claim stays with this process until it stops, then is recovered.
                            if let Err(error) = blocking(outbox, move |outbox| outbox.unclaim(claim)).await {
                                tracing::warn!(%error, "Could not put a job back in the outbox.");
                            }
                            tracing::debug!(%error, "RabbitMQ is still unavailable; the outbox waits.");
                            pause = (pause * 2).min(RETRY_MAX);
                            pause
                        }
                    },
                    Err(error) => {
                        tracing::error!(%error, "A file in the outbox is not a job; setting it aside in outbox/dead for an operator.");
                        self.metrics.outbox_dead();
                        if let Err(error) = blocking(outbox, move |outbox| outbox.dead_letter(claim)).await {
                            tracing::warn!(%error, "Could not set a file in the outbox aside.");
                        }
                        continue;
                    }
                },
                // Empty: sleep until an upload fills it (or check again now and then,
                // for jobs left by another web process sharing the directory).
                Ok(Ok(None)) => IDLE_CHECK,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Cannot read the outbox.");
                    RETRY_MAX
                }
                Err(panic) => {
                    tracing::error!(error = %panic, "Reading the outbox panicked.");
                    RETRY_MAX
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.outbox_filled.notified(), if wait == IDLE_CHECK => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Files set aside in the outbox's (or embedded queue's) `dead/`.
    pub async fn dead_on_disk(&self) -> std::io::Result<usize> {
        let spool = match &self.mode {
            Mode::Embedded { jobs } => jobs,
            Mode::Broker { outbox, .. } => outbox,
        };
        blocking(spool, |spool| spool.dead_len()).await
    }

    /// Jobs on disk and not done: in the outbox (waiting, or being published),
    /// or in the embedded queue (waiting, or being worked on).
    pub async fn waiting_on_disk(&self) -> std::io::Result<usize> {
        let spool = match &self.mode {
            Mode::Embedded { jobs } => jobs,
            Mode::Broker { outbox, .. } => outbox,
        };
        blocking(spool, |spool| spool.unfinished_len()).await
    }

    pub async fn readiness(&self) -> std::io::Result<Readiness> {
        let broker = match &self.mode {
            Mode::Embedded { .. } => None,
            Mode::Broker { publisher, .. } => Some(publisher.check_connection().await),
        };
        Ok(Readiness { broker, waiting_on_disk: self.waiting_on_disk().await? })
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
const IDLE_CHECK: Duration = Duration::from_secs(2);

async fn push(spool: &Arc<Spool>, job: &ResizeJob) -> std::io::Result<()> {
    let payload = job.to_bytes();
    blocking(spool, move |spool| spool.push(&payload)).await
}

/// Runs a spool operation (file system calls with fsync) off the async runtime.
async fn blocking<T: Send + 'static>(spool: &Arc<Spool>, operation: impl FnOnce(&Spool) -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    let spool = Arc::clone(spool);
    tokio::task::spawn_blocking(move || operation(&spool)).await.map_err(std::io::Error::other)?
}
