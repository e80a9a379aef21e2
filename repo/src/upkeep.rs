//! What the reconciler asks of the repository: a lease that one process at a
//! time holds, the pending images no job is on its way for, and the deletes
//! whose files are still in the store.

use std::collections::HashSet;

use sqlx::Row;
use thumbq_contract::ImageId;

use crate::columns::{Lease, parse_id, to_i64};
use crate::connect::{on_pool, on_writer};
use crate::{RepoError, Repository};

impl Repository {
    /// Takes the lease `name` for `lease`'s holder, or renews it, unless another
    /// process holds it past `now_ms`; `true` when the holder has it now.
    pub async fn take_lease(&self, name: &str, lease: &Lease, now_ms: u64) -> Result<bool, RepoError> {
        let taken = on_writer!(self, pool => sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.until_ms < $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(&lease.holder)
        .bind(to_i64(lease.until_ms))
        .bind(to_i64(now_ms))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(taken == 1)
    }

    /// Whether the images an earlier release kept as files were all given their
    /// records (see `thumbq-web migrate`): until then, an original with no
    /// record may be one of them, not an upload cut short.
    pub async fn migrated(&self) -> Result<bool, RepoError> {
        let found = on_pool!(self, pool => sqlx::query("SELECT 1 FROM leases WHERE name = 'earlier release migrated'")
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))?;
        Ok(found)
    }

    /// Records that every original of an earlier release has its record.
    pub async fn mark_migrated(&self, at_ms: u64) -> Result<(), RepoError> {
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ('earlier release migrated', 'thumbq-web migrate', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(to_i64(at_ms))
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Pending images uploaded before `quiet_since_ms` with no job in the
    /// outbox and no step since then: no one has touched them for that long.
    /// Oldest first, at most `limit`.
    pub async fn stalled(&self, quiet_since_ms: u64, limit: usize) -> Result<Vec<ImageId>, RepoError> {
        let ids: Vec<String> = on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id FROM images WHERE done_ms IS NULL AND failure IS NULL AND deleted_ms IS NULL \
                 AND (small IS NULL OR medium IS NULL OR large IS NULL) AND created_ms < $1 \
                 AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.image_id = images.id) \
                 AND NOT EXISTS (SELECT 1 FROM steps WHERE steps.image_id = images.id AND steps.at_ms >= $1) \
                 ORDER BY created_ms LIMIT $2",
            )
            .bind(to_i64(quiet_since_ms))
            .bind(limit as i64)
            .fetch_all(pool)
            .await?;
            rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?
        });
        parse_ids(&ids)
    }

    /// Deleted images whose files may still be in the store, oldest delete first, at most `limit`.
    pub async fn unpurged(&self, limit: usize) -> Result<Vec<ImageId>, RepoError> {
        let ids: Vec<String> = on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id FROM images WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL ORDER BY deleted_ms LIMIT $1")
                .bind(limit as i64)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?
        });
        parse_ids(&ids)
    }

    /// Records that every file of the deleted image `id` is gone from the store.
    pub async fn purged(&self, id: ImageId, at_ms: u64) -> Result<(), RepoError> {
        on_writer!(self, pool => sqlx::query("UPDATE images SET purged_ms = $2 WHERE id = $1 AND deleted_ms IS NOT NULL")
            .bind(id.to_string())
            .bind(to_i64(at_ms))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Which of `ids` have a record, deleted or not.
    pub async fn known(&self, ids: &[ImageId]) -> Result<HashSet<ImageId>, RepoError> {
        let mut known = HashSet::new();
        for chunk in ids.chunks(500) {
            known.extend(self.images(chunk).await?.into_iter().map(|record| record.id));
        }
        Ok(known)
    }

    /// Images not deleted whose id comes after `after`, in id order, at most
    /// `limit`, each with whether it is still pending.
    pub async fn live_after(&self, after: Option<ImageId>, limit: usize) -> Result<Vec<(ImageId, bool)>, RepoError> {
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let rows: Vec<(String, bool)> = on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, (done_ms IS NULL AND failure IS NULL AND (small IS NULL OR medium IS NULL OR large IS NULL)) AS pending \
                 FROM images WHERE deleted_ms IS NULL AND id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?;
            rows.iter().map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?))).collect::<Result<_, _>>()?
        });
        rows.into_iter().map(|(id, pending)| Ok((parse_id(&id)?, pending))).collect()
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<ImageId>, RepoError> {
    ids.iter().map(|id| parse_id(id)).collect()
}
