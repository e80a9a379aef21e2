//! An S3-compatible bucket, through `object_store`. A PUT is atomic (a
//! reader sees the old object, none, or the whole new one) and durable once
//! answered, so nothing here needs temporary names or syncs.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart};
use thumbq_contract::{ImageId, Listing, Manifest, StorageKey, UploadId};
use tokio::io::AsyncReadExt;

use crate::{S3Location, StoreSettings};
use errors::to_io;

mod errors;
#[cfg(test)]
mod tests;

/// An original up to this size goes in one PUT; a larger one in parts of this size.
/// It is also what one upload may hold in memory, twice over at most.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// What is served of a stored object.
pub enum Opened {
    /// A local file, served as a file.
    File(std::path::PathBuf),
    /// An object, streamed.
    Object(Object),
}

/// An object to serve: its metadata, and its bytes unless not asked for.
pub struct Object {
    pub size: u64,
    pub last_modified: SystemTime,
    /// `None` for a HEAD request, and when the object is not newer than asked.
    pub body: Option<BoxStream<'static, io::Result<Bytes>>>,
    /// `false` when the object is not newer than `If-Modified-Since`: a 304.
    pub modified: bool,
}

/// How long a request may take, and how often it is sent again, before the store counts as unavailable.
struct Patience {
    retry: RetryConfig,
    client: ClientOptions,
}

impl Patience {
    /// An outage must be answered in seconds (a 503, a postponed job), not after minutes of retries.
    fn serving() -> Self {
        Self {
            retry: RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                backoff: object_store::BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2), base: 2.0 },
            },
            client: ClientOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(Duration::from_secs(60)),
        }
    }
}

#[derive(Debug)]
pub struct S3Store {
    client: Arc<dyn ObjectStore>,
    location: S3Location,
    endpoint: Option<String>,
}

impl S3Store {
    pub fn new(location: &S3Location, settings: &StoreSettings) -> Result<Self, String> {
        Self::with_patience(location, settings, Patience::serving())
    }

    fn with_patience(location: &S3Location, settings: &StoreSettings, patience: Patience) -> Result<Self, String> {
        crate::install_tls_provider();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&settings.s3_region)
            .with_virtual_hosted_style_request(settings.s3_virtual_hosted)
            // Tags are an extra header some S3-compatible stores refuse; thumbq uses none.
            .with_disable_tagging(true)
            .with_retry(patience.retry)
            .with_client_options(patience.client)
            .with_http_connector(errors::KeepErrorAnswers);
        if let Some(endpoint) = &settings.s3_endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&settings.s3_access_key_id, &settings.s3_secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let client = builder.build().map_err(|error| format!("cannot use the S3 store {location}: {error}"))?;
        Ok(Self { client: Arc::new(client), location: location.clone(), endpoint: settings.s3_endpoint.clone() })
    }

    pub fn describe(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{} at {endpoint}", self.location),
            None => self.location.to_string(),
        }
    }

    fn path(&self, name: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{name}", self.location.prefix_with_slash()))
    }

    pub async fn put(&self, key: &StorageKey, bytes: Vec<u8>) -> io::Result<()> {
        self.client.put(&self.path(&key.name()), PutPayload::from(bytes)).await.map(drop).map_err(to_io)
    }

    pub async fn get(&self, key: &StorageKey) -> io::Result<Option<Vec<u8>>> {
        match self.client.get(&self.path(&key.name())).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(to_io)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(to_io(error)),
        }
    }

    /// One GET: its answer's length says whether the body is read at all.
    pub async fn get_at_most(&self, key: &StorageKey, limit: u64) -> io::Result<Option<Result<Vec<u8>, u64>>> {
        match self.client.get(&self.path(&key.name())).await {
            Ok(result) if result.meta.size > limit => Ok(Some(Err(result.meta.size))),
            Ok(result) => Ok(Some(Ok(result.bytes().await.map_err(to_io)?.to_vec()))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(to_io(error)),
        }
    }

    pub async fn size(&self, key: &StorageKey) -> io::Result<Option<u64>> {
        match self.client.head(&self.path(&key.name())).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(to_io(error)),
        }
    }

    pub async fn remove(&self, key: &StorageKey) -> io::Result<()> {
        match self.client.delete(&self.path(&key.name())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(to_io(error)),
        }
    }

    /// Removes `keys` in one request (S3's DeleteObjects takes up to 1000).
    async fn remove_all(&self, keys: impl Iterator<Item = StorageKey>) -> io::Result<()> {
        let paths: Vec<_> = keys.map(|key| Ok(self.path(&key.name()))).collect();
        let removed: Vec<_> = self.client.delete_stream(futures_util::stream::iter(paths).boxed()).collect().await;
        for result in removed {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(to_io(error)),
            }
        }
        Ok(())
    }

    pub async fn remove_thumbnails(&self, id: ImageId) -> io::Result<()> {
        self.remove_all(StorageKey::thumbnails(id)).await
    }

    /// The first `count` bytes of `key` (fewer when it is shorter), in one ranged GET.
    pub async fn first_bytes(&self, key: &StorageKey, count: u64) -> io::Result<Option<Vec<u8>>> {
        let path = self.path(&key.name());
        let options = GetOptions { range: Some(object_store::GetRange::Bounded(0..count)), ..Default::default() };
        match self.client.get_opts(&path, options).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(to_io)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(to_io(error)),
        }
    }

    pub async fn list(&self, listing: Listing) -> io::Result<Vec<ImageId>> {
        let prefix = self.path(&listing.prefix());
        let objects: Vec<_> = self.client.list(Some(&prefix)).try_collect().await.map_err(to_io)?;
        Ok(objects.iter().filter_map(|object| object.location.filename().and_then(|name| listing.image_of(name))).collect())
    }

    /// Removes every part of a resumable upload, whatever their names.
    pub async fn remove_upload(&self, upload: UploadId) -> io::Result<()> {
        let prefix = self.path(&format!("uploads/{upload}/"));
        let objects: Vec<_> = self.client.list(Some(&prefix)).try_collect().await.map_err(to_io)?;
        let removed: Vec<_> =
            self.client.delete_stream(futures_util::stream::iter(objects.into_iter().map(|object| Ok(object.location))).boxed()).collect().await;
        for result in removed {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(to_io(error)),
            }
        }
        Ok(())
    }

    /// Streams the file at `part` to the object `key`, then removes the file.
    pub async fn store_file(&self, key: &StorageKey, part: &Path) -> io::Result<()> {
        let path = self.path(&key.name());
        let mut file = tokio::fs::File::open(part).await?;
        let length = file.metadata().await?.len();
        if length <= PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(length as usize);
            file.read_to_end(&mut bytes).await?;
            self.client.put(&path, PutPayload::from(bytes)).await.map_err(to_io)?;
        } else {
            let upload = self.client.put_multipart(&path).await.map_err(to_io)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let sent = async {
                let mut buffer = vec![0; 256 * 1024];
                loop {
                    // At most two parts in flight: the memory an upload holds stays bounded.
                    writer.wait_for_capacity(2).await.map_err(to_io)?;
                    let read = file.read(&mut buffer).await?;
                    if read == 0 {
                        return Ok::<_, io::Error>(());
                    }
                    writer.write(&buffer[..read]);
                }
            }
            .await;
            match sent {
                Ok(()) => drop(writer.finish().await.map_err(to_io)?),
                Err(error) => {
                    // Parts already sent would otherwise be kept (and billed) by the store.
                    let _ = writer.abort().await;
                    return Err(error);
                }
            }
        }
        tokio::fs::remove_file(part).await
    }

    pub async fn open(&self, key: &StorageKey, if_modified_since: Option<SystemTime>, head_only: bool) -> io::Result<Option<Object>> {
        let path = self.path(&key.name());
        // Decided here rather than by the store: not every S3-compatible server honours If-Modified-Since.
        if let Some(since) = if_modified_since {
            let meta = match self.client.head(&path).await {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(to_io(error)),
            };
            let last_modified: SystemTime = meta.last_modified.into();
            // HTTP dates have whole seconds.
            if last_modified.duration_since(since).is_err() || last_modified.duration_since(since).is_ok_and(|newer| newer < Duration::from_secs(1)) {
                return Ok(Some(Object { size: meta.size, last_modified, body: None, modified: false }));
            }
        }
        match self.client.get_opts(&path, GetOptions { head: head_only, ..Default::default() }).await {
            Ok(result) => {
                let (size, last_modified) = (result.meta.size, result.meta.last_modified.into());
                let body = (!head_only).then(|| result.into_stream().map_err(to_io).boxed());
                Ok(Some(Object { size, last_modified, body, modified: true }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(to_io(error)),
        }
    }

    /// Writes the manifest unless there is one (a conditional PUT, so that
    /// of two first starts at once, one wins); returns the one in force.
    pub async fn init_manifest(&self, manifest: &Manifest) -> io::Result<Manifest> {
        let path = self.path(&StorageKey::Manifest.name());
        let bytes = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
        match self.client.put_opts(&path, PutPayload::from(bytes), PutOptions { mode: PutMode::Create, ..Default::default() }).await {
            Ok(_) => Ok(manifest.clone()),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                let bytes = self.get(&StorageKey::Manifest).await?.ok_or_else(|| io::Error::other("thumbq.json vanished as it was written"))?;
                serde_json::from_slice(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
            }
            Err(error) => Err(to_io(error)),
        }
    }
}
