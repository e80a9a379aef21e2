//! Resumable uploads being received: each one's length, how far it has come,
//! and the parts its bytes are stored in. Any web server can take one up again.
//!
//! A part is recorded only if it starts where the upload stands: two requests
//! racing for the same offset cannot both count, and the loser removes its part.

use sqlx::Row;
use thumbq_contract::{OwnerId, UploadId};

use crate::columns::{to_i64, to_u64};
use crate::connect::{on_pool, on_writer};
use crate::{RepoError, Repository};

/// A resumable upload as it is created.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: UploadId,
    pub owner: OwnerId,
    pub client: Option<String>,
    /// The file's name, for people.
    pub name: String,
    pub length: u64,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// The creation's `Idempotency-Key`, if it had one.
    pub request_key: Option<String>,
}

/// A resumable upload as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: UploadId,
    pub owner: OwnerId,
    pub client: Option<String>,
    pub name: String,
    pub length: u64,
    /// Bytes stored so far.
    pub received: u64,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// The answer that accepted its image, once it was.
    pub answer: Option<String>,
    /// Its parts in order: each starts where the one before ends.
    pub parts: Vec<UploadPart>,
}

/// Bytes of an upload that one request brought, stored as one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPart {
    pub start: u64,
    pub bytes: u64,
    /// The number that names its file.
    pub part: u64,
}

impl Repository {
    /// Records a new resumable upload with no bytes yet; returns its id, or
    /// the id of the upload its owner created with the same `request_key`.
    pub async fn create_upload(&self, upload: &NewUpload) -> Result<UploadId, RepoError> {
        let created = on_writer!(self, pool => sqlx::query(
            "INSERT INTO resumable_uploads (id, owner, client, name, length, received, created_ms, expires_ms, request_key) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8) \
             ON CONFLICT (owner, request_key) WHERE request_key IS NOT NULL DO NOTHING",
        )
        .bind(upload.id.to_string())
        .bind(upload.owner.to_string())
        .bind(upload.client.as_deref())
        .bind(&upload.name)
        .bind(to_i64(upload.length))
        .bind(to_i64(upload.created_ms))
        .bind(to_i64(upload.expires_ms))
        .bind(upload.request_key.as_deref())
        .execute(pool)
        .await?
        .rows_affected()
            == 1);
        if created {
            return Ok(upload.id);
        }
        let key = upload.request_key.as_deref().unwrap_or_default();
        self.upload_by_request_key(&upload.owner, key).await?.ok_or_else(|| RepoError::Corrupt(format!("the upload with request key {key:?} vanished")))
    }

    /// The upload `owner` created with the `Idempotency-Key` `key`, if any.
    pub async fn upload_by_request_key(&self, owner: &OwnerId, key: &str) -> Result<Option<UploadId>, RepoError> {
        let id: Option<String> = on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM resumable_uploads WHERE owner = $1 AND request_key = $2")
            .bind(owner.to_string())
            .bind(key)
            .fetch_optional(pool)
            .await?);
        id.map(|id| id.parse().map_err(|_| RepoError::Corrupt(format!("upload id {id:?}")))).transpose()
    }

    /// How many uploads `owner` has begun and not finished that have not expired at `now_ms`.
    pub async fn open_uploads(&self, owner: &OwnerId, now_ms: u64) -> Result<u64, RepoError> {
        self.open_uploads_where("owner", &owner.to_string(), now_ms).await
    }

    /// How many uploads were begun from `client`, whoever's, and not finished, that have not expired at `now_ms`.
    pub async fn open_uploads_from(&self, client: &str, now_ms: u64) -> Result<u64, RepoError> {
        self.open_uploads_where("client", client, now_ms).await
    }

    /// `column` is one of ours, never anything a client sent.
    async fn open_uploads_where(&self, column: &'static str, value: &str, now_ms: u64) -> Result<u64, RepoError> {
        let sql = format!("SELECT COUNT(*) FROM resumable_uploads WHERE {column} = $1 AND answer IS NULL AND expires_ms > $2");
        let count: i64 = on_pool!(self, pool => sqlx::query(&sql).bind(value).bind(to_i64(now_ms)).fetch_one(pool).await?.try_get(0)?);
        Ok(to_u64(count))
    }

    /// The upload `id` with its parts, if it is known.
    pub async fn upload(&self, id: UploadId) -> Result<Option<UploadRecord>, RepoError> {
        let key = id.to_string();
        type Columns = (String, Option<String>, String, i64, i64, i64, i64, Option<String>);
        type Parts = Vec<(i64, i64, i64)>;
        let found: Option<(Columns, Parts)> = on_pool!(self, pool => {
            let row: Option<Columns> = sqlx::query_as("SELECT owner, client, name, length, received, created_ms, expires_ms, answer FROM resumable_uploads WHERE id = $1")
                .bind(&key)
                .fetch_optional(pool)
                .await?;
            match row {
                None => None,
                Some(row) => {
                    let parts = sqlx::query_as("SELECT start, bytes, part FROM resumable_parts WHERE upload = $1 ORDER BY start").bind(&key).fetch_all(pool).await?;
                    Some((row, parts))
                }
            }
        });
        let Some(((owner, client, name, length, received, created_ms, expires_ms, answer), parts)) = found else { return Ok(None) };
        Ok(Some(UploadRecord {
            id,
            owner: owner.parse().map_err(|_| RepoError::Corrupt(format!("owner {owner:?} of upload {id}")))?,
            client,
            name,
            length: to_u64(length),
            received: to_u64(received),
            created_ms: to_u64(created_ms),
            expires_ms: to_u64(expires_ms),
            answer,
            // Read apart from the row: a part recorded in between is not yet counted, so not yet the upload's.
            parts: parts
                .into_iter()
                .map(|(start, bytes, part)| UploadPart { start: to_u64(start), bytes: to_u64(bytes), part: part as u64 })
                .filter(|part| part.start + part.bytes <= to_u64(received))
                .collect(),
        }))
    }

    /// Records `part` as the upload's next bytes, if the upload still stands
    /// at its start and is not finished; `false` when it does not (another
    /// request's part came first), and the part is not the upload's.
    pub async fn add_part(&self, id: UploadId, part: UploadPart) -> Result<bool, RepoError> {
        let key = id.to_string();
        let added = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query("UPDATE resumable_uploads SET received = received + $3 WHERE id = $1 AND received = $2 AND answer IS NULL AND received + $3 <= length")
                .bind(&key)
                .bind(to_i64(part.start))
                .bind(to_i64(part.bytes))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if moved {
                sqlx::query("INSERT INTO resumable_parts (upload, start, bytes, part) VALUES ($1, $2, $3, $4)")
                    .bind(&key)
                    .bind(to_i64(part.start))
                    .bind(to_i64(part.bytes))
                    .bind(part.part as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            moved
        });
        Ok(added)
    }

    /// Records that the upload is whole and was answered with `answer`;
    /// `false` when another request finished it first.
    pub async fn finish_upload(&self, id: UploadId, answer: &str) -> Result<bool, RepoError> {
        let finished = on_writer!(self, pool => sqlx::query("UPDATE resumable_uploads SET received = length, answer = $2 WHERE id = $1 AND answer IS NULL")
            .bind(id.to_string())
            .bind(answer)
            .execute(pool)
            .await?
            .rows_affected()
            == 1);
        if finished {
            // Its parts are in the original now.
            on_writer!(self, pool => sqlx::query("DELETE FROM resumable_parts WHERE upload = $1").bind(id.to_string()).execute(pool).await.map(|_| ()))?;
        }
        Ok(finished)
    }

    /// Forgets the upload `id` and its parts (whose files are removed first).
    pub async fn forget_upload(&self, id: UploadId) -> Result<(), RepoError> {
        let key = id.to_string();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM resumable_parts WHERE upload = $1").bind(&key).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM resumable_uploads WHERE id = $1").bind(&key).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Up to `limit` uploads, finished or not, that expired before `now_ms`.
    pub async fn expired_uploads(&self, now_ms: u64, limit: usize) -> Result<Vec<UploadId>, RepoError> {
        let ids: Vec<String> = on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM resumable_uploads WHERE expires_ms <= $1 ORDER BY expires_ms LIMIT $2")
            .bind(to_i64(now_ms))
            .bind(to_i64(limit as u64))
            .fetch_all(pool)
            .await?);
        ids.iter().map(|id| id.parse().map_err(|_| RepoError::Corrupt(format!("upload id {id:?}")))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    fn new_upload(owner: OwnerId, length: u64, expires_ms: u64) -> NewUpload {
        NewUpload {
            id: UploadId::new(),
            owner,
            client: Some("192.0.2.1".into()),
            name: "photo.jpg".into(),
            length,
            created_ms: 1_000,
            expires_ms,
            request_key: None,
        }
    }

    async fn an_upload_advances_only_from_where_it_stands(repo: &Repository) {
        let alice = OwnerId::of_secret(b"alice");
        let upload = NewUpload { request_key: Some("key-1".into()), ..new_upload(alice, 100, 10_000) };
        assert_eq!(repo.create_upload(&upload).await.unwrap(), upload.id);
        let retried = NewUpload { request_key: Some("key-1".into()), ..new_upload(alice, 100, 10_000) };
        assert_eq!(repo.create_upload(&retried).await.unwrap(), upload.id, "a retried creation gets the first upload");
        let bobs = NewUpload { request_key: Some("key-1".into()), ..new_upload(OwnerId::of_secret(b"bob"), 100, 10_000) };
        assert_eq!(repo.create_upload(&bobs).await.unwrap(), bobs.id, "keys are each owner's own");
        repo.forget_upload(bobs.id).await.unwrap();
        assert_eq!(repo.open_uploads(&alice, 5_000).await.unwrap(), 1);
        assert_eq!(repo.open_uploads_from("192.0.2.1", 5_000).await.unwrap(), 1);
        assert_eq!(repo.open_uploads_from("192.0.2.2", 5_000).await.unwrap(), 0);

        let first = UploadPart { start: 0, bytes: 30, part: u64::MAX - 1 };
        assert!(repo.add_part(upload.id, first).await.unwrap());
        assert!(!repo.add_part(upload.id, UploadPart { start: 0, bytes: 10, part: 7 }).await.unwrap(), "a second part for the same offset loses");
        assert!(!repo.add_part(upload.id, UploadPart { start: 30, bytes: 71, part: 8 }).await.unwrap(), "no part may pass the length");
        let second = UploadPart { start: 30, bytes: 50, part: 9 };
        assert!(repo.add_part(upload.id, second).await.unwrap());

        let record = repo.upload(upload.id).await.unwrap().unwrap();
        assert_eq!((record.received, record.length, record.owner, record.name.as_str()), (80, 100, alice, "photo.jpg"));
        assert_eq!(record.parts, vec![first, second], "in order, the random name kept whole");
        assert_eq!(record.answer, None);

        assert!(repo.finish_upload(upload.id, r#"{"images":[]}"#).await.unwrap());
        assert!(!repo.finish_upload(upload.id, "{}").await.unwrap(), "once");
        let record = repo.upload(upload.id).await.unwrap().unwrap();
        assert_eq!((record.received, record.answer.as_deref(), record.parts.len()), (100, Some(r#"{"images":[]}"#), 0));
        assert!(!repo.add_part(upload.id, UploadPart { start: 100, bytes: 0, part: 1 }).await.unwrap(), "nothing is added to a finished upload");
        assert_eq!(repo.open_uploads(&alice, 5_000).await.unwrap(), 0, "a finished upload is not open");

        let stale = new_upload(alice, 10, 2_000);
        repo.create_upload(&stale).await.unwrap();
        assert_eq!(repo.open_uploads(&alice, 5_000).await.unwrap(), 0, "an expired one is not open either");
        assert_eq!(repo.expired_uploads(5_000, 10).await.unwrap(), vec![stale.id]);
        assert_eq!(repo.expired_uploads(20_000, 10).await.unwrap(), vec![stale.id, upload.id], "the oldest expiry first");
        repo.forget_upload(stale.id).await.unwrap();
        assert_eq!(repo.upload(stale.id).await.unwrap(), None);
        assert_eq!(repo.upload(UploadId::new()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn sqlite_keeps_where_each_resumable_upload_stands() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::testing::sqlite(&dir).await;
        an_upload_advances_only_from_where_it_stands(&repo).await;
    }

    #[tokio::test]
    async fn postgresql_keeps_where_each_resumable_upload_stands() {
        let database = TestDatabase::create().await;
        let repo = crate::testing::postgres(&database).await;
        an_upload_advances_only_from_where_it_stands(&repo).await;
        repo.close().await;
    }
}
