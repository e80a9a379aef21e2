//! Resumable uploads at `/uploads`: the tus 1.0.0 protocol (core, creation,
//! creation-with-upload, termination, expiration), beside `POST /images`.
//!
//! An upload is created with its length; its bytes then arrive in any number
//! of `PATCH` requests, to any web server. Each request's bytes stream to
//! `incoming/`, and are then stored as one part (`uploads/{upload}/{part}`)
//! and recorded in the repository, which says where the upload stands: a
//! request cut short keeps what arrived, and the client sends only the rest.
//! The request that brings the last byte puts the parts together and keeps
//! the file as `POST /images` keeps one (recognised, stored as the original,
//! recorded with its job); its answer is kept for `GET /uploads/{id}`.
//!
//! What `POST /images` checks holds here too: the owner's key (a stranger's
//! upload is a 404), the client's rates and uploads in progress, the free
//! disk, the daily quotas (against `Upload-Length`, at creation), the size
//! (`Upload-Length`, before a byte is sent), the format (as soon as the first
//! bytes arrive) and the pixel limits. An upload not finished in
//! `--resumable-expiry-secs` is removed with its bytes by the reconciler.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::content_hash::ContentHasher;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use thumbq_contract::{ImageId, SourceFormat, StorageKey, UploadId};
use thumbq_repo::{NewUpload, UploadPart, UploadRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::AppState;
use crate::error::{AppError, JsonError};
use crate::owner::{KeySource, OwnerKey, presented_key};
use crate::progress::now_ms;
use crate::upload::{IncomingFile, check_free_space, display_name};

/// The one version of tus spoken here.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions of tus this server has.
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
/// The only body a request with bytes of an upload has.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Given to an API client that created an upload without a key: the key that continues it and owns its image.
const OWNER_KEY_HEADER: &str = "thumbq-owner-key";

/// `OPTIONS /uploads`: what this server speaks.
pub async fn options(State(app): State<AppState>) -> Response {
    let max_size = app.settings.max_upload_bytes.to_string();
    (StatusCode::NO_CONTENT, [("tus-version", TUS_VERSION), ("tus-extension", EXTENSIONS)], [("tus-max-size", max_size)]).into_response()
}

/// `POST /uploads`: a new upload of `Upload-Length` bytes, with its first
/// bytes when the body has them (creation-with-upload).
pub async fn create(State(app): State<AppState>, request: Request) -> Response {
    answer(&app, created(&app, request).await)
}

/// `HEAD /uploads/{id}`: where the upload stands.
pub async fn status(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let outcome = async {
        check_version(&headers)?;
        let upload = owned(&app, &id, &headers).await?;
        let _turn = app.turns.take(upload.id).await?;
        let upload = owned(&app, &id, &headers).await?;
        let mut response = (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response();
        describe(response.headers_mut(), &upload, upload.received);
        response.headers_mut().insert("upload-length", HeaderValue::from(upload.length));
        Ok(response)
    };
    answer(&app, outcome.await)
}

/// `PATCH /uploads/{id}`: the upload's next bytes, from `Upload-Offset`, which must be where it stands.
pub async fn patch(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let received_ms = now_ms();
    let outcome = async {
        let (parts, body) = request.into_parts();
        check_version(&parts.headers)?;
        crate::same_origin::check(&parts.headers)?;
        if !has_upload_bytes(&parts.headers) {
            return Err(AppError::NotOffsetOctetStream);
        }
        let sent = number(&parts.headers, "upload-offset").ok_or(AppError::BadUploadRequest("Send where these bytes start as Upload-Offset."))?;
        let upload = owned(&app, &id, &parts.headers).await?;
        let turn = app.turns.take(upload.id).await?;
        let upload = owned(&app, &id, &parts.headers).await?;
        // The last request's answer was lost and it comes again: the upload is whole.
        if upload.answer.is_some() && sent == upload.length {
            return Ok(patched(&upload, upload.length));
        }
        if sent != upload.received || upload.answer.is_some() {
            return Err(AppError::OffsetMismatch { received: upload.received, sent });
        }
        let client = crate::client::address(&parts, &app.settings.trusted_proxies);
        check_free_space(&app).await?;
        let offset = receive(&app, upload.clone(), body, client, received_ms, turn).await?;
        Ok(patched(&upload, offset))
    };
    answer(&app, outcome.await)
}

/// `DELETE /uploads/{id}`: the upload is cancelled and its bytes removed
/// (termination). A finished upload's image stays: `DELETE /images/{id}` removes that.
pub async fn terminate(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let outcome = async {
        check_version(&headers)?;
        crate::same_origin::check(&headers)?;
        let upload = owned(&app, &id, &headers).await?;
        let _turn = app.turns.take(upload.id).await?;
        discard(&app, upload.id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    answer(&app, outcome.await)
}

/// `GET /uploads/{id}`: once the upload is whole, the answer `POST /images`
/// would have given for its file (JSON), without keys; 409 before.
pub async fn accepted(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let outcome = async {
        let upload = owned(&app, &id, &headers).await?;
        let answer = upload.answer.ok_or(AppError::UploadIncomplete { received: upload.received, length: upload.length })?;
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], answer).into_response())
    };
    answer(&app, outcome.await)
}

/// The requests receiving bytes of an upload on this server. A client whose
/// request was cut asks where the upload stands at once, while the server
/// may still be storing what that request brought: each request about an
/// upload takes its turn, so the answer counts those bytes and none are sent twice.
#[derive(Default)]
pub struct Turns(std::sync::Mutex<HashMap<UploadId, Arc<Lane>>>);

/// One upload's turns: who holds it, and a count of the requests that asked it to stop.
struct Lane {
    held: Arc<tokio::sync::Mutex<()>>,
    stops: watch::Sender<u64>,
}

/// How long a request waits for the one before it on the same upload to end
/// by itself (a cut connection's last bytes are still being read and stored)
/// before asking it to stop.
const TURN_GRACE: Duration = Duration::from_secs(3);
/// How long it then waits for that request to store what it has.
const TURN_STOPPING: Duration = Duration::from_secs(20);

/// A request's turn on an upload: no other request of this server receives it meanwhile.
struct Turn {
    // Declared first, dropped first: the turn is given up before its lane is let go of.
    _held: tokio::sync::OwnedMutexGuard<()>,
    lane: LaneHeld,
    /// The stops asked before this turn began: one more means "stop".
    stops_before: u64,
}

/// A request's hold on an upload's lane, while it waits for its turn and while
/// it has it: the last to let go removes the lane, whether it got the turn or
/// was dropped waiting (its client gone).
struct LaneHeld {
    turns: Arc<Turns>,
    upload: UploadId,
    lane: Arc<Lane>,
}

impl Drop for LaneHeld {
    fn drop(&mut self) {
        let mut lanes = self.turns.0.lock().expect("turns");
        // The map's and this one's: no other request holds it.
        if Arc::strong_count(&self.lane) == 2 {
            lanes.remove(&self.upload);
        }
    }
}

impl Turns {
    async fn take(self: &Arc<Self>, upload: UploadId) -> Result<Turn, AppError> {
        let lane =
            Arc::clone(self.0.lock().expect("turns").entry(upload).or_insert_with(|| Arc::new(Lane { held: Arc::default(), stops: watch::Sender::new(0) })));
        let lane = LaneHeld { turns: Arc::clone(self), upload, lane };
        let held = match tokio::time::timeout(TURN_GRACE, Arc::clone(&lane.lane.held).lock_owned()).await {
            Ok(held) => held,
            Err(_) => {
                lane.lane.stops.send_modify(|stops| *stops += 1);
                tokio::time::timeout(TURN_STOPPING, Arc::clone(&lane.lane.held).lock_owned()).await.map_err(|_| AppError::UploadBusy)?
            }
        };
        let stops_before = *lane.lane.stops.borrow();
        Ok(Turn { _held: held, lane, stops_before })
    }
}

impl Turn {
    /// Resolves when a later request asks this one to stop.
    async fn asked_to_stop(&self) {
        let mut stops = self.lane.lane.stops.subscribe();
        let _ = stops.wait_for(|stops| *stops > self.stops_before).await;
    }
}

/// Removes the upload `id`'s bytes, then its record.
pub async fn discard(app: &AppState, id: UploadId) -> Result<(), AppError> {
    app.store.remove_upload(id).await?;
    app.repo.forget_upload(id).await?;
    Ok(())
}

/// Answers a client of the protocol: errors as JSON, counted.
fn answer(app: &AppState, outcome: Result<Response, AppError>) -> Response {
    outcome.unwrap_or_else(|error| {
        app.metrics.refused(error.reason_label(), 0);
        JsonError(error).into_response()
    })
}

async fn created(app: &AppState, request: Request) -> Result<Response, AppError> {
    let received_ms = now_ms();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    check_version(headers)?;
    crate::same_origin::check(headers)?;
    let (key, source) = match presented_key(headers, app.settings.secure_cookies)? {
        Some((key, source)) => (key, Some(source)),
        None => (OwnerKey::generate(), None),
    };
    if headers.contains_key("upload-defer-length") {
        return Err(AppError::BadUploadRequest(
            "Send the file's size as Upload-Length when the upload is created: this server does not take Upload-Defer-Length.",
        ));
    }
    let length = number(headers, "upload-length").ok_or(AppError::BadUploadRequest("Send the file's size in bytes as Upload-Length."))?;
    let name = display_name(metadata_name(headers).as_deref(), 1);
    if length == 0 {
        return Err(AppError::EmptyFile { file: name });
    }
    if length > app.settings.max_upload_bytes {
        return Err(AppError::TooLarge { file: name, limit_bytes: app.settings.max_upload_bytes });
    }
    let client = crate::client::address(&parts, &app.settings.trusted_proxies);
    let owner = key.owner();
    // A creation whose answer was lost, sent again: the upload it made, not a second one.
    let request_key = crate::upload::idempotency_key(headers)?.filter(|_| source.is_some());
    if let Some(request_key) = &request_key
        && let Some(existing) = app.repo.upload_by_request_key(&owner, request_key).await?
        && let Some(upload) = app.repo.upload(existing).await?
    {
        return Ok(created_answer(app, &upload, Some(upload.received), &key, source, headers));
    }
    // The file is charged now, once; its bytes as they arrive, whichever request brings them.
    app.upload_limiter.admit(client)?;
    check_free_space(app).await?;
    crate::quota::check(app, &owner, client, length).await?;
    let limit = app.settings.max_open_resumable_uploads;
    if app.repo.open_uploads(&owner, received_ms).await? >= limit {
        return Err(AppError::TooManyOpenUploads { limit });
    }
    let limit = app.settings.max_open_resumable_uploads_per_client;
    if let Some(client) = client
        && app.repo.open_uploads_from(&client.to_string(), received_ms).await? >= limit
    {
        return Err(AppError::TooManyOpenUploadsFromClient { limit });
    }
    let expires_ms = received_ms + app.settings.resumable_expiry_secs * 1000;
    let upload = NewUpload {
        id: UploadId::new(),
        owner,
        client: client.map(|client| client.to_string()),
        name,
        length,
        created_ms: received_ms,
        expires_ms,
        request_key,
    };
    let id = app.repo.create_upload(&upload).await?;
    if id != upload.id {
        // Its first try made it a moment ago, beside this one.
        let existing = app.repo.upload(id).await?.ok_or(AppError::UnknownUpload)?;
        return Ok(created_answer(app, &existing, Some(existing.received), &key, source, headers));
    }
    let record = UploadRecord {
        id: upload.id,
        owner,
        client: upload.client.clone(),
        name: upload.name.clone(),
        length,
        received: 0,
        created_ms: received_ms,
        expires_ms,
        answer: None,
        parts: Vec::new(),
    };
    let offset = match has_upload_bytes(headers) {
        true => match receive(app, record.clone(), body, client, received_ms, app.turns.take(record.id).await?).await {
            Ok(offset) => Some(offset),
            // The upload stands: the client hears where, and sends the rest there (tus's creation-with-upload).
            Err(error) => match app.repo.upload(record.id).await? {
                Some(stands) => {
                    tracing::info!(upload.id = %record.id, %error, "An upload's first request ended early; it stands at its stored bytes.");
                    Some(stands.received)
                }
                None => return Err(error),
            },
        },
        false => None,
    };

    Ok(created_answer(app, &record, offset, &key, source, headers))
}

/// 201 for `upload`, where it stands when the creation brought bytes, and the owner's key where it is new.
fn created_answer(app: &AppState, upload: &UploadRecord, offset: Option<u64>, key: &OwnerKey, source: Option<KeySource>, headers: &HeaderMap) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let answer = response.headers_mut();
    answer.insert(header::LOCATION, HeaderValue::try_from(format!("/uploads/{}", upload.id)).expect("an id is ASCII"));
    match offset {
        Some(offset) => describe(answer, upload, offset),
        None => drop(answer.insert("upload-expires", expiry(upload))),
    }
    if source != Some(KeySource::Bearer) {
        answer.append(header::SET_COOKIE, key.cookie(app.settings.secure_cookies));
    }
    // A browser's scripts get no key; an API client that came without one needs it for the next request.
    if source.is_none() && !crate::owner::from_browser(headers) {
        answer.insert(OWNER_KEY_HEADER, HeaderValue::try_from(key.as_str()).expect("a key is URL-safe base64"));
    }
    response
}

/// Receives a request's bytes of `upload` from where it stands; returns where it stands after.
///
/// In a task of its own: when the client goes (a cut connection drops the
/// request's future), the bytes that arrived are still stored and counted.
async fn receive(app: &AppState, upload: UploadRecord, body: Body, client: Option<IpAddr>, received_ms: u64, turn: Turn) -> Result<u64, AppError> {
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

/// The caller's upload `id`: a stranger's, or one never made, is a 404 alike.
async fn owned(app: &AppState, id: &str, headers: &HeaderMap) -> Result<UploadRecord, AppError> {
    let id: UploadId = id.parse().map_err(|_| AppError::UnknownUpload)?;
    let Some((key, _)) = presented_key(headers, app.settings.secure_cookies)? else { return Err(AppError::UnknownUpload) };
    let upload = app.repo.upload(id).await?.filter(|upload| upload.owner == key.owner()).ok_or(AppError::UnknownUpload)?;
    if upload.expires_ms <= now_ms() {
        return Err(AppError::UploadExpired);
    }
    Ok(upload)
}

/// 204 with where the upload stands.
fn patched(upload: &UploadRecord, offset: u64) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    describe(response.headers_mut(), upload, offset);
    response
}

/// `Upload-Offset` and `Upload-Expires`.
fn describe(headers: &mut HeaderMap, upload: &UploadRecord, offset: u64) {
    headers.insert("upload-offset", HeaderValue::from(offset));
    headers.insert("upload-expires", expiry(upload));
}

fn expiry(upload: &UploadRecord) -> HeaderValue {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(upload.expires_ms);
    HeaderValue::try_from(httpdate::fmt_http_date(at)).expect("an HTTP date is ASCII")
}

/// A tus request must say it speaks 1.0.0.
fn check_version(headers: &HeaderMap) -> Result<(), AppError> {
    match headers.get("tus-resumable") {
        Some(version) if version == TUS_VERSION => Ok(()),
        _ => Err(AppError::TusVersion),
    }
}

fn has_upload_bytes(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| value.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

/// A header that holds a non-negative decimal number.
fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?;
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The file's name from `Upload-Metadata` (`filename`, as Uppy and
/// tus-js-client send it, or `name`): comma-separated keys, each with its value in base64.
fn metadata_name(headers: &HeaderMap) -> Option<String> {
    let metadata = headers.get("upload-metadata")?.to_str().ok()?;
    metadata.split(',').find_map(|pair| {
        let (key, value) = pair.trim().split_once(' ')?;
        let bytes = matches!(key, "filename" | "name").then(|| base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()).flatten()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// A random name for a part, below 2⁶³ so that both databases keep it as it is.
fn random_part_name() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    u64::from_le_bytes(bytes) & (i64::MAX as u64)
}
