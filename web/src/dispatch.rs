//! Handing each accepted job to the queue: RabbitMQ, or the embedded queue.
//!
//! The job is in the repository's outbox before this starts: the upload wrote
//! its row with the image's, leased to this process (see `upload`). Here the
//! job is sent at once; once the queue has it (RabbitMQ confirmed, or the
//! embedded queue's file is on disk), its row goes. When the queue does not
//! take it, the row is freed and [`Dispatcher::relay`] sends it later.
//!
//! Every web server runs the relay. It claims the rows whose lease ran out:
//! those the queue refused, and those of a web server that died between its
//! commit and its publish, here or on another machine sharing the database.
//! A job sent twice (a confirm lost, a row not cleared) is harmless: a worker
//! acks the job of a finished image without work.

use std::sync::Arc;
use std::time::Duration;

use thumbq_broker::{PublishError, Publisher, Spool};
use thumbq_contract::{ImageEvent, ImageId, ResizeJob, Step};
use thumbq_repo::{Lease, Repository};
use tokio::sync::{Notify, mpsc, watch};

use crate::metrics::WebMetrics;
use crate::progress::now_ms;

/// How a job was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// RabbitMQ confirmed it.
    Published,
    /// The queue did not take it now; it waits in the outbox for the relay.
    Outbox,
    /// It is in the embedded queue.
    Embedded,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Outbox => "outbox",
            Self::Embedded => "embedded",
        }
    }

    /// The step it adds to the image's timeline.
    fn step(self) -> &'static str {
        match self {
            Self::Published => "confirmed by RabbitMQ",
            Self::Outbox => "kept in the outbox",
            Self::Embedded => "queued on disk",
        }
    }
}

pub struct Dispatcher {
    queue: Queue,
    repo: Repository,
    /// Commits the records and outbox rows of uploads arriving together as one.
    records: crate::group_commit::GroupCommit,
    /// How each job went, for the task that records it (see [`record_routes`]).
    routes: mpsc::UnboundedSender<(ImageId, Route, Step)>,
    /// How long a web server may take to send a job before any relay may send it.
    lease: Duration,
    /// A job was left in the outbox: the relay looks now rather than at its next check.
    outbox_filled: Notify,
    metrics: WebMetrics,
}

enum Queue {
    Broker(Box<Publisher>),
    Embedded(Arc<Spool>),
}

/// What `/readyz` reports.
pub struct Readiness {
    /// `None` in embedded mode; otherwise whether RabbitMQ takes jobs now.
    pub broker: Option<Result<(), PublishError>>,
    /// Jobs accepted and not yet on the queue.
    pub in_outbox: usize,
    /// In embedded mode, jobs in the embedded queue: waiting, or being worked on.
    pub in_embedded_queue: Option<usize>,
}

/// Why a job could not be handed to the queue now.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Broker(#[from] PublishError),
    #[error("cannot write to the embedded queue: {0}")]
    Disk(#[from] std::io::Error),
}

impl Dispatcher {
    /// `publish_timeout` bounds how long sending one job may take: the lease
    /// on a job lasts longer, so that no relay sends it while it is being published.
    pub fn broker(publisher: Publisher, repo: Repository, publish_timeout: Duration, metrics: WebMetrics) -> Self {
        Self::new(Queue::Broker(Box::new(publisher)), repo, publish_timeout, metrics)
    }

    pub fn embedded(jobs: Spool, repo: Repository, metrics: WebMetrics) -> Self {
        Self::new(Queue::Embedded(Arc::new(jobs)), repo, Duration::ZERO, metrics)
    }

    fn new(queue: Queue, repo: Repository, send_timeout: Duration, metrics: WebMetrics) -> Self {
        let (routes, taken) = mpsc::unbounded_channel();
        tokio::spawn(record_routes(repo.clone(), taken));
        let lease = send_timeout + LEASE_MARGIN;
        let records = crate::group_commit::GroupCommit::start(repo.clone(), move |jobs| lease_from_now(send_timeout * jobs as u32 + LEASE_MARGIN));
        Self { queue, repo, records, routes, lease, outbox_filled: Notify::new(), metrics }
    }

    /// A lease on a job for this process, from now.
    fn lease(&self) -> Lease {
        lease_from_now(self.lease)
    }

    /// Records accepted uploads, each with its job in the outbox leased to
    /// this process, committed with those of other requests arriving at once.
    pub async fn record(&self, uploads: crate::group_commit::Uploads) -> Result<(), thumbq_repo::RepoError> {
        self.records.record(uploads).await
    }

    /// Sends `job`, whose outbox row this process holds, counting the route it
    /// took. Clearing its row (or freeing it, when the queue refused) is
    /// recorded by a task of its own: the client's answer does not wait for it.
    pub async fn dispatch(&self, job: &ResizeJob) -> Route {
        let route = match self.send(job).await {
            Ok(route) => route,
            Err(error) => {
                tracing::warn!(image.id = %job.image_id, %error, "The queue did not take the job; it waits in the outbox.");
                self.outbox_filled.notify_one();
                Route::Outbox
            }
        };
        self.metrics.dispatched(route.name());
        // Should the task be gone (the server stopping), the row's lease runs out and a relay sends the job again: harmless.
        let _ = self.routes.send((job.image_id, route, step(route.step())));
        route
    }

    /// Tells every web server's pages about `event`, through RabbitMQ; best effort.
    pub async fn announce(&self, event: ImageEvent) {
        if let Queue::Broker(publisher) = &self.queue {
            publisher.announce(event).await;
        }
    }

    /// The resize queue's waiting messages and consumers on RabbitMQ, if it is there.
    pub async fn queue_status(&self) -> Option<(u32, u32)> {
        match &self.queue {
            Queue::Broker(publisher) => publisher.queue_status().await.ok(),
            Queue::Embedded(_) => None,
        }
    }

    /// Hands `job` to the queue, now.
    async fn send(&self, job: &ResizeJob) -> Result<Route, SendError> {
        match &self.queue {
            Queue::Broker(publisher) => {
                let started = std::time::Instant::now();
                publisher.publish(job).await?;
                self.metrics.publish_confirm_seconds.observe(started.elapsed().as_secs_f64());
                Ok(Route::Published)
            }
            Queue::Embedded(jobs) => {
                let payload = job.to_bytes();
                blocking(jobs, move |jobs| jobs.push(&payload)).await?;
                Ok(Route::Embedded)
            }
        }
    }

    /// Sends the outbox's free jobs, oldest first, a batch at a time; returns
    /// when `shutdown` becomes true.
    pub async fn relay(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut pause = RETRY_FIRST;
        loop {
            let wait = match self.repo.claim_jobs(now_ms(), &self.lease_for(RELAY_BATCH), RELAY_BATCH).await {
                Ok(jobs) if jobs.is_empty() => IDLE_CHECK,
                Ok(jobs) => match self.relay_batch(jobs).await {
                    Ok(()) => {
                        pause = RETRY_FIRST;
                        continue;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "The queue still does not take jobs; the outbox waits.");
                        pause = (pause * 2).min(RETRY_MAX);
                        pause
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "Cannot read the outbox.");
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

    /// A lease long enough to send `jobs` jobs one after another.
    fn lease_for(&self, jobs: usize) -> Lease {
        let mut lease = self.lease();
        lease.until_ms += (self.lease.saturating_sub(LEASE_MARGIN).as_millis() as u64) * (jobs as u64).saturating_sub(1);
        lease
    }

    /// Sends claimed jobs; at the first the queue refuses, frees it and the rest.
    async fn relay_batch(&self, jobs: Vec<ResizeJob>) -> Result<(), SendError> {
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
            match self.send(&job).await {
                Ok(route) => {
                    self.metrics.dispatched(route.name());
                    tracing::info!(image.id = %job.image_id, "Relayed a job from the outbox to the queue.");
                    if let Err(error) = self.repo.job_queued(job.image_id, &step(relayed(route))).await {
                        tracing::warn!(image.id = %job.image_id, %error, "Could not clear a relayed job from the outbox; it will be sent again.");
                    }
                }
                Err(error) => {
                    for job in std::iter::once(job).chain(jobs) {
                        if let Err(error) = self.repo.job_waits(job.image_id, None).await {
                            tracing::debug!(image.id = %job.image_id, %error, "Could not free a job in the outbox; its lease runs out.");
                        }
                    }
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Files set aside in the embedded queue's `dead/`.
    pub async fn dead_on_disk(&self) -> std::io::Result<usize> {
        match &self.queue {
            Queue::Embedded(jobs) => blocking(jobs, |jobs| jobs.dead_len()).await,
            Queue::Broker(_) => Ok(0),
        }
    }

    /// Jobs in the embedded queue and not done (waiting, or being worked on); `None` with RabbitMQ.
    pub async fn in_embedded_queue(&self) -> std::io::Result<Option<usize>> {
        match &self.queue {
            Queue::Embedded(jobs) => blocking(jobs, |jobs| jobs.unfinished_len()).await.map(Some),
            Queue::Broker(_) => Ok(None),
        }
    }

    pub async fn readiness(&self) -> anyhow::Result<Readiness> {
        let broker = match &self.queue {
            Queue::Embedded(_) => None,
            Queue::Broker(publisher) => Some(publisher.check_connection().await),
        };
        Ok(Readiness { broker, in_outbox: self.repo.outbox_len().await?, in_embedded_queue: self.in_embedded_queue().await? })
    }
}

fn lease_from_now(lease: Duration) -> Lease {
    Lease { holder: crate::instance::INSTANCE.clone(), until_ms: now_ms() + lease.as_millis() as u64 }
}

/// Records how each job went: the outbox rows of those queued go, with their
/// step, all that arrived meanwhile in one transaction (under load, one commit
/// for many uploads); those the queue refused are freed for the relay.
async fn record_routes(repo: Repository, mut taken: mpsc::UnboundedReceiver<(ImageId, Route, Step)>) {
    const MOST_AT_ONCE: usize = 256;
    let mut batch = Vec::with_capacity(MOST_AT_ONCE);
    while taken.recv_many(&mut batch, MOST_AT_ONCE).await > 0 {
        let (waiting, queued): (Vec<_>, Vec<_>) = batch.drain(..).partition(|(_, route, _)| *route == Route::Outbox);
        let queued: Vec<(ImageId, Step)> = queued.into_iter().map(|(id, _, step)| (id, step)).collect();
        if !queued.is_empty() {
            if let Err(error) = repo.jobs_queued(&queued).await {
                // The rows stay leased until their lease runs out; then a relay sends the jobs again, which is harmless.
                tracing::warn!(jobs = queued.len(), %error, "Could not record that jobs were queued; they will be sent again.");
            }
        }
        for (id, _, step) in waiting {
            if let Err(error) = repo.job_waits(id, Some(&step)).await {
                tracing::warn!(image.id = %id, %error, "Could not free a job the queue refused; its lease runs out.");
            }
        }
    }
}

/// How long past its send timeout a job stays with the web server that took it.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
const RELAY_BATCH: usize = 16;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often an idle relay looks for jobs another web server left.
const IDLE_CHECK: Duration = Duration::from_secs(2);

fn relayed(route: Route) -> &'static str {
    match route {
        Route::Published => "relayed to RabbitMQ",
        Route::Outbox | Route::Embedded => "relayed to the embedded queue",
    }
}

fn step(name: &str) -> Step {
    crate::instance::step(name, now_ms())
}

/// Runs a spool operation (file system calls with fsync) off the async runtime.
async fn blocking<T: Send + 'static>(spool: &Arc<Spool>, operation: impl FnOnce(&Spool) -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    let spool = Arc::clone(spool);
    tokio::task::spawn_blocking(move || operation(&spool)).await.map_err(std::io::Error::other)?
}
