//! The embedded queue: with no RabbitMQ, workers take their jobs straight
//! from the outbox. The upload's own commit queues the job (its row is free
//! at once); a worker leases the row while it works, renewing the lease, and
//! removes it once the job is settled. A worker that dies holds its job only
//! until the lease runs out; a try that failed waits in the row, free again
//! after its back-off. One mechanism, one fsync per upload, and the queue
//! works across machines wherever the database does (PostgreSQL).

use sqlx::Row;
use thumbq_contract::{ImageId, ResizeJob};

use crate::columns::{Lease, to_i64};
use crate::connect::{on_pool, on_writer, unsynced};
use crate::{RepoError, Repository};

/// A job taken from the embedded queue by one worker.
#[derive(Debug)]
pub struct TakenJob {
    pub job: ResizeJob,
    /// How many times it was tried before.
    pub attempts: u32,
}

impl Repository {
    /// The oldest job free at `now_ms`, leased to `lease`'s holder; `None`
    /// when none is. Looking costs a read: the write lock is taken only when
    /// there is a job to take, so idle workers never hold up an upload's commit.
    pub async fn take_job(&self, now_ms: u64, lease: &Lease) -> Result<Option<TakenJob>, RepoError> {
        if !self.jobs_free(now_ms).await? {
            return Ok(None);
        }
        Ok(self.claim(now_ms, lease, 1).await?.into_iter().next().map(|(job, attempts)| TakenJob { job, attempts }))
    }

    /// Whether any job is free at `now_ms` for a worker to take.
    pub async fn jobs_free(&self, now_ms: u64) -> Result<bool, RepoError> {
        let free: Option<String> = on_pool!(self, pool => sqlx::query_scalar("SELECT image_id FROM outbox WHERE lease_until_ms < $1 LIMIT 1").bind(to_i64(now_ms)).fetch_optional(pool).await?);
        Ok(free.is_some())
    }

    /// Whether the job of `id` is in the outbox: waiting, or held by a worker.
    pub async fn has_job(&self, id: ImageId) -> Result<bool, RepoError> {
        let found: Option<String> =
            on_pool!(self, pool => sqlx::query_scalar("SELECT image_id FROM outbox WHERE image_id = $1").bind(id.to_string()).fetch_optional(pool).await?);
        Ok(found.is_some())
    }

    /// The worker holding the job of `id` is still at it: its lease runs to
    /// `lease.until_ms`. `false` when the row is no longer theirs (the lease ran
    /// out and another worker took it, or the image was deleted).
    pub async fn renew_job(&self, id: ImageId, lease: &Lease) -> Result<bool, RepoError> {
        let renewed = on_writer!(self, pool => sqlx::query("UPDATE outbox SET lease_until_ms = $1 WHERE image_id = $2 AND leased_by = $3")
            .bind(to_i64(lease.until_ms))
            .bind(id.to_string())
            .bind(&lease.holder)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(renewed == 1)
    }

    /// The job of `id` is settled (done, failed for good, or its image gone):
    /// its row goes. Not fsynced on SQLite: after a power cut the job is only
    /// taken again, and a worker acks a finished image's job without work.
    pub async fn job_settled(&self, id: ImageId) -> Result<(), RepoError> {
        unsynced!(self, connection => {
            sqlx::query("DELETE FROM outbox WHERE image_id = $1").bind(id.to_string()).execute(&mut *connection).await?;
            Ok::<_, RepoError>(())
        })
    }

    /// The job of `id`, held by `holder`, waits until `free_at_ms`, having had
    /// `attempts` tries: after a failed try, or while the store is away.
    pub async fn job_later(&self, id: ImageId, holder: &str, free_at_ms: u64, attempts: u32) -> Result<(), RepoError> {
        on_writer!(self, pool => sqlx::query("UPDATE outbox SET lease_until_ms = $1, leased_by = NULL, attempts = $2 WHERE image_id = $3 AND leased_by = $4")
            .bind(to_i64(free_at_ms))
            .bind(i64::from(attempts))
            .bind(id.to_string())
            .bind(holder)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Jobs in the outbox, and of those the ones a worker holds now: with the
    /// embedded queue, what waits and what is being worked on.
    pub async fn jobs_held(&self, now_ms: u64) -> Result<(usize, usize), RepoError> {
        let (all, held): (i64, i64) = on_pool!(self, pool => {
            let row = sqlx::query("SELECT COUNT(*), COUNT(*) FILTER (WHERE lease_until_ms >= $1 AND leased_by IS NOT NULL) FROM outbox")
                .bind(to_i64(now_ms))
                .fetch_one(pool)
                .await?;
            (row.try_get(0)?, row.try_get(1)?)
        });
        Ok((usize::try_from(all).unwrap_or(0), usize::try_from(held).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use thumbq_contract::{OwnerId, SourceFormat};

    use super::*;
    use crate::testing::{TestDatabase, uploaded};

    fn lease(holder: &str, until_ms: u64) -> Lease {
        Lease { holder: holder.into(), until_ms }
    }

    async fn upload(repo: &Repository, created_ms: u64) -> ImageId {
        let id = ImageId::new();
        let mut image = uploaded(id, SourceFormat::Jpeg, 64, 48);
        image.owner = OwnerId::of_secret(b"queue");
        image.created_ms = created_ms;
        repo.add_image(&image, &[], None, &Lease::none()).await.unwrap();
        id
    }

    async fn workers_take_each_job_once_and_get_back_what_a_dead_one_held(repo: &Repository) {
        assert!(repo.take_job(10, &lease("worker-a", 1_000)).await.unwrap().is_none(), "an empty queue");
        let first = upload(repo, 1).await;
        let second = upload(repo, 2).await;
        assert!(repo.jobs_free(10).await.unwrap());

        let taken = repo.take_job(10, &lease("worker-a", 1_000)).await.unwrap().unwrap();
        assert_eq!((taken.job.image_id, taken.attempts), (first, 0), "oldest first");
        let other = repo.take_job(10, &lease("worker-b", 1_000)).await.unwrap().unwrap();
        assert_eq!(other.job.image_id, second, "no two workers hold one job");
        assert!(repo.has_job(first).await.unwrap() && !repo.has_job(ImageId::new()).await.unwrap());
        assert!(repo.take_job(10, &lease("worker-c", 1_000)).await.unwrap().is_none());
        assert_eq!(repo.jobs_held(10).await.unwrap(), (2, 2));

        // worker-a renews its lease; worker-b dies, and its job is free once its lease runs out.
        assert!(repo.renew_job(first, &lease("worker-a", 5_000)).await.unwrap());
        assert!(!repo.renew_job(first, &lease("worker-b", 5_000)).await.unwrap(), "only the holder renews");
        let rescued = repo.take_job(2_000, &lease("worker-c", 6_000)).await.unwrap().unwrap();
        assert_eq!(rescued.job.image_id, second);
        assert!(!repo.renew_job(second, &lease("worker-b", 7_000)).await.unwrap(), "the dead worker's lease is gone");

        // A failed try waits out its back-off with its tries counted.
        repo.job_later(first, "worker-a", 3_000, 1).await.unwrap();
        assert!(repo.take_job(2_500, &lease("worker-c", 6_000)).await.unwrap().is_none(), "backing off");
        let again = repo.take_job(3_001, &lease("worker-c", 9_000)).await.unwrap().unwrap();
        assert_eq!((again.job.image_id, again.attempts), (first, 1));

        repo.job_settled(first).await.unwrap();
        repo.job_settled(second).await.unwrap();
        assert!(!repo.has_job(first).await.unwrap());
        assert_eq!(repo.jobs_held(3_001).await.unwrap(), (0, 0));
        assert!(!repo.jobs_free(u64::MAX / 2).await.unwrap());
    }

    #[tokio::test]
    async fn sqlite_embedded_queue_hands_each_job_to_one_worker() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::testing::sqlite(&dir).await;
        workers_take_each_job_once_and_get_back_what_a_dead_one_held(&repo).await;
    }

    #[tokio::test]
    async fn postgresql_embedded_queue_hands_each_job_to_one_worker() {
        let database = TestDatabase::create().await;
        let repo = crate::testing::postgres(&database).await;
        workers_take_each_job_once_and_get_back_what_a_dead_one_held(&repo).await;
        repo.close().await;
    }
}
