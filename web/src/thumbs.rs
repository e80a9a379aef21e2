//! `GET /thumbs/{id}/{size}`: a thumbnail, or why there is none yet;
//! `GET /thumbs/{id}/{size}.webp` the same size in WebP, which a worker writes
//! after all three (an image made before WebPs existed has none: 404 without `Retry-After`);
//! once it exists, the baseline file's answers name it in a `Link` header.
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
//!
//! The image's record answers every row but the first from the repository;
//! the store is asked only to stream a file the record says is written.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use thumbq_contract::{ImageId, SourceFormat, StorageKey, ThumbFormat, ThumbSize};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use thumbq_store::Opened;

use thumbq_repo::ImageState;

use crate::AppState;
use crate::error::AppError;
use crate::owner;

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
    // The record says what there is; the store is asked only for a file it knows is written.
    let record = app.repo.image(id).await?.ok_or(AppError::NotFound)?;
    match record.state() {
        ImageState::Deleted => return Ok(gone("deleted", "This image was deleted.\n".to_owned())),
        ImageState::Failed => {
            let reason = record.failure.map(|failure| failure.reason).unwrap_or_default();
            return Ok(gone("failed", format!("No thumbnail will be made: {reason}\n")));
        }
        ImageState::Pending | ImageState::Done => {}
    }
    let format = match (webp, record.thumbnail(size)) {
        (true, Some(_)) if record.webp => Some(ThumbFormat::Webp),
        // A baseline file without its WebP: made before WebPs were, or its WebP is seconds away. Pages list only what exists.
        (true, Some(_)) => return Err(AppError::NotFound),
        (_, format) => format,
    };
    if let Some(format) = format {
        let key = StorageKey::Thumbnail(id, size, format);
        if let Some(mut response) = serve(&app, key, request).await? {
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(key.cache_control()));
            // A page's script that found the baseline file learns of the smaller WebP beside it, as the server's pages know of it.
            if !webp && record.webp {
                let link = format!("</thumbs/{id}/{size}.webp>; rel=\"alternate\"; type=\"image/webp\"");
                headers.insert(header::LINK, HeaderValue::try_from(link).expect("an id and a size are ASCII"));
            }
            // The page that follows it tells the owner to upload the whole file again.
            if record.cut_off {
                headers.insert(IMAGE_WARNING, HeaderValue::from_static("cut-off"));
            }
            return Ok(response);
        }
        // Recorded but not in the store: deleted between the two looks, or a store that lost it.
        tracing::warn!(image.id = %id, ?key, "A thumbnail the record names is not in the store.");
    }
    let headers = [(header::RETRY_AFTER, RETRY_AFTER_SECONDS), (header::CACHE_CONTROL, "no-store")];
    Ok((StatusCode::NOT_FOUND, headers, "The thumbnail is being made.\n").into_response())
}

/// 410, saying in `X-Image-State` whether the image `failed` or was `deleted`.
fn gone(state: &'static str, body: String) -> Response {
    (StatusCode::GONE, [(header::CACHE_CONTROL, "no-store"), (IMAGE_STATE, state)], body).into_response()
}

/// Says why a thumbnail answered 410.
const IMAGE_STATE: header::HeaderName = header::HeaderName::from_static("x-image-state");
/// `cut-off` on a thumbnail of a file that ended before its picture did.
const IMAGE_WARNING: header::HeaderName = header::HeaderName::from_static("x-image-warning");

/// `GET /originals/{id}` (`?download` to save it): the upload as it was sent, under its name, to its owner only
/// (cookie or bearer token); anyone else gets 404, as for no image at all.
/// It is served under the type its bytes said it is at upload, and never cached by a
/// shared cache. The bytes are the client's, so the answer may never run as
/// a page or script: `nosniff` (on every answer) and a sandboxing CSP.
pub async fn original(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Result<Response, AppError> {
    let id: ImageId = id.parse().map_err(|_| AppError::NotFound)?;
    let record = app.repo.image(id).await?.ok_or(AppError::NotFound)?;
    if !record.is_owned_by(owner::caller(request.headers(), app.settings.secure_cookies).as_ref()) {
        return Err(AppError::NotFound);
    }
    // In the trash: its owner sees it deleted, as everyone does, until Undo.
    if record.state() == ImageState::Deleted {
        return Err(AppError::Deleted);
    }
    let format = record.format.ok_or(AppError::NotFound)?;
    let download = request.uri().query().is_some_and(|query| query.split('&').any(|pair| pair == "download" || pair.starts_with("download=")));
    let Some(mut response) = serve(&app, StorageKey::Original(id), request).await? else { return Err(AppError::NotFound) };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(StorageKey::Original(id).cache_control()));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    headers.insert(header::CONTENT_DISPOSITION, content_disposition(record.name.as_deref(), format, download));
    Ok(response)
}

/// `inline` (or, for `?download`, `attachment`) with the name the file was
/// uploaded under, given the extension of its format when it lacks one:
/// `filename` in plain ASCII for old clients, `filename*` in UTF-8 (RFC 6266).
/// The name is already clean (no path, no control characters: see `upload`).
fn content_disposition(name: Option<&str>, format: SourceFormat, download: bool) -> HeaderValue {
    let extensions: &[&str] = match format {
        SourceFormat::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
        SourceFormat::Heic => &["heic", "heif", "hif"],
        _ => &[format.code()],
    };
    let name = name.filter(|name| !name.is_empty()).unwrap_or("original");
    let has_extension = name.rsplit_once('.').is_some_and(|(_, extension)| extensions.iter().any(|known| extension.eq_ignore_ascii_case(known)));
    let name = if has_extension { name.to_owned() } else { format!("{name}.{}", extensions[0]) };
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect();
    let kind = if download { "attachment" } else { "inline" };
    HeaderValue::try_from(format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")).expect("ASCII only")
}

/// `key` as an answer to `request` (GET or HEAD, conditional or not); `None` when it is not there.
///
/// A local file is served by `ServeFile` (HEAD, ranges, If-Modified-Since); an
/// object in a bucket is streamed through, with its length and date, and a 304
/// when the client's copy is as new.
async fn serve(app: &AppState, key: StorageKey, request: Request) -> Result<Option<Response>, AppError> {
    let head_only = request.method() == axum::http::Method::HEAD;
    let if_modified_since =
        request.headers().get(header::IF_MODIFIED_SINCE).and_then(|value| value.to_str().ok()).and_then(|value| httpdate::parse_http_date(value).ok());
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

#[cfg(test)]
mod naming_tests {
    use super::*;

    #[test]
    fn an_original_comes_back_under_its_name_with_its_formats_extension() {
        let named = |name: Option<&str>, format, download| content_disposition(name, format, download).to_str().unwrap().to_owned();
        assert_eq!(named(Some("IMG_0042.HEIC"), SourceFormat::Heic, false), r#"inline; filename="IMG_0042.HEIC"; filename*=UTF-8''IMG_0042.HEIC"#);
        assert_eq!(
            named(Some("holiday"), SourceFormat::Jpeg, true),
            r#"attachment; filename="holiday.jpg"; filename*=UTF-8''holiday.jpg"#,
            "an extension is added"
        );
        assert_eq!(named(Some("scan.jpeg"), SourceFormat::Jpeg, false), r#"inline; filename="scan.jpeg"; filename*=UTF-8''scan.jpeg"#);
        assert_eq!(
            named(Some("photo.png"), SourceFormat::Avif, false),
            r#"inline; filename="photo.png.avif"; filename*=UTF-8''photo.png.avif"#,
            "the bytes decide"
        );
        assert_eq!(
            named(Some("Ünïcode \"quoted\" été.jpg"), SourceFormat::Jpeg, false),
            r#"inline; filename="_n_code _quoted_ _t_.jpg"; filename*=UTF-8''%C3%9Cn%C3%AFcode%20%22quoted%22%20%C3%A9t%C3%A9.jpg"#
        );
        assert_eq!(named(None, SourceFormat::Png, false), r#"inline; filename="original.png"; filename*=UTF-8''original.png"#);
    }
}
