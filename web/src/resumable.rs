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

mod receive;
mod turns;

use std::time::{Duration, SystemTime};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use thumbq_contract::UploadId;
use thumbq_repo::{NewUpload, UploadRecord};

use self::receive::receive;
pub use self::turns::Turns;
use crate::AppState;
use crate::error::{AppError, JsonError};
use crate::owner::{KeySource, OwnerKey, presented_key};
use crate::progress::now_ms;
use crate::upload::{check_free_space, display_name};

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
    let max_size = app.settings.media.max_upload_bytes.to_string();
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
    if length > app.settings.media.max_upload_bytes {
        return Err(AppError::TooLarge { file: name, limit_bytes: app.settings.media.max_upload_bytes });
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
