//! Free space on the data directory's disk: uploads are refused (507) below
//! `--min-free-bytes`, so that a full disk never turns into half-written
//! files and 500s, and `/readyz` and `/metrics` say how much is left.

use std::path::Path;

/// Bytes an unprivileged process may still write on the file system of `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}
