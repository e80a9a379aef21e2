//! `GET /thumbs/{id}/{size}`: a thumbnail, or why there is none yet.
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
use thumbq_contract::{ImageId, StorageKey, ThumbSize};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::AppState;
use crate::error::AppError;
use crate::{owner, progress};

/// Seconds a client should wait before asking again for a pending thumbnail.
const RETRY_AFTER_SECONDS: &str = "1";

pub async fn thumbnail(State(app): State<AppState>, Path((id, size)): Path<(String, String)>, request: Request) -> Result<Response, AppError> {
    let id: ImageId = id.parse().map_err(|_| AppError::NotFound)?;
    let size = ThumbSize::from_name(&size).ok_or(AppError::NotFound)?;

    if let Some((path, format)) = progress::thumbnail(&app.storage, id, size).await? {
        // ServeFile answers HEAD, ranges and If-Modified-Since for us.
        let mut response = ServeFile::new(path).oneshot(request).await.map_err(|error| anyhow::anyhow!(error))?;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        let cache = StorageKey::Thumbnail(id, size, format).cache_control();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        return Ok(response.map(Body::new));
    }
    if let Some(failure) = progress::failure(&app.storage, id).await? {
        let body = format!("No thumbnail will be made: {}\n", failure.reason);
        return Ok((StatusCode::GONE, [(header::CACHE_CONTROL, "no-store"), (IMAGE_STATE, "failed")], body).into_response());
    }
    if progress::is_file(&app.storage.path(&StorageKey::Original(id))).await? {
        let headers = [(header::RETRY_AFTER, RETRY_AFTER_SECONDS), (header::CACHE_CONTROL, "no-store")];
        return Ok((StatusCode::NOT_FOUND, headers, "The thumbnail is being made.\n").into_response());
    }
    if progress::is_deleted(&app.storage, id).await? {
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
    if !owner::owns(&app.storage, owner::caller(request.headers()).as_ref(), id).await? {
        return Err(AppError::NotFound);
    }
    let path = app.storage.path(&StorageKey::Original(id));
    if !progress::is_file(&path).await? {
        return Err(AppError::NotFound);
    }
    let mut head = [0u8; thumbq_contract::SourceFormat::SNIFF_LEN];
    let read = {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(&path).await?;
        file.read(&mut head).await?
    };
    let format = thumbq_contract::SourceFormat::sniff(&head[..read]).ok_or(AppError::NotFound)?;
    let mut response = ServeFile::new(path).oneshot(request).await.map_err(|error| anyhow::anyhow!(error))?;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(StorageKey::Original(id).cache_control()));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    Ok(response.map(Body::new))
}
