//! Handing each accepted job to the queue: RabbitMQ, or the embedded queue.
//!
//! The job is in the repository's outbox before this starts: the upload wrote
//! its row with the image's (see `upload`). With no RabbitMQ that row is the
//! job, free for the workers at once, and nothing is sent (see
//! `thumbq_repo::queue`). With RabbitMQ the row is leased to this process, the
//! job is sent at once, and once RabbitMQ confirmed it the row goes. When the
//! queue does not take it, the row is freed and [`Dispatcher::relay`] sends it later.
//!
//! Every web server runs the relay. It claims the rows whose lease ran out:
//! those the queue refused, and those of a web server that died between its
//! commit and its publish, here or on another machine sharing the database.
//! A job sent twice (a confirm lost, a row not cleared) is harmless: a worker
//! acks the job of a finished image without work.

use std::sync::Arc;
use std::time::Duration;

use thumbq_broker::{Backoff, PublishError, Publisher};
use thumbq_contract::{ImageEvent, ResizeJob, Step};
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
    /// Its upload's commit queued it: the embedded queue.
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
            Self::Embedded => "queued in the database",
        }
    }
}

pub struct Dispatcher {
    queue: Queue,
    repo: Repository,
    /// Commits the records and outbox rows of uploads arriving together as
    /// one, and with them clears the rows of the jobs the queue took.
    records: crate::group_commit::GroupCommit,
    /// How long a web server may take to send a job before any relay may send it.
    lease: Duration,
    /// A job was left in the outbox: the relay looks now rather than at its next check.
    outbox_filled: Notify,
    /// Held by each task sending committed jobs; [`Dispatcher::sent`] waits for them all to end.
    sending: std::sync::Mutex<Option<mpsc::Sender<()>>>,
    all_sent: tokio::sync::Mutex<mpsc::Receiver<()>>,
    metrics: WebMetrics,
    /// The queue as last seen, for [`Dispatcher::waiting`]: pages ask often, the broker is asked once a second.
    last_seen: tokio::sync::Mutex<Option<(std::time::Instant, Waiting)>>,
}

/// What the queue holds, as pages are told when a job takes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Waiting {
    /// Jobs waiting for a worker; `None` when the queue cannot be asked.
    pub jobs: Option<u32>,
    /// Workers taking jobs; `None` where the queue does not know (the embedded one).
    pub workers: Option<u32>,
}

enum Queue {
    Broker(Box<Publisher>),
    /// The outbox itself, which workers take jobs from.
    Embedded,
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

impl Dispatcher {
    /// `publish_timeout` bounds how long sending one job may take: the lease
    /// on a job lasts longer, so that no relay sends it while it is being published.
    pub fn broker(publisher: Publisher, repo: Repository, publish_timeout: Duration, metrics: WebMetrics) -> Self {
        Self::new(Queue::Broker(Box::new(publisher)), repo, publish_timeout, metrics)
    }

    pub fn embedded(repo: Repository, metrics: WebMetrics) -> Self {
        Self::new(Queue::Embedded, repo, Duration::ZERO, metrics)
    }

    fn new(queue: Queue, repo: Repository, send_timeout: Duration, metrics: WebMetrics) -> Self {
        let lease = send_timeout + LEASE_MARGIN;
        let records = match queue {
            Queue::Broker(_) => crate::group_commit::GroupCommit::start(repo.clone(), move |jobs| lease_from_now(send_timeout * jobs as u32 + LEASE_MARGIN)),
            // The workers may take a job the moment its upload is committed.
            Queue::Embedded => crate::group_commit::GroupCommit::start(repo.clone(), |_| Lease::none()),
        };
        let (sending, all_sent) = mpsc::channel(1);
        Self {
            queue,
            repo,
            records,
            lease,
            outbox_filled: Notify::new(),
            sending: std::sync::Mutex::new(Some(sending)),
            all_sent: tokio::sync::Mutex::new(all_sent),
            metrics,
            last_seen: tokio::sync::Mutex::new(None),
        }
    }

    /// A lease on a job for this process, from now.
    fn lease(&self) -> Lease {
        lease_from_now(self.lease)
    }

    /// Records accepted uploads, each with its job in the outbox leased to
    /// this process, committed with those of other requests arriving at once;
    /// the ids of those not recorded, their owner having the same bytes already.
    pub async fn record(&self, mut uploads: crate::group_commit::Uploads) -> crate::group_commit::Recorded {
        if let Queue::Embedded = self.queue {
            for (_, steps, _) in &mut uploads {
                steps.push(step(Route::Embedded.step()));
            }
        }
        self.records.record(uploads).await
    }

    /// Sends the jobs of uploads just committed (each with when its original
    /// was stored), in a task of its own: their outbox rows hold them already,
    /// so the client's answer does not wait for the queue.
    pub fn send_committed(self: &Arc<Self>, jobs: Vec<(ResizeJob, u64)>, received_ms: u64) {
        let Some(sending) = self.sending.lock().expect("never poisoned: nothing panics holding it").clone() else {
            // Stopping: the rows' leases run out, and a relay sends the jobs.
            return;
        };
        let dispatcher = Arc::clone(self);
        tokio::spawn(async move {
            for (job, stored_ms) in jobs {
                let route = dispatcher.dispatch(&job).await;
                let trace_id = job.traceparent.map(|trace| trace.trace_id()).unwrap_or_default();
                tracing::info!(image.id = %job.image_id, trace_id, ?route, "Accepted an upload and queued its resize job.");
                dispatcher.metrics.upload_step("stored", stored_ms.saturating_sub(received_ms) as f64 / 1000.0);
                dispatcher.metrics.upload_step("queued", now_ms().saturating_sub(stored_ms) as f64 / 1000.0);
            }
            drop(sending);
        });
    }

    /// Waits, for at most one lease, for the jobs being sent when the server
    /// stops; a job not sent by then is relayed once its lease runs out.
    pub async fn sent(&self) {
        drop(self.sending.lock().expect("never poisoned: nothing panics holding it").take());
        let mut all_sent = self.all_sent.lock().await;
        let _ = tokio::time::timeout(self.lease, all_sent.recv()).await;
    }

    /// Sends `job`, whose outbox row this process holds, counting the route it
    /// took. Its row is cleared with the next commit (the client's answer does
    /// not wait for it); or, when the queue refused the job, freed for the relay at once.
    /// In the embedded queue the job was queued by its commit: nothing to send.
    pub async fn dispatch(&self, job: &ResizeJob) -> Route {
        let Queue::Broker(publisher) = &self.queue else {
            self.metrics.dispatched(Route::Embedded.name());
            return Route::Embedded;
        };
        let route = match self.publish(publisher, job).await {
            Ok(route) => route,
            Err(error) => {
                tracing::warn!(image.id = %job.image_id, %error, "The queue did not take the job; it waits in the outbox.");
                // Should this fail, the row's lease runs out and a relay sends the job all the same.
                if let Err(error) = self.repo.job_waits(job.image_id, Some(&step(Route::Outbox.step()))).await {
                    tracing::warn!(image.id = %job.image_id, %error, "Could not free a job the queue refused; its lease runs out.");
                }
                self.outbox_filled.notify_one();
                Route::Outbox
            }
        };
        self.metrics.dispatched(route.name());
        if route == Route::Published {
            self.records.queued(job.image_id, step(route.step()));
        }
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
            Queue::Embedded => None,
        }
    }

    /// What the queue holds now, or as seen within the last second.
    pub async fn waiting(&self) -> Waiting {
        let mut last_seen = self.last_seen.lock().await;
        if let Some((at, waiting)) = *last_seen
            && at.elapsed() < Duration::from_secs(1)
        {
            return waiting;
        }
        let waiting = match &self.queue {
            Queue::Broker(publisher) => match publisher.queue_status().await {
                Ok((jobs, workers)) => Waiting { jobs: Some(jobs), workers: Some(workers) },
                Err(_) => Waiting { jobs: None, workers: None },
            },
            Queue::Embedded => {
                let waiting = self.repo.jobs_held(now_ms()).await.ok().map(|(all, held)| u32::try_from(all - held).unwrap_or(u32::MAX));
                Waiting { jobs: waiting, workers: None }
            }
        };
        *last_seen = Some((std::time::Instant::now(), waiting));
        waiting
    }

    /// Hands `job` to RabbitMQ, now.
    async fn publish(&self, publisher: &Publisher, job: &ResizeJob) -> Result<Route, PublishError> {
        let started = std::time::Instant::now();
        publisher.publish(job).await?;
        self.metrics.publish_confirm_seconds.observe(started.elapsed().as_secs_f64());
        Ok(Route::Published)
    }

    /// Sends the outbox's free jobs to RabbitMQ, oldest first, a batch at a
    /// time; returns when `shutdown` becomes true. With the embedded queue the
    /// workers take them: nothing to relay.
    pub async fn relay(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Queue::Broker(publisher) = &self.queue else { return };
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            let wait = match self.repo.claim_jobs(now_ms(), &self.lease_for(RELAY_BATCH), RELAY_BATCH).await {
                Ok(jobs) if jobs.is_empty() => IDLE_CHECK,
                Ok(jobs) => match self.relay_batch(publisher, jobs).await {
                    Ok(()) => {
                        backoff.reset();
                        continue;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "The queue still does not take jobs; the outbox waits.");
                        backoff.next_pause()
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
    async fn relay_batch(&self, publisher: &Publisher, jobs: Vec<ResizeJob>) -> Result<(), PublishError> {
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
            match self.publish(publisher, &job).await {
                Ok(route) => {
                    self.metrics.dispatched(route.name());
                    tracing::info!(image.id = %job.image_id, "Relayed a job from the outbox to RabbitMQ.");
                    self.records.queued(job.image_id, step("relayed to RabbitMQ"));
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

    /// Jobs accepted and not yet handed to RabbitMQ; none with the embedded
    /// queue, which holds every job from its upload's commit on.
    pub async fn in_outbox(&self) -> Result<usize, thumbq_repo::RepoError> {
        match &self.queue {
            Queue::Broker(_) => self.repo.outbox_len().await,
            Queue::Embedded => Ok(0),
        }
    }

    /// Jobs in the embedded queue and not done (waiting, or being worked on); `None` with RabbitMQ.
    pub async fn in_embedded_queue(&self) -> Result<Option<usize>, thumbq_repo::RepoError> {
        match &self.queue {
            Queue::Embedded => self.repo.outbox_len().await.map(Some),
            Queue::Broker(_) => Ok(None),
        }
    }

    pub async fn readiness(&self) -> anyhow::Result<Readiness> {
        let broker = match &self.queue {
            Queue::Embedded => None,
            Queue::Broker(publisher) => Some(publisher.check_connection().await),
        };
        Ok(Readiness { broker, in_outbox: self.in_outbox().await?, in_embedded_queue: self.in_embedded_queue().await? })
    }
}

fn lease_from_now(lease: Duration) -> Lease {
    Lease { holder: crate::instance::INSTANCE.clone(), until_ms: now_ms() + lease.as_millis() as u64 }
}

/// How long past its send timeout a job stays with the web server that took it.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
const RELAY_BATCH: usize = 16;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often an idle relay looks for jobs another web server left.
const IDLE_CHECK: Duration = Duration::from_secs(2);

fn step(name: &str) -> Step {
    crate::instance::step(name, now_ms())
}
