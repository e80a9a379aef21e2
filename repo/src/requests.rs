//! Requests said twice: an upload retried under the same `Idempotency-Key`,
//! and the same photo uploaded again by the same owner.

use sqlx::Row;
use thumbq_contract::{ImageId, OwnerId};

use crate::columns::{parse_id, to_i64};
use crate::connect::{on_pool, on_writer};
use crate::{RepoError, Repository};

/// Where a request with an `Idempotency-Key` stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The first with this key (or one whose first died): it goes ahead.
    First,
    /// Another request with this key is being answered now.
    Running,
    /// The first was answered: this is its answer.
    Answered(String),
    /// The key came with a different request before.
    Reused,
}

/// The owner's image of these bytes. `+` keeps the order from choosing the
/// index: one that served it (by owner and id, or by owner and age) would have
/// SQLite, which keeps no statistics, walk all the owner's images instead of
/// the few of these bytes.
const SAME_BYTES: &str = "SELECT id FROM images WHERE owner = $1 AND content_hash = $2 AND deleted_ms IS NULL AND trashed_ms IS NULL AND failure IS NULL \
     ORDER BY +created_ms, id LIMIT 1";

impl Repository {
    /// Records that `owner` sent a request with `key` at `now_ms`, looking
    /// like `fingerprint` (when it can be told). A request with the key that
    /// started before `abandoned_before_ms` and never got its answer (its
    /// process died) is taken over.
    pub async fn attempt(&self, owner: &OwnerId, key: &str, fingerprint: Option<&str>, now_ms: u64, abandoned_before_ms: u64) -> Result<Attempt, RepoError> {
        let owner = owner.to_string();
        let attempt = on_writer!(self, pool => {
            let inserted = sqlx::query(
                "INSERT INTO idempotency (owner, request_key, created_ms, fingerprint) VALUES ($1, $2, $3, $4) ON CONFLICT (owner, request_key) DO NOTHING",
            )
            .bind(&owner)
            .bind(key)
            .bind(to_i64(now_ms))
            .bind(fingerprint)
            .execute(pool)
            .await?
            .rows_affected()
                == 1;
            let first: Option<Option<String>> = if inserted {
                None
            } else {
                let row = sqlx::query("SELECT fingerprint FROM idempotency WHERE owner = $1 AND request_key = $2").bind(&owner).bind(key).fetch_optional(pool).await?;
                row.map(|row| row.try_get(0)).transpose()?
            };
            if inserted {
                Attempt::First
            } else if matches!((&first, fingerprint), (Some(Some(seen)), Some(now)) if seen != now) {
                Attempt::Reused
            } else {
                let taken_over = sqlx::query(
                    "UPDATE idempotency SET created_ms = $3 WHERE owner = $1 AND request_key = $2 AND answer IS NULL AND created_ms < $4",
                )
                .bind(&owner)
                .bind(key)
                .bind(to_i64(now_ms))
                .bind(to_i64(abandoned_before_ms))
                .execute(pool)
                .await?
                .rows_affected()
                    == 1;
                if taken_over {
                    Attempt::First
                } else {
                    let row = sqlx::query("SELECT answer FROM idempotency WHERE owner = $1 AND request_key = $2").bind(&owner).bind(key).fetch_optional(pool).await?;
                    match row.map(|row| row.try_get::<Option<String>, _>(0)).transpose()?.flatten() {
                        Some(answer) => Attempt::Answered(answer),
                        None => Attempt::Running,
                    }
                }
            }
        });
        Ok(attempt)
    }

    /// Keeps the answer to the request `owner` sent with `key`, for its retries.
    pub async fn answered(&self, owner: &OwnerId, key: &str, answer: &str) -> Result<(), RepoError> {
        on_writer!(self, pool => sqlx::query("UPDATE idempotency SET answer = $3 WHERE owner = $1 AND request_key = $2")
            .bind(owner.to_string())
            .bind(key)
            .bind(answer)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Forgets the request `owner` sent with `key`: it kept nothing, and a retry may go ahead.
    pub async fn forget_attempt(&self, owner: &OwnerId, key: &str) -> Result<(), RepoError> {
        on_writer!(self, pool => sqlx::query("DELETE FROM idempotency WHERE owner = $1 AND request_key = $2 AND answer IS NULL")
            .bind(owner.to_string())
            .bind(key)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Forgets the keys of requests made before `before_ms`; returns how many.
    pub async fn forget_attempts_before(&self, before_ms: u64) -> Result<u64, RepoError> {
        let forgotten =
            on_writer!(self, pool => sqlx::query("DELETE FROM idempotency WHERE created_ms < $1").bind(to_i64(before_ms)).execute(pool).await?.rows_affected());
        Ok(forgotten)
    }

    /// An image of `owner` with the bytes whose hash is `content_hash`,
    /// pending or done (a failed one is not given back: uploading again is how
    /// a person retries, and one in the trash is deleted to them), if there is one.
    pub async fn same_bytes(&self, owner: &OwnerId, content_hash: &str) -> Result<Option<ImageId>, RepoError> {
        let id: Option<String> = on_pool!(self, pool => {
            let row = sqlx::query(SAME_BYTES)
                .bind(owner.to_string())
                .bind(content_hash)
                .fetch_optional(pool)
                .await?;
            row.map(|row| row.try_get(0)).transpose()?
        });
        id.as_deref().map(parse_id).transpose()
    }
}

#[cfg(test)]
mod tests {
    use thumbq_contract::SourceFormat;

    use super::*;
    use crate::Lease;
    use crate::testing::{TestDatabase, uploaded};

    async fn retries_get_the_first_answer_and_the_same_bytes_are_found(repo: &Repository) {
        let (alice, bob) = (OwnerId::of_secret(b"alice"), OwnerId::of_secret(b"bob"));
        assert_eq!(repo.attempt(&alice, "k1", Some("100"), 100, 0).await.unwrap(), Attempt::First);
        assert_eq!(repo.attempt(&alice, "k1", Some("100"), 101, 0).await.unwrap(), Attempt::Running);
        assert_eq!(repo.attempt(&bob, "k1", None, 101, 0).await.unwrap(), Attempt::First, "keys are each owner's own");
        repo.answered(&alice, "k1", r#"{"images":[]}"#).await.unwrap();
        assert_eq!(repo.attempt(&alice, "k1", Some("100"), 102, 0).await.unwrap(), Attempt::Answered(r#"{"images":[]}"#.into()));
        assert_eq!(repo.attempt(&alice, "k1", Some("999"), 103, 0).await.unwrap(), Attempt::Reused, "the key with another request");
        // Bob's first try died unanswered: after a while a retry takes it over.
        assert_eq!(repo.attempt(&bob, "k1", None, 200, 150).await.unwrap(), Attempt::First);
        repo.forget_attempt(&bob, "k1").await.unwrap();
        assert_eq!(repo.attempt(&bob, "k1", None, 201, 0).await.unwrap(), Attempt::First, "a request that kept nothing may be sent again");
        assert_eq!(repo.forget_attempts_before(201).await.unwrap(), 1);

        let id = ImageId::new();
        let mut image = uploaded(id, SourceFormat::Jpeg, 10, 10);
        (image.owner, image.content_hash) = (alice, "cd".repeat(32));
        repo.add_image(&image, &[], None, &Lease::none()).await.unwrap();
        assert_eq!(repo.same_bytes(&alice, &"cd".repeat(32)).await.unwrap(), Some(id));
        assert_eq!(repo.same_bytes(&bob, &"cd".repeat(32)).await.unwrap(), None, "never across owners");
        repo.mark_deleted(id, 300).await.unwrap();
        assert_eq!(repo.same_bytes(&alice, &"cd".repeat(32)).await.unwrap(), None, "a deleted image is no duplicate");
    }

    /// Uploads of one owner's same bytes, in requests at once (several web
    /// servers, or one group commit): one image, whoever checked first.
    async fn the_same_bytes_sent_at_once_become_one_image(repo: &Repository) {
        let (owner, hash) = (OwnerId::of_secret(b"at once"), "ab".repeat(32));
        let same = |owner: OwnerId| {
            let mut image = uploaded(ImageId::new(), SourceFormat::Jpeg, 10, 10);
            (image.owner, image.content_hash) = (owner, hash.clone());
            image
        };
        let tries: Vec<_> = (0..8)
            .map(|_| {
                let (repo, image) = (repo.clone(), same(owner));
                tokio::spawn(async move { repo.add_image(&image, &[], None, &Lease::none()).await.unwrap() })
            })
            .collect();
        let mut recorded = 0;
        for try_ in tries {
            recorded += usize::from(try_.await.unwrap());
        }
        assert_eq!(recorded, 1, "eight requests at once with the same bytes leave one image");
        let (first, second) = (same(owner), same(owner));
        assert_eq!(
            repo.add_images(&[(&first, &[], None), (&second, &[], None)], &Lease::none(), &[]).await.unwrap(),
            [first.id, second.id],
            "both are the earlier image's"
        );
        let (third, fourth) = {
            let (mut third, mut fourth) = (same(owner), same(owner));
            (third.content_hash, fourth.content_hash) = ("ef".repeat(32), "ef".repeat(32));
            (third, fourth)
        };
        assert_eq!(
            repo.add_images(&[(&third, &[], None), (&fourth, &[], None)], &Lease::none(), &[]).await.unwrap(),
            [fourth.id],
            "in one commit, the first is recorded"
        );
        assert!(repo.add_image(&same(OwnerId::of_secret(b"someone else")), &[], None, &Lease::none()).await.unwrap(), "never across owners");
        assert_eq!(repo.outbox_len().await.unwrap(), 3, "a job for each image recorded, none for the others");
    }

    #[tokio::test]
    async fn sqlite_looks_up_the_same_bytes_by_their_index_not_through_all_the_owners_images() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::testing::sqlite(&dir).await;
        let plan: Vec<String> = on_pool!(repo, pool => {
            sqlx::query(&format!("EXPLAIN QUERY PLAN {SAME_BYTES}")).fetch_all(pool).await.unwrap().iter().map(|row| row.get::<String, _>(3)).collect()
        });
        assert!(plan.iter().any(|step| step.contains("USING INDEX images_by_content")), "{plan:?}");
    }

    #[tokio::test]
    async fn sqlite_answers_retries_and_finds_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::testing::sqlite(&dir).await;
        retries_get_the_first_answer_and_the_same_bytes_are_found(&repo).await;
        the_same_bytes_sent_at_once_become_one_image(&repo).await;
    }

    #[tokio::test]
    async fn postgresql_answers_retries_and_finds_duplicates() {
        let database = TestDatabase::create().await;
        let repo = crate::testing::postgres(&database).await;
        retries_get_the_first_answer_and_the_same_bytes_are_found(&repo).await;
        the_same_bytes_sent_at_once_become_one_image(&repo).await;
        repo.close().await;
    }
}
