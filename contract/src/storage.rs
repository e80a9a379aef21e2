//! Where every file lives in the data directory (or, with `--store`, below a bucket's prefix).
//!
//! All paths and object names are built here, from server-made ids only:
//! nothing a client sends ever becomes part of one. The layout, below the
//! data directory (the first two and the spools are always local; the rest
//! go to the bucket when there is one):
//!
//! ```text
//! thumbq.json                     the data directory's manifest (web, at its first start)
//! thumbq.db                       the metadata database, unless --database-url names another (thumbq-repo)
//! incoming/{id}.part              an upload being received (web)
//! originals/{id}                  the upload as received, once complete (web)
//! uploads/{upload}/{part}         the parts of a resumable upload, until it is complete (web)
//! thumbs/{id}/{size}.{jpg|png|webp}  the thumbnails (worker)
//! spool/jobs/                     the job queue in embedded mode (no RabbitMQ)
//! ```
//!
//! What is known about each image is its record in the repository, not a file.
//! Releases before the repository kept those facts as files beside the blobs
//! (`owners/{id}.json`, `by-owner/{owner}/{id}`, `failed/{id}.json`,
//! `timelines/{id}/{side}.json`, `thumbs/{id}/placeholder.thumbhash` and
//! tombstones in `deleted/`) and each web server's outbox in `spool/outbox/`;
//! their names are here only so that `thumbq-web migrate` can read them, and
//! nothing writes them any more.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use uuid::timestamp::{Timestamp, context::NoContext};

use crate::{OwnerId, ThumbFormat, ThumbSize};

/// The server-made identity of an upload: a UUID v7 whose 74 bits below the
/// millisecond timestamp are all random.
///
/// The id is the link to an unlisted image, so it must not be guessable:
/// `Uuid::now_v7` would put a counter in those bits, and an uploader could
/// find a neighbour's image from their own id. Ids still sort by upload time
/// to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Uuid);

impl ImageId {
    /// A fresh id for a new upload.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::new_v7(Timestamp::now(NoContext)))
    }

    /// When the image was uploaded, in milliseconds since the Unix epoch.
    pub fn uploaded_at_ms(&self) -> u64 {
        self.0.get_timestamp().map_or(0, |timestamp| {
            let (seconds, nanos) = timestamp.to_unix();
            seconds * 1000 + u64::from(nanos) / 1_000_000
        })
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

/// The server-made identity of a resumable upload: random (UUID v4), since
/// its URL is all a stranger would need to guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(Uuid);

impl UploadId {
    /// A fresh id for a new resumable upload.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for UploadId {
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
    /// Bytes of a resumable upload as one request brought them, named by a
    /// random number (two requests may race for the same offset).
    UploadPart(UploadId, u64),
    /// One thumbnail of an image.
    Thumbnail(ImageId, ThumbSize, ThumbFormat),
    /// An earlier release's: the image's ThumbHash.
    Placeholder(ImageId),
    /// An earlier release's: the [`crate::FailureRecord`] of a job that failed for good.
    Failure(ImageId),
    /// An earlier release's: the [`crate::OwnerRecord`] of an image.
    Owner(ImageId),
    /// An earlier release's: an empty file that put an image in its owner's list.
    OwnedImage(OwnerId, ImageId),
    /// An earlier release's: says that an image was deleted. Named by a hash of
    /// the id, so that no file names a deleted image.
    Tombstone(ImageId),
    /// An earlier release's: the steps of an image's way that one side (`web` or `worker`) took.
    Timeline(ImageId, &'static str),
    /// The data directory's (or bucket's) [`crate::Manifest`].
    Manifest,
}

/// The sides that keep a timeline, each in a file of its own.
pub const TIMELINE_SIDES: [&str; 2] = ["web", "worker"];

impl StorageKey {
    /// The name below the data directory or the bucket's prefix, `/`-separated.
    pub fn name(&self) -> String {
        match self {
            Self::Incoming(id) => format!("incoming/{id}.part"),
            Self::Original(id) => format!("originals/{id}"),
            Self::UploadPart(upload, part) => format!("uploads/{upload}/{part:016x}"),
            Self::Thumbnail(id, size, format) => format!("thumbs/{id}/{size}.{}", format.extension()),
            Self::Placeholder(id) => format!("thumbs/{id}/placeholder.thumbhash"),
            Self::Failure(id) => format!("failed/{id}.json"),
            Self::Owner(id) => format!("owners/{id}.json"),
            Self::OwnedImage(owner, id) => format!("by-owner/{owner}/{id}"),
            Self::Tombstone(id) => format!("deleted/{}", tombstone_name(*id)),
            Self::Timeline(id, side) => format!("timelines/{id}/{side}.json"),
            Self::Manifest => "thumbq.json".to_owned(),
        }
    }

    /// The path below the data directory.
    pub fn relative_path(&self) -> PathBuf {
        self.name().into()
    }

    /// Every file a worker may write in an image's thumbnail folder: each size in each format, and the placeholder.
    pub fn thumbnails(id: ImageId) -> impl Iterator<Item = StorageKey> {
        ThumbSize::ALL
            .into_iter()
            .flat_map(move |size| ThumbFormat::ALL.into_iter().map(move |format| Self::Thumbnail(id, size, format)))
            .chain([Self::Placeholder(id)])
    }

    /// Both sides' timelines of an image.
    pub fn timelines(id: ImageId) -> impl Iterator<Item = StorageKey> {
        TIMELINE_SIDES.into_iter().map(move |side| Self::Timeline(id, side))
    }

    /// The `Cache-Control` to serve the file with.
    ///
    /// A thumbnail's URL never changes, but the image can be deleted: an hour
    /// bounds how long a shared cache may keep serving a deleted thumbnail,
    /// and after it browsers revalidate cheaply (`Last-Modified`, 304).
    /// The original is its owner's alone: no shared cache may keep it.
    pub fn cache_control(&self) -> &'static str {
        match self {
            Self::Thumbnail(..) => "public, max-age=3600",
            Self::Original(_) => "private, no-cache",
            Self::Incoming(_)
            | Self::UploadPart(..)
            | Self::Placeholder(_)
            | Self::Failure(_)
            | Self::Owner(_)
            | Self::OwnedImage(..)
            | Self::Tombstone(_)
            | Self::Timeline(..)
            | Self::Manifest => "no-store",
        }
    }
}

/// A folder of stored files named by image id, listed whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every original: every image there is.
    Originals,
}

impl Listing {
    /// The folder's name, `/`-terminated, below the data directory or the bucket's prefix.
    pub fn prefix(&self) -> String {
        match self {
            Self::Originals => "originals/".to_owned(),
        }
    }

    /// The image a file of this folder is about, from its name; `None` for a
    /// file that is not one of ours (a temporary file, say).
    pub fn image_of(&self, file_name: &str) -> Option<ImageId> {
        match self {
            Self::Originals => file_name.parse().ok(),
        }
    }
}

/// The hex SHA-256 of the id: a tombstone's name, which does not give the id back.
fn tombstone_name(id: ImageId) -> String {
    let digest = Sha256::digest(format!("thumbq tombstone {id}"));
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The local data directory. With the default store, every file thumbq keeps
/// is here; with a bucket, only uploads being received and the spools.
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

    /// The directory of an image's thumbnails.
    pub fn thumbnail_dir(&self, id: ImageId) -> PathBuf {
        self.root.join("thumbs").join(id.to_string())
    }

    /// The directory of a resumable upload's parts.
    pub fn upload_dir(&self, upload: UploadId) -> PathBuf {
        self.root.join("uploads").join(upload.to_string())
    }

    /// An earlier release's: the embedded queue, one file per job (it is in the database now).
    pub fn job_spool(&self) -> PathBuf {
        self.root.join("spool").join("jobs")
    }

    /// An earlier release's: where each web server kept the jobs RabbitMQ had not confirmed.
    pub fn outbox_spool(&self) -> PathBuf {
        self.root.join("spool").join("outbox")
    }

    /// The manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("thumbq.json")
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
    fn fresh_ids_carry_their_upload_time_and_74_random_bits() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let ids: Vec<ImageId> = (0..64).map(|_| ImageId::new()).collect();
        let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(ids.iter().all(|id| (before..=after).contains(&id.uploaded_at_ms())));
        // Ids made in the same millisecond share their first 48 bits; below
        // the version and variant bits, every bit must vary among them.
        let random_bits = |id: &ImageId| id.0.as_u128() & ((0xfff << 64) | ((1 << 62) - 1));
        let (ones, zeros) = ids.iter().fold((0u128, 0u128), |(ones, zeros), id| (ones | random_bits(id), zeros | !random_bits(id)));
        assert_eq!(((ones & zeros) & ((0xfff << 64) | ((1 << 62) - 1))).count_ones(), 74, "each random bit was seen both set and clear");
    }

    #[test]
    fn a_tombstone_does_not_name_its_image() {
        let id = ImageId::new();
        let path = StorageKey::Tombstone(id).relative_path();
        assert!(path.starts_with("deleted"));
        assert!(!path.to_string_lossy().contains(&id.to_string()));
        assert_ne!(path, StorageKey::Tombstone(ImageId::new()).relative_path());
    }
}
