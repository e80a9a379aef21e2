//! `thumbq-web migrate`: reads a data directory or bucket written by a release
//! from before the repository (facts kept as small files beside the blobs) into
//! the repository, one record per original.
//!
//! It only reads the old files, and an image that has a record already is left
//! as it is: running it twice, or again after it was stopped, does no harm.
//! Jobs still waiting in the old spools are taken by workers as usual once
//! their images have records.

use base64::Engine as _;
use thumbq_contract::{FailureRecord, ImageId, Listing, OwnerRecord, SourceFormat, StorageKey, ThumbFormat, ThumbSize, Timeline};
use thumbq_repo::{ImageRecord, Repository};
use thumbq_store::Store;

/// At a web server's start, before it listens: when the database has no image
/// yet but the store has originals, they are an earlier release's, and are
/// migrated now, so that no link of theirs answers 404 meanwhile. Best effort:
/// `thumbq-web migrate` does the same (before an upgrade, for a large bucket).
pub async fn on_first_start(store: &Store, repo: &Repository) {
    let earlier = async { Ok::<_, anyhow::Error>(!repo.has_images().await? && !store.list(Listing::Originals).await?.is_empty()) };
    match earlier.await {
        Ok(false) => {}
        Ok(true) => {
            tracing::info!(store = %store.describe(), "The store holds images of an earlier release and the database none: migrating them now.");
            match migrate(store, repo).await {
                Ok(migrated) => tracing::info!(imported = migrated.imported, already = migrated.already, deleted = migrated.deleted, "Migrated the images of an earlier release into the database."),
                Err(error) => tracing::error!(%error, "Could not migrate the images of an earlier release; run `thumbq-web migrate`."),
            }
        }
        Err(error) => tracing::warn!(%error, "Could not look for images of an earlier release; run `thumbq-web migrate` if there are any."),
    }
}

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Originals that got their record now.
    pub imported: usize,
    /// Originals that had one already.
    pub already: usize,
    /// Originals of images deleted by a delete cut short: left as they are, with no record.
    pub deleted: usize,
}

/// Gives every original in `store` without a record one, from the files beside it.
pub async fn migrate(store: &Store, repo: &Repository) -> anyhow::Result<Migrated> {
    let mut migrated = Migrated::default();
    let mut ids = store.list(Listing::Originals).await?;
    ids.sort_unstable();
    for id in ids {
        if repo.image(id).await?.is_some() {
            migrated.already += 1;
            continue;
        }
        if store.exists(StorageKey::Tombstone(id)).await? {
            migrated.deleted += 1;
            continue;
        }
        let (record, steps) = read_old_files(store, id).await?;
        if repo.import(&record, &steps).await? {
            migrated.imported += 1;
        } else {
            migrated.already += 1;
        }
    }
    Ok(migrated)
}

/// The record an earlier release kept of `id` as files, and its timeline.
async fn read_old_files(store: &Store, id: ImageId) -> anyhow::Result<(ImageRecord, Vec<thumbq_contract::Step>)> {
    let owner: Option<OwnerRecord> = read_json(store, StorageKey::Owner(id)).await?;
    let format = match owner.as_ref().and_then(|owner| owner.format) {
        Some(format) => Some(format),
        // Records from before formats were kept: the bytes say.
        None => store.first_bytes(StorageKey::Original(id), SourceFormat::SNIFF_LEN as u64).await?.and_then(|head| SourceFormat::sniff(&head)),
    };
    let mut thumbnails = [None; 3];
    for (slot, size) in thumbnails.iter_mut().zip(ThumbSize::ALL) {
        *slot = store.thumbnail(id, size).await?;
    }
    let failure: Option<FailureRecord> = read_json(store, StorageKey::Failure(id)).await?;
    let done = failure.is_none() && thumbnails.iter().all(Option::is_some);
    let webp = done && store.exists(StorageKey::Thumbnail(id, ThumbSize::Large, ThumbFormat::Webp)).await?;
    let placeholder = store.get(StorageKey::Placeholder(id)).await?.map(|hash| base64::engine::general_purpose::STANDARD.encode(hash));
    let mut sides = Vec::new();
    for key in StorageKey::timelines(id) {
        sides.extend(read_json::<Timeline>(store, key).await?);
    }
    let steps = Timeline::merged(sides);
    let record = ImageRecord {
        id,
        owner: owner.as_ref().map(|owner| owner.owner),
        name: owner.and_then(|owner| owner.name),
        format,
        bytes: store.size(StorageKey::Original(id)).await?.unwrap_or(0),
        created_ms: id.uploaded_at_ms(),
        thumbnails,
        webp,
        placeholder: placeholder.filter(|_| failure.is_none()),
        done_ms: done.then(|| steps.last().map_or_else(crate::progress::now_ms, |step| step.at)),
        failure,
        deleted_ms: None,
    };
    Ok((record, steps))
}

/// The JSON file `key`, or `None` when there is none; one that cannot be read is left out, said once.
async fn read_json<T: serde::de::DeserializeOwned>(store: &Store, key: StorageKey) -> std::io::Result<Option<T>> {
    let Some(bytes) = store.get(key).await? else { return Ok(None) };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(Some(value)),
        Err(error) => {
            tracing::warn!(?key, %error, "A file of the earlier release cannot be read; leaving it out.");
            Ok(None)
        }
    }
}
