//! Leftovers of a crash: `incoming/*.part` files that no upload writes any
//! more (a process killed mid-upload). A live upload writes its part at least
//! every `--upload-idle-timeout-secs`, or is ended, and touches the finished
//! parts of its request every [`TOUCH_EVERY`]; a part untouched for
//! [`STALE_AFTER`] longer than the idle timeout has no writer. Every web
//! server sweeps, at start and every few minutes; removing twice is harmless.
//!
//! (Jobs of a process killed mid-publish are the outbox's to recover: see
//! `dispatch`.)

use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::AppState;

/// How much longer than the idle timeout a part must be untouched to be a leftover.
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// How often an upload touches the parts of its request's earlier files, well within [`STALE_AFTER`].
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

const SWEEP_EVERY: Duration = Duration::from_secs(300);

pub async fn sweep_until_stopped(app: AppState, mut stopping: watch::Receiver<bool>) {
    loop {
        match sweep_parts(&app, SystemTime::now()).await {
            Ok(0) => {}
            Ok(removed) => tracing::warn!(removed, "Removed parts of uploads that no process writes any more."),
            Err(error) => tracing::warn!(%error, "Could not sweep the incoming directory."),
        }
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// Removes the parts untouched for the idle timeout plus [`STALE_AFTER`] at `now`; returns how many.
pub async fn sweep_parts(app: &AppState, now: SystemTime) -> std::io::Result<usize> {
    sweep_parts_in(&app.storage.root().join("incoming"), app.settings.upload_idle_timeout() + STALE_AFTER, now).await
}

async fn sweep_parts_in(incoming: &std::path::Path, stale: Duration, now: SystemTime) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut entries = tokio::fs::read_dir(incoming).await?;
    while let Some(entry) = entries.next_entry().await? {
        if !entry.file_name().to_string_lossy().ends_with(".part") {
            continue;
        }
        let Ok(modified) = entry.metadata().await.and_then(|metadata| metadata.modified()) else { continue };
        if now.duration_since(modified).is_ok_and(|age| age > stale) && tokio::fs::remove_file(entry.path()).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_parts_nobody_has_written_for_long_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (old, fresh, other) = (dir.path().join("a.part"), dir.path().join("b.part"), dir.path().join(".readyz"));
        for path in [&old, &fresh, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for path in [&old, &other] {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(an_hour_ago).unwrap();
        }
        assert_eq!(sweep_parts_in(dir.path(), Duration::from_secs(630), SystemTime::now()).await.unwrap(), 1);
        assert!(!old.exists() && fresh.exists() && other.exists());
    }
}
