//! The images that failed for good, grouped by reason, a page at a time: what
//! the operators' dashboard shows, counted by the database rather than read
//! record by record.

use sqlx::Row;
use thumbq_contract::ImageId;

use crate::columns::{parse_id, to_u64};
use crate::connect::on_pool;
use crate::{RepoError, Repository};

/// One reason images failed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureGroup {
    /// Why, for people.
    pub reason: String,
    pub count: u64,
    /// Whether a replay may help every one of them (the fault was ours, not the images').
    pub retryable: bool,
    /// When the newest of them failed.
    pub last_failed_ms: u64,
    /// The newest few.
    pub examples: Vec<ImageId>,
}

impl Repository {
    /// The reasons images failed for (not deleted since), the most recent
    /// first: `limit` of them from the `offset`th, each with its newest
    /// `examples` ids; and how many reasons there are in all.
    pub async fn failure_groups(&self, offset: usize, limit: usize, examples: usize) -> Result<(Vec<FailureGroup>, usize), RepoError> {
        // SQLite has no bool_and; a missing flag (an older record) is retryable, as `failures` reads it.
        let groups_sql = "SELECT failure, COUNT(*), CAST(MIN(CASE WHEN COALESCE(failure_retryable, TRUE) THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(MAX(COALESCE(failed_ms, 0)) AS BIGINT) \
             FROM images WHERE failure IS NOT NULL AND deleted_ms IS NULL GROUP BY failure ORDER BY 4 DESC, failure LIMIT $1 OFFSET $2";
        let count_sql = "SELECT COUNT(DISTINCT failure) FROM images WHERE failure IS NOT NULL AND deleted_ms IS NULL";
        let examples_sql = "SELECT failure, id FROM \
             (SELECT failure, id, ROW_NUMBER() OVER (PARTITION BY failure ORDER BY id DESC) AS n FROM images WHERE failure IS NOT NULL AND deleted_ms IS NULL) AS ranked \
             WHERE n <= $1";
        let (mut groups, reasons, newest) = on_pool!(self, pool => {
            let rows = sqlx::query(groups_sql).bind(limit as i64).bind(offset as i64).fetch_all(pool).await?;
            let mut groups = Vec::with_capacity(rows.len());
            for row in rows {
                let (count, retryable, last_failed): (i64, i64, i64) = (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                groups.push(FailureGroup { reason: row.try_get(0)?, count: to_u64(count), retryable: retryable == 1, last_failed_ms: to_u64(last_failed), examples: Vec::new() });
            }
            let reasons: i64 = sqlx::query(count_sql).fetch_one(pool).await?.try_get(0)?;
            let newest = match groups.is_empty() {
                true => Vec::new(),
                false => sqlx::query(examples_sql).bind(examples as i64).fetch_all(pool).await?,
            };
            let newest = newest.iter().map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?;
            (groups, to_u64(reasons) as usize, newest)
        });
        for (reason, id) in newest {
            if let Some(group) = groups.iter_mut().find(|group| group.reason == reason) {
                group.examples.push(parse_id(&id)?);
            }
        }
        for group in &mut groups {
            group.examples.sort_unstable_by(|a, b| b.cmp(a));
        }
        Ok((groups, reasons))
    }
}

#[cfg(test)]
mod tests {
    use thumbq_contract::{FailureRecord, SourceFormat};

    use super::*;
    use crate::Lease;
    use crate::testing::{TestDatabase, uploaded};

    async fn failures_are_grouped_by_reason_a_page_at_a_time(repo: &Repository) {
        let fail = |reason: &str, retryable: bool, at_ms: u64| {
            let image = uploaded(ImageId::new(), SourceFormat::Jpeg, 10, 10);
            let failure = FailureRecord { reason: reason.to_owned(), failed_at_ms: at_ms, retryable };
            (image, failure)
        };
        let failed = [
            fail("store refused", true, 100),
            fail("store refused", true, 300),
            fail("store refused", true, 200),
            fail("not a JPEG", false, 250),
            fail("mixed", true, 150),
            fail("mixed", false, 50),
            fail("deleted since", true, 900),
        ];
        for (image, failure) in &failed {
            repo.add_image(image, &[], None, &Lease::none()).await.unwrap();
            assert!(repo.failed(image.id, failure, &[]).await.unwrap());
        }
        repo.mark_deleted(failed[6].0.id, 1_000).await.unwrap();

        let (first, reasons) = repo.failure_groups(0, 2, 2).await.unwrap();
        assert_eq!(reasons, 3, "a deleted image's reason is not counted");
        // The newest by id: ids made in the same millisecond are in no particular order.
        let mut newest = [failed[0].0.id, failed[1].0.id, failed[2].0.id];
        newest.sort_unstable_by(|a, b| b.cmp(a));
        let store = FailureGroup { reason: "store refused".into(), count: 3, retryable: true, last_failed_ms: 300, examples: newest[..2].to_vec() };
        assert_eq!(
            first,
            [store, FailureGroup { reason: "not a JPEG".into(), count: 1, retryable: false, last_failed_ms: 250, examples: vec![failed[3].0.id] }]
        );
        let (second, _) = repo.failure_groups(2, 2, 2).await.unwrap();
        assert_eq!(second.len(), 1);
        assert!(!second[0].retryable, "a replay would not help every image of a group with one that is not retryable");
        assert_eq!((second[0].count, second[0].last_failed_ms), (2, 150));
        assert!(repo.failure_groups(3, 2, 2).await.unwrap().0.is_empty());
    }

    #[tokio::test]
    async fn sqlite_groups_failures_by_reason() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::testing::sqlite(&dir).await;
        failures_are_grouped_by_reason_a_page_at_a_time(&repo).await;
    }

    #[tokio::test]
    async fn postgresql_groups_failures_by_reason() {
        let database = TestDatabase::create().await;
        let repo = crate::testing::postgres(&database).await;
        failures_are_grouped_by_reason_a_page_at_a_time(&repo).await;
        repo.close().await;
    }
}
