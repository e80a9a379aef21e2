//! How values are kept in columns on both backends: times and sizes as
//! `BIGINT` (milliseconds since the Unix epoch), ids as text; and the lease a
//! row is held under.

use thumbq_contract::ImageId;

use crate::RepoError;

/// Who holds a row (an outbox job, the reconciler), and until when.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The holder's name: `web@host:pid` and a random part.
    pub holder: String,
    pub until_ms: u64,
}

impl Lease {
    /// No one's: the first to look takes it.
    pub fn none() -> Self {
        Self { holder: String::new(), until_ms: 0 }
    }
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn parse_id(id: &str) -> Result<ImageId, RepoError> {
    id.parse().map_err(|_| RepoError::Corrupt(format!("image id {id:?}")))
}
