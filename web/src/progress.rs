//! What is known of an image, read from the data directory.
//!
//! The files are the truth: an original means the image exists, a thumbnail
//! file means that size is ready, a failure record means the job gave up.
//! Nothing else needs to be kept in step with them.

use std::path::PathBuf;

use thumbq_contract::{FailureRecord, ImageId, Storage, StorageKey, ThumbFormat, ThumbSize};

/// Where an image's job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for a worker, or being worked on; some sizes may be ready already.
    Pending,
    /// All three sizes are ready.
    Done,
    /// The job failed for good; the record says why.
    Failed(FailureRecord),
}

impl Progress {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed(_) => "failed",
        }
    }

    pub fn failure_reason(&self) -> Option<&str> {
        match self {
            Self::Failed(record) => Some(&record.reason),
            _ => None,
        }
    }
}

/// Where `id` stands, or `None` when there is no such image.
pub async fn progress(storage: &Storage, id: ImageId) -> std::io::Result<Option<Progress>> {
    if let Some(record) = failure(storage, id).await? {
        return Ok(Some(Progress::Failed(record)));
    }
    if !is_file(&storage.path(&StorageKey::Original(id))).await? {
        return Ok(None);
    }
    for size in ThumbSize::ALL {
        if thumbnail(storage, id, size).await?.is_none() {
            return Ok(Some(Progress::Pending));
        }
    }
    Ok(Some(Progress::Done))
}

/// The thumbnail file of `size`, with its format, if a worker has written it.
pub async fn thumbnail(storage: &Storage, id: ImageId, size: ThumbSize) -> std::io::Result<Option<(PathBuf, ThumbFormat)>> {
    for format in ThumbFormat::ALL {
        let path = storage.path(&StorageKey::Thumbnail(id, size, format));
        if is_file(&path).await? {
            return Ok(Some((path, format)));
        }
    }
    Ok(None)
}

/// Whether `id` was deleted: its tombstone is there.
pub async fn is_deleted(storage: &Storage, id: ImageId) -> std::io::Result<bool> {
    is_file(&storage.path(&StorageKey::Tombstone(id))).await
}

pub use thumbq_contract::timeline::now_ms;

/// Whether `path` is a file; a missing one, or one below something that is
/// not a directory, is simply not there.
pub async fn is_file(path: &std::path::Path) -> std::io::Result<bool> {
    match tokio::fs::metadata(path).await {
        Ok(metadata) => Ok(metadata.is_file()),
        Err(error) if matches!(error.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The reason shown for a failure record that cannot be read.
pub const UNREADABLE_FAILURE: &str = "The image could not be processed.";

/// The failure record of `id`, if its job failed for good.
pub async fn failure(storage: &Storage, id: ImageId) -> std::io::Result<Option<FailureRecord>> {
    match tokio::fs::read(storage.path(&StorageKey::Failure(id))).await {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| FailureRecord { reason: UNREADABLE_FAILURE.into(), failed_at_ms: 0, retryable: true })))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// The steps of `id`'s way, both sides', oldest first; empty when none were kept.
///
/// Anyone with the image's link sees them, so a process is named by its role
/// and a short digest of `role@host:pid`: enough to tell two workers apart,
/// and no host name or process id for a stranger (the files and logs keep them).
pub async fn timeline(storage: &Storage, id: ImageId) -> Vec<thumbq_contract::Step> {
    let mut sides = Vec::new();
    for side in ["web", "worker"] {
        if let Ok(bytes) = tokio::fs::read(storage.path(&StorageKey::Timeline(id, side))).await
            && let Ok(timeline) = serde_json::from_slice::<thumbq_contract::Timeline>(&bytes)
        {
            sides.push(timeline);
        }
    }
    let mut steps = thumbq_contract::Timeline::merged(sides);
    for step in &mut steps {
        step.by = public_name(&step.by);
    }
    steps
}

/// `worker 3f2a9c` for `worker@host:1234`.
fn public_name(by: &str) -> String {
    use sha2::Digest;
    let role = by.split('@').next().unwrap_or("process");
    let digest = sha2::Sha256::digest(by.as_bytes());
    format!("{role} {:02x}{:02x}{:02x}", digest[0], digest[1], digest[2])
}
