//! Everything thumbq knows about an image, one record each: the metadata repository.
//!
//! The store keeps bytes (originals, thumbnails, WebPs); this crate keeps the
//! facts about them, and it is the only place that knows SQL:
//! - [`settings`]: `--database-url`, and where the database is without it.
//! - [`batch`]: statements sent together, in one round trip on SQLite.
//! - [`columns`]: how times and ids are kept in columns, and the lease a row is held under.
//! - [`connect`]: opening the database, waiting for it, and migrating it once, under a lock.
//! - [`accept`]: an accepted upload's record, its first steps and its job's outbox row, in one transaction.
//! - [`images`]: the image records, and the updates a job or a delete makes of them.
//! - [`steps`]: an image's timeline.
//! - [`failures`]: the images that failed for good, grouped by reason, for the dashboard.
//! - [`outbox`]: jobs accepted and not yet on the queue, written with their image.
//! - [`queue`]: the embedded queue: with no RabbitMQ, workers take their jobs from the outbox.
//! - [`requests`]: `Idempotency-Key`s, and the same bytes uploaded again by one owner.
//! - [`resumable`]: resumable uploads being received, and the parts their bytes are in.
//! - [`trash`]: an owner's delete, undone within a while, and deleted for good after it.
//! - [`upkeep`]: what the reconciler asks: its lease, stalled images, unfinished deletes.
//! - [`usage`]: what one owner, and one address, uploaded lately, for the daily quotas.
//!
//! Two backends, one behaviour: SQLite in the data directory (the default:
//! nothing to install or start) and PostgreSQL for more than one machine. The
//! same SQL runs on both; [`Repository`] picks the pool and runs it.
//!
//! A handler or a job reads one record, does its work, and commits one
//! change: a page costs one query, and each of a job's writes of its
//! progress is one short transaction.

pub mod accept;
mod batch;
pub mod columns;
pub mod connect;
pub mod failures;
pub mod images;
pub mod outbox;
pub mod queue;
pub mod requests;
pub mod resumable;
pub mod settings;
pub mod steps;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trash;
pub mod upkeep;
pub mod usage;

pub use accept::NewImage;
pub use columns::Lease;
pub use connect::Repository;
pub use failures::FailureGroup;
pub use images::{Deletion, ImageRecord, ImageState};
pub use queue::TakenJob;
pub use requests::Attempt;
pub use resumable::{NewUpload, UploadPart, UploadRecord};
pub use settings::{DatabaseSettings, Location};
pub use trash::Restoration;
pub use usage::Uploaded;

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The database could not be reached, or did not answer in time: the web
    /// server says 503 and keeps nothing; a worker waits and tries again.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database answered with an error of its own.
    #[error("the database failed: {0}")]
    Failed(#[source] sqlx::Error),
    /// A row holds what no version of thumbq writes there.
    #[error("the database holds a record thumbq cannot read: {0}")]
    Corrupt(String),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl RepoError {
    /// The repository's handle is closing (the process is stopping): unavailable, as for a client it is.
    pub fn closing() -> Self {
        Self::Unavailable(sqlx::Error::PoolClosed)
    }

    /// An unavailable error saying what `error` said, for each of several callers that met it.
    pub fn unavailable_like(error: &RepoError) -> Self {
        Self::Unavailable(sqlx::Error::Protocol(error.to_string()))
    }

    /// Whether waiting may help: the database is away, not wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for RepoError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            // PostgreSQL shutting down or restarting ("admin shutdown", "cannot connect now").
            sqlx::Error::Database(database) if database.code().is_some_and(|code| code.starts_with("57P") || code.starts_with("08")) => {
                Self::Unavailable(error)
            }
            // SQLite busy for longer than its timeout: another process holds the write lock.
            sqlx::Error::Database(database) if database.code().is_some_and(|code| code == "5" || code == "6") => Self::Unavailable(error),
            _ => Self::Failed(error),
        }
    }
}
