//! Statements sent together: on SQLite as one string, which its connection's
//! thread runs in one go, instead of one round trip to that thread (and two
//! thread wake-ups) per statement; on PostgreSQL one after the other, as its
//! protocol prepares one statement at a time.

use sqlx::{Database, QueryBuilder};

/// The most rows one statement writes: SQLite takes up to 32766 bound values, PostgreSQL 65535.
pub(crate) const ROWS_PER_STATEMENT: usize = 100;

/// Statements to run in order inside one transaction (see [`run_batch!`]).
pub(crate) struct Batch<'args, DB: Database> {
    /// Whether the statements share one query string (SQLite).
    pub(crate) together: bool,
    pub(crate) queries: Vec<QueryBuilder<'args, DB>>,
}

impl<'args, DB: Database> Batch<'args, DB>
where
    DB::Arguments<'args>: Default,
{
    pub(crate) fn new() -> Self {
        Self { together: DB::NAME == <sqlx::Sqlite as Database>::NAME, queries: Vec::new() }
    }

    /// A batch that is a transaction of its own (see [`run_transaction!`]): on
    /// SQLite its `BEGIN` and `COMMIT` travel in the same string as its
    /// statements, so the whole transaction is one round trip, not three.
    pub(crate) fn transaction() -> Self {
        let mut batch = Self::new();
        if batch.together {
            // IMMEDIATE: the write lock is taken (or waited for) at once, never upgraded mid-way.
            batch.statement("BEGIN IMMEDIATE");
        }
        batch
    }

    /// Begins the next statement with `sql`; its binds are pushed on what comes back.
    pub(crate) fn statement(&mut self, sql: &str) -> &mut QueryBuilder<'args, DB> {
        match self.queries.last_mut() {
            Some(query) if self.together => {
                query.push(";\n").push(sql);
            }
            _ => self.queries.push(QueryBuilder::new(sql)),
        }
        self.queries.last_mut().expect("a statement was just pushed")
    }
}

/// Runs the statements of `$batch` inside `$tx`; evaluates to the rows they
/// returned, in order.
macro_rules! run_batch {
    ($tx:expr, $batch:expr) => {{
        let mut rows = Vec::new();
        for mut query in $batch.queries {
            rows.extend(query.build().fetch_all(&mut *$tx).await?);
        }
        rows
    }};
}
pub(crate) use run_batch;

/// Runs `$batch`, made by [`Batch::transaction`], as one transaction on a
/// connection of `$pool`; evaluates to the rows its statements returned.
/// On SQLite a statement that fails leaves the transaction open: it is rolled
/// back here, and a connection that cannot roll back is closed.
macro_rules! run_transaction {
    ($pool:expr, $batch:expr) => {{
        let mut batch = $batch;
        if batch.together {
            batch.statement("COMMIT");
            let mut connection = $pool.acquire().await?;
            let mut query = batch.queries.pop().expect("a transaction has its BEGIN");
            match query.build().fetch_all(&mut *connection).await {
                Ok(rows) => rows,
                Err(error) => {
                    if sqlx::query("ROLLBACK").execute(&mut *connection).await.is_err() {
                        // "No transaction is active" (SQLite ended it itself) is the likely cause; when in doubt, a new connection.
                        connection.close_on_drop();
                    }
                    return Err(error.into());
                }
            }
        } else {
            let mut tx = $pool.begin().await?;
            let rows = $crate::batch::run_batch!(tx, batch);
            tx.commit().await?;
            rows
        }
    }};
}
pub(crate) use run_transaction;
