//! What is known of an image, read from the store.
//!
//! The files are the truth: an original means the image exists, a thumbnail
//! file means that size is ready, a failure record means the job gave up.
//! Nothing else needs to be kept in step with them.

use thumbq_contract::{FailureRecord, ImageId, StorageKey, ThumbFormat, ThumbSize};
use thumbq_store::Store;

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
pub async fn progress(store: &Store, id: ImageId) -> std::io::Result<Option<Progress>> {
    if let Some(record) = failure(store, id).await? {
        return Ok(Some(Progress::Failed(record)));
    }
    if !store.exists(StorageKey::Original(id)).await? {
        return Ok(None);
    }
    for size in ThumbSize::ALL {
        if thumbnail(store, id, size).await?.is_none() {
            return Ok(Some(Progress::Pending));
        }
    }
    Ok(Some(Progress::Done))
}

/// The format of the thumbnail of `size`, if a worker has written it.
pub async fn thumbnail(store: &Store, id: ImageId, size: ThumbSize) -> std::io::Result<Option<ThumbFormat>> {
    store.thumbnail(id, size).await
}

/// Whether the WebPs of `id` are written: the large one is the last a worker writes,
/// so one look answers for all three.
pub async fn has_webp(store: &Store, id: ImageId) -> std::io::Result<bool> {
    store.exists(StorageKey::Thumbnail(id, ThumbSize::Large, ThumbFormat::Webp)).await
}

/// The most bytes a ThumbHash has (25 with alpha); anything longer is not one.
const MAX_PLACEHOLDER_BYTES: usize = 32;

/// The image's ThumbHash in base64, once a worker has made it.
pub async fn placeholder(store: &Store, id: ImageId) -> std::io::Result<Option<String>> {
    use base64::Engine as _;
    Ok(store.get(StorageKey::Placeholder(id)).await?.filter(|hash| hash.len() <= MAX_PLACEHOLDER_BYTES).map(|hash| base64::engine::general_purpose::STANDARD.encode(hash)))
}

/// Whether a worker's announced placeholder is a ThumbHash in base64, as pages expect it.
pub fn is_placeholder(placeholder: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(placeholder).is_ok_and(|hash| (5..=MAX_PLACEHOLDER_BYTES).contains(&hash.len()))
}

/// Whether `id` was deleted: its tombstone is there.
pub async fn is_deleted(store: &Store, id: ImageId) -> std::io::Result<bool> {
    store.exists(StorageKey::Tombstone(id)).await
}

pub use thumbq_contract::timeline::now_ms;

/// The reason shown for a failure record that cannot be read.
pub const UNREADABLE_FAILURE: &str = "The image could not be processed.";

/// The failure record of `id`, if its job failed for good.
pub async fn failure(store: &Store, id: ImageId) -> std::io::Result<Option<FailureRecord>> {
    Ok(store.get(StorageKey::Failure(id)).await?.map(|bytes| {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| FailureRecord { reason: UNREADABLE_FAILURE.into(), failed_at_ms: 0, retryable: true })
    }))
}

/// The steps of `id`'s way, both sides', oldest first; empty when none were kept.
///
/// Anyone with the image's link sees them, so a process is named by its role
/// and a short digest of `role@host:pid`: enough to tell two workers apart,
/// and no host name or process id for a stranger (the files and logs keep them).
pub async fn timeline(store: &Store, id: ImageId) -> Vec<thumbq_contract::Step> {
    let mut sides = Vec::new();
    for side in thumbq_contract::TIMELINE_SIDES {
        if let Ok(Some(bytes)) = store.get(StorageKey::Timeline(id, side)).await
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
