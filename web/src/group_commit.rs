//! Group commit: the records of uploads that arrive together share one
//! transaction, so one fsync (SQLite) or one WAL flush (PostgreSQL) answers
//! many requests. A request waits for the commit that holds its records,
//! never longer: while one commit runs, the next requests gather behind it.
//!
//! The same commits clear the outbox rows of the jobs the queue took since
//! the last one: under load an upload costs one transaction, not two. With
//! no upload to ride with for [`CLEAR_ALONE_AFTER`], they are cleared alone.
//!
//! A batch that fails is tried again request by request, so that one
//! request's error is its own and never another's.

use std::time::Duration;

use thumbq_contract::{ImageId, Step, TraceParent};
use thumbq_repo::{Lease, NewImage, RepoError, Repository};
use tokio::sync::{mpsc, oneshot};

/// One request's accepted uploads, each with its steps so far and its trace.
pub type Uploads = Vec<(NewImage, Vec<Step>, Option<TraceParent>)>;

enum Message {
    /// A request's uploads, and who waits for their commit.
    Record(Uploads, oneshot::Sender<Recorded>),
    /// The queue took the job of an image: its outbox row goes, with this step.
    Queued(ImageId, Step),
}

/// How a request's uploads were recorded: `Ok` with those not recorded
/// because their owner has the same bytes already (another request's, a moment ago).
pub type Recorded = Result<Vec<ImageId>, RepoError>;

/// Hands uploads, and jobs the queue took, to the task that commits them.
pub struct GroupCommit {
    messages: mpsc::UnboundedSender<Message>,
}

/// The most messages one commit takes.
const MOST_AT_ONCE: usize = 256;

/// How long jobs the queue took wait for an upload's commit before they are
/// cleared on their own. Their rows are leased for seconds: nothing relays
/// them meanwhile.
const CLEAR_ALONE_AFTER: Duration = Duration::from_millis(50);

impl GroupCommit {
    /// Starts the committing task; `lease` gives the outbox rows of each commit
    /// their lease, long enough for a request of that many files to send them one by one.
    pub fn start(repo: Repository, lease: impl Fn(usize) -> Lease + Send + Sync + 'static) -> Self {
        let (messages, mut arriving) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            let mut arrived = Vec::with_capacity(MOST_AT_ONCE);
            let mut requests = Vec::new();
            let mut queued = Vec::new();
            loop {
                let received = if queued.is_empty() {
                    arriving.recv_many(&mut arrived, MOST_AT_ONCE).await
                } else {
                    match tokio::time::timeout(CLEAR_ALONE_AFTER, arriving.recv_many(&mut arrived, MOST_AT_ONCE)).await {
                        Ok(received) => received,
                        Err(_) => {
                            clear_alone(&repo, &mut queued).await;
                            continue;
                        }
                    }
                };
                if received == 0 {
                    clear_alone(&repo, &mut queued).await;
                    return;
                }
                for message in arrived.drain(..) {
                    match message {
                        Message::Record(uploads, done) => requests.push((uploads, done)),
                        Message::Queued(id, step) => queued.push((id, step)),
                    }
                }
                if !requests.is_empty() {
                    commit(&repo, &lease, &mut requests, &mut queued).await;
                }
            }
        });
        Self { messages }
    }

    /// Records `uploads` with their outbox rows; returns once they are
    /// committed, with the ids of those not recorded (see [`Recorded`]).
    pub async fn record(&self, uploads: Uploads) -> Recorded {
        let (done, committed) = oneshot::channel();
        // The committing task is gone only when the server stops.
        self.messages.send(Message::Record(uploads, done)).map_err(|_| RepoError::closing())?;
        committed.await.map_err(|_| RepoError::closing())?
    }

    /// The queue took the job of `id`: its outbox row goes with the next commit,
    /// and `step` joins its timeline. Should the server stop first, the row's
    /// lease runs out and a relay sends the job again, which is harmless.
    pub fn queued(&self, id: ImageId, step: Step) {
        let _ = self.messages.send(Message::Queued(id, step));
    }
}

/// Commits `requests` and clears `queued` in one transaction, and tells each
/// request how its commit went.
async fn commit(
    repo: &Repository,
    lease: &impl Fn(usize) -> Lease,
    requests: &mut Vec<(Uploads, oneshot::Sender<Recorded>)>,
    queued: &mut Vec<(ImageId, Step)>,
) {
    let lease = lease(requests.iter().map(|(uploads, _)| uploads.len()).max().unwrap_or(1));
    let all: Vec<_> = requests.iter().flat_map(|(uploads, _)| uploads.iter().map(|(image, steps, trace)| (image, &steps[..], *trace))).collect();
    let committed = repo.add_images(&all, &lease, queued).await;
    drop(all);
    match committed {
        Ok(skipped) => {
            queued.clear();
            for (uploads, done) in requests.drain(..) {
                let theirs = uploads.iter().map(|(image, _, _)| image.id).filter(|id| skipped.contains(id)).collect();
                let _ = done.send(Ok(theirs));
            }
        }
        // The database is away for all of them alike: each hears so now, not one timeout after another.
        Err(error) if error.is_unavailable() => {
            requests.drain(..).for_each(|(_, done)| drop(done.send(Err(RepoError::unavailable_like(&error)))));
            clear_alone(repo, queued).await;
        }
        Err(error) if requests.len() == 1 && queued.is_empty() => drop(requests.remove(0).1.send(Err(error))),
        Err(_) => {
            clear_alone(repo, queued).await;
            for (uploads, done) in requests.drain(..) {
                let alone: Vec<_> = uploads.iter().map(|(image, steps, trace)| (image, &steps[..], *trace)).collect();
                let _ = done.send(repo.add_images(&alone, &lease, &[]).await);
            }
        }
    }
}

/// Clears the outbox rows of `queued` in a transaction of their own.
async fn clear_alone(repo: &Repository, queued: &mut Vec<(ImageId, Step)>) {
    if queued.is_empty() {
        return;
    }
    if let Err(error) = repo.jobs_queued(queued).await {
        // The rows stay leased until their lease runs out; then a relay sends the jobs again, which is harmless.
        tracing::warn!(jobs = queued.len(), %error, "Could not record that jobs were queued; they will be sent again.");
    }
    queued.clear();
}
