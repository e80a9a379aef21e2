//! The outbox: jobs accepted and not yet on the queue, as rows beside their images.
//!
//! An upload writes its image and its outbox row in one transaction (see
//! [`Repository::add_image`]), leased to the web server that took it for as
//! long as it may take to publish. Once the queue has the job, [`Repository::job_queued`]
//! removes the row. A row whose lease ran out (its web server died, or the
//! queue was away) is claimed by the relay of any web server, one at a time:
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, and SQLite's single writer.
//!
//! A job is rebuilt from its image's row: the outbox keeps only what the
//! image does not say, its trace.

use sqlx::Row;
use thumbq_contract::{ImageId, ResizeJob, SourceFormat, Step, TraceParent};

use crate::accept::push_clear_queued;
use crate::columns::{Lease, parse_id, to_i64};
use crate::connect::{Pool, on_pool, on_writer, unsynced};
use crate::steps::insert_live_steps;
use crate::{RepoError, Repository};

impl Repository {
    /// Up to `limit` jobs whose lease ran out by `now_ms`, oldest first, now
    /// leased to `lease`'s holder. No two processes claim the same row.
    pub async fn claim_jobs(&self, now_ms: u64, lease: &Lease, limit: usize) -> Result<Vec<ResizeJob>, RepoError> {
        Ok(self.claim(now_ms, lease, limit).await?.into_iter().map(|(job, _)| job).collect())
    }

    /// [`Repository::claim_jobs`], each job with the tries it had.
    pub(crate) async fn claim(&self, now_ms: u64, lease: &Lease, limit: usize) -> Result<Vec<(ResizeJob, u32)>, RepoError> {
        // PostgreSQL skips the rows another relay is claiming; SQLite lets one writer in at a time.
        let skip_locked = match self.pool {
            Pool::Postgres(_) => "FOR UPDATE OF outbox SKIP LOCKED",
            Pool::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE outbox SET lease_until_ms = $1, leased_by = $2 WHERE image_id IN \
             (SELECT image_id FROM outbox WHERE lease_until_ms < $3 ORDER BY queued_ms LIMIT $4 {skip_locked}) \
             RETURNING image_id, traceparent, attempts"
        );
        let claimed: Vec<(String, Option<String>, i64)> = on_writer!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(to_i64(lease.until_ms))
                .bind(&lease.holder)
                .bind(to_i64(now_ms))
                .bind(limit as i64)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect::<Result<_, _>>()?
        });
        let ids: Vec<ImageId> = claimed.iter().map(|(id, ..)| parse_id(id)).collect::<Result<_, _>>()?;
        let images = self.images(&ids).await?;
        let mut jobs = Vec::with_capacity(images.len());
        for ((_, trace, attempts), id) in claimed.iter().zip(&ids) {
            match images.iter().find(|image| image.id == *id).and_then(|image| Some((image, image.format?))) {
                Some((image, format)) => {
                    jobs.push((job_of(image.id, format, image.created_ms, trace.as_deref()), u32::try_from(*attempts).unwrap_or(u32::MAX)))
                }
                // No job can be made of it (an earlier release's image whose bytes were not recognised): its row goes.
                None => {
                    on_writer!(self, pool => sqlx::query("DELETE FROM outbox WHERE image_id = $1").bind(id.to_string()).execute(pool).await.map(|_| ()))?;
                }
            }
        }
        Ok(jobs)
    }

    /// The queue has the job of `id`: its outbox row goes, and `step` (how it
    /// was queued) joins the timeline, in one transaction.
    pub async fn job_queued(&self, id: ImageId, step: &Step) -> Result<(), RepoError> {
        self.jobs_queued(&[(id, step.clone())]).await
    }

    /// [`Repository::job_queued`] for many jobs, in one transaction: one commit
    /// (one fsync with SQLite) however many uploads were confirmed meanwhile.
    ///
    /// On SQLite this commit is not fsynced (`synchronous = NORMAL` for it
    /// alone): the next fsynced commit makes it durable, and a power cut before
    /// that leaves the rows, whose jobs a relay sends again, which is harmless.
    pub async fn jobs_queued(&self, queued: &[(ImageId, Step)]) -> Result<(), RepoError> {
        unsynced!(self, connection => {
            let mut tx = sqlx::Connection::begin(&mut *connection).await?;
            let mut batch = crate::batch::Batch::new();
            push_clear_queued!(batch, queued);
            crate::batch::run_batch!(tx, batch);
            tx.commit().await?;
            Ok::<_, RepoError>(())
        })
    }

    /// The queue did not take the job of `id`: its row is free for the next
    /// relay at once, and `step`, if any, joins the timeline.
    pub async fn job_waits(&self, id: ImageId, step: Option<&Step>) -> Result<(), RepoError> {
        let id = id.to_string();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE outbox SET lease_until_ms = 0, leased_by = NULL WHERE image_id = $1").bind(&id).execute(&mut *tx).await?;
            insert_live_steps!(tx, step.map(|step| (id.as_str(), std::slice::from_ref(step))));
            tx.commit().await?;
        });
        Ok(())
    }

    /// Queues the job of `id` again (the reconciler, or a replay), unless it
    /// waits in the outbox already or the image is deleted, finished or failed;
    /// `true` when it did, with `step` in the timeline.
    pub async fn requeue(&self, id: ImageId, trace: TraceParent, now_ms: u64, step: &Step) -> Result<bool, RepoError> {
        let id = id.to_string();
        let queued = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let queued = sqlx::query(
                "INSERT INTO outbox (image_id, traceparent, queued_ms, lease_until_ms) \
                 SELECT id, $2, $3, 0 FROM images WHERE id = $1 AND deleted_ms IS NULL AND failure IS NULL AND done_ms IS NULL \
                 ON CONFLICT (image_id) DO NOTHING",
            )
            .bind(&id)
            .bind(trace.to_string())
            .bind(to_i64(now_ms))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if queued {
                insert_live_steps!(tx, [(id.as_str(), std::slice::from_ref(step))]);
            }
            tx.commit().await?;
            queued
        });
        Ok(queued)
    }

    /// Jobs in the outbox: not yet confirmed by the queue.
    pub async fn outbox_len(&self) -> Result<usize, RepoError> {
        let count: i64 = on_pool!(self, pool => sqlx::query("SELECT COUNT(*) FROM outbox").fetch_one(pool).await?.try_get(0)?);
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

/// The job of an image, as the upload made it.
pub(crate) fn job_of(id: ImageId, format: SourceFormat, created_ms: u64, trace: Option<&str>) -> ResizeJob {
    let job = ResizeJob::new(id, format, created_ms);
    match trace.and_then(|trace| trace.parse().ok()) {
        Some(trace) => job.traced(trace),
        None => job,
    }
}

#[cfg(test)]
mod tests {
    use thumbq_contract::OwnerId;

    use super::*;
    use crate::Deletion;
    use crate::testing::{TestDatabase, uploaded};

    fn lease(holder: &str, until_ms: u64) -> Lease {
        Lease { holder: holder.into(), until_ms }
    }

    fn step(name: &str) -> Step {
        Step { step: name.into(), at: 1, by: "test@host:1".into() }
    }

    /// Adds a pending image with its job leased to `held`; returns its id.
    async fn upload(repo: &Repository, held: &Lease) -> ImageId {
        let id = ImageId::new();
        let mut image = uploaded(id, SourceFormat::Jpeg, 64, 48);
        image.owner = OwnerId::of_secret(b"outbox");
        image.created_ms = 100;
        repo.add_image(&image, &[], Some(TraceParent::new()), held).await.unwrap();
        id
    }

    async fn jobs_are_relayed_once_their_lease_runs_out(repo: &Repository) {
        let id = upload(repo, &lease("web-a", 1_000)).await;
        assert!(repo.claim_jobs(500, &lease("web-b", 3_000), 10).await.unwrap().is_empty(), "web-a is still publishing it");
        let claimed = repo.claim_jobs(2_000, &lease("web-b", 3_000), 10).await.unwrap();
        assert_eq!(claimed.iter().map(|job| (job.image_id, job.format)).collect::<Vec<_>>(), [(id, SourceFormat::Jpeg)]);
        assert!(claimed[0].traceparent.is_some(), "the job keeps the upload's trace");
        assert!(repo.claim_jobs(2_500, &lease("web-c", 4_000), 10).await.unwrap().is_empty(), "no two relays hold one job");
        repo.job_waits(id, Some(&step("kept in the outbox"))).await.unwrap();
        assert_eq!(repo.claim_jobs(2_600, &lease("web-c", 4_000), 10).await.unwrap().len(), 1, "a job the queue refused is free at once");
        repo.job_queued(id, &step("confirmed by RabbitMQ")).await.unwrap();
        assert_eq!(repo.outbox_len().await.unwrap(), 0);
        let steps: Vec<String> = repo.timeline(id).await.unwrap().into_iter().map(|step| step.step).collect();
        assert_eq!(steps, ["kept in the outbox", "confirmed by RabbitMQ"]);

        // Stalled: pending, no job in the outbox, no step since the cutoff.
        assert!(repo.stalled(2, 10).await.unwrap().is_empty(), "uploaded (at 100 ms) after the cutoff");
        assert_eq!(repo.stalled(1_000, 10).await.unwrap(), [id]);
        assert!(repo.requeue(id, TraceParent::new(), 5_000, &step("queued again")).await.unwrap());
        assert!(!repo.requeue(id, TraceParent::new(), 5_000, &step("queued again")).await.unwrap(), "it waits already");
        assert!(repo.stalled(1_000, 10).await.unwrap().is_empty(), "a job is on its way");

        // A delete takes the waiting job with it, and leaves the files to purge.
        assert_eq!(repo.mark_deleted(id, 6_000).await.unwrap(), Deletion::Deleted);
        assert_eq!(repo.outbox_len().await.unwrap(), 0);
        assert!(!repo.requeue(id, TraceParent::new(), 7_000, &step("queued again")).await.unwrap());
        assert_eq!(repo.unpurged(10).await.unwrap(), [id]);
        repo.purged(id, 7_000).await.unwrap();
        assert!(repo.unpurged(10).await.unwrap().is_empty());
        assert_eq!(repo.known(&[id, ImageId::new()]).await.unwrap(), std::collections::HashSet::from([id]));
    }

    async fn one_process_at_a_time_holds_a_lease(repo: &Repository) {
        assert!(!repo.migrated().await.unwrap(), "no migration has finished on a new database");
        repo.mark_migrated(1).await.unwrap();
        repo.mark_migrated(2).await.unwrap();
        assert!(repo.migrated().await.unwrap());
        assert!(repo.take_lease("reconciler", &lease("web-a", 1_000), 0).await.unwrap());
        assert!(!repo.take_lease("reconciler", &lease("web-b", 1_500), 500).await.unwrap());
        assert!(repo.take_lease("reconciler", &lease("web-a", 2_000), 900).await.unwrap(), "its holder renews it");
        assert!(!repo.take_lease("reconciler", &lease("web-b", 2_500), 1_500).await.unwrap());
        assert!(repo.take_lease("reconciler", &lease("web-b", 3_500), 2_001).await.unwrap(), "a lease run out is anyone's");
    }

    /// Relays claiming at once, as many web servers do: every job once.
    async fn concurrent_relays_never_claim_a_job_twice(repo: &Repository) {
        let mut ids = std::collections::HashSet::new();
        for _ in 0..40 {
            ids.insert(upload(repo, &Lease::none()).await);
        }
        let relays: Vec<_> = (0..4)
            .map(|relay| {
                let repo = repo.clone();
                tokio::spawn(async move {
                    let mut claimed = Vec::new();
                    loop {
                        let jobs = repo.claim_jobs(10, &lease(&format!("web-{relay}"), 1_000_000), 3).await.unwrap();
                        if jobs.is_empty() {
                            return claimed;
                        }
                        claimed.extend(jobs.into_iter().map(|job| job.image_id));
                    }
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for relay in relays {
            claimed.extend(relay.await.unwrap());
        }
        assert_eq!(claimed.len(), ids.len(), "each job claimed exactly once");
        assert_eq!(claimed.into_iter().collect::<std::collections::HashSet<_>>(), ids);
    }

    #[tokio::test]
    async fn sqlite_outbox_and_leases_keep_their_promises() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::testing::sqlite(&dir).await;
        jobs_are_relayed_once_their_lease_runs_out(&repo).await;
        one_process_at_a_time_holds_a_lease(&repo).await;
        concurrent_relays_never_claim_a_job_twice(&repo).await;
    }

    #[tokio::test]
    async fn postgresql_outbox_and_leases_keep_their_promises() {
        let database = TestDatabase::create().await;
        let repo = crate::testing::postgres(&database).await;
        jobs_are_relayed_once_their_lease_runs_out(&repo).await;
        one_process_at_a_time_holds_a_lease(&repo).await;
        concurrent_relays_never_claim_a_job_twice(&repo).await;
        repo.close().await;
    }
}
