//! Statements sent together: on SQLite as one string, which its connection's
//! thread runs in one go, instead of one round trip to that thread (and two
//! thread wake-ups) per statement; on PostgreSQL one after the other, as its
//! protocol prepares one statement at a time.

use sqlx::{Database, QueryBuilder};

/// Statements to run in order inside one transaction (see [`run_batch!`]).
pub(crate) struct Batch<'args, DB: Database> {
    /// Whether the statements share one query string (SQLite).
    together: bool,
    pub(crate) queries: Vec<QueryBuilder<'args, DB>>,
}

impl<'args, DB: Database> Batch<'args, DB>
where
    DB::Arguments<'args>: Default,
{
    pub(crate) fn new() -> Self {
        Self { together: DB::NAME == <sqlx::Sqlite as Database>::NAME, queries: Vec::new() }
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
