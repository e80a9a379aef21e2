//! `--retention-days N`: uploads older than N days are deleted, through the
//! same [`crate::delete::erase`] as an owner's delete. Off by default.
//!
//! An image's age comes from its id (a UUID v7 carries its upload time), so
//! the sweep reads one directory listing and no file. Every web server may
//! sweep: deleting twice is harmless.

use std::time::Duration;

use tokio::sync::watch;

use crate::AppState;
use crate::delete::{Reason, erase};

/// How often the sweeper looks.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Sweeps now, then every hour, until `stopping` becomes true.
pub async fn sweep_until_stopped(app: AppState, days: u32, mut stopping: watch::Receiver<bool>) {
    loop {
        match sweep(&app, days, crate::progress::now_ms()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, days, "Deleted the uploads past the retention period."),
            Err(error) => tracing::warn!(%error, "The retention sweep failed; it runs again in an hour."),
        }
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// Deletes every upload more than `days` old at `now_ms`; returns how many were deleted.
pub async fn sweep(app: &AppState, days: u32, now_ms: u64) -> std::io::Result<usize> {
    let cutoff_ms = now_ms.saturating_sub(u64::from(days) * 24 * 3600 * 1000);
    let mut expired = app.store.list(thumbq_contract::Listing::Originals).await?;
    expired.retain(|id| id.uploaded_at_ms() < cutoff_ms);
    let mut deleted = 0;
    for id in &expired {
        // One image that cannot be deleted now must not keep the others.
        match erase(app, *id, Reason::Retention).await {
            Ok(()) => deleted += 1,
            Err(error) => tracing::warn!(image.id = %id, %error, "Could not delete an upload past its retention; trying again next sweep."),
        }
    }
    Ok(deleted)
}
