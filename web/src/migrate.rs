//! `thumbq-web migrate`: reads a data directory or bucket written by a release
//! from before the repository (facts kept as small files beside the blobs) into
//! the repository, one record per original.
//!
//! It only reads the old files, and an image that has a record already is left
//! as it is: running it twice, or again after it was stopped, does no harm.
//! Jobs still waiting in the old embedded queue's directory, or in an old
//! outbox directory, move into the repository's outbox (see [`earlier_spools`]).

use base64::Engine as _;
use thumbq_contract::{FailureRecord, ImageId, Listing, OwnerRecord, ResizeJob, SourceFormat, Storage, StorageKey, ThumbFormat, ThumbSize, Timeline};
use thumbq_repo::{ImageRecord, Repository};
use thumbq_store::Store;

pub mod spool;
use spool::Spool;

/// At a web server's start, before it listens: until a migration has
/// finished (the database says so), the store's originals without a record
/// may be an earlier release's, and are migrated now, so that no link of
/// theirs answers 404 meanwhile; a store with no original has nothing to
/// migrate. Best effort: `thumbq-web migrate` does the same (before an
/// upgrade, for a large bucket), and the reconciler removes no original
/// without a record until one has finished.
pub async fn on_first_start(store: &Store, repo: &Repository) {
    let earlier = async {
        if repo.migrated().await? {
            return Ok::<_, anyhow::Error>(false);
        }
        if store.list(Listing::Originals).await?.is_empty() {
            repo.mark_migrated(crate::progress::now_ms()).await?;
            return Ok(false);
        }
        Ok(true)
    };
    match earlier.await {
        Ok(false) => {}
        Ok(true) => {
            tracing::info!(store = %store.describe(), "The store holds originals and no migration has finished: giving those of an earlier release their records now.");
            match migrate(store, repo).await {
                Ok(migrated) => tracing::info!(
                    imported = migrated.imported,
                    already = migrated.already,
                    deleted = migrated.deleted,
                    "Migrated the images of an earlier release into the database."
                ),
                Err(error) => tracing::error!(%error, "Could not migrate the images of an earlier release; run `thumbq-web migrate`."),
            }
        }
        Err(error) => tracing::warn!(%error, "Could not look for images of an earlier release; run `thumbq-web migrate` if there are any."),
    }
}

/// At a web server's start: jobs an earlier release left in directories of
/// the data directory move into the repository's outbox, which the relay
/// sends to RabbitMQ or, with no RabbitMQ, the workers take: those of its
/// outbox (RabbitMQ was away), and those of its embedded queue, waiting or
/// held by a worker that is gone. Each file goes once its row is committed.
/// Best effort, and nothing to do on a data directory that never had them.
pub async fn earlier_spools(storage: &Storage, repo: &Repository) {
    for (root, what) in [(storage.outbox_spool(), "outbox"), (storage.job_spool(), "embedded queue")] {
        if !root.exists() {
            continue;
        }
        match move_jobs(root, what, repo).await {
            Ok(0) => {}
            Ok(moved) => tracing::info!(moved, "Moved the jobs of an earlier release's {what} into the database."),
            Err(error) => tracing::warn!(%error, "Could not move the jobs of an earlier release's {what}; they stay on disk and the next start tries again."),
        }
    }
}

async fn move_jobs(root: std::path::PathBuf, what: &str, repo: &Repository) -> anyhow::Result<usize> {
    let outbox = std::sync::Arc::new(Spool::open(root)?);
    let spool = std::sync::Arc::clone(&outbox);
    tokio::task::spawn_blocking(move || spool.recover_orphans()).await??;
    let mut moved = 0;
    loop {
        let spool = std::sync::Arc::clone(&outbox);
        let Some(claim) = tokio::task::spawn_blocking(move || spool.claim()).await?? else { return Ok(moved) };
        let spool = std::sync::Arc::clone(&outbox);
        let Ok(job) = ResizeJob::from_bytes(&claim.payload) else {
            tracing::warn!("A file in the earlier release's {what} is no job; setting it aside in its dead/.");
            tokio::task::spawn_blocking(move || spool.dead_letter(claim)).await??;
            continue;
        };
        let step = crate::instance::step(&format!("moved from the {what} directory of an earlier release"), crate::progress::now_ms());
        repo.requeue(job.image_id, job.traceparent.unwrap_or_default(), crate::progress::now_ms(), &step).await?;
        tokio::task::spawn_blocking(move || spool.ack(claim)).await??;
        moved += 1;
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
        match import(store, repo, id).await? {
            Import::Imported => migrated.imported += 1,
            Import::Already => migrated.already += 1,
            Import::Deleted => migrated.deleted += 1,
        }
    }
    repo.mark_migrated(crate::progress::now_ms()).await?;
    Ok(migrated)
}

/// What became of one original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    Imported,
    /// It had a record already.
    Already,
    /// An earlier release deleted it (a delete cut short): left with no record.
    Deleted,
}

/// Gives the original `id` a record from the files an earlier release kept beside it.
pub async fn import(store: &Store, repo: &Repository, id: ImageId) -> anyhow::Result<Import> {
    if repo.image(id).await?.is_some() {
        return Ok(Import::Already);
    }
    if store.exists(StorageKey::Tombstone(id)).await? {
        return Ok(Import::Deleted);
    }
    let (record, steps) = read_old_files(store, id).await?;
    Ok(if repo.import(&record, &steps).await? { Import::Imported } else { Import::Already })
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
        pixels: None,
        created_ms: id.uploaded_at_ms(),
        thumbnails,
        webp,
        placeholder: placeholder.filter(|_| failure.is_none()),
        done_ms: done.then(|| steps.last().map_or_else(crate::progress::now_ms, |step| step.at)),
        failure,
        cut_off: false,
        trashed_ms: None,
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
