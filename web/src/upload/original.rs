//! An upload's original in the store, from its received file: removed again
//! unless its record is committed (see `upload::keep`).

use thumbq_contract::{OwnerId, ResizeJob, StorageKey};
use thumbq_repo::NewImage;
use thumbq_store::Store;

use super::receive::ReceivedFile;
use crate::progress::now_ms;

impl ReceivedFile {
    /// Stores the file as the original, where workers can find it.
    ///
    /// In a task of its own: if the client hangs up meanwhile, the task still
    /// runs to its end, and the guard it returns, dropped with it, removes
    /// what it wrote.
    pub(super) async fn store(self, store: &Store, owner: OwnerId, client: Option<String>, delete_token_hash: String) -> std::io::Result<StoredOriginal> {
        let store = store.clone();
        tokio::spawn(async move {
            let id = self.id;
            let written = RemoveStoredOnDrop::new(&store, [StorageKey::Original(id)]);
            if let Err(error) = store.store_original(id, self.part.path().to_owned()).await {
                written.discard().await;
                return Err(error);
            }
            self.part.keep();
            let job = ResizeJob::new(id, self.format, now_ms()).traced(thumbq_contract::TraceParent::new());
            let image = NewImage {
                id,
                owner,
                name: self.name,
                format: self.format,
                bytes: self.size,
                content_hash: self.content_hash,
                width: self.width,
                height: self.height,
                created_ms: id.uploaded_at_ms(),
                delete_token_hash: Some(delete_token_hash),
                client,
            };
            Ok(StoredOriginal { file: written, job, image, stored_ms: now_ms() })
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// An original whose job is not confirmed yet; deleted when dropped unless kept.
pub(super) struct StoredOriginal {
    file: RemoveStoredOnDrop,
    pub(super) job: ResizeJob,
    /// Its record, as the repository will keep it.
    pub(super) image: NewImage,
    /// When the original was on disk, fsynced.
    pub(super) stored_ms: u64,
}

impl StoredOriginal {
    /// Keeps the original; its job and when it was stored.
    pub(super) fn keep(self) -> (ResizeJob, u64) {
        self.file.keep();
        (self.job, self.stored_ms)
    }

    /// Removes the original now.
    pub(super) async fn discard(self) {
        self.file.discard().await;
    }
}

/// Stored files removed when this is dropped, unless kept: the store's
/// counterpart of [`super::receive::IncomingFile`]. Dropped, it removes them in a task of its
/// own; [`RemoveStoredOnDrop::discard`] removes them before it returns.
struct RemoveStoredOnDrop {
    store: Store,
    keys: Vec<StorageKey>,
}

impl RemoveStoredOnDrop {
    fn new(store: &Store, keys: impl IntoIterator<Item = StorageKey>) -> Self {
        Self { store: store.clone(), keys: keys.into_iter().collect() }
    }

    fn keep(mut self) {
        self.keys.clear();
    }

    async fn discard(mut self) {
        for key in std::mem::take(&mut self.keys) {
            if let Err(error) = self.store.remove(key).await {
                tracing::warn!(%error, ?key, "Could not remove a file of an upload that was not accepted.");
            }
        }
    }
}

impl Drop for RemoveStoredOnDrop {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut self.keys);
        if keys.is_empty() {
            return;
        }
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(Self { store, keys }.discard());
        }
    }
}
