//! Group commit: the records of uploads that arrive together share one
//! transaction, so one fsync (SQLite) or one WAL flush (PostgreSQL) answers
//! many requests. A request waits for the commit that holds its records,
//! never longer: while one commit runs, the next requests gather behind it.
//!
//! A batch that fails is tried again request by request, so that one
//! request's error is its own and never another's.

use thumbq_contract::{Step, TraceParent};
use thumbq_repo::{Lease, NewImage, RepoError, Repository};
use tokio::sync::{mpsc, oneshot};

/// One request's accepted uploads, each with its steps so far and its trace.
pub type Uploads = Vec<(NewImage, Vec<Step>, Option<TraceParent>)>;

struct Request {
    uploads: Uploads,
    done: oneshot::Sender<Result<(), RepoError>>,
}

/// Hands uploads to the task that commits them.
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<Request>,
}

/// The most requests one commit holds.
const MOST_AT_ONCE: usize = 64;

impl GroupCommit {
    /// Starts the committing task; `lease` gives the outbox rows of each commit
    /// their lease, long enough for a request of that many files to send them one by one.
    pub fn start(repo: Repository, lease: impl Fn(usize) -> Lease + Send + 'static) -> Self {
        let (requests, mut waiting) = mpsc::unbounded_channel::<Request>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MOST_AT_ONCE);
            while waiting.recv_many(&mut batch, MOST_AT_ONCE).await > 0 {
                let lease = lease(batch.iter().map(|request| request.uploads.len()).max().unwrap_or(1));
                let all: Vec<_> = batch.iter().flat_map(|request| request.uploads.iter().map(|(image, steps, trace)| (image, &steps[..], *trace))).collect();
                let committed = repo.add_images(&all, &lease).await;
                drop(all);
                match committed {
                    Ok(()) => batch.drain(..).for_each(|request| drop(request.done.send(Ok(())))),
                    Err(error) if batch.len() == 1 => drop(batch.remove(0).done.send(Err(error))),
                    // The database is away for all of them alike: each hears so now, not one timeout after another.
                    Err(error) if error.is_unavailable() => batch.drain(..).for_each(|request| drop(request.done.send(Err(RepoError::unavailable_like(&error))))),
                    Err(_) => {
                        for request in batch.drain(..) {
                            let alone: Vec<_> = request.uploads.iter().map(|(image, steps, trace)| (image, &steps[..], *trace)).collect();
                            let _ = request.done.send(repo.add_images(&alone, &lease).await);
                        }
                    }
                }
            }
        });
        Self { requests }
    }

    /// Records `uploads` with their outbox rows; returns once they are committed.
    pub async fn record(&self, uploads: Uploads) -> Result<(), RepoError> {
        let (done, committed) = oneshot::channel();
        // The committing task is gone only when the server stops.
        self.requests.send(Request { uploads, done }).map_err(|_| RepoError::closing())?;
        committed.await.map_err(|_| RepoError::closing())?
    }
}
