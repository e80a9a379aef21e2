//! An image's timeline: the steps of its way, both sides', one row each,
//! written only while the image is not deleted.

use sqlx::Row;
use thumbq_contract::{ImageId, Step};

use crate::columns::to_u64;
use crate::connect::{on_pool, on_writer};
use crate::{RepoError, Repository};

/// Adds, to `$batch`, the steps of each `(image id, steps)` of `$of_images`,
/// a hundred rows a statement, each unless its image is deleted. Each
/// statement is one write that looks at the images itself, never a read
/// before a write: SQLite refuses, rather than waits for, a read transaction
/// that tries to write after another commit. It also means that the steps of
/// an image that another statement of the same batch did not insert are not
/// written either.
macro_rules! push_live_steps {
    ($batch:expr, $of_images:expr) => {{
        let rows: Vec<(String, i64, &thumbq_contract::Step)> = $of_images
            .into_iter()
            .flat_map(|(id, steps): (&str, &[thumbq_contract::Step])| steps.iter().enumerate().map(move |(seq, step)| (id.to_owned(), seq as i64, step)))
            .collect();
        for chunk in rows.chunks($crate::batch::ROWS_PER_STATEMENT) {
            let query =
                $batch.statement("INSERT INTO steps (image_id, at_ms, seq, step, by_process) SELECT column1, column2, column3, column4, column5 FROM (");
            query.push_values(chunk, |mut row, (id, seq, step)| {
                row.push_bind(id.clone()).push_bind($crate::columns::to_i64(step.at)).push_bind(*seq).push_bind(step.step.clone()).push_bind(step.by.clone());
            });
            query.push(") AS v WHERE EXISTS (SELECT 1 FROM images WHERE id = v.column1 AND deleted_ms IS NULL)");
        }
    }};
}
pub(crate) use push_live_steps;

/// [`push_live_steps!`] run on its own inside `$tx`.
macro_rules! insert_live_steps {
    ($tx:expr, $of_images:expr) => {{
        let mut batch = $crate::batch::Batch::new();
        $crate::steps::push_live_steps!(batch, $of_images);
        $crate::batch::run_batch!($tx, batch);
    }};
}
pub(crate) use insert_live_steps;

impl Repository {
    /// Adds steps to the timeline of `id`, unless it was deleted.
    pub async fn add_steps(&self, id: ImageId, steps: &[Step]) -> Result<(), RepoError> {
        let id = id.to_string();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            crate::steps::insert_live_steps!(tx, [(id.as_str(), steps)]);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The steps of `id`'s way, both sides', oldest first.
    pub async fn timeline(&self, id: ImageId) -> Result<Vec<Step>, RepoError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT at_ms, step, by_process FROM steps WHERE image_id = $1 ORDER BY at_ms, seq").bind(id.to_string()).fetch_all(pool).await?;
            rows.iter().map(step_of).collect()
        })
    }
}

fn step_of<R: Row>(row: &R) -> Result<Step, RepoError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(Step { at: to_u64(row.try_get(0)?), step: row.try_get(1)?, by: row.try_get(2)? })
}
