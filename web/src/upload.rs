//! `POST /images`: streams each file to disk, then queues one job per file.
//!
//! A file is never held in memory: chunks go straight to `incoming/{id}.part`
//! while the first bytes tell its format and its hash is taken. Only when
//! every file of the request is complete and recognised are they moved to
//! `originals/`; each then gets its record in the repository, committed with
//! its job's outbox row, and only then does the client hear "accepted": the
//! job reaches the queue from the outbox, whatever happens next. Whatever goes
//! wrong before, including the client hanging up, leaves no file and no record behind;
//! a crash between the original's store and its commit leaves at worst an
//! original no record names, which the reconciler removes after its grace.
//!
//! Every upload has an owner: the key the request presents (bearer token,
//! then cookie), or a new one given back as a cookie (and, to an API client,
//! as `owner_key`). Each image also gets a delete token of its own.
//!
//! Here the request is admitted, its files kept and recorded; [`receive`]
//! takes one file into `incoming/`, [`original`] stores it as the original,
//! [`answer`] says what the client hears, and [`idempotency`] gives a retried
//! request its first answer.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use thumbq_contract::{ImageId, OwnerId};

use crate::AppState;
use crate::error::{AppError, JsonError};
use crate::form::BoundedForm;
use crate::owner::{DeleteToken, KeySource, OwnerKey, presented_key};
use crate::progress::now_ms;
use crate::rate_limit::Charge;

mod answer;
mod idempotency;
mod original;
mod receive;

pub(crate) use answer::accepted_answer;
pub use answer::{AcceptedImage, thumbnail_urls};
use answer::{accepted_json, join_ids, wants_json};
pub(crate) use idempotency::idempotency_key;
use idempotency::{Claim, claim, remember, replayed};
use original::StoredOriginal;
use receive::receive_file;
pub(crate) use receive::{IncomingFile, ReceivedFile, display_name, incoming_file, recognised, touch};

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
        match claim(&app, key.owner(), request_key, &headers).await {
            Ok(Claim::First(key)) => unsettled = Some(key),
            Ok(Claim::Answered(answer)) => return replayed(answer),
            Err(error) => return respond(&app, &headers, wants_json, Err(error), None).await,
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

/// The request's `Content-Length`, 0 when it sends none (a chunked body).
fn content_length(headers: &HeaderMap) -> u64 {
    headers.get(header::CONTENT_LENGTH).and_then(|length| length.to_str().ok()?.parse().ok()).unwrap_or(0)
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
