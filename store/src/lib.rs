//! Where thumbq keeps what it stores, behind one seam: the files named by
//! [`StorageKey`] live in the local data directory (the default) or in an
//! S3-compatible bucket, and web server and workers never tell which.
//!
//! - [`Store`]: the seam, async, for the web server and the consumers' loops.
//! - [`BlockingStore`]: the same, for a job on its blocking thread.
//! - [`StoreSettings`]: the flags that choose a store.
//! - [`durable`]: the fsynced, atomic file writes of the local directory (and the spools).
//!
//! What a reader sees is the same on both: a file appears whole or not at all
//! (a rename; a PUT), and a `Durability::Now` write survives a power cut when
//! the call returns. What stays local by design is the web server's scratch
//! space for uploads being received (`incoming/`) and the spools.

pub mod data_dir;
pub mod durable;
mod local;
mod s3;
mod settings;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thumbq_contract::{ImageId, Listing, Manifest, Storage, StorageKey, ThumbFormat, ThumbSize, UploadId};

pub use s3::{Object, Opened};
pub use settings::{S3Location, StoreSettings};

/// How soon a written file must survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the call returns.
    Now,
    /// When [`Store::sync_thumbnails`] returns: an image's thumbnails, made durable together.
    WithThumbnails,
    /// Never waited for: records a crash may lose, such as a timeline.
    BestEffort,
}

/// The object store did not answer, or answered with an error of its own.
/// The web server says 503 and keeps nothing; a worker waits and tries again.
#[derive(Debug, thiserror::Error)]
#[error("the object store is unavailable: {0}")]
pub struct Unavailable(pub String);

/// Whether `error` means the store could not be reached (rather than a file missing or a disk error).
pub fn is_unavailable(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<Unavailable>())
}

/// The data directory or the bucket where originals, thumbnails and records live.
#[derive(Debug, Clone)]
pub struct Store(Arc<Backend>);

#[derive(Debug)]
enum Backend {
    Local(Storage),
    S3(s3::S3Store),
}

impl Store {
    /// The local data directory `root`.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self(Arc::new(Backend::Local(Storage::new(root))))
    }

    /// The store `settings` choose, with `data_dir` as the local default.
    pub fn from_settings(data_dir: &Path, settings: &StoreSettings) -> Result<Self, String> {
        match &settings.store {
            None => Ok(Self::local(data_dir)),
            Some(location) => Ok(Self(Arc::new(Backend::S3(s3::S3Store::new(location, settings)?)))),
        }
    }

    /// Whether this is an S3 bucket rather than the data directory.
    pub fn is_bucket(&self) -> bool {
        matches!(&*self.0, Backend::S3(_))
    }

    /// Where this store is, for people: a directory, or `s3://bucket/prefix at endpoint`.
    pub fn describe(&self) -> String {
        match &*self.0 {
            Backend::Local(storage) => storage.root().display().to_string(),
            Backend::S3(store) => store.describe(),
        }
    }

    /// Writes `bytes` as `key`, whole or not at all.
    pub async fn put(&self, key: StorageKey, bytes: Vec<u8>, durability: Durability) -> io::Result<()> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::put(storage, &key, &bytes, durability)).await,
            Backend::S3(store) => store.put(&key, bytes).await,
        }
    }

    /// Makes an image's thumbnails written [`Durability::WithThumbnails`] durable.
    pub async fn sync_thumbnails(&self, id: ImageId) -> io::Result<()> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::sync_thumbnails(storage, id)).await,
            // Every PUT is durable when it is answered.
            Backend::S3(_) => Ok(()),
        }
    }

    /// The whole of `key`; `None` when there is no such file.
    pub async fn get(&self, key: StorageKey) -> io::Result<Option<Vec<u8>>> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::get(storage, &key)).await,
            Backend::S3(store) => store.get(&key).await,
        }
    }

    /// The size of `key` in bytes; `None` when there is no such file.
    pub async fn size(&self, key: StorageKey) -> io::Result<Option<u64>> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::size(storage, &key)).await,
            Backend::S3(store) => store.size(&key).await,
        }
    }

    /// Whether `key` is there.
    pub async fn exists(&self, key: StorageKey) -> io::Result<bool> {
        Ok(self.size(key).await?.is_some())
    }

    /// The first `count` bytes of `key` (all of it when shorter); `None` when there is no such file.
    pub async fn first_bytes(&self, key: StorageKey, count: u64) -> io::Result<Option<Vec<u8>>> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::first_bytes(storage, &key, count)).await,
            Backend::S3(store) => store.first_bytes(&key, count).await,
        }
    }

    /// The format a worker wrote the thumbnail of `size` in, if it has.
    /// A HEAD per format until one is there: on AWS a LIST of the image's
    /// folder costs ten times a HEAD, and some S3-compatible servers walk the
    /// whole bucket for it.
    pub async fn thumbnail(&self, id: ImageId, size: ThumbSize) -> io::Result<Option<ThumbFormat>> {
        for format in ThumbFormat::BASELINE {
            if self.exists(StorageKey::Thumbnail(id, size, format)).await? {
                return Ok(Some(format));
            }
        }
        Ok(None)
    }

    /// Removes `key` durably; one already gone is fine.
    pub async fn remove(&self, key: StorageKey) -> io::Result<()> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::remove(storage, &key)).await,
            Backend::S3(store) => store.remove(&key).await,
        }
    }

    /// Removes an image's thumbnails (and the placeholder file an earlier release kept beside them).
    pub async fn remove_thumbnails(&self, id: ImageId) -> io::Result<()> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::remove_thumbnails(storage, id)).await,
            Backend::S3(store) => store.remove_thumbnails(id).await,
        }
    }

    /// The images a folder names, in no particular order.
    pub async fn list(&self, listing: Listing) -> io::Result<Vec<ImageId>> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::list(storage, listing)).await,
            Backend::S3(store) => store.list(listing).await,
        }
    }

    /// Stores the complete upload at `part` (a local file, consumed) as the
    /// original of `id`, durably: locally a rename; on S3 a PUT, or a
    /// multipart upload for a large file, streamed from the file.
    pub async fn store_original(&self, id: ImageId, part: PathBuf) -> io::Result<()> {
        self.store_file(StorageKey::Original(id), part).await
    }

    /// Stores the local file `part` (consumed) as `key`, durably, as [`Store::store_original`] does.
    pub async fn store_file(&self, key: StorageKey, part: PathBuf) -> io::Result<()> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::store_file(storage, &key, &part)).await,
            Backend::S3(store) => store.store_file(&key, &part).await,
        }
    }

    /// Removes every part of the resumable upload `upload`; none there is fine.
    pub async fn remove_upload(&self, upload: UploadId) -> io::Result<()> {
        match &*self.0 {
            Backend::Local(storage) => blocking(storage, move |storage| local::remove_upload(storage, upload)).await,
            Backend::S3(store) => store.remove_upload(upload).await,
        }
    }

    /// `key` to serve: `None` when there is none. A local file is served as
    /// a file (ranges, conditional requests); an object is streamed, and
    /// comes without a body when it is not newer than `if_modified_since`.
    pub async fn serve(&self, key: StorageKey, if_modified_since: Option<std::time::SystemTime>, head_only: bool) -> io::Result<Option<Opened>> {
        match &*self.0 {
            Backend::Local(storage) => {
                let path = storage.path(&key);
                Ok(blocking(storage, move |storage| local::size(storage, &key)).await?.map(|_| Opened::File(path)))
            }
            Backend::S3(store) => Ok(store.open(&key, if_modified_since, head_only).await?.map(Opened::Object)),
        }
    }

    /// The manifest, or `None` when this store is not (yet) a thumbq store.
    pub async fn read_manifest(&self) -> io::Result<Option<Manifest>> {
        let Some(bytes) = self.get(StorageKey::Manifest).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    /// Writes the manifest unless one is there already; returns the one in force.
    pub async fn init_manifest(&self, manifest: &Manifest) -> io::Result<Manifest> {
        match &*self.0 {
            Backend::Local(storage) => {
                let manifest = manifest.clone();
                blocking(storage, move |storage| {
                    data_dir::create_dirs(storage)?;
                    data_dir::init_manifest(storage, &manifest)
                })
                .await
            }
            Backend::S3(store) => store.init_manifest(manifest).await,
        }
    }

    /// Whether the store answers and is still thumbq's (its manifest is there): for `/readyz`.
    pub async fn check(&self) -> io::Result<()> {
        match &*self.0 {
            Backend::Local(_) => Ok(()),
            Backend::S3(_) => match self.size(StorageKey::Manifest).await? {
                Some(_) => Ok(()),
                None => Err(io::Error::new(io::ErrorKind::NotFound, "its thumbq.json is gone (a bucket emptied or another prefix?)")),
            },
        }
    }

    /// This store for a job's blocking thread.
    pub fn blocking(&self) -> BlockingStore {
        BlockingStore { store: self.clone() }
    }
}

/// Makes ring the process's TLS provider, which every reqwest client needs
/// before it is built: reqwest is built without one of its own (see
/// Cargo.toml), so that no aws-lc-rs is built. Installing it twice is harmless.
pub fn install_tls_provider() {
    // An error only says that a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs a local file operation off the async runtime.
async fn blocking<T: Send + 'static>(storage: &Storage, work: impl FnOnce(&Storage) -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || work(&storage)).await.map_err(io::Error::other)?
}

/// A [`Store`] for code on a blocking thread (a job), which waits for each call.
/// A local directory is used directly; S3 through the runtime the thread
/// belongs to (`spawn_blocking`'s threads do), so it must be called on one.
#[derive(Debug, Clone)]
pub struct BlockingStore {
    store: Store,
}

impl BlockingStore {
    /// [`Store::put`].
    pub fn put(&self, key: StorageKey, bytes: Vec<u8>, durability: Durability) -> io::Result<()> {
        match &*self.store.0 {
            // No detour through the runtime for a local file.
            Backend::Local(storage) => local::put(storage, &key, &bytes, durability),
            Backend::S3(store) => tokio::runtime::Handle::current().block_on(store.put(&key, bytes)),
        }
    }

    /// [`Store::sync_thumbnails`].
    pub fn sync_thumbnails(&self, id: ImageId) -> io::Result<()> {
        match &*self.store.0 {
            Backend::Local(storage) => local::sync_thumbnails(storage, id),
            Backend::S3(_) => Ok(()),
        }
    }

    /// The whole of `key` if it has at most `limit` bytes, asked in one
    /// request: `Ok(None)` when there is no such file, `Err(size)` inside when
    /// it is larger (and nothing of it was read).
    pub fn get_at_most(&self, key: StorageKey, limit: u64) -> io::Result<Option<Result<Vec<u8>, u64>>> {
        match &*self.store.0 {
            Backend::Local(storage) => local::get_at_most(storage, &key, limit),
            Backend::S3(store) => tokio::runtime::Handle::current().block_on(store.get_at_most(&key, limit)),
        }
    }

    /// [`Store::remove_thumbnails`].
    pub fn remove_thumbnails(&self, id: ImageId) -> io::Result<()> {
        match &*self.store.0 {
            Backend::Local(storage) => local::remove_thumbnails(storage, id),
            Backend::S3(store) => tokio::runtime::Handle::current().block_on(store.remove_thumbnails(id)),
        }
    }
}
