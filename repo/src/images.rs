//! Image records: what an image is, where its job stands, and the updates a
//! job or a delete makes of it. How an upload's record is first written is in
//! [`crate::accept`]; its steps are in [`crate::steps`].
//!
//! Every write that a job or a delete races with is one conditional `UPDATE`
//! (`WHERE deleted_ms IS NULL`): a worker that finds its update refused knows
//! the image was deleted, and removes what it wrote. So the row is the
//! tombstone, and no order of a delete and a job leaves a file behind.

use sqlx::Row;
use thumbq_contract::{FailureRecord, ImageId, OwnerId, SourceFormat, Step, ThumbFormat, ThumbSize};

use crate::columns::{to_i64, to_u64};
use crate::connect::{on_pool, on_writer};
use crate::{RepoError, Repository};

/// Everything known of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: ImageId,
    /// `None` only for a deleted image.
    pub owner: Option<OwnerId>,
    pub name: Option<String>,
    pub format: Option<SourceFormat>,
    pub bytes: u64,
    /// Width and height in pixels: as the file's header says at upload, and
    /// turned upright (EXIF) once a worker has decoded it. `None` for an image
    /// an earlier release kept as files.
    pub pixels: Option<(u32, u32)>,
    pub created_ms: u64,
    /// The format of each baseline thumbnail written so far, smallest first.
    pub thumbnails: [Option<ThumbFormat>; 3],
    /// Whether the three WebPs are written.
    pub webp: bool,
    /// The ThumbHash, base64, from the first thumbnail on.
    pub placeholder: Option<String>,
    /// When the job wrote its last file, durably.
    pub done_ms: Option<u64>,
    pub failure: Option<FailureRecord>,
    /// The file ended before its picture did: the thumbnails show what there was.
    pub cut_off: bool,
    /// When its owner deleted it, while they can still undo that (see `trash`).
    pub trashed_ms: Option<u64>,
    pub deleted_ms: Option<u64>,
}

/// Where an image stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageState {
    /// Waiting for a worker, or being worked on; some sizes may be ready already.
    Pending,
    /// All three sizes are ready.
    Done,
    /// The job failed for good; the record says why.
    Failed,
    /// Deleted: only the row is left, so that its links answer 410. An
    /// image in the trash reads as deleted too; only its files are still there.
    Deleted,
}

impl ImageState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }
}

impl ImageRecord {
    pub fn state(&self) -> ImageState {
        if self.deleted_ms.is_some() || self.trashed_ms.is_some() {
            ImageState::Deleted
        } else if self.failure.is_some() {
            ImageState::Failed
        } else if self.thumbnails.iter().all(Option::is_some) {
            ImageState::Done
        } else {
            ImageState::Pending
        }
    }

    /// The format the thumbnail of `size` was written in, if it is.
    pub fn thumbnail(&self, size: ThumbSize) -> Option<ThumbFormat> {
        self.thumbnails[size_index(size)]
    }

    /// Whether the image is deleted for good, not only in the trash: what a
    /// worker must know before it removes what it wrote.
    pub fn is_deleted_for_good(&self) -> bool {
        self.deleted_ms.is_some()
    }

    /// Whether `caller` owns the image.
    pub fn is_owned_by(&self, caller: Option<&OwnerId>) -> bool {
        matches!((caller, &self.owner), (Some(caller), Some(owner)) if owner.same_as(caller))
    }
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The image was there and is deleted now.
    Deleted,
    /// It was deleted before.
    AlreadyDeleted,
    /// There is no such image.
    Unknown,
}

fn size_index(size: ThumbSize) -> usize {
    match size {
        ThumbSize::Small => 0,
        ThumbSize::Medium => 1,
        ThumbSize::Large => 2,
    }
}

const IMAGE_COLUMNS: &str = "id, owner, name, format, bytes, width, height, created_ms, small, medium, large, webp, placeholder, done_ms, failure, failure_retryable, failed_ms, cut_off, trashed_ms, deleted_ms";

/// A row of `images` as the database gives it.
#[derive(sqlx::FromRow)]
struct ImageRow {
    id: String,
    owner: Option<String>,
    name: Option<String>,
    format: Option<String>,
    bytes: i64,
    width: Option<i64>,
    height: Option<i64>,
    created_ms: i64,
    small: Option<String>,
    medium: Option<String>,
    large: Option<String>,
    webp: bool,
    placeholder: Option<String>,
    done_ms: Option<i64>,
    failure: Option<String>,
    failure_retryable: Option<bool>,
    failed_ms: Option<i64>,
    cut_off: bool,
    trashed_ms: Option<i64>,
    deleted_ms: Option<i64>,
}

impl TryFrom<ImageRow> for ImageRecord {
    type Error = RepoError;

    fn try_from(row: ImageRow) -> Result<Self, RepoError> {
        let corrupt = |what: &str, value: &str| RepoError::Corrupt(format!("image {}: {what} {value:?}", row.id));
        let id = row.id.parse().map_err(|_| corrupt("id", &row.id))?;
        let owner = row.owner.as_deref().map(|owner| owner.parse().map_err(|_| corrupt("owner", owner))).transpose()?;
        let format = row.format.as_deref().map(|format| SourceFormat::from_code(format).ok_or_else(|| corrupt("format", format))).transpose()?;
        let thumbnail = |extension: &Option<String>| {
            extension.as_deref().map(|extension| ThumbFormat::from_extension(extension).ok_or_else(|| corrupt("thumbnail format", extension))).transpose()
        };
        let thumbnails = [thumbnail(&row.small)?, thumbnail(&row.medium)?, thumbnail(&row.large)?];
        let failure = row.failure.clone().map(|reason| FailureRecord {
            reason,
            failed_at_ms: row.failed_ms.map_or(0, to_u64),
            retryable: row.failure_retryable.unwrap_or(true),
        });
        Ok(Self {
            id,
            owner,
            name: row.name,
            format,
            bytes: to_u64(row.bytes),
            pixels: row.width.zip(row.height).and_then(|(width, height)| Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))),
            created_ms: to_u64(row.created_ms),
            thumbnails,
            webp: row.webp,
            placeholder: row.placeholder,
            done_ms: row.done_ms.map(to_u64),
            failure,
            cut_off: row.cut_off,
            trashed_ms: row.trashed_ms.map(to_u64),
            deleted_ms: row.deleted_ms.map(to_u64),
        })
    }
}

/// Runs `$sql`, an `UPDATE` of image `$1` with `$value`s bound after it, and
/// when it changed the row adds `$steps`, in one transaction; `true` when it did.
macro_rules! update_with_steps {
    ($repository:expr, $id:expr, $steps:expr, $sql:expr $(, $value:expr)*) => {{
        let id = $id.to_string();
        let updated = on_writer!($repository, pool => {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query($sql).bind(&id)$(.bind($value))*.execute(&mut *tx).await?.rows_affected() == 1;
            if updated {
                crate::steps::insert_live_steps!(tx, [(id.as_str(), $steps)]);
            }
            tx.commit().await?;
            updated
        });
        Ok(updated)
    }};
}

impl Repository {
    /// The record of `id`, deleted or not; `None` when there is no such image.
    pub async fn image(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, ImageRow>(&sql).bind(id.to_string()).fetch_optional(pool).await)?;
        row.map(ImageRecord::try_from).transpose()
    }

    /// The record of `id` and its steps, oldest first, in one query; `None` when there is no such image.
    pub async fn image_with_timeline(&self, id: ImageId) -> Result<Option<(ImageRecord, Vec<Step>)>, RepoError> {
        let columns: Vec<String> = IMAGE_COLUMNS.split(", ").map(|column| format!("images.{column}")).collect();
        let sql = format!(
            "SELECT {}, steps.at_ms AS step_at_ms, steps.step AS step_name, steps.by_process AS step_by FROM images \
             LEFT JOIN steps ON steps.image_id = images.id WHERE images.id = $1 ORDER BY steps.at_ms, steps.seq",
            columns.join(", ")
        );
        let (rows, steps) = on_pool!(self, pool => {
            use sqlx::FromRow;
            let rows = sqlx::query(&sql).bind(id.to_string()).fetch_all(pool).await?;
            let mut steps = Vec::with_capacity(rows.len());
            for row in &rows {
                // One row with no step (all NULL) when the image has none.
                if let Some(at) = row.try_get::<Option<i64>, _>("step_at_ms")? {
                    steps.push(Step { at: to_u64(at), step: row.try_get("step_name")?, by: row.try_get("step_by")? });
                }
            }
            (rows.first().map(ImageRow::from_row).transpose()?, steps)
        });
        Ok(match rows {
            Some(row) => Some((ImageRecord::try_from(row)?, steps)),
            None => None,
        })
    }

    /// The records of `ids` that exist, in the order asked, in one query.
    pub async fn images(&self, ids: &[ImageId]) -> Result<Vec<ImageRecord>, RepoError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|number| format!("${number}")).collect();
        let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id IN ({})", placeholders.join(", "));
        let rows = on_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, ImageRow>(&sql);
            for id in ids {
                query = query.bind(id.to_string());
            }
            query.fetch_all(pool).await
        })?;
        let mut records = rows.into_iter().map(ImageRecord::try_from).collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|record| ids.iter().position(|id| *id == record.id));
        Ok(records)
    }

    /// One page of `owner`'s images, newest first, and how many they have in
    /// all: one query (a second only for a page past the end, to count).
    pub async fn images_of(&self, owner: &OwnerId, offset: usize, limit: usize) -> Result<(Vec<ImageRecord>, usize), RepoError> {
        let sql = format!(
            "SELECT {IMAGE_COLUMNS}, COUNT(*) OVER () AS total FROM images WHERE owner = $1 AND deleted_ms IS NULL AND trashed_ms IS NULL ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let owner = owner.to_string();
        let (rows, total) = on_pool!(self, pool => {
            use sqlx::FromRow;
            let rows = sqlx::query(&sql).bind(&owner).bind(limit as i64).bind(offset as i64).fetch_all(pool).await?;
            let total: i64 = match rows.first() {
                Some(row) => row.try_get("total")?,
                None if offset == 0 => 0,
                None => sqlx::query("SELECT COUNT(*) FROM images WHERE owner = $1 AND deleted_ms IS NULL AND trashed_ms IS NULL").bind(&owner).fetch_one(pool).await?.try_get(0)?,
            };
            (rows.iter().map(ImageRow::from_row).collect::<Result<Vec<_>, _>>()?, total)
        });
        let records = rows.into_iter().map(ImageRecord::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok((records, usize::try_from(total).unwrap_or(0)))
    }

    /// Records that the thumbnail of `size` is written in `format` (with the
    /// placeholder, when this is the first), and the worker's steps so far.
    /// `false` when the image was deleted: what the job wrote is its to remove.
    pub async fn thumbnail_written(
        &self,
        id: ImageId,
        size: ThumbSize,
        format: ThumbFormat,
        placeholder: Option<&str>,
        steps: &[Step],
    ) -> Result<bool, RepoError> {
        // The column is named by the size, never by anything a client sent.
        let sql = format!("UPDATE images SET {} = $2, placeholder = COALESCE($3, placeholder) WHERE id = $1 AND deleted_ms IS NULL", size.name());
        update_with_steps!(self, id, steps, &sql, format.extension(), placeholder)
    }

    /// Records that the job of `id` wrote its last file, durably, and its
    /// last steps, with the image's `upright` size when the job decoded it;
    /// clears a failure an earlier try recorded. `false` when the image was deleted.
    pub async fn finished(&self, id: ImageId, webp: bool, done_ms: u64, upright: Option<(u32, u32)>, steps: &[Step]) -> Result<bool, RepoError> {
        let sql = "UPDATE images SET webp = $2, done_ms = $3, width = COALESCE($4, width), height = COALESCE($5, height), \
                   failure = NULL, failure_retryable = NULL, failed_ms = NULL WHERE id = $1 AND deleted_ms IS NULL";
        let (width, height) = (upright.map(|(width, _)| i64::from(width)), upright.map(|(_, height)| i64::from(height)));
        update_with_steps!(self, id, steps, sql, webp, to_i64(done_ms), width, height)
    }

    /// Records that the job of `id` failed for good, and why; a failed image
    /// has no thumbnails. `false` when the image was deleted.
    pub async fn failed(&self, id: ImageId, failure: &FailureRecord, steps: &[Step]) -> Result<bool, RepoError> {
        let sql = "UPDATE images SET failure = $2, failure_retryable = $3, failed_ms = $4, small = NULL, medium = NULL, large = NULL, \
                   webp = FALSE, placeholder = NULL, done_ms = NULL WHERE id = $1 AND deleted_ms IS NULL";
        update_with_steps!(self, id, steps, sql, &failure.reason, failure.retryable, to_i64(failure.failed_at_ms))
    }

    /// Makes a failed image pending again for a replay, unless a newer failure replaced the one seen.
    pub async fn clear_failure(&self, id: ImageId, failed_at_ms: u64) -> Result<bool, RepoError> {
        let sql = "UPDATE images SET failure = NULL, failure_retryable = NULL, failed_ms = NULL WHERE id = $1 AND failed_ms = $2 AND deleted_ms IS NULL";
        update_with_steps!(self, id, &[] as &[Step], sql, to_i64(failed_at_ms))
    }

    /// The images whose job failed for good, newest first, at most `limit`.
    pub async fn failures(&self, limit: usize) -> Result<Vec<(ImageId, FailureRecord)>, RepoError> {
        let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE failure IS NOT NULL AND deleted_ms IS NULL ORDER BY id DESC LIMIT $1");
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ImageRow>(&sql).bind(limit as i64).fetch_all(pool).await)?;
        let mut failures = Vec::with_capacity(rows.len());
        for row in rows {
            let record = ImageRecord::try_from(row)?;
            if let Some(failure) = record.failure {
                failures.push((record.id, failure));
            }
        }
        Ok(failures)
    }

    /// Records that the file of `id` ended before its picture did. `false` when the image was deleted.
    pub async fn cut_off(&self, id: ImageId) -> Result<bool, RepoError> {
        let updated = on_writer!(self, pool => sqlx::query("UPDATE images SET cut_off = TRUE WHERE id = $1 AND deleted_ms IS NULL")
            .bind(id.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(updated == 1)
    }

    /// Marks `id` deleted at `at_ms`, keeping only the row (the image's
    /// tombstone) and forgetting everything else about it, in one transaction.
    pub async fn mark_deleted(&self, id: ImageId, at_ms: u64) -> Result<Deletion, RepoError> {
        self.mark_deleted_where(id, at_ms, "", None).await
    }

    /// [`Self::mark_deleted`], only when `condition` (SQL on the row, with
    /// `$3` bound to `value`) holds; [`Deletion::AlreadyDeleted`] when it does not.
    pub(crate) async fn mark_deleted_where(&self, id: ImageId, at_ms: u64, condition: &str, value: Option<i64>) -> Result<Deletion, RepoError> {
        let id = id.to_string();
        let sql = format!(
            "UPDATE images SET deleted_ms = $2, owner = NULL, name = NULL, content_hash = NULL, small = NULL, medium = NULL, large = NULL, \
             webp = FALSE, placeholder = NULL, failure = NULL, failure_retryable = NULL, failed_ms = NULL, delete_token_hash = NULL, trashed_ms = NULL \
             WHERE id = $1 AND deleted_ms IS NULL{condition}"
        );
        let deletion = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut update = sqlx::query(&sql).bind(&id).bind(to_i64(at_ms));
            if let Some(value) = value {
                update = update.bind(value);
            }
            let marked = update.execute(&mut *tx).await?.rows_affected();
            let deletion = if marked == 1 {
                sqlx::query("DELETE FROM steps WHERE image_id = $1").bind(&id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM outbox WHERE image_id = $1").bind(&id).execute(&mut *tx).await?;
                Deletion::Deleted
            } else if sqlx::query("SELECT 1 FROM images WHERE id = $1").bind(&id).fetch_optional(&mut *tx).await?.is_some() {
                Deletion::AlreadyDeleted
            } else {
                Deletion::Unknown
            };
            tx.commit().await?;
            deletion
        });
        Ok(deletion)
    }

    /// Whether `token_hash` is the delete token of `id`, not deleted.
    pub async fn has_delete_token(&self, id: ImageId, token_hash: &str) -> Result<bool, RepoError> {
        let found = on_pool!(self, pool => sqlx::query("SELECT 1 FROM images WHERE id = $1 AND delete_token_hash = $2 AND deleted_ms IS NULL")
            .bind(id.to_string())
            .bind(token_hash)
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))?;
        Ok(found)
    }

    /// Images uploaded before `cutoff_ms` and not deleted, oldest first, at most `limit`.
    pub async fn created_before(&self, cutoff_ms: u64, limit: usize) -> Result<Vec<ImageId>, RepoError> {
        let ids: Vec<String> = on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id FROM images WHERE deleted_ms IS NULL AND created_ms < $1 ORDER BY created_ms LIMIT $2")
                .bind(to_i64(cutoff_ms))
                .bind(limit as i64)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?
        });
        ids.iter().map(|id| id.parse().map_err(|_| RepoError::Corrupt(format!("image id {id:?}")))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use crate::{Lease, Location, NewImage, Repository};

    fn image(owner: OwnerId) -> NewImage {
        let id = ImageId::new();
        NewImage {
            id,
            owner,
            name: "cat.jpg".into(),
            format: SourceFormat::Jpeg,
            bytes: 1234,
            // Bytes of its own: an owner's same bytes are one image.
            content_hash: id.to_string().replace('-', "").repeat(2),
            width: 640,
            height: 480,
            created_ms: id.uploaded_at_ms(),
            delete_token_hash: None,
            client: None,
        }
    }

    fn step(name: &str, at: u64) -> Step {
        Step { step: name.into(), at, by: "test@host:1".into() }
    }

    use crate::testing::{postgres, sqlite};

    /// The life of an image, the same on both backends.
    async fn an_image_goes_from_pending_to_done_and_a_delete_leaves_only_its_tombstone(repo: &Repository) {
        let (alice, bob) = (OwnerId::of_secret(b"alice"), OwnerId::of_secret(b"bob"));
        let first = image(alice);
        repo.add_image(&first, &[step("received", 10), step("stored", 10)], None, &Lease::none()).await.unwrap();
        let second = image(alice);
        repo.add_image(&second, &[], None, &Lease::none()).await.unwrap();
        repo.add_image(&image(bob), &[], None, &Lease::none()).await.unwrap();

        let record = repo.image(first.id).await.unwrap().unwrap();
        assert_eq!(
            (record.state(), record.name.as_deref(), record.format, record.bytes),
            (ImageState::Pending, Some("cat.jpg"), Some(SourceFormat::Jpeg), 1234)
        );
        assert!(record.is_owned_by(Some(&alice)) && !record.is_owned_by(Some(&bob)) && !record.is_owned_by(None));
        let (page, total) = repo.images_of(&alice, 0, 1).await.unwrap();
        // Two ids of one millisecond are ordered by their random part: the newest is the greater.
        assert_eq!((page.iter().map(|record| record.id).collect::<Vec<_>>(), total), (vec![first.id.max(second.id)], 2), "newest first, counted whole");

        assert!(repo.thumbnail_written(first.id, ThumbSize::Small, ThumbFormat::Jpeg, Some("AAAA"), &[step("small written", 11)]).await.unwrap());
        assert!(repo.thumbnail_written(first.id, ThumbSize::Medium, ThumbFormat::Png, None, &[]).await.unwrap());
        let record = repo.image(first.id).await.unwrap().unwrap();
        assert_eq!(
            (record.state(), record.thumbnail(ThumbSize::Medium), record.placeholder.as_deref()),
            (ImageState::Pending, Some(ThumbFormat::Png), Some("AAAA"))
        );
        assert!(repo.thumbnail_written(first.id, ThumbSize::Large, ThumbFormat::Jpeg, None, &[]).await.unwrap());
        assert_eq!(repo.image(first.id).await.unwrap().unwrap().pixels, Some((640, 480)), "as the header says");
        assert!(repo.finished(first.id, true, 12, Some((480, 640)), &[step("done", 12)]).await.unwrap());
        let record = repo.image(first.id).await.unwrap().unwrap();
        assert_eq!((record.state(), record.webp, record.done_ms, record.pixels), (ImageState::Done, true, Some(12), Some((480, 640))));
        let steps: Vec<String> = repo.timeline(first.id).await.unwrap().into_iter().map(|step| step.step).collect();
        assert_eq!(steps, ["received", "stored", "small written", "done"]);
        let (record, steps) = repo.image_with_timeline(first.id).await.unwrap().unwrap();
        assert_eq!((record.state(), steps), (ImageState::Done, repo.timeline(first.id).await.unwrap()), "the record and its steps in one query");
        let (_, no_steps) = repo.image_with_timeline(second.id).await.unwrap().unwrap();
        assert!(no_steps.is_empty());
        assert_eq!(repo.image_with_timeline(ImageId::new()).await.unwrap(), None);
        assert_eq!(repo.images_of(&alice, 5, 10).await.unwrap(), (Vec::new(), 2), "a page past the end still counts them all");

        let asked: Vec<ImageId> = repo.images(&[second.id, ImageId::new(), first.id]).await.unwrap().into_iter().map(|record| record.id).collect();
        assert_eq!(asked, [second.id, first.id], "in the order asked, unknown ids left out");

        assert_eq!(repo.mark_deleted(first.id, 20).await.unwrap(), Deletion::Deleted);
        assert_eq!(repo.mark_deleted(first.id, 21).await.unwrap(), Deletion::AlreadyDeleted);
        assert_eq!(repo.mark_deleted(ImageId::new(), 21).await.unwrap(), Deletion::Unknown);
        let record = repo.image(first.id).await.unwrap().unwrap();
        assert_eq!((record.state(), record.owner, record.name.as_deref(), record.thumbnail(ThumbSize::Small)), (ImageState::Deleted, None, None, None));
        assert!(repo.timeline(first.id).await.unwrap().is_empty());
        assert!(
            !repo.thumbnail_written(first.id, ThumbSize::Small, ThumbFormat::Jpeg, None, &[]).await.unwrap(),
            "a worker late for a deleted image is told so"
        );
        assert!(!repo.finished(first.id, true, 30, None, &[]).await.unwrap());
        assert_eq!(repo.images_of(&alice, 0, 10).await.unwrap().1, 1);
    }

    async fn a_failure_is_recorded_listed_and_cleared_for_a_replay(repo: &Repository) {
        let new = image(OwnerId::of_secret(b"carol"));
        repo.add_image(&new, &[], None, &Lease::none()).await.unwrap();
        assert!(repo.thumbnail_written(new.id, ThumbSize::Small, ThumbFormat::Jpeg, Some("AAAA"), &[]).await.unwrap());
        let failure = FailureRecord { reason: "Not an image.".into(), failed_at_ms: 40, retryable: false };
        assert!(repo.failed(new.id, &failure, &[step("failed", 40)]).await.unwrap());
        let record = repo.image(new.id).await.unwrap().unwrap();
        assert_eq!((record.state(), record.failure.as_ref(), record.thumbnail(ThumbSize::Small)), (ImageState::Failed, Some(&failure), None));
        assert_eq!(repo.failures(10).await.unwrap(), vec![(new.id, failure.clone())]);
        assert!(!repo.clear_failure(new.id, 39).await.unwrap(), "a newer failure than the one seen stays");
        assert!(repo.clear_failure(new.id, 40).await.unwrap());
        assert_eq!(repo.image(new.id).await.unwrap().unwrap().state(), ImageState::Pending);
        assert!(repo.failures(10).await.unwrap().is_empty());
        assert_eq!(repo.created_before(new.created_ms + 1, 10).await.unwrap().last(), Some(&new.id), "oldest first");
        assert!(!repo.created_before(new.created_ms, 10).await.unwrap().contains(&new.id));
    }

    /// A commit one of whose statements fails leaves nothing, and the writer takes the next.
    async fn a_failed_commit_leaves_nothing_and_the_next_commits(repo: &Repository) {
        let first = image(OwnerId::of_secret(b"rollback"));
        assert!(repo.add_image(&first, &[], None, &Lease::none()).await.unwrap());
        let other = image(OwnerId::of_secret(b"rollback"));
        // Its id again, with other bytes: the primary key refuses the second insert.
        let clash = NewImage { content_hash: "other bytes".into(), ..first.clone() };
        let steps = [Step { step: "received".into(), at: 1, by: "test".into() }];
        assert!(repo.add_images(&[(&other, &steps[..], None), (&clash, &steps[..], None)], &Lease::none(), &[]).await.is_err());
        assert!(repo.image(other.id).await.unwrap().is_none(), "nothing of the failed commit stays");
        assert!(repo.timeline(other.id).await.unwrap().is_empty());
        assert!(repo.add_image(&other, &steps, None, &Lease::none()).await.unwrap(), "the next commit goes through");
        assert_eq!(repo.timeline(other.id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sqlite_keeps_images_as_the_contract_says() {
        let dir = tempfile::tempdir().unwrap();
        let repo = sqlite(&dir).await;
        an_image_goes_from_pending_to_done_and_a_delete_leaves_only_its_tombstone(&repo).await;
        a_failure_is_recorded_listed_and_cleared_for_a_replay(&repo).await;
        a_failed_commit_leaves_nothing_and_the_next_commits(&repo).await;
        // Opened again, by a second process say: the schema is there and not migrated twice.
        let again = sqlite(&dir).await;
        again.check().await.unwrap();
    }

    #[tokio::test]
    async fn postgresql_keeps_images_as_the_contract_says() {
        let database = TestDatabase::create().await;
        let repo = postgres(&database).await;
        an_image_goes_from_pending_to_done_and_a_delete_leaves_only_its_tombstone(&repo).await;
        a_failure_is_recorded_listed_and_cleared_for_a_replay(&repo).await;
        a_failed_commit_leaves_nothing_and_the_next_commits(&repo).await;
        let again = postgres(&database).await;
        again.check().await.unwrap();
        repo.close().await;
        again.close().await;
    }

    #[tokio::test]
    async fn processes_starting_together_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Sqlite(dir.path().join("thumbq.db"));
        let opened = futures_join(&location).await;
        assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    }

    async fn futures_join(location: &Location) -> Vec<Result<Repository, RepoError>> {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let location = location.clone();
                tokio::spawn(async move { Repository::open_now(&location).await })
            })
            .collect();
        let mut opened = Vec::new();
        for task in tasks {
            opened.push(task.await.unwrap());
        }
        opened
    }
}
