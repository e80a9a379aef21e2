//! `GET /thumbs/{id}/{size}`: a thumbnail, or why there is none yet;
//! `GET /thumbs/{id}/{size}.webp` the same size in WebP, which a worker writes
//! after all three (an image made before WebPs existed has none: 404 without `Retry-After`).
//!
//! | state            | answer                                                   |
//! |------------------|----------------------------------------------------------|
//! | written          | 200, the image, public for an hour, then revalidated     |
//! | still pending    | 404 with `Retry-After`, so a client polls again          |
//! | job failed       | 410 with the reason, so a client stops polling           |
//! | image deleted    | 410 "This image was deleted."                            |
//! | unknown id/size  | 404 without `Retry-After`                                |
//!
//! A 410 says which in `X-Image-State` (`failed` or `deleted`), so a page's
//! script can tell a failure from a deletion without reading the sentence.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use thumbq_contract::{ImageId, StorageKey, ThumbFormat, ThumbSize};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use thumbq_store::Opened;

use crate::AppState;
use crate::error::AppError;
use crate::{owner, progress};

/// Seconds a client should wait before asking again for a pending thumbnail.
const RETRY_AFTER_SECONDS: &str = "1";

pub async fn thumbnail(State(app): State<AppState>, Path((id, size)): Path<(String, String)>, request: Request) -> Result<Response, AppError> {
    let id: ImageId = id.parse().map_err(|_| AppError::NotFound)?;
    // `small` is the baseline file (JPEG or PNG), `small.webp` its WebP.
    let (size, webp) = match size.strip_suffix(".webp") {
        Some(size) => (size, true),
        None => (size.as_str(), false),
    };
    let size = ThumbSize::from_name(size).ok_or(AppError::NotFound)?;
    // A WebP is asked for by its one name: serving it is the look (no HEAD first); when it is not there, the state below answers.
    let format = match webp {
        true => Some(ThumbFormat::Webp),
        false => progress::thumbnail(&app.store, id, size).await?,
    };

    if let Some(format) = format {
        let key = StorageKey::Thumbnail(id, size, format);
        // Deleted between the look and the read: answered below.
        if let Some(mut response) = serve(&app, key, request).await? {
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(key.cache_control()));
            return Ok(response);
        }
    }
    if let Some(failure) = progress::failure(&app.store, id).await? {
        let body = format!("No thumbnail will be made: {}\n", failure.reason);
        return Ok((StatusCode::GONE, [(header::CACHE_CONTROL, "no-store"), (IMAGE_STATE, "failed")], body).into_response());
    }
    // A baseline file without its WebP: made before WebPs were, or its WebP is seconds away. Pages list only what exists.
    if webp && progress::thumbnail(&app.store, id, size).await?.is_some() {
        return Err(AppError::NotFound);
    }
    if app.store.exists(StorageKey::Original(id)).await? {
        let headers = [(header::RETRY_AFTER, RETRY_AFTER_SECONDS), (header::CACHE_CONTROL, "no-store")];
        return Ok((StatusCode::NOT_FOUND, headers, "The thumbnail is being made.\n").into_response());
    }
    if progress::is_deleted(&app.store, id).await? {
        return Ok((StatusCode::GONE, [(header::CACHE_CONTROL, "no-store"), (IMAGE_STATE, "deleted")], "This image was deleted.\n").into_response());
    }
    Err(AppError::NotFound)
}

/// Says why a thumbnail answered 410.
const IMAGE_STATE: header::HeaderName = header::HeaderName::from_static("x-image-state");

/// `GET /originals/{id}`: the upload as it was sent, to its owner only
/// (cookie or bearer token); anyone else gets 404, as for no image at all.
/// It is served under the type its bytes say it is, and never cached by a
/// shared cache. The bytes are the client's, so the answer may never run as
/// a page or script: `nosniff` (on every answer) and a sandboxing CSP.
pub async fn original(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Result<Response, AppError> {
    let id: ImageId = id.parse().map_err(|_| AppError::NotFound)?;
    if !owner::owns(&app.store, owner::caller(request.headers()).as_ref(), id).await? {
        return Err(AppError::NotFound);
    }
    let Some(record) = owner::record_of(&app.store, id).await? else { return Err(AppError::NotFound) };
    // Recognised at upload, from the same bytes; an older record without it is read again.
    let format = match record.format {
        Some(format) => format,
        None => sniff_original(&app, id).await?.ok_or(AppError::NotFound)?,
    };
    let Some(mut response) = serve(&app, StorageKey::Original(id), request).await? else { return Err(AppError::NotFound) };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(StorageKey::Original(id).cache_control()));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    Ok(response)
}

/// The format of an original, from its first bytes.
async fn sniff_original(app: &AppState, id: ImageId) -> Result<Option<thumbq_contract::SourceFormat>, AppError> {
    let head = app.store.first_bytes(StorageKey::Original(id), thumbq_contract::SourceFormat::SNIFF_LEN as u64).await?;
    Ok(head.and_then(|head| thumbq_contract::SourceFormat::sniff(&head)))
}

/// `key` as an answer to `request` (GET or HEAD, conditional or not); `None` when it is not there.
///
/// A local file is served by `ServeFile` (HEAD, ranges, If-Modified-Since); an
/// object in a bucket is streamed through, with its length and date, and a 304
/// when the client's copy is as new.
async fn serve(app: &AppState, key: StorageKey, request: Request) -> Result<Option<Response>, AppError> {
    let head_only = request.method() == axum::http::Method::HEAD;
    let if_modified_since = request
        .headers()
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok());
    match app.store.serve(key, if_modified_since, head_only).await? {
        None => Ok(None),
        Some(Opened::File(path)) => {
            let response = ServeFile::new(path).oneshot(request).await.map_err(|error| anyhow::anyhow!(error))?;
            Ok(Some(response.map(Body::new)))
        }
        Some(Opened::Object(object)) => {
            let status = if object.modified { StatusCode::OK } else { StatusCode::NOT_MODIFIED };
            let mut response = Response::builder()
                .status(status)
                .header(header::LAST_MODIFIED, httpdate::fmt_http_date(object.last_modified))
                .header(header::ACCEPT_RANGES, "none");
            if object.modified {
                response = response.header(header::CONTENT_LENGTH, object.size);
            }
            let body = object.body.map_or_else(Body::empty, Body::from_stream);
            Ok(Some(response.body(body).map_err(anyhow::Error::from)?))
        }
    }
}
