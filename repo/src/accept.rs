//! Recording accepted uploads: each image's record, its first steps and its
//! job's outbox row, in one transaction, before the client hears "accepted";
//! and the records of images an earlier release kept as files.

use sqlx::Row;
use thumbq_contract::{ImageId, OwnerId, SourceFormat, Step, ThumbFormat, ThumbSize, TraceParent};

use crate::columns::{Lease, to_i64};
use crate::connect::on_writer;
use crate::{ImageRecord, RepoError, Repository};

/// An accepted upload, as the web server records it before it answers.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub id: ImageId,
    pub owner: OwnerId,
    /// The name it was sent under, cleaned for display.
    pub name: String,
    pub format: SourceFormat,
    pub bytes: u64,
    /// The hash of its bytes: `blake3:` and 64 hex digits (a bare SHA-256 in records of earlier releases).
    pub content_hash: String,
    pub width: u32,
    pub height: u32,
    pub created_ms: u64,
    /// The SHA-256 of the image's own delete token, when it has one.
    pub delete_token_hash: Option<String>,
    /// The address it was sent from, counted against that address's daily quota.
    pub client: Option<String>,
}

/// Adds, to `$batch`, the removal of the outbox rows of the jobs in `$queued`,
/// `(image, step)` pairs, which the queue has taken, and each one's step.
macro_rules! push_clear_queued {
    ($batch:expr, $queued:expr) => {{
        let queued: &[(thumbq_contract::ImageId, thumbq_contract::Step)] = $queued;
        let ids: Vec<String> = queued.iter().map(|(id, _)| id.to_string()).collect();
        for chunk in ids.chunks($crate::batch::ROWS_PER_STATEMENT) {
            let query = $batch.statement("DELETE FROM outbox WHERE image_id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.clone());
            }
            query.push(")");
        }
        $crate::steps::push_live_steps!($batch, ids.iter().zip(queued).map(|(id, (_, step))| (id.as_str(), std::slice::from_ref(step))));
    }};
}
pub(crate) use push_clear_queued;

impl Repository {
    /// Records an accepted upload, the web server's steps so far and its job
    /// in the outbox, leased to `lease`'s holder, in one transaction; `false`
    /// when its owner has an image of the same bytes already (see [`Repository::add_images`]).
    pub async fn add_image(&self, image: &NewImage, steps: &[Step], trace: Option<TraceParent>, lease: &Lease) -> Result<bool, RepoError> {
        Ok(self.add_images(&[(image, steps, trace)], lease, &[]).await?.is_empty())
    }

    /// Records accepted uploads, each with the web server's steps so far and
    /// its job in the outbox, leased to `lease`'s holder, in one transaction:
    /// once it commits, they are accepted, and their jobs will reach the queue.
    ///
    /// An upload whose owner has an image of the same bytes (pending or done)
    /// is not recorded, even one committed a moment ago by another request or
    /// another web server: its id comes back, and its owner's image is the one
    /// to answer with. On SQLite the single writer makes the check and the
    /// insert one step; on PostgreSQL a lock on the owner and the bytes, held
    /// to the commit, does.
    ///
    /// The same commit clears the outbox rows of the jobs in `queued`, which
    /// the queue took meanwhile (see [`Repository::jobs_queued`]), adding each one's step.
    pub async fn add_images(
        &self,
        uploads: &[(&NewImage, &[Step], Option<TraceParent>)],
        lease: &Lease,
        queued: &[(ImageId, Step)],
    ) -> Result<Vec<ImageId>, RepoError> {
        /// One upload, its columns as they are bound.
        struct Row<'a> {
            image: &'a NewImage,
            steps: &'a [Step],
            id: String,
            owner: String,
            trace: Option<String>,
        }
        // The same bytes twice in one batch (two requests at once): the first is recorded.
        let mut seen = std::collections::HashSet::new();
        let (first, again): (Vec<_>, Vec<_>) = uploads.iter().partition(|(image, _, _)| seen.insert((image.owner, image.content_hash.as_str())));
        let rows: Vec<Row> = first
            .iter()
            .map(|(image, steps, trace)| Row {
                image,
                steps,
                id: image.id.to_string(),
                owner: image.owner.to_string(),
                trace: trace.map(|trace| trace.to_string()),
            })
            .collect();
        let mut locks: Vec<String> = rows.iter().map(|row| format!("{}:{}", row.owner, row.image.content_hash)).collect();
        // Taken in one order by every transaction, so that two never wait for each other.
        locks.sort_unstable();
        let inserted: std::collections::HashSet<String> = on_writer!(self, pool => {
            // One transaction: on SQLite one round trip for it all, however many uploads.
            let mut batch = crate::batch::Batch::transaction();
            for chunk in rows.chunks(crate::batch::ROWS_PER_STATEMENT) {
                let query = batch.statement(
                    "INSERT INTO images (id, owner, name, format, bytes, content_hash, width, height, created_ms, delete_token_hash, client) \
                     SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9, column10, column11 FROM (",
                );
                query.push_values(chunk, |mut values, row| {
                    let image = row.image;
                    values
                        .push_bind(row.id.as_str())
                        .push_bind(row.owner.as_str())
                        .push_bind(&image.name)
                        .push_bind(image.format.code())
                        .push_bind(to_i64(image.bytes))
                        .push_bind(&image.content_hash)
                        .push_bind(i64::from(image.width))
                        .push_bind(i64::from(image.height))
                        .push_bind(to_i64(image.created_ms))
                        .push_bind(image.delete_token_hash.as_deref())
                        .push_bind(image.client.as_deref());
                });
                query.push(
                    ") AS v WHERE NOT EXISTS (SELECT 1 FROM images WHERE owner = v.column2 AND content_hash = v.column6 AND deleted_ms IS NULL AND trashed_ms IS NULL AND failure IS NULL) \
                     RETURNING id",
                );
            }
            // The job of each image the statements above inserted: an image skipped for its bytes has no row of its id.
            for chunk in rows.chunks(crate::batch::ROWS_PER_STATEMENT) {
                let query = batch.statement("INSERT INTO outbox (image_id, traceparent, queued_ms, lease_until_ms, leased_by) SELECT column1, column2, column3, column4, column5 FROM (");
                query.push_values(chunk, |mut values, row| {
                    values.push_bind(row.id.as_str()).push_bind(row.trace.as_deref()).push_bind(to_i64(row.image.created_ms)).push_bind(to_i64(lease.until_ms)).push_bind(&lease.holder);
                });
                query.push(") AS v WHERE EXISTS (SELECT 1 FROM images WHERE id = v.column1)");
            }
            crate::steps::push_live_steps!(batch, rows.iter().map(|row| (row.id.as_str(), row.steps)));
            push_clear_queued!(batch, queued);
            let returned = if batch.together {
                crate::batch::run_transaction!(pool, batch)
            } else {
                let mut tx = pool.begin().await?;
                if !locks.is_empty() {
                    // PostgreSQL calls a volatile function of the select list after the sort.
                    let mut query = sqlx::QueryBuilder::new("SELECT pg_advisory_xact_lock(hashtextextended(column1, 0)) FROM (");
                    query.push_values(&locks, |mut row, key| {
                        row.push_bind(key.as_str());
                    });
                    query.push(") AS keys ORDER BY column1");
                    query.build().execute(&mut *tx).await?;
                }
                let rows = crate::batch::run_batch!(tx, batch);
                tx.commit().await?;
                rows
            };
            // Only the inserts of images return rows: their ids.
            returned.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<std::collections::HashSet<String>, _>>()?
        });
        let skipped = rows.iter().filter(|row| !inserted.contains(&row.id)).map(|row| row.image.id);
        Ok(skipped.chain(again.iter().map(|(image, _, _)| image.id)).collect())
    }

    /// Records an image as an earlier release left it (see `thumbq-web migrate`),
    /// with its steps; `false` when it has a record already, which is kept as it is.
    pub async fn import(&self, image: &ImageRecord, steps: &[Step]) -> Result<bool, RepoError> {
        let id = image.id.to_string();
        let extension = |size: ThumbSize| image.thumbnail(size).map(ThumbFormat::extension);
        let failure = image.failure.as_ref();
        let imported = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO images (id, owner, name, format, bytes, created_ms, small, medium, large, webp, placeholder, done_ms, failure, failure_retryable, failed_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(image.owner.map(|owner| owner.to_string()))
            .bind(image.name.as_deref())
            .bind(image.format.map(SourceFormat::code))
            .bind(to_i64(image.bytes))
            .bind(to_i64(image.created_ms))
            .bind(extension(ThumbSize::Small))
            .bind(extension(ThumbSize::Medium))
            .bind(extension(ThumbSize::Large))
            .bind(image.webp)
            .bind(image.placeholder.as_deref())
            .bind(image.done_ms.map(to_i64))
            .bind(failure.map(|failure| failure.reason.as_str()))
            .bind(failure.map(|failure| failure.retryable))
            .bind(failure.map(|failure| to_i64(failure.failed_at_ms)))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                crate::steps::insert_live_steps!(tx, [(id.as_str(), steps)]);
            }
            tx.commit().await?;
            inserted
        });
        Ok(imported)
    }
}
