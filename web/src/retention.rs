//! `--retention-days N`: uploads older than N days are deleted, through the
//! same [`crate::delete::erase`] as an owner's delete. Off by default.
//!
//! The expired images are one query on their records, oldest first. Every
//! web server may sweep: deleting twice is harmless.

use std::time::Duration;

use tokio::sync::watch;

use crate::AppState;
use crate::delete::{Reason, erase};
use crate::error::AppError;

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

/// How many expired images one sweep reads at a time.
const SWEEP_BATCH: usize = 500;

/// Deletes every upload more than `days` old at `now_ms`; returns how many were deleted.
pub async fn sweep(app: &AppState, days: u32, now_ms: u64) -> Result<usize, AppError> {
    let cutoff_ms = now_ms.saturating_sub(u64::from(days) * 24 * 3600 * 1000);
    let mut deleted = 0;
    loop {
        let expired = app.repo.created_before(cutoff_ms, SWEEP_BATCH).await?;
        let mut progressed = false;
        for id in &expired {
            // One image that cannot be deleted now must not keep the others.
            match erase(app, *id, Reason::Retention).await {
                Ok(_) => {
                    deleted += 1;
                    progressed = true;
                }
                Err(error) => tracing::warn!(image.id = %id, %error, "Could not delete an upload past its retention; trying again next sweep."),
            }
        }
        if expired.len() < SWEEP_BATCH || !progressed {
            return Ok(deleted);
        }
    }
}
