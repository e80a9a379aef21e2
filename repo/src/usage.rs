//! What one owner, and one address, uploaded lately: the counts the daily quotas are checked against.

use sqlx::Row;
use thumbq_contract::OwnerId;

use crate::columns::{to_i64, to_u64};
use crate::connect::{on_pool, on_writer};
use crate::{RepoError, Repository};

/// Bytes of the images recorded since a moment, and when the first of them was.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    pub bytes: u64,
    /// When the earliest image counted was uploaded: the count falls once it is out of the window.
    pub earliest_ms: Option<u64>,
}

impl Repository {
    /// What `owner` has, of the images uploaded since `since_ms` (not deleted).
    pub async fn uploaded_by(&self, owner: &OwnerId, since_ms: u64) -> Result<Uploaded, RepoError> {
        self.uploaded_where("owner", &owner.to_string(), since_ms).await
    }

    /// What was sent from `client`, of the images uploaded since `since_ms` (deleted or not).
    pub async fn uploaded_from(&self, client: &str, since_ms: u64) -> Result<Uploaded, RepoError> {
        self.uploaded_where("client", client, since_ms).await
    }

    /// `column` is one of ours, never anything a client sent.
    async fn uploaded_where(&self, column: &'static str, value: &str, since_ms: u64) -> Result<Uploaded, RepoError> {
        // PostgreSQL's SUM of a BIGINT is a NUMERIC: cast back.
        let sql = format!("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT), MIN(created_ms) FROM images WHERE {column} = $1 AND created_ms >= $2");
        let (bytes, earliest): (i64, Option<i64>) = on_pool!(self, pool => {
            let row = sqlx::query(&sql).bind(value).bind(to_i64(since_ms)).fetch_one(pool).await?;
            (row.try_get(0)?, row.try_get(1)?)
        });
        Ok(Uploaded { bytes: to_u64(bytes), earliest_ms: earliest.map(to_u64) })
    }

    /// Forgets the address of every image uploaded before `before_ms`; returns how many.
    pub async fn forget_clients_before(&self, before_ms: u64) -> Result<u64, RepoError> {
        let forgotten = on_writer!(self, pool => sqlx::query("UPDATE images SET client = NULL WHERE client IS NOT NULL AND created_ms < $1")
            .bind(to_i64(before_ms))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use thumbq_contract::{ImageId, SourceFormat};

    use super::*;
    use crate::Lease;
    use crate::testing::{TestDatabase, uploaded};

    async fn an_owner_and_an_address_are_counted_apart_over_the_window(repo: &Repository) {
        let (alice, bob) = (OwnerId::of_secret(b"alice"), OwnerId::of_secret(b"bob"));
        let image = |owner: OwnerId, client: &str, bytes: u64, created_ms: u64| {
            let mut image = uploaded(ImageId::new(), SourceFormat::Jpeg, 10, 10);
            (image.owner, image.client, image.bytes, image.created_ms) = (owner, Some(client.to_owned()), bytes, created_ms);
            image.content_hash = image.id.to_string();
            image
        };
        let old = image(alice, "192.0.2.1", 1_000, 500);
        let recent = image(alice, "192.0.2.1", 20, 1_500);
        let from_bob = image(bob, "192.0.2.1", 300, 2_000);
        let elsewhere = image(alice, "2001:db8::1", 4_000, 2_500);
        for image in [&old, &recent, &from_bob, &elsewhere] {
            repo.add_image(image, &[], None, &Lease::none()).await.unwrap();
        }
        assert_eq!(
            repo.uploaded_by(&alice, 1_000).await.unwrap(),
            Uploaded { bytes: 4_020, earliest_ms: Some(1_500) },
            "alice's, from any address, not before the window"
        );
        assert_eq!(repo.uploaded_from("192.0.2.1", 1_000).await.unwrap(), Uploaded { bytes: 320, earliest_ms: Some(1_500) }, "the address's, whoever's");
        assert_eq!(repo.uploaded_from("198.51.100.1", 0).await.unwrap(), Uploaded::default(), "an address that sent nothing");

        repo.mark_deleted(from_bob.id, 3_000).await.unwrap();
        assert_eq!(repo.uploaded_by(&bob, 0).await.unwrap().bytes, 0, "a deleted image is no longer its owner's");
        assert_eq!(repo.uploaded_from("192.0.2.1", 0).await.unwrap().bytes, 1_320, "but its address sent it all the same");

        assert_eq!(repo.forget_clients_before(2_000).await.unwrap(), 2);
        assert_eq!(repo.uploaded_from("192.0.2.1", 0).await.unwrap().bytes, 300, "older addresses are forgotten");
    }

    #[tokio::test]
    async fn sqlite_counts_uploads_by_owner_and_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::testing::sqlite(&dir).await;
        an_owner_and_an_address_are_counted_apart_over_the_window(&repo).await;
    }

    #[tokio::test]
    async fn postgresql_counts_uploads_by_owner_and_by_address() {
        let database = TestDatabase::create().await;
        let repo = crate::testing::postgres(&database).await;
        an_owner_and_an_address_are_counted_apart_over_the_window(&repo).await;
        repo.close().await;
    }
}
