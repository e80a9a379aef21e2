//! Where every file lives in the data directory.
//!
//! All paths are built here, from server-made ids only: nothing a client sends
//! ever becomes part of a path. The layout, below the data directory:
//!
//! ```text
//! incoming/{id}.part              an upload being received (web)
//! originals/{id}                  the upload as received, once complete (web)
//! thumbs/{id}/{size}.{jpg|png}    the thumbnails (worker)
//! failed/{id}.json                why the job failed for good (worker)
//! spool/jobs/                     the job queue in embedded mode (no RabbitMQ)
//! spool/outbox/                   jobs waiting for RabbitMQ to come back (web)
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ThumbFormat, ThumbSize};

/// The server-made identity of an upload: a UUID v7, so ids sort by upload time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Uuid);

impl ImageId {
    /// A fresh id for a new upload.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for ImageId {
    /// Always the lowercase hyphenated form, whatever form it was parsed from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for ImageId {
    type Err = uuid::Error;

    /// Accepts only the 36-character hyphenated form that [`fmt::Display`] prints.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 36 {
            return Err(Uuid::try_parse("not-36").unwrap_err());
        }
        Uuid::try_parse(text).map(Self)
    }
}

/// Every file thumbq stores, named by what it is rather than where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKey {
    /// An upload still arriving; it becomes the original by an atomic rename.
    Incoming(ImageId),
    /// The upload exactly as the client sent it.
    Original(ImageId),
    /// One thumbnail of an image.
    Thumbnail(ImageId, ThumbSize, ThumbFormat),
    /// The [`crate::FailureRecord`] of a job that failed for good.
    Failure(ImageId),
}

impl StorageKey {
    /// The path below the data directory.
    pub fn relative_path(&self) -> PathBuf {
        match self {
            Self::Incoming(id) => format!("incoming/{id}.part").into(),
            Self::Original(id) => format!("originals/{id}").into(),
            Self::Thumbnail(id, size, format) => format!("thumbs/{id}/{size}.{}", format.extension()).into(),
            Self::Failure(id) => format!("failed/{id}.json").into(),
        }
    }

    /// The `Cache-Control` to serve the file with. Thumbnails never change once
    /// written, so a browser may keep them forever.
    pub fn cache_control(&self) -> &'static str {
        match self {
            Self::Thumbnail(..) | Self::Original(_) => "public, max-age=31536000, immutable",
            Self::Incoming(_) | Self::Failure(_) => "no-store",
        }
    }
}

/// The data directory: the only place thumbq reads and writes files.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a stored file.
    pub fn path(&self, key: &StorageKey) -> PathBuf {
        self.root.join(key.relative_path())
    }

    /// The directory of the job queue in embedded mode, shared by web and workers.
    pub fn job_spool(&self) -> PathBuf {
        self.root.join("spool").join("jobs")
    }

    /// The directory where the web server keeps jobs RabbitMQ has not confirmed yet.
    pub fn outbox_spool(&self) -> PathBuf {
        self.root.join("spool").join("outbox")
    }

    /// Creates the directories every process expects to exist.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for dir in ["incoming", "originals", "thumbs", "failed"] {
            std::fs::create_dir_all(self.root.join(dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_inside_its_folder_and_named_by_id() {
        let id: ImageId = "0190b6a4-7c1e-7000-8000-000000000001".parse().unwrap();
        let storage = Storage::new("/data");
        assert_eq!(storage.path(&StorageKey::Original(id)), Path::new("/data/originals/0190b6a4-7c1e-7000-8000-000000000001"));
        assert_eq!(
            storage.path(&StorageKey::Thumbnail(id, ThumbSize::Medium, ThumbFormat::Png)),
            Path::new("/data/thumbs/0190b6a4-7c1e-7000-8000-000000000001/medium.png")
        );
        assert_eq!(StorageKey::Failure(id).relative_path(), Path::new("failed/0190b6a4-7c1e-7000-8000-000000000001.json"));
        assert_eq!(StorageKey::Incoming(id).relative_path(), Path::new("incoming/0190b6a4-7c1e-7000-8000-000000000001.part"));
    }

    #[test]
    fn ids_parse_only_from_their_canonical_form() {
        let canonical = "0190b6a4-7c1e-7000-8000-000000000001";
        assert_eq!(canonical.parse::<ImageId>().unwrap().to_string(), canonical);
        for bad in
            ["../../etc/passwd", "", "0190b6a47c1e70008000000000000001", "{0190b6a4-7c1e-7000-8000-000000000001}", "0190b6a4-7c1e-7000-8000-00000000000/"]
        {
            assert!(bad.parse::<ImageId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fresh_ids_sort_by_creation_time() {
        let first = ImageId::new();
        let second = ImageId::new();
        assert!(first < second);
    }
}
