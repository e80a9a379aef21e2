//! `POST /images`: streams each file to disk, then queues one job per file.
//!
//! A file is never held in memory: chunks go straight to `incoming/{id}.part`
//! while the first bytes tell its format and its hash is taken. Only when
//! every file of the request is complete and recognised are they moved to
//! `originals/`; each then gets its record in the repository, committed with
//! its job's outbox row, and only then does the client hear "accepted": the
//! job reaches the queue from the outbox, whatever happens next. Whatever goes
//! wrong before, including the client hanging up, leaves no file and no record behind.
//!
//! Every upload has an owner: the key the request presents (bearer token,
//! then cookie), or a new one given back as a cookie (and, to an API client,
//! as `owner_key`). Each image also gets a delete token of its own.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use thumbq_contract::{ImageId, MediaLimits, OwnerId, ResizeJob, SourceFormat, Storage, StorageKey, ThumbSize};
use thumbq_repo::{Attempt, NewImage};
use thumbq_store::Store;
use tokio::io::AsyncWriteExt;

use crate::AppState;
use crate::error::{AppError, JsonError};
use crate::form::{BoundedField, BoundedForm};
use crate::owner::{DeleteToken, KeySource, OwnerKey, presented_key};
use crate::progress::now_ms;
use crate::rate_limit::Charge;

/// The form field that carries the files.
pub const FILE_FIELD: &str = "file";

/// Stores the uploaded files and queues their jobs.
///
/// A browser's form post is redirected (303) to the new image's page, or to a
/// page of all of them; a client asking for JSON gets 202 and links to poll.
///
/// Before a byte of the body is read: the client's key, its rates, the
/// disk's free space and (past a retry's first answer) its quotas are checked.
pub async fn upload(State(app): State<AppState>, request: Request) -> Response {
    let received_ms = now_ms();
    let headers = request.headers().clone();
    let wants_json = wants_json(&headers);
    let admitted = admit(&app, request).await;
    let Admitted { key: (key, source), form, in_progress: _in_progress, client, charge } = match admitted {
        Ok(admitted) => admitted,
        Err(error) => return respond(&app, &headers, wants_json, Err(error), None).await,
    };
    // A client that presents its key and asks for JSON may name the request, so
    // that a retry of it (its answer was lost) gets the first answer, not a second image.
    let request_key = match idempotency_key(&headers) {
        Ok(request_key) => request_key.filter(|_| source.is_some() && wants_json),
        Err(error) => return respond(&app, &headers, wants_json, Err(error), None).await,
    };
    let mut unsettled = None;
    if let Some(request_key) = &request_key {
        let now = now_ms();
        // A retry is the same request again: of the same length (a browser's form has a boundary of the same length each time).
        let fingerprint = headers.get(header::CONTENT_LENGTH).and_then(|length| length.to_str().ok());
        match app.repo.attempt(&key.owner(), request_key, fingerprint, now, now.saturating_sub(ABANDONED_AFTER_MS)).await {
            Ok(Attempt::First) => unsettled = Some(UnsettledKey { repo: app.repo.clone(), owner: key.owner(), key: request_key.clone() }),
            Ok(Attempt::Answered(answer)) => return replayed(answer),
            Ok(Attempt::Reused) => return respond(&app, &headers, wants_json, Err(AppError::IdempotencyKeyReused), None).await,
            Ok(Attempt::Running) => return respond(&app, &headers, wants_json, Err(AppError::RequestInProgress), None).await,
            Err(error) => return respond(&app, &headers, wants_json, Err(error.into()), None).await,
        }
    }
    // After the key's first answer, if any: a retry of an accepted request is given it, whatever the quota says now.
    let outcome = match crate::quota::check(&app, &key.owner(), client, content_length(&headers)).await {
        Ok(()) => accept(&app, form, Uploader { owner: key.owner(), client, charge }, received_ms).await,
        Err(refused) => Err(refused),
    };
    if let Ok(accepted) = &outcome {
        app.quota_counts.accepted(&key.owner(), client, accepted.bytes, received_ms);
    }
    let mut response = respond(&app, &headers, wants_json, outcome, Some((&key, source))).await;
    if let Some(request_key) = &request_key {
        response = remember(&app, &key.owner(), request_key, response).await;
    }
    if let Some(unsettled) = unsettled {
        unsettled.settled();
    }
    // A browser keeps (or renews) its key; a client that sent a bearer token has it.
    if source != Some(KeySource::Bearer) && (response.status().is_redirection() || response.status().is_success()) {
        response.headers_mut().append(header::SET_COOKIE, key.cookie(app.settings.secure_cookies));
    }
    response
}

/// A request's `Idempotency-Key` not yet given its answer. Should the handler
/// be dropped first (the client hung up, the server is stopping), the key is
/// forgotten, so that a retry goes ahead at once rather than waiting out
/// [`ABANDONED_AFTER_MS`]; the retry's files are then the owner's already
/// stored ones, if they were, and come back as `duplicate_of`.
struct UnsettledKey {
    repo: thumbq_repo::Repository,
    owner: OwnerId,
    key: String,
}

impl UnsettledKey {
    fn settled(mut self) {
        self.key.clear();
    }
}

impl Drop for UnsettledKey {
    fn drop(&mut self) {
        if self.key.is_empty() {
            return;
        }
        let (repo, owner, key) = (self.repo.clone(), self.owner, std::mem::take(&mut self.key));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = repo.forget_attempt(&owner, &key).await {
                    tracing::warn!(%error, "Could not forget the Idempotency-Key of a request cut short; its retries wait until it is abandoned.");
                }
            });
        }
    }
}

/// How long a request named by an `Idempotency-Key` may go unanswered before
/// a retry takes it over (its web server died): longer than almost any upload.
const ABANDONED_AFTER_MS: u64 = 10 * 60 * 1000;

/// The request's `Idempotency-Key`, if it has one: 1 to 255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().map_err(|_| AppError::BadIdempotencyKey)?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(AppError::BadIdempotencyKey);
    }
    Ok(Some(key.to_owned()))
}

/// Keeps an accepted answer for the request's retries; forgets the key of one
/// that kept nothing, so that a retry may try again.
async fn remember(app: &AppState, owner: &OwnerId, request_key: &str, response: Response) -> Response {
    if response.status() != StatusCode::ACCEPTED {
        if let Err(error) = app.repo.forget_attempt(owner, request_key).await {
            tracing::warn!(%error, "Could not forget the Idempotency-Key of a request that kept nothing; its retries wait until it is abandoned.");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, 4 * 1024 * 1024).await {
        Ok(body) => body,
        Err(error) => return AppError::Internal(anyhow::anyhow!("reading an upload's own answer: {error}")).into_response(),
    };
    // Kept without the delete tokens: the database holds no token, only their hashes.
    let kept = serde_json::from_slice::<serde_json::Value>(&body).map(|mut answer| {
        for image in answer["images"].as_array_mut().into_iter().flatten() {
            if let Some(image) = image.as_object_mut() {
                image.remove("delete_token");
            }
        }
        answer.to_string()
    });
    match kept {
        Ok(answer) => {
            if let Err(error) = app.repo.answered(owner, request_key, &answer).await {
                tracing::warn!(%error, "Could not keep the answer of a request for its retries.");
            }
        }
        Err(error) => tracing::error!(%error, "An upload's JSON answer is not JSON; it is not kept for retries."),
    }
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The request's `Content-Length`, 0 when it sends none (a chunked body).
fn content_length(headers: &HeaderMap) -> u64 {
    headers.get(header::CONTENT_LENGTH).and_then(|length| length.to_str().ok()?.parse().ok()).unwrap_or(0)
}

/// The first answer to a request, given again to its retry, without the
/// images' delete tokens (the server keeps none; the owner key deletes them).
fn replayed(answer: String) -> Response {
    let location = serde_json::from_str::<serde_json::Value>(&answer).ok().and_then(|json| json["images"][0]["page"].as_str().map(str::to_owned));
    let mut response = (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], answer).into_response();
    if let Some(location) = location.and_then(|location| header::HeaderValue::try_from(location).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    response
}

/// What the checks made before the body is read give the request.
struct Admitted<'a> {
    /// The owner's key, and where it came from (`None`: made now).
    key: (OwnerKey, Option<KeySource>),
    form: BoundedForm,
    /// The client's place among the uploads in progress, held until the answer.
    in_progress: crate::slots::Slot,
    client: Option<std::net::IpAddr>,
    /// The client's rates, charged as the files and bytes arrive.
    charge: Charge<'a>,
}

async fn admit(app: &AppState, request: Request) -> Result<Admitted<'_>, AppError> {
    // Another site's form must not upload in a visitor's name, nor give them a new key.
    crate::same_origin::check(request.headers())?;
    let key = match presented_key(request.headers(), app.settings.secure_cookies)? {
        Some((key, source)) => (key, Some(source)),
        None => (OwnerKey::generate(), None),
    };
    let (parts, body) = request.into_parts();
    let client = crate::client::address(&parts, &app.settings.trusted_proxies);
    let charge = app.upload_limiter.admit(client)?;
    // A trusted proxy's requests are counted by the client it names; one that names none counts alone.
    let in_progress = app.uploads.take(client).map_err(|_| AppError::UploadsInProgress { limit: app.settings.max_uploads_per_client })?;
    check_free_space(app).await?;
    let request = Request::from_parts(parts, body);
    let settings = &app.settings;
    // Each file is one part; a few more for fields a form may add.
    let max_parts = usize::from(settings.max_files_per_request) + 8;
    let form = BoundedForm::from_request(request, settings.upload_idle_timeout(), max_parts).await?;
    Ok(Admitted { key, form, in_progress, client, charge })
}

/// Who is uploading: the owner the images will be, the address they come from, and its rates.
struct Uploader<'a> {
    owner: OwnerId,
    client: Option<std::net::IpAddr>,
    charge: Charge<'a>,
}

/// 507 while the disk is below the watermark: refused before anything is written.
pub(crate) async fn check_free_space(app: &AppState) -> Result<(), AppError> {
    let root = app.storage.root().to_owned();
    let free = tokio::task::spawn_blocking(move || crate::disk::free_bytes(&root)).await.map_err(anyhow::Error::from)??;
    if free < app.settings.min_free_bytes {
        tracing::warn!(free_bytes = free, min_free_bytes = app.settings.min_free_bytes, "The disk is below its watermark: refusing an upload.");
        return Err(AppError::DiskFull);
    }
    Ok(())
}

/// Counts the outcome and answers as the client asked: JSON, or pages.
///
/// The JSON gives an API client a new owner's key as `owner_key`, and each
/// image's own `delete_token`; a browser's scripts get neither: its key stays
/// in the `HttpOnly` cookie. When
/// some files were refused and others kept, the answer is still 202 (JSON)
/// or the page of the kept ones listing the refused ones (a form); when none
/// was kept, it has the status of the first refusal.
async fn respond(
    app: &AppState,
    headers: &HeaderMap,
    wants_json: bool,
    outcome: Result<Accepted, AppError>,
    key: Option<(&OwnerKey, Option<KeySource>)>,
) -> Response {
    let sent = content_length(headers);
    let accepted = match outcome {
        Ok(accepted) => accepted,
        Err(error) => {
            app.metrics.refused(error.reason_label(), sent);
            return if wants_json { JsonError(error).into_response() } else { error.into_response() };
        }
    };
    for refusal in &accepted.refused {
        app.metrics.refused(refusal.error.reason_label(), 0);
    }
    let refused: Vec<_> = accepted
        .refused
        .iter()
        .map(|refusal| serde_json::json!({ "file": refusal.file, "error": refusal.error.to_string(), "status": refusal.error.status().as_u16() }))
        .collect();
    if accepted.images.is_empty() {
        let first = accepted.refused.into_iter().next().map(|refusal| refusal.error).unwrap_or(AppError::NoFile);
        if wants_json {
            let mut response = Json(serde_json::json!({ "error": first.to_string(), "refused": refused })).into_response();
            *response.status_mut() = first.status();
            return response;
        }
        return first.into_response();
    }
    let duplicates = accepted.images.iter().filter(|image| image.duplicate_of.is_some()).count() as u64;
    app.metrics.accepted(accepted.images.len() as u64 - duplicates, duplicates, accepted.bytes);
    let ids: Vec<ImageId> = accepted.images.iter().map(|image| image.id).collect();
    if wants_json {
        let (key, source) = key.expect("an accepted upload has its owner's key");
        let keys = (!crate::owner::from_browser(headers)).then_some(source.is_none().then_some(key));
        return accepted_json(&accepted.images, keys, refused);
    }
    if !accepted.refused.is_empty() {
        let refusals = accepted.refused.iter().map(|refusal| refusal.error.to_string()).collect();
        let caller = key.map(|(key, _)| key.owner());
        return crate::pages::batch_page(app, &ids, caller.as_ref(), refusals).await.unwrap_or_else(IntoResponse::into_response);
    }
    match ids.as_slice() {
        [id] => Redirect::to(&format!("/images/{id}")).into_response(),
        _ => Redirect::to(&format!("/images?ids={}", join_ids(&ids))).into_response(),
    }
}

/// What became of the files of one request.
pub struct Accepted {
    /// The files stored and queued, and those the owner had uploaded already, in the request's order.
    pub images: Vec<Kept>,
    /// The files refused for what they are; the others are kept all the same.
    pub refused: Vec<Refusal>,
    /// Bytes of the files stored.
    pub bytes: u64,
}

/// One file accepted: stored and queued now, or found among the owner's images.
pub struct Kept {
    pub id: ImageId,
    /// The name it was sent under.
    pub name: String,
    /// The owner's image with the same bytes, when this file is one: `id` is that image's.
    pub duplicate_of: Option<ImageId>,
    /// The image's own delete token; `None` for a duplicate (its image was given one before).
    pub delete_token: Option<String>,
}

/// One file refused, and why.
pub struct Refusal {
    pub file: String,
    pub error: AppError,
}

/// Receives every file, then queues a job for each good one. A file refused
/// for what it is (not an image, empty, too large) is read to its end and
/// reported, and the request's other files are kept; a problem with the
/// request itself (a broken form, too many files, a full disk) keeps nothing.
async fn accept(app: &AppState, mut form: BoundedForm, uploader: Uploader<'_>, received_ms: u64) -> Result<Accepted, AppError> {
    let settings = &app.settings;
    let Uploader { owner, client, mut charge } = uploader;
    let mut received = Vec::new();
    let mut refused = Vec::new();
    while let Some(field) = form.next_field().await? {
        if field.name() != Some(FILE_FIELD) {
            continue;
        }
        // A form submitted with no file chosen still sends one empty, unnamed part.
        if field.file_name().is_some_and(str::is_empty) {
            continue;
        }
        if received.len() + refused.len() >= usize::from(settings.max_files_per_request) {
            return Err(AppError::TooManyFiles { limit: settings.max_files_per_request });
        }
        charge.file()?;
        let number = received.len() + refused.len() + 1;
        let earlier: Vec<PathBuf> = received.iter().map(|file: &ReceivedFile| file.part.path().to_owned()).collect();
        match receive_file(&app.storage, field, number, &settings.limits(), &earlier, &mut charge).await? {
            Ok(file) => received.push(file),
            Err(refusal) => refused.push(refusal),
        }
    }
    if received.is_empty() && refused.is_empty() {
        return Err(AppError::NoFile);
    }
    keep(app, owner, client.map(|client| client.to_string()), received, refused, received_ms).await
}

/// Keeps the files received whole and recognised: each is stored as an
/// original and recorded with its job, or, when its owner has the same bytes
/// already, answered by that image. `refused` are the request's files refused
/// for what they are, reported with the rest.
pub(crate) async fn keep(
    app: &AppState,
    owner: OwnerId,
    client: Option<String>,
    received: Vec<ReceivedFile>,
    refused: Vec<Refusal>,
    received_ms: u64,
) -> Result<Accepted, AppError> {
    // The same bytes again from the same owner are the image they have: no second copy, no job.
    // (Never across owners: that would tell a stranger someone holds a photo.) Twice in this
    // request is seen here; an image of theirs from before is seen by the commit, which
    // records no second one (see `late` below): the common case, a new photo, costs no query.
    let mut order = Vec::with_capacity(received.len());
    let mut fresh = Vec::with_capacity(received.len());
    let mut seen = std::collections::HashMap::new();
    for file in received {
        match seen.get(&file.content_hash).copied() {
            Some(id) => order.push(Kept { id, name: file.name.clone(), duplicate_of: Some(id), delete_token: None }),
            None => {
                seen.insert(file.content_hash.clone(), file.id);
                let token = DeleteToken::generate();
                order.push(Kept { id: file.id, name: file.name.clone(), duplicate_of: None, delete_token: Some(token.as_str().to_owned()) });
                fresh.push((file, token.hash()));
            }
        }
    }
    let mut bytes = fresh.iter().map(|(file, _)| file.size).sum();
    let mut originals = Vec::with_capacity(fresh.len());
    for (file, delete_token_hash) in fresh {
        match file.store(&app.store, owner, client.clone(), delete_token_hash).await {
            Ok(original) => originals.push(original),
            Err(error) => {
                for original in originals {
                    original.discard().await;
                }
                return Err(error.into());
            }
        }
    }
    // Recorded in a task of its own: a client hanging up now must not cancel
    // it halfway, leaving a committed record whose original the guards delete.
    let dispatcher = Arc::clone(&app.dispatcher);
    let late = tokio::spawn(async move {
        let skipped = match record(&dispatcher, &originals, received_ms).await {
            Ok(skipped) => skipped,
            Err(error) => {
                for original in originals {
                    original.discard().await;
                }
                return Err(error);
            }
        };
        let (kept, skipped): (Vec<_>, Vec<_>) = originals.into_iter().partition(|original| !skipped.contains(&original.image.id));
        let mut late = Vec::with_capacity(skipped.len());
        for original in skipped {
            late.push((original.image.id, original.image.content_hash.clone(), original.image.bytes));
            original.discard().await;
        }
        // Committed: accepted, whatever happens next. The originals are theirs to
        // keep, and the outbox has their jobs: the answer need not wait for the queue.
        dispatcher.send_committed(kept.into_iter().map(StoredOriginal::keep).collect(), received_ms);
        Ok::<_, AppError>(late)
    })
    .await
    .map_err(anyhow::Error::from)??;
    // Bytes the owner has an image of already (from before, or from another request a moment ago): that image answers for them.
    for (id, hash, size) in late {
        let existing = app
            .repo
            .same_bytes(&owner, &hash)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the image that holds the same bytes as upload {id} was removed as they were sent"))?;
        bytes -= size;
        // The file, and the same bytes again in this request, which were answered with its id.
        for kept in order.iter_mut().filter(|kept| kept.id == id) {
            *kept = Kept { id: existing, name: std::mem::take(&mut kept.name), duplicate_of: Some(existing), delete_token: None };
        }
    }
    Ok(Accepted { images: order, refused, bytes })
}

/// Receives one file; a refusal for what the file is comes back as `Ok(Err)`,
/// after the rest of it was read and dropped, so that the next file can be read.
async fn receive_file(
    storage: &Storage,
    mut field: BoundedField<'_>,
    number: usize,
    limits: &MediaLimits,
    earlier: &[PathBuf],
    charge: &mut Charge<'_>,
) -> Result<Result<ReceivedFile, Refusal>, AppError> {
    let name = display_name(field.file_name(), number);
    match stream_file(storage, &mut field, name.clone(), limits, earlier, charge).await {
        Ok(file) => Ok(Ok(file)),
        Err(error) if error.is_about_one_file() => {
            // Read past, to reach the next file: as far as one file may be long.
            // A refused file longer than that ends the request, as it always did.
            let (mut drained, mut touched) = (0u64, std::time::Instant::now());
            while let Some(chunk) = field.chunk().await? {
                charge.bytes(chunk.len() as u64)?;
                drained += chunk.len() as u64;
                if drained > limits.max_file_bytes {
                    return Err(error);
                }
                if touched.elapsed() > crate::cleanup::TOUCH_EVERY {
                    touched = std::time::Instant::now();
                    touch(earlier).await;
                }
            }
            Ok(Err(Refusal { file: name, error }))
        }
        Err(error) => Err(error),
    }
}

/// Streams one form field to `incoming/`, checking its size and format as it goes.
///
/// The parts of the request's `earlier` files are touched now and then, so
/// that the sweeper of leftovers (see `cleanup`) sees them as alive.
async fn stream_file(
    storage: &Storage,
    field: &mut BoundedField<'_>,
    file: String,
    limits: &MediaLimits,
    earlier: &[PathBuf],
    charge: &mut Charge<'_>,
) -> Result<ReceivedFile, AppError> {
    let limit_bytes = limits.max_file_bytes;
    let id = ImageId::new();
    let mut hash = crate::content_hash::ContentHasher::new();
    let part = RemoveOnDrop::new(storage.path(&StorageKey::Incoming(id)));
    let mut out = incoming_file(part.path()).await?;
    let mut head = Vec::with_capacity(SourceFormat::SNIFF_LEN);
    let mut format = None;
    let mut size: u64 = 0;
    let mut touched = std::time::Instant::now();
    while let Some(chunk) = field.chunk().await? {
        if touched.elapsed() > crate::cleanup::TOUCH_EVERY {
            touched = std::time::Instant::now();
            touch(earlier).await;
        }
        charge.bytes(chunk.len() as u64)?;
        size += chunk.len() as u64;
        if size > limit_bytes {
            return Err(AppError::TooLarge { file, limit_bytes });
        }
        if format.is_none() {
            let wanted = SourceFormat::SNIFF_LEN - head.len();
            head.extend_from_slice(&chunk[..wanted.min(chunk.len())]);
            if head.len() == SourceFormat::SNIFF_LEN {
                // Refuse as soon as the first bytes tell, rather than after the whole file.
                format = Some(SourceFormat::sniff(&head).ok_or_else(|| AppError::NotAnImage { file: file.clone() })?);
            }
        }
        hash.update(&chunk);
        out.write_all(&chunk).await?;
    }
    if size == 0 {
        return Err(AppError::EmptyFile { file });
    }
    let format = match format {
        Some(format) => format,
        None => SourceFormat::sniff(&head).ok_or_else(|| AppError::NotAnImage { file: file.clone() })?,
    };
    // Not flushed here: storing it as the original does (locally), or sends it away (a bucket).
    out.flush().await?;
    drop(out);
    recognised(id, part, file, size, format, hash, limits).await
}

/// What a request's body gathers before each write to its file: one trip to a
/// blocking thread per this many bytes, not one per chunk of the body (a few
/// kilobytes each, as its TCP segments came).
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Creates a file in `incoming/` for a request's bytes, written in large pieces.
pub(crate) async fn incoming_file(path: &std::path::Path) -> std::io::Result<tokio::io::BufWriter<tokio::fs::File>> {
    Ok(tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, tokio::fs::File::create(path).await?))
}

/// A file whole in `incoming/` (at `part`), of `format` by its first bytes:
/// received once its header is within the pixel limits.
pub(crate) async fn recognised(
    id: ImageId,
    part: RemoveOnDrop,
    name: String,
    size: u64,
    format: SourceFormat,
    hash: crate::content_hash::ContentHasher,
    limits: &MediaLimits,
) -> Result<ReceivedFile, AppError> {
    let (width, height) = check_dimensions(part.path(), format, name.clone(), limits).await?;
    let content_hash = hash.finish();
    Ok(ReceivedFile { id, format, size, part, name, content_hash, width, height })
}

/// Records the request's images, each with the web server's steps so far and
/// its job in the outbox, in one transaction (shared with other requests
/// arriving at once): from its commit on, the uploads are accepted, and no
/// crash loses their jobs. Returns the ids of those not recorded because
/// their owner's same bytes were recorded first, by another request.
async fn record(dispatcher: &crate::dispatch::Dispatcher, originals: &[StoredOriginal], received_ms: u64) -> Result<Vec<ImageId>, AppError> {
    let uploads = originals
        .iter()
        .map(|original| {
            (
                original.image.clone(),
                vec![crate::instance::step("received", received_ms), crate::instance::step("stored", original.stored_ms)],
                original.job.traceparent,
            )
        })
        .collect();
    Ok(dispatcher.record(uploads).await?)
}

/// Marks `parts` as still being written.
pub(crate) async fn touch(parts: &[PathBuf]) {
    let parts = parts.to_vec();
    let _ = tokio::task::spawn_blocking(move || {
        for part in parts {
            let _ = std::fs::File::options().write(true).open(&part).and_then(|file| file.set_modified(std::time::SystemTime::now()));
        }
    })
    .await;
}

/// Refuses an image whose header says it is over the pixel limits, before any
/// worker tries to decode it. Only the header is read; nothing is decoded.
/// Returns the width and height the header gives.
async fn check_dimensions(path: &std::path::Path, format: SourceFormat, file: String, limits: &MediaLimits) -> Result<(u32, u32), AppError> {
    let path = path.to_owned();
    let side = |pixels: usize| u32::try_from(pixels).unwrap_or(u32::MAX);
    let size = tokio::task::spawn_blocking(move || match format {
        // imagesize refuses a JPEG with stray bytes between its segments, which libjpeg and every browser show.
        SourceFormat::Jpeg => std::fs::File::open(&path).and_then(|file| crate::jpeg_header::dimensions(std::io::BufReader::new(file))).ok().flatten(),
        _ => imagesize::size(&path).ok().map(|size| (side(size.width), side(size.height))),
    })
    .await
    .map_err(anyhow::Error::from)?;
    let Some((width, height)) = size else {
        return Err(AppError::DamagedHeader { file, format: format.name() });
    };
    limits.check_dimensions(width, height).map_err(|reason| AppError::OverPixelLimits { file, reason })?;
    Ok((width, height))
}

/// A file fully received into `incoming/` and recognised.
pub(crate) struct ReceivedFile {
    id: ImageId,
    format: SourceFormat,
    size: u64,
    part: RemoveOnDrop,
    /// The name it was sent under, for people: never part of a path.
    name: String,
    /// The hash of its bytes (see [`crate::content_hash`]).
    pub(crate) content_hash: String,
    width: u32,
    height: u32,
}

impl ReceivedFile {
    /// Stores the file as the original, where workers can find it.
    ///
    /// In a task of its own: if the client hangs up meanwhile, the task still
    /// runs to its end, and the guard it returns, dropped with it, removes
    /// what it wrote.
    async fn store(self, store: &Store, owner: OwnerId, client: Option<String>, delete_token_hash: String) -> std::io::Result<StoredOriginal> {
        let store = store.clone();
        tokio::spawn(async move {
            let id = self.id;
            let written = ForgetOnDrop::new(&store, [StorageKey::Original(id)]);
            if let Err(error) = store.store_original(id, self.part.path().to_owned()).await {
                written.discard().await;
                return Err(error);
            }
            self.part.disarm();
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
struct StoredOriginal {
    file: ForgetOnDrop,
    job: ResizeJob,
    /// Its record, as the repository will keep it.
    image: NewImage,
    /// When the original was on disk, fsynced.
    stored_ms: u64,
}

impl StoredOriginal {
    /// Keeps the original; its job and when it was stored.
    fn keep(self) -> (ResizeJob, u64) {
        self.file.disarm();
        (self.job, self.stored_ms)
    }

    /// Removes the original now.
    async fn discard(self) {
        self.file.discard().await;
    }
}

/// Stored files removed when this is dropped, unless disarmed: the store's
/// counterpart of [`RemoveOnDrop`]. Dropped, it removes them in a task of its
/// own; [`ForgetOnDrop::discard`] removes them before it returns.
struct ForgetOnDrop {
    store: Store,
    keys: Vec<StorageKey>,
}

impl ForgetOnDrop {
    fn new(store: &Store, keys: impl IntoIterator<Item = StorageKey>) -> Self {
        Self { store: store.clone(), keys: keys.into_iter().collect() }
    }

    fn disarm(mut self) {
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

impl Drop for ForgetOnDrop {
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

/// Local files deleted when this is dropped, unless disarmed: so that an error, or
/// a client hanging up mid-request (which drops the handler's future), leaves
/// nothing behind.
pub(crate) struct RemoveOnDrop(Vec<PathBuf>);

impl RemoveOnDrop {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self(vec![path])
    }

    /// The first file guarded.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0[0]
    }

    pub(crate) fn disarm(mut self) {
        self.0.clear();
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The client's file name, for messages only: never part of a path.
pub(crate) fn display_name(client_name: Option<&str>, number: usize) -> String {
    let base = client_name.map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name).trim()).unwrap_or("");
    if base.is_empty() {
        return format!("File {number}");
    }
    // Nor the marks that reorder text: a name must read as what it is ("gpj.exe" shown as "exe.jpg").
    let reorders = |c: &char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let mut name: String = base.chars().filter(|c| !c.is_control() && !reorders(c)).take(80).collect();
    if base.chars().count() > 80 {
        name.push('…');
    }
    name
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|accept| accept.to_str().ok()).is_some_and(|accept| accept.contains("application/json"))
}

fn join_ids(ids: &[ImageId]) -> String {
    ids.iter().map(ImageId::to_string).collect::<Vec<_>>().join(",")
}

/// The links a client needs to follow one accepted image, and the key to delete it.
#[derive(Debug, Serialize)]
pub struct AcceptedImage {
    pub id: String,
    /// The name the file was sent under, for people.
    pub name: String,
    pub page: String,
    pub status: String,
    pub thumbnails: std::collections::BTreeMap<&'static str, String>,
    /// The original, for its owner only.
    pub original: String,
    /// The owner's key: `Authorization: Bearer {owner_key}` lists the owner's
    /// images, fetches their originals, deletes any of them, and, sent with
    /// later uploads, makes them the same owner's. Given to API clients only,
    /// and only when the request did not present it already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_key: Option<String>,
    /// This image's own token: `Authorization: Bearer {delete_token}` deletes
    /// this image (`DELETE {page}`) and nothing else. Given to API clients only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_token: Option<String>,
    /// Set when the owner had uploaded these bytes already: this is that image, and no new job was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

impl AcceptedImage {
    pub fn new(id: ImageId, name: String) -> Self {
        Self {
            id: id.to_string(),
            name,
            page: format!("/images/{id}"),
            status: format!("/api/images/{id}"),
            thumbnails: thumbnail_urls(id),
            original: format!("/originals/{id}"),
            owner_key: None,
            delete_token: None,
            duplicate_of: None,
        }
    }
}

/// `{"small": "/thumbs/{id}/small", …}`
pub fn thumbnail_urls(id: ImageId) -> std::collections::BTreeMap<&'static str, String> {
    ThumbSize::ALL.into_iter().map(|size| (size.name(), format!("/thumbs/{id}/{size}"))).collect()
}

/// The answer to an accepted upload. `keys` is `None` for a browser, whose
/// scripts get no key; otherwise the owner's key (when the request did not
/// present it) and each image's delete token go with the images.
fn accepted_json(images: &[Kept], keys: Option<Option<&OwnerKey>>, refused: Vec<serde_json::Value>) -> Response {
    let answer = accepted_answer(images, keys, refused);
    let location = answer["images"][0]["page"].as_str().unwrap_or("/").to_owned();
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(answer)).into_response()
}

/// The JSON of [`accepted_json`].
pub(crate) fn accepted_answer(images: &[Kept], keys: Option<Option<&OwnerKey>>, refused: Vec<serde_json::Value>) -> serde_json::Value {
    let images: Vec<_> = images
        .iter()
        .map(|image| AcceptedImage {
            duplicate_of: image.duplicate_of.map(|id| id.to_string()),
            owner_key: keys.flatten().map(|key| key.as_str().to_owned()),
            delete_token: keys.and(image.delete_token.clone()),
            ..AcceptedImage::new(image.id, image.name.clone())
        })
        .collect();
    serde_json::json!({ "images": images, "refused": refused })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_file_name_is_shown_without_its_path() {
        assert_eq!(display_name(Some("../../etc/passwd"), 1), "passwd");
        assert_eq!(display_name(Some("C:\\Users\\me\\cat.jpg"), 1), "cat.jpg");
        assert_eq!(display_name(Some(""), 3), "File 3");
        assert_eq!(display_name(None, 2), "File 2");
        assert_eq!(display_name(Some("a\u{0}b\nc.png"), 1), "abc.png");
        assert_eq!(display_name(Some("photo\u{202E}gpj.exe"), 1), "photogpj.exe");
    }
}
