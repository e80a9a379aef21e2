//! The reconciler: what no request and no job will do by itself, done by one
//! web server at a time (whichever holds the repository's `reconciler` lease).
//!
//! Each round:
//! - a pending image that no one has touched for `--stalled-after-secs` (no
//!   job in the outbox, no step) gets its job again: its message was lost, or
//!   an earlier release accepted it and crashed before queueing. A job sent
//!   twice is harmless; a worker acks the second at once.
//! - an image its owner deleted more than `--undo-delete-secs` ago is deleted
//!   for good (see `delete::empty_trash`).
//! - a delete whose files the store would not remove then is finished.
//! - the keys of requests (`Idempotency-Key`) a day old are forgotten, and so
//!   are the addresses of uploads past the daily quota's window.
//!
//! Now and then (the first round a server holds the lease, then every half
//! `--stray-grace-secs`) it also compares the store's originals with the
//! records, leaving alone anything younger than that grace:
//! - an original with no record is an upload cut short before its commit
//!   (never answered "accepted"), and is removed; one that an earlier release
//!   kept its facts beside gets its record instead (see `migrate`);
//! - a pending image whose original is gone can never finish: it is failed,
//!   saying so. A done one keeps its thumbnails, and is reported.
//!
//! Every action is logged and counted in `/metrics` (`reconciler_actions`).

use std::collections::HashSet;
use std::time::Duration;

use thumbq_contract::{FailureRecord, ImageId, Listing, Step, StorageKey, TraceParent};
use thumbq_repo::Lease;
use tokio::sync::watch;

use crate::AppState;
use crate::progress::now_ms;

/// The name of the lease that makes one reconciler run at a time.
const LEASE: &str = "reconciler";
/// A round at most this many images of each kind, so that one round stays short.
const BATCH: usize = 100;

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub requeued: usize,
    /// Images their owners deleted, past the time to undo it: deleted for good.
    pub trash_emptied: usize,
    pub purged: usize,
    pub strays_removed: usize,
    pub imported: usize,
    pub missing_failed: usize,
    pub missing_done: usize,
    /// Resumable uploads past their expiry, removed with their bytes.
    pub expired_uploads: usize,
}

/// Runs rounds every `--reconcile-every-secs` while this server holds the lease, until `stopped`.
pub async fn run_until_stopped(app: AppState, mut stopped: watch::Receiver<bool>) {
    let every = Duration::from_secs(app.settings.reconcile_every_secs);
    let scan_every = Duration::from_secs(app.settings.stray_grace_secs / 2);
    let mut last_scan: Option<std::time::Instant> = None;
    loop {
        let lease = Lease { holder: crate::instance::INSTANCE.clone(), until_ms: now_ms() + 2 * every.as_millis() as u64 };
        match app.repo.take_lease(LEASE, &lease, now_ms()).await {
            Ok(true) => {
                let scan_store = last_scan.is_none_or(|scanned| scanned.elapsed() >= scan_every);
                if scan_store {
                    last_scan = Some(std::time::Instant::now());
                }
                match reconcile(&app, scan_store).await {
                    Ok(round) if round != Round::default() => tracing::info!(?round, "The reconciler set things right."),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "The reconciler's round stopped short; the next one goes on."),
                }
            }
            Ok(false) => last_scan = None,
            Err(error) => tracing::debug!(%error, "Could not take the reconciler's lease."),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// One round: stalled images, unfinished deletes, and (when `scan_store`) the store against the records.
pub async fn reconcile(app: &AppState, scan_store: bool) -> anyhow::Result<Round> {
    let mut round = Round::default();
    let now = now_ms();
    let quiet_since = now.saturating_sub(app.settings.stalled_after_secs * 1000);
    for id in app.repo.stalled(quiet_since, BATCH).await? {
        let step = step("queued again by the reconciler: nothing was on its way");
        if app.repo.requeue(id, TraceParent::new(), now, &step).await? {
            tracing::warn!(image.id = %id, "A pending image had no job on its way; queued it again.");
            round.requeued += 1;
        }
    }
    round.trash_emptied = crate::delete::empty_trash(app, BATCH).await?;
    for id in app.repo.unpurged(BATCH).await? {
        match crate::delete::remove_files(&app.store, id).await {
            Ok(()) => {
                app.repo.purged(id, now).await?;
                round.purged += 1;
            }
            Err(error) => tracing::warn!(image.id = %id, %error, "Still cannot remove the files of a deleted image."),
        }
    }
    for id in app.repo.expired_uploads(now, BATCH).await? {
        match crate::resumable::discard(app, id).await {
            Ok(()) => round.expired_uploads += 1,
            Err(error) => tracing::warn!(upload.id = %id, %error, "Still cannot remove an expired upload."),
        }
    }
    // Retries come within minutes; a day is long past any.
    app.repo.forget_attempts_before(now.saturating_sub(24 * 3600 * 1000)).await?;
    // An upload's address is kept only as long as its daily quota counts it.
    app.repo.forget_clients_before(now.saturating_sub(crate::quota::WINDOW.as_millis() as u64)).await?;
    if scan_store {
        compare_with_store(app, now.saturating_sub(app.settings.stray_grace_secs * 1000), &mut round).await?;
    }
    let metrics = &app.metrics;
    metrics.reconciled("requeued", round.requeued as u64);
    metrics.reconciled("trash_emptied", round.trash_emptied as u64);
    metrics.reconciled("purged", round.purged as u64);
    metrics.reconciled("strays_removed", round.strays_removed as u64);
    metrics.reconciled("imported", round.imported as u64);
    metrics.reconciled("missing", round.missing_failed as u64);
    metrics.reconciled("expired_uploads", round.expired_uploads as u64);
    Ok(round)
}

/// Originals with no record, and records with no original, older than `settled_before_ms`.
async fn compare_with_store(app: &AppState, settled_before_ms: u64, round: &mut Round) -> anyhow::Result<()> {
    // Until a migration has finished, an original with no record may be an earlier release's.
    if !app.repo.migrated().await? {
        return Ok(());
    }
    let settled = |id: &ImageId| id.uploaded_at_ms() < settled_before_ms;
    let originals: Vec<ImageId> = app.store.list(Listing::Originals).await?.into_iter().filter(settled).collect();
    let known = app.repo.known(&originals).await?;
    for &id in originals.iter().filter(|id| !known.contains(id)) {
        if app.store.exists(StorageKey::Owner(id)).await? {
            // An earlier release's image that `migrate` did not reach (or is giving its record now).
            match crate::migrate::import(&app.store, &app.repo, id).await? {
                crate::migrate::Import::Imported => round.imported += 1,
                crate::migrate::Import::Already => {}
                // Deleted by the earlier release, which did not finish removing it.
                crate::migrate::Import::Deleted => {
                    crate::delete::remove_files(&app.store, id).await?;
                    round.strays_removed += 1;
                }
            }
            continue;
        }
        // Looked at again just before: an upload may have committed since the listing.
        if app.repo.image(id).await?.is_some() {
            continue;
        }
        crate::delete::remove_files(&app.store, id).await?;
        tracing::warn!(image.id = %id, "Removed an original that no record names: an upload cut short before it was accepted.");
        round.strays_removed += 1;
    }

    let originals: HashSet<ImageId> = originals.into_iter().collect();
    let mut after = None;
    loop {
        let page = app.repo.live_after(after, 1000).await?;
        let Some(&(last, _)) = page.last() else { return Ok(()) };
        after = Some(last);
        for (id, pending) in page.into_iter().filter(|(id, _)| settled(id) && !originals.contains(id)) {
            // Stored since the listing (a long upload commits its originals at its end)?
            if app.store.exists(StorageKey::Original(id)).await? {
                continue;
            }
            if !pending {
                tracing::warn!(image.id = %id, "A finished image's original is missing from the store; its thumbnails stay.");
                round.missing_done += 1;
                continue;
            }
            let failure = FailureRecord { reason: "Its original is missing from the store.".into(), failed_at_ms: now_ms(), retryable: false };
            if app.repo.failed(id, &failure, &[step("failed: the original is missing from the store")]).await? {
                tracing::error!(image.id = %id, "A pending image's original is missing from the store; it failed.");
                round.missing_failed += 1;
            }
        }
    }
}

fn step(name: &str) -> Step {
    crate::instance::step(name, now_ms())
}
