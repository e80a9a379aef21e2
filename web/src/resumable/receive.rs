//! A request's bytes of an upload: streamed to `incoming/`, stored a part at
//! a time, and, with the last byte, put together and kept as an image.

use std::net::IpAddr;
use std::time::Instant;

use axum::body::Body;
use futures_util::StreamExt;
use thumbq_contract::{ImageId, SourceFormat, StorageKey};
use thumbq_repo::{UploadPart, UploadRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::discard;
use super::turns::Turn;
use crate::AppState;
use crate::content_hash::ContentHasher;
use crate::error::AppError;
use crate::upload::IncomingFile;

/// Receives a request's bytes of `upload` from where it stands; returns where it stands after.
///
/// In a task of its own: when the client goes (a cut connection drops the
/// request's future), the bytes that arrived are still stored and counted.
pub(super) async fn receive(app: &AppState, upload: UploadRecord, body: Body, client: Option<IpAddr>, received_ms: u64, turn: Turn) -> Result<u64, AppError> {
    let app = app.clone();
    tokio::spawn(async move { receive_whole_or_cut(&app, upload, body, client, received_ms, &turn).await }).await.map_err(anyhow::Error::from)?
}

/// How a request's body ended.
enum Ended {
    /// Its last byte arrived.
    Whole,
    /// Before its end, for this reason; what arrived is kept.
    Early(AppError),
}

/// Bytes after which what a request brought so far is stored as a part and
/// counted: a web server killed mid-request loses at most this much of it.
const PART_BYTES: u64 = 1024 * 1024;

async fn receive_whole_or_cut(
    app: &AppState,
    mut upload: UploadRecord,
    body: Body,
    client: Option<IpAddr>,
    received_ms: u64,
    turn: &Turn,
) -> Result<u64, AppError> {
    let _in_progress = app.uploads.take(client).map_err(|_| AppError::UploadsInProgress { limit: app.settings.max_uploads_per_client })?;
    let mut charge = app.upload_limiter.admit_bytes(client)?;
    // Each request that ends stores a part: a client cutting its own requests short must not make them without end.
    if upload.parts.len() as u64 >= most_parts(upload.length) {
        return Err(AppError::BadUploadRequest("This upload came in too many pieces: cancel it and start again."));
    }
    let sent_from = upload.received;
    let mut scratch = Scratch::create(app).await?;
    // An upload that arrives whole in one part is hashed as it arrives; one in parts, as they are put together.
    let mut hash = (sent_from == 0).then(ContentHasher::new);
    let mut head = Vec::with_capacity(SourceFormat::SNIFF_LEN);
    let mut stream = body.into_data_stream();
    let idle = app.settings.upload_idle_timeout();
    let mut touched = Instant::now();
    let ended = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(idle, stream.next()) => next,
            () = turn.asked_to_stop() => break Ended::Early(AppError::BadUploadRequest("A newer request for this upload took over from this one. What arrived is kept.")),
        };
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break Ended::Whole,
            Ok(Some(Err(_))) => {
                break Ended::Early(AppError::BadUploadRequest(
                    "The request ended before its body did. What arrived is kept: ask where the upload stands (HEAD) and send the rest.",
                ));
            }
            Err(_) => break Ended::Early(AppError::UploadStalled { idle_secs: idle.as_secs() }),
        };
        if let Err(refused) = charge.bytes(chunk.len() as u64) {
            break Ended::Early(refused);
        }
        if upload.received + scratch.bytes + chunk.len() as u64 > upload.length {
            return Err(AppError::BadUploadRequest(
                "The request sent more bytes than the upload's Upload-Length; those of its bytes not stored yet were not kept.",
            ));
        }
        if sent_from == 0 && head.len() < SourceFormat::SNIFF_LEN {
            let wanted = SourceFormat::SNIFF_LEN - head.len();
            head.extend_from_slice(&chunk[..wanted.min(chunk.len())]);
            // Refused as soon as the first bytes tell, not after the whole file.
            if head.len() == SourceFormat::SNIFF_LEN && SourceFormat::sniff(&head).is_none() {
                discard(app, upload.id).await?;
                return Err(AppError::NotAnImage { file: upload.name });
            }
        }
        if let Some(hash) = &mut hash {
            hash.update(&chunk);
        }
        scratch.write(&chunk).await?;
        // The last bytes finish the upload; a part is stored only of bytes before them.
        if scratch.bytes >= PART_BYTES && upload.received + scratch.bytes < upload.length {
            let full = std::mem::replace(&mut scratch, Scratch::create(app).await?);
            store_part(app, &mut upload, full).await?;
        }
        if touched.elapsed() > crate::cleanup::TOUCH_EVERY {
            touched = Instant::now();
            crate::upload::touch(&[scratch.guard.path().to_owned()]).await;
        }
    };
    scratch.out.flush().await?;
    if upload.received + scratch.bytes == upload.length {
        let hash = hash.filter(|_| upload.parts.is_empty());
        return finish(app, &upload, scratch, hash, received_ms).await;
    }
    // The first bytes are kept only once they tell the format: a client sending
    // a byte at a time must not slip past the check.
    let too_short_to_tell = sent_from == 0 && upload.parts.is_empty() && scratch.bytes < SourceFormat::SNIFF_LEN as u64;
    if scratch.bytes > 0 && !too_short_to_tell {
        store_part(app, &mut upload, scratch).await?;
    }
    match ended {
        Ended::Whole => Ok(upload.received),
        Ended::Early(error) => Err(error),
    }
}

/// The most parts an upload of `length` bytes may be stored in: one a MiB, and
/// room for many requests cut short.
fn most_parts(length: u64) -> u64 {
    length.div_ceil(PART_BYTES) + 256
}

/// A request's bytes not yet stored, in `incoming/`.
struct Scratch {
    id: ImageId,
    guard: IncomingFile,
    out: tokio::io::BufWriter<tokio::fs::File>,
    bytes: u64,
}

impl Scratch {
    async fn create(app: &AppState) -> Result<Self, AppError> {
        let id = ImageId::new();
        let guard = IncomingFile::new(app.storage.path(&StorageKey::Incoming(id)));
        let out = crate::upload::incoming_file(guard.path()).await?;
        Ok(Self { id, guard, out, bytes: 0 })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), AppError> {
        self.out.write_all(chunk).await?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }
}

/// Stores `scratch` as the upload's next part and counts it, if the upload
/// still stands where it did (else another request's bytes came first: 409).
async fn store_part(app: &AppState, upload: &mut UploadRecord, mut scratch: Scratch) -> Result<(), AppError> {
    scratch.out.flush().await?;
    drop(scratch.out);
    let part = UploadPart { start: upload.received, bytes: scratch.bytes, part: random_part_name() };
    let key = StorageKey::UploadPart(upload.id, part.part);
    app.store.store_file(key, scratch.guard.path().to_owned()).await?;
    if !app.repo.add_part(upload.id, part).await? {
        app.store.remove(key).await?;
        return match app.repo.upload(upload.id).await? {
            Some(now) => Err(AppError::OffsetMismatch { received: now.received, sent: part.start }),
            // Cancelled or expired meanwhile: the folder this part made goes too.
            None => {
                app.store.remove_upload(upload.id).await?;
                Err(AppError::UnknownUpload)
            }
        };
    }
    upload.received += part.bytes;
    upload.parts.push(part);
    Ok(())
}

/// Puts the upload's stored parts and its `last` bytes together and keeps the
/// file as an image (`hash`: of the whole, when it came in one piece); returns the upload's length. A file refused for what it
/// is takes the upload with it.
async fn finish(app: &AppState, upload: &UploadRecord, last: Scratch, hash: Option<ContentHasher>, received_ms: u64) -> Result<u64, AppError> {
    drop(last.out);
    let (id, whole, hash) = match hash {
        Some(hash) => (last.id, last.guard, hash),
        None => {
            let id = ImageId::new();
            let whole = IncomingFile::new(app.storage.path(&StorageKey::Incoming(id)));
            let mut out = crate::upload::incoming_file(whole.path()).await?;
            let mut hash = ContentHasher::new();
            for part in &upload.parts {
                copy_part(app, StorageKey::UploadPart(upload.id, part.part), &mut out, &mut hash).await?;
            }
            let mut file = tokio::fs::File::open(last.guard.path()).await?;
            let mut buffer = vec![0; 256 * 1024];
            loop {
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    break;
                }
                hash.update(&buffer[..read]);
                out.write_all(&buffer[..read]).await?;
            }
            out.flush().await?;
            (id, whole, hash)
        }
    };
    let mut head = vec![0; SourceFormat::SNIFF_LEN];
    let mut file = tokio::fs::File::open(whole.path()).await?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]).await? {
            0 => break,
            read => filled += read,
        }
    }
    head.truncate(filled);
    let refused = |error: AppError| async move {
        discard(app, upload.id).await?;
        Err(error)
    };
    let size = tokio::fs::metadata(whole.path()).await?.len();
    if size != upload.length {
        return Err(AppError::Internal(anyhow::anyhow!("the parts of upload {} make {size} bytes, not {}", upload.id, upload.length)));
    }
    let Some(format) = SourceFormat::sniff(&head) else { return refused(AppError::NotAnImage { file: upload.name.clone() }).await };
    let received = match crate::upload::recognised(id, whole, upload.name.clone(), upload.length, format, hash, &app.settings.limits()).await {
        Ok(received) => received,
        Err(error) if error.is_about_one_file() => return refused(error).await,
        Err(error) => return Err(error),
    };
    let client = upload.client.as_deref().and_then(|client| client.parse().ok());
    // Checked at creation against what was kept then; again now, against what other uploads kept meanwhile
    // (unless these bytes are an image the owner has: a retry of this very request, say, which
    // is asked only of an upload over the quota, not of every one).
    if let Err(over) = crate::quota::check(app, &upload.owner, client, upload.length).await
        && app.repo.same_bytes(&upload.owner, &received.content_hash).await?.is_none()
    {
        return refused(over).await;
    }
    let accepted = crate::upload::keep(app, upload.owner, upload.client.clone(), vec![received], Vec::new(), received_ms).await?;
    app.quota_counts.accepted(&upload.owner, client, accepted.bytes, received_ms);
    let duplicates = accepted.images.iter().filter(|image| image.duplicate_of.is_some()).count() as u64;
    app.metrics.accepted(accepted.images.len() as u64 - duplicates, duplicates, accepted.bytes);
    let answer = crate::upload::accepted_answer(&accepted.images, None, Vec::new()).to_string();
    // `false`: another request finished it first, with the same image.
    app.repo.finish_upload(upload.id, &answer).await?;
    if let Err(error) = app.store.remove_upload(upload.id).await {
        tracing::warn!(upload.id = %upload.id, %error, "Could not remove the parts of a finished upload; they go when it expires.");
    }
    Ok(upload.length)
}

/// Appends the stored part `key` to `out`.
async fn copy_part(app: &AppState, key: StorageKey, out: &mut tokio::io::BufWriter<tokio::fs::File>, hash: &mut ContentHasher) -> Result<(), AppError> {
    let missing = || AppError::Internal(anyhow::anyhow!("the part {} of an upload is missing from the store", key.name()));
    match app.store.serve(key, None, false).await?.ok_or_else(missing)? {
        thumbq_store::Opened::File(path) => {
            let mut file = tokio::fs::File::open(path).await?;
            let mut buffer = vec![0; 256 * 1024];
            loop {
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    return Ok(());
                }
                hash.update(&buffer[..read]);
                out.write_all(&buffer[..read]).await?;
            }
        }
        thumbq_store::Opened::Object(object) => {
            let mut body = object.body.ok_or_else(missing)?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                hash.update(&chunk);
                out.write_all(&chunk).await?;
            }
            Ok(())
        }
    }
}

/// A random name for a part, below 2⁶³ so that both databases keep it as it is.
fn random_part_name() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    u64::from_le_bytes(bytes) & (i64::MAX as u64)
}
