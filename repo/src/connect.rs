//! Opening the database: connecting (and waiting while it is away), and
//! bringing its schema up to date once, under a lock, whichever process starts first.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

use crate::{Location, RepoError};

/// The numbered migrations in `repo/migrations/`, compiled in. Never edit one
/// that has landed: add the next.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The metadata repository: one pool, SQLite's or PostgreSQL's, and the
/// queries of [`crate::images`] run on either.
#[derive(Debug, Clone)]
pub struct Repository {
    pub(crate) pool: Pool,
    /// SQLite's one connection that writes (see [`on_writer!`]); `pool` then only reads.
    pub(crate) sqlite_writer: Option<SqlitePool>,
    location: Location,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the repository's pool, whichever it is:
/// the same SQL, typed for each backend.
macro_rules! on_pool {
    ($repository:expr, $pool:ident => $body:expr) => {
        match &$repository.pool {
            $crate::connect::Pool::Sqlite($pool) => $body,
            $crate::connect::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// [`on_pool!`] for a query that writes. SQLite lets one writer in at a time:
/// its writes go through one connection of their own, so that this process's
/// writers queue on it instead of sleeping in SQLite's busy handler (1, 2, 5,
/// 10 ms…), and reads, on the other connections, never wait behind a write.
macro_rules! on_writer {
    ($repository:expr, $pool:ident => $body:expr) => {
        match (&$repository.pool, &$repository.sqlite_writer) {
            ($crate::connect::Pool::Sqlite(_), Some($pool)) | ($crate::connect::Pool::Sqlite($pool), None) => $body,
            ($crate::connect::Pool::Postgres($pool), _) => $body,
        }
    };
}
pub(crate) use on_writer;

/// Runs `$body` with `$connection`, the writer's, and commits it without
/// waiting for SQLite's fsync (`synchronous = NORMAL` for it alone): for a
/// change that a power cut may undo harmlessly (a job done again), which the
/// next fsynced commit makes durable. PostgreSQL commits it as usual.
macro_rules! unsynced {
    ($repository:expr, $connection:ident => $body:expr) => {
        match (&$repository.pool, &$repository.sqlite_writer) {
            ($crate::connect::Pool::Postgres(pool), _) => {
                let mut $connection = pool.acquire().await?;
                $body
            }
            ($crate::connect::Pool::Sqlite(_), Some(pool)) | ($crate::connect::Pool::Sqlite(pool), None) => {
                let mut $connection = pool.acquire().await?;
                sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *$connection).await?;
                let result = async { $body }.await;
                // Every other commit is fsynced: should this fail, the connection goes rather than stay relaxed.
                if sqlx::query("PRAGMA synchronous = FULL").execute(&mut *$connection).await.is_err() {
                    $connection.close_on_drop();
                }
                result
            }
        }
    };
}
pub(crate) use unsynced;

/// How long a query waits for a free connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SQLite waits for another process's write to finish.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Between tries to reach a database that is away.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl Repository {
    /// Opens the database at `location` and migrates it. A PostgreSQL that
    /// cannot be reached is waited for, saying so once, until `shutdown`:
    /// processes may start in any order, and before their database.
    pub async fn open(location: &Location, mut shutdown: watch::Receiver<bool>) -> Result<Self, RepoError> {
        let mut said = false;
        loop {
            match Self::open_now(location).await {
                Err(error) if error.is_unavailable() && !*shutdown.borrow() => {
                    if !said {
                        tracing::warn!(database = %location.describe(), %error, "The database does not answer; waiting for it.");
                        said = true;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_EVERY) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                opened => {
                    if said && opened.is_ok() {
                        tracing::info!(database = %location.describe(), "The database answers now.");
                    }
                    return opened;
                }
            }
        }
    }

    /// Opens and migrates the database at `location`, or says why it cannot now.
    pub async fn open_now(location: &Location) -> Result<Self, RepoError> {
        let (pool, sqlite_writer) = match location {
            Location::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|error| RepoError::Failed(sqlx::Error::Io(error)))?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    // Readers never wait for the writer; several processes share the file.
                    .journal_mode(SqliteJournalMode::Wal)
                    // An answered upload survives a power cut: each commit is fsynced (but
                    // the one that clears confirmed jobs from the outbox: see `jobs_queued`).
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true);
                // A file has no connection to lose: no ping before each use, which
                // would cost a round trip to the connection's thread.
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options.clone())
                    .await?;
                // Waiting for the writer may include its wait for another process's write lock.
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .acquire_timeout(SQLITE_BUSY_TIMEOUT + ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                // sqlx does not lock SQLite while it migrates: a file lock keeps two
                // processes starting at once from running the same migration twice.
                let lock = migration_lock(path).await?;
                let migrated = MIGRATOR.run(&pool).await;
                drop(lock);
                migrated?;
                (Pool::Sqlite(pool), Some(writer))
            }
            Location::Postgres(url) => {
                let pool = PgPoolOptions::new().max_connections(10).acquire_timeout(ACQUIRE_TIMEOUT).connect(url).await?;
                // sqlx holds an advisory lock while it migrates PostgreSQL.
                MIGRATOR.run(&pool).await.map_err(|error| match error {
                    sqlx::migrate::MigrateError::Execute(inner) => RepoError::from(inner),
                    other => RepoError::Migrate(other),
                })?;
                (Pool::Postgres(pool), None)
            }
        };
        Ok(Self { pool, sqlite_writer, location: location.clone() })
    }

    /// Where the database is, for people: never a password.
    pub fn describe(&self) -> String {
        self.location.describe()
    }

    /// Whether processes on other machines can share it (PostgreSQL), rather than one machine's (SQLite).
    pub fn is_shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// Whether the database answers: for `/readyz`.
    pub async fn check(&self) -> Result<(), RepoError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection, waiting for queries in flight.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await;
        }
    }
}

/// Holds an exclusive lock on `{database}.lock` until dropped.
async fn migration_lock(database: &std::path::Path) -> Result<std::fs::File, RepoError> {
    let mut path = database.as_os_str().to_owned();
    path.push(".lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|error| RepoError::Failed(sqlx::Error::Io(std::io::Error::other(error))))?
    .map_err(|error| RepoError::Failed(sqlx::Error::Io(error)))
}
