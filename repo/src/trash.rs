//! The trash: an owner's delete, undone within `--undo-delete-secs`.
//!
//! Trashing only sets `trashed_ms`. Every reader of a record sees the image as
//! deleted from then on ([`ImageRecord::state`]), but its files, its job and
//! its facts stay, so a worker goes on as if nothing happened and a restore
//! gives back the whole image. Once the time is up the reconciler deletes it
//! for good with [`Repository::delete_trashed`], which only takes an image
//! still trashed since before the cutoff: a restore and the final delete
//! cannot both win.
//!
//! [`ImageRecord::state`]: crate::ImageRecord::state

use sqlx::Row;
use thumbq_contract::ImageId;

use crate::columns::{parse_id, to_i64};
use crate::connect::{on_pool, on_writer};
use crate::{Deletion, RepoError, Repository};

/// What a restore found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restoration {
    /// It was in the trash and is back.
    Restored,
    /// It was not in the trash: nothing to undo.
    NotTrashed,
    /// Deleted for good, or trashed before the cutoff: too late.
    TooLate,
    /// There is no such image.
    Unknown,
}

impl Repository {
    /// Puts `id` in the trash at `at_ms`; [`Deletion::AlreadyDeleted`] when it
    /// is there already or deleted for good.
    pub async fn trash(&self, id: ImageId, at_ms: u64) -> Result<Deletion, RepoError> {
        let id = id.to_string();
        let trashed = on_writer!(self, pool => sqlx::query("UPDATE images SET trashed_ms = $2 WHERE id = $1 AND deleted_ms IS NULL AND trashed_ms IS NULL")
            .bind(&id)
            .bind(to_i64(at_ms))
            .execute(pool)
            .await?
            .rows_affected());
        if trashed == 1 {
            return Ok(Deletion::Deleted);
        }
        let exists = on_pool!(self, pool => sqlx::query("SELECT 1 FROM images WHERE id = $1").bind(&id).fetch_optional(pool).await?.is_some());
        Ok(if exists { Deletion::AlreadyDeleted } else { Deletion::Unknown })
    }

    /// Takes `id` out of the trash, if it went there at `not_before_ms` or later.
    pub async fn restore(&self, id: ImageId, not_before_ms: u64) -> Result<Restoration, RepoError> {
        let id = id.to_string();
        let restored = on_writer!(self, pool => sqlx::query("UPDATE images SET trashed_ms = NULL WHERE id = $1 AND deleted_ms IS NULL AND trashed_ms >= $2")
            .bind(&id)
            .bind(to_i64(not_before_ms))
            .execute(pool)
            .await?
            .rows_affected());
        if restored == 1 {
            return Ok(Restoration::Restored);
        }
        let found: Option<(Option<i64>, Option<i64>)> = on_pool!(self, pool => {
            let row = sqlx::query("SELECT trashed_ms, deleted_ms FROM images WHERE id = $1").bind(&id).fetch_optional(pool).await?;
            row.map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?))).transpose()?
        });
        Ok(match found {
            Some((None, None)) => Restoration::NotTrashed,
            Some(_) => Restoration::TooLate,
            None => Restoration::Unknown,
        })
    }

    /// Images in the trash since before `cutoff_ms`, oldest first, at most `limit`.
    pub async fn trashed_before(&self, cutoff_ms: u64, limit: usize) -> Result<Vec<ImageId>, RepoError> {
        let ids: Vec<String> = on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id FROM images WHERE trashed_ms < $1 AND deleted_ms IS NULL ORDER BY trashed_ms LIMIT $2")
                .bind(to_i64(cutoff_ms))
                .bind(limit as i64)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?
        });
        ids.iter().map(|id| parse_id(id)).collect()
    }

    /// Deletes `id` for good at `at_ms` if it is still in the trash since
    /// before `cutoff_ms`; [`Deletion::AlreadyDeleted`] when it is not (restored meanwhile, say).
    pub async fn delete_trashed(&self, id: ImageId, cutoff_ms: u64, at_ms: u64) -> Result<Deletion, RepoError> {
        self.mark_deleted_where(id, at_ms, " AND trashed_ms < $3", Some(to_i64(cutoff_ms))).await
    }
}

#[cfg(test)]
mod tests {
    use thumbq_contract::{SourceFormat, ThumbFormat, ThumbSize};

    use super::*;
    use crate::testing::{TestDatabase, postgres, sqlite, uploaded};
    use crate::{ImageState, Lease};

    async fn a_trashed_image_is_deleted_to_readers_until_restored_and_deleted_for_good_after(repo: &Repository) {
        let kept = uploaded(ImageId::new(), SourceFormat::Jpeg, 640, 480);
        let thrown = uploaded(ImageId::new(), SourceFormat::Jpeg, 640, 480);
        let owner = kept.owner;
        for new in [&kept, &thrown] {
            repo.add_image(new, &[], None, &Lease::none()).await.unwrap();
        }
        assert_eq!(repo.trash(thrown.id, 1_000).await.unwrap(), Deletion::Deleted);
        assert_eq!(repo.trash(thrown.id, 1_001).await.unwrap(), Deletion::AlreadyDeleted);
        assert_eq!(repo.trash(ImageId::new(), 1_001).await.unwrap(), Deletion::Unknown);
        let record = repo.image(thrown.id).await.unwrap().unwrap();
        assert_eq!((record.state(), record.is_deleted_for_good(), record.name.as_deref()), (ImageState::Deleted, false, Some(thrown.name.as_str())));
        assert_eq!(repo.images_of(&owner, 0, 10).await.unwrap().1, 1, "the owner's list leaves it out");
        assert_eq!(repo.same_bytes(&owner, &thrown.content_hash).await.unwrap(), None, "the same photo again is a new upload");
        assert!(
            repo.thumbnail_written(thrown.id, ThumbSize::Small, ThumbFormat::Jpeg, None, &[]).await.unwrap(),
            "a worker goes on: Undo gives the image back whole"
        );

        assert_eq!(repo.restore(thrown.id, 1_001).await.unwrap(), Restoration::TooLate, "trashed before the cutoff");
        assert_eq!(repo.restore(thrown.id, 1_000).await.unwrap(), Restoration::Restored);
        assert_eq!(repo.restore(thrown.id, 1_000).await.unwrap(), Restoration::NotTrashed);
        assert_eq!(repo.restore(ImageId::new(), 0).await.unwrap(), Restoration::Unknown);
        let record = repo.image(thrown.id).await.unwrap().unwrap();
        assert_eq!((record.state(), record.thumbnail(ThumbSize::Small)), (ImageState::Pending, Some(ThumbFormat::Jpeg)));
        assert_eq!(repo.images_of(&owner, 0, 10).await.unwrap().1, 2);

        repo.trash(thrown.id, 2_000).await.unwrap();
        assert!(repo.trashed_before(2_000, 10).await.unwrap().is_empty());
        assert_eq!(repo.trashed_before(2_001, 10).await.unwrap(), [thrown.id]);
        assert_eq!(repo.delete_trashed(kept.id, 2_001, 3_000).await.unwrap(), Deletion::AlreadyDeleted, "never an image not in the trash");
        assert_eq!(repo.delete_trashed(thrown.id, 2_000, 3_000).await.unwrap(), Deletion::AlreadyDeleted, "nor one trashed since the cutoff");
        assert_eq!(repo.delete_trashed(thrown.id, 2_001, 3_000).await.unwrap(), Deletion::Deleted);
        let record = repo.image(thrown.id).await.unwrap().unwrap();
        assert_eq!((record.is_deleted_for_good(), record.owner, record.trashed_ms), (true, None, None));
        assert_eq!(repo.restore(thrown.id, 0).await.unwrap(), Restoration::TooLate);
        assert_eq!(repo.trash(thrown.id, 4_000).await.unwrap(), Deletion::AlreadyDeleted);
        assert_eq!(repo.image(kept.id).await.unwrap().unwrap().state(), ImageState::Pending);
    }

    #[tokio::test]
    async fn sqlite_trash() {
        let dir = tempfile::tempdir().unwrap();
        a_trashed_image_is_deleted_to_readers_until_restored_and_deleted_for_good_after(&sqlite(&dir).await).await;
    }

    #[tokio::test]
    async fn postgres_trash() {
        let database = TestDatabase::create().await;
        let repo = postgres(&database).await;
        a_trashed_image_is_deleted_to_readers_until_restored_and_deleted_for_good_after(&repo).await;
        repo.close().await;
    }
}
