//! The one error type of the web server, and what the user sees of it.
//!
//! Each variant's doc says the status and what the user reads. Causes inside
//! the server are logged once, here, and never shown.

use askama::Template;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Everything a request can end in other than success.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 404 "There is no page here."
    #[error("There is no page here.")]
    NotFound,
    /// 404 "There is no image with this id."
    #[error("There is no image with this id.")]
    UnknownImage,
    /// 410 "This image was deleted."
    #[error("This image was deleted.")]
    Deleted,
    /// 410: Undo came after `--undo-delete-secs`, or after a takedown.
    #[error("This image was deleted for good: it is too late to undo that.")]
    TooLateToRestore,
    /// 401: deleting needs the owner's key, and none came (no cookie, no bearer token).
    #[error(
        "Deleting an image (or undoing that) needs the key it was uploaded with: this browser's cookie, or its owner_key or delete_token as `Authorization: Bearer …`."
    )]
    NoKey,
    /// 401: a bearer token that thumbq never made.
    #[error("The bearer token is not a thumbq key: send the owner_key (or, to delete one image, its delete_token) of an upload as it was given.")]
    BadKey,
    /// 403: the key is not the one this image was uploaded with (or the delete token is another image's).
    #[error("This image was uploaded by someone else; only they can delete it.")]
    NotYours,
    /// 403: an image's delete token sent to delete another image.
    #[error("This delete token is another image's: each deletes only the image it came with.")]
    OtherImagesToken,
    /// 422: an `Idempotency-Key` sent again with a different request.
    #[error("This Idempotency-Key was used for a different request: send a new key with a new request.")]
    IdempotencyKeyReused,
    /// 403: a request to change something came from another site's page.
    #[error("This request came from another site; thumbq takes it only from its own pages.")]
    CrossSite,
    /// 400: the form had no file in it.
    #[error("Choose at least one image to upload.")]
    NoFile,
    /// 413: more files than one request may carry.
    #[error("Upload at most {limit} files at once. Nothing was uploaded.")]
    TooManyFiles { limit: u16 },
    /// 415: the bytes are not of a format we accept, whatever the name or header said.
    #[error("“{file}” is not a JPEG, PNG, GIF, WebP, HEIC, AVIF or JPEG XL image.")]
    NotAnImage { file: String },
    /// 400: a file with no bytes.
    #[error("“{file}” is empty.")]
    EmptyFile { file: String },
    /// 413: a file over the size limit; what was received is deleted.
    #[error("“{file}” is larger than the limit of {}.", human_bytes(*limit_bytes))]
    TooLarge { file: String, limit_bytes: u64 },
    /// 422: the header says the image is over the pixel limits (a decompression bomb, say); nothing is decoded.
    #[error("“{file}” cannot be accepted: {reason}.")]
    OverPixelLimits { file: String, reason: thumbq_contract::DimensionError },
    /// 422: the file starts like an image but its header cannot be read.
    #[error("“{file}” looks like a {format} image, but its header is damaged.")]
    DamagedHeader { file: String, format: &'static str },
    /// 413: more parts in the form than files it may carry, with room for a few fields.
    #[error("The form has more than {limit} parts. Nothing was uploaded.")]
    TooManyParts { limit: usize },
    /// 413: the form's part headers and non-file fields together are larger than a form needs.
    #[error("The form's part headers and fields are too large. Nothing was uploaded.")]
    FormOverhead,
    /// 408: the upload sent no byte for too long; what was received is deleted.
    #[error("The upload stopped: nothing arrived for {idle_secs} seconds. Please try again.")]
    UploadStalled { idle_secs: u64 },
    /// 408: the upload kept sending, but too little to ever finish; what was received is deleted.
    #[error("The upload was too slow: less than {} arrived in {secs} seconds. Nothing was uploaded; please try again on a better connection.", human_bytes(*min_bytes))]
    UploadTooSlow { min_bytes: u64, secs: u64 },
    /// 429 with `Retry-After`: this client sent too many files too fast; the request keeps nothing.
    #[error("Too many uploads from your address: please wait {retry_after_secs} seconds and try again.")]
    TooManyUploads { retry_after_secs: u64 },
    /// 429 with `Retry-After`: this client sent too many bytes too fast; the request keeps nothing.
    #[error("Your address has sent more than {} a minute: please wait {retry_after_secs} seconds and try again.", human_bytes(*bytes_per_minute))]
    TooManyBytes { bytes_per_minute: u64, retry_after_secs: u64 },
    /// 429 with `Retry-After` (when the first of the day's bytes are a day old): the daily
    /// quota of the owner or of the client's address is spent, or this upload would pass it.
    #[error("This upload would take {} past {} in 24 hours, the most {} may upload. Nothing was uploaded; you can upload more in {}.",
        quota.holder(), human_bytes(*limit_bytes), quota.whom(), human_wait(*retry_after_secs))]
    QuotaReached { quota: crate::quota::Quota, limit_bytes: u64, retry_after_secs: u64 },
    /// 429 with `Retry-After`: this client has as many uploads in progress as it may.
    #[error("Your address has {limit} uploads in progress already: wait for one to finish, then try again.")]
    UploadsInProgress { limit: u32 },
    /// 507: the disk is (nearly) full; nothing was kept.
    #[error("The server has no room for uploads right now. Nothing was uploaded; please try again later.")]
    DiskFull,
    /// 503 with `Retry-After`: the object store does not answer; nothing was kept (or changed).
    #[error("Storage is unavailable for a moment. Nothing was changed; please try again shortly.")]
    StoreUnavailable,
    /// 503 with `Retry-After`: the metadata database does not answer; nothing was kept (or changed).
    #[error("The server cannot reach its database for a moment. Nothing was changed; please try again shortly.")]
    DatabaseUnavailable,
    /// 400: an `Idempotency-Key` that is not 1 to 255 visible ASCII characters.
    #[error("The Idempotency-Key header must be 1 to 255 visible ASCII characters (a UUID, say).")]
    BadIdempotencyKey,
    /// 409 with `Retry-After`: a request with the same `Idempotency-Key` is still being answered.
    #[error("A request with this Idempotency-Key is still being answered; ask again in a moment for its answer.")]
    RequestInProgress,
    /// 400 or 413: the request is not a readable multipart form (the message says why).
    #[error("The upload could not be read: {message}")]
    BadForm { status: StatusCode, message: String },
    /// 404: a resumable upload this server never made, or someone else's (a stranger learns nothing).
    #[error("There is no such upload: it was never made, it was finished long ago or cancelled, or it is someone else's.")]
    UnknownUpload,
    /// 410: a resumable upload past its expiry; its bytes are (being) removed.
    #[error("This upload expired before it was finished; its bytes were removed. Start it again.")]
    UploadExpired,
    /// 412 with `Tus-Version`: a tus request of a version other than 1.0.0.
    #[error("This server speaks tus 1.0.0: send Tus-Resumable: 1.0.0.")]
    TusVersion,
    /// 400: a resumable upload's header is missing or malformed (the message says which).
    #[error("{0}")]
    BadUploadRequest(&'static str),
    /// 415: a `PATCH` whose body is not `application/offset+octet-stream`.
    #[error("Send an upload's bytes with Content-Type: application/offset+octet-stream.")]
    NotOffsetOctetStream,
    /// 409: a `PATCH` from another offset than where the upload stands.
    #[error("The upload has {received} bytes, not {sent}: ask where it stands (HEAD) and send from there.")]
    OffsetMismatch { received: u64, sent: u64 },
    /// 423 with `Retry-After`: another request of this upload's is still storing what it brought.
    #[error("Another request for this upload is still storing what it brought; ask again in a moment.")]
    UploadBusy,
    /// 409: the answer of a resumable upload asked for before its last byte arrived.
    #[error("The upload has {} of {}: send the rest first.", human_bytes(*received), human_bytes(*length))]
    UploadIncomplete { received: u64, length: u64 },
    /// 429: an owner with as many resumable uploads begun and not finished as they may have.
    #[error("You have {limit} uploads begun and not finished: finish or cancel some, or wait for them to expire.")]
    TooManyOpenUploads { limit: u64 },
    /// 429: a client address with as many resumable uploads begun and not finished as one may have.
    #[error("Your address has {limit} uploads begun and not finished: finish or cancel some, or wait for them to expire.")]
    TooManyOpenUploadsFromClient { limit: u64 },
    /// 400: the connection closed before the form's end (the browser reloaded, or the file was removed); nothing of it was kept.
    #[error("The upload was cut off before its end: nothing of it was kept. Send it again.")]
    UploadCutShort,
    /// 500 "Something went wrong on our side."; the cause is logged.
    #[error("Something went wrong on our side. It has been logged; please try again.")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::UnknownImage | Self::UnknownUpload => StatusCode::NOT_FOUND,
            Self::Deleted | Self::UploadExpired | Self::TooLateToRestore => StatusCode::GONE,
            Self::TusVersion => StatusCode::PRECONDITION_FAILED,
            Self::BadUploadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotOffsetOctetStream => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::OffsetMismatch { .. } | Self::UploadIncomplete { .. } => StatusCode::CONFLICT,
            Self::UploadBusy => StatusCode::LOCKED,
            Self::TooManyOpenUploads { .. } | Self::TooManyOpenUploadsFromClient { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NoKey | Self::BadKey => StatusCode::UNAUTHORIZED,
            Self::NotYours | Self::CrossSite | Self::OtherImagesToken => StatusCode::FORBIDDEN,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NoFile | Self::EmptyFile { .. } | Self::BadIdempotencyKey | Self::UploadCutShort => StatusCode::BAD_REQUEST,
            Self::RequestInProgress => StatusCode::CONFLICT,
            Self::TooManyFiles { .. } | Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotAnImage { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::OverPixelLimits { .. } | Self::DamagedHeader { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadForm { status, .. } => *status,
            Self::TooManyParts { .. } | Self::FormOverhead => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UploadStalled { .. } | Self::UploadTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyUploads { .. } | Self::TooManyBytes { .. } | Self::QuotaReached { .. } | Self::UploadsInProgress { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            Self::StoreUnavailable | Self::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this refuses one file for what it is, so that the request's other files can still be kept.
    pub fn is_about_one_file(&self) -> bool {
        matches!(self, Self::NotAnImage { .. } | Self::EmptyFile { .. } | Self::TooLarge { .. } | Self::OverPixelLimits { .. } | Self::DamagedHeader { .. })
    }

    /// A short name for metrics' labels.
    pub fn reason_label(&self) -> &'static str {
        match self {
            Self::NotFound | Self::UnknownImage | Self::UnknownUpload => "not_found",
            Self::Deleted | Self::TooLateToRestore => "deleted",
            Self::UploadExpired => "expired",
            Self::TusVersion | Self::BadUploadRequest(_) | Self::NotOffsetOctetStream => "bad_tus_request",
            Self::OffsetMismatch { .. } => "offset_mismatch",
            Self::UploadBusy => "upload_busy",
            Self::UploadIncomplete { .. } => "incomplete",
            Self::TooManyOpenUploads { .. } | Self::TooManyOpenUploadsFromClient { .. } => "too_many_open_uploads",
            Self::NoKey | Self::BadKey => "no_key",
            Self::NotYours | Self::OtherImagesToken => "not_yours",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::CrossSite => "cross_site",
            Self::NoFile => "no_file",
            Self::TooManyFiles { .. } => "too_many_files",
            Self::NotAnImage { .. } => "not_an_image",
            Self::EmptyFile { .. } => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::OverPixelLimits { .. } => "over_pixel_limits",
            Self::DamagedHeader { .. } => "damaged_header",
            Self::BadForm { .. } => "bad_form",
            Self::UploadCutShort => "cut_short",
            Self::BadIdempotencyKey => "bad_idempotency_key",
            Self::RequestInProgress => "request_in_progress",
            Self::TooManyParts { .. } => "too_many_parts",
            Self::FormOverhead => "form_overhead",
            Self::UploadStalled { .. } | Self::UploadTooSlow { .. } => "stalled",
            Self::TooManyUploads { .. } => "rate_limited",
            Self::TooManyBytes { .. } => "byte_rate_limited",
            Self::QuotaReached { quota, .. } => quota.reason_label(),
            Self::UploadsInProgress { .. } => "uploads_in_progress",
            Self::DiskFull => "disk_full",
            Self::StoreUnavailable => "store_unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// Logs causes the user is not shown, once, and sets the status.
    fn finish(&self, mut response: Response) -> Response {
        if let Self::Internal(cause) = self {
            tracing::error!(error = ?cause, "A request failed inside the server.");
        }
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        // An error depends on who asked (a stranger's 404 for an original, say): no cache keeps it.
        headers.entry(axum::http::header::CACHE_CONTROL).or_insert(axum::http::HeaderValue::from_static("no-store"));
        match self {
            Self::NoKey | Self::BadKey => {
                headers.insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static(r#"Bearer realm="thumbq""#));
            }
            Self::TooManyUploads { retry_after_secs } | Self::QuotaReached { retry_after_secs, .. } => {
                headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(*retry_after_secs));
            }
            // Refused as it streams: the rest of the body is not read.
            Self::TooManyBytes { retry_after_secs, .. } => {
                headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(*retry_after_secs));
                headers.insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            }
            Self::DiskFull => {
                headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("60"));
            }
            Self::TusVersion => {
                headers.insert("tus-version", axum::http::HeaderValue::from_static(crate::resumable::TUS_VERSION));
            }
            Self::RequestInProgress | Self::UploadBusy => {
                headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            }
            Self::StoreUnavailable | Self::DatabaseUnavailable => {
                headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
            }
            // The rest of the body is not read: the connection cannot be reused.
            Self::UploadsInProgress { .. } => {
                headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
                headers.insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            }
            Self::UploadStalled { .. } | Self::UploadTooSlow { .. } => {
                headers.insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// A full disk is the user's 507 and an object store away a 503, not bugs
/// of ours; any other I/O error is.
impl From<std::io::Error> for AppError {
    fn from(error: std::io::Error) -> Self {
        if thumbq_store::durable::is_disk_full(&error) {
            tracing::warn!(%error, "The disk is full: refusing the upload.");
            return Self::DiskFull;
        }
        if thumbq_store::is_unavailable(&error) {
            tracing::warn!(%error, "The object store is unavailable: answering 503.");
            return Self::StoreUnavailable;
        }
        Self::Internal(error.into())
    }
}

/// A database away is the user's 503, not a bug of ours; any other database error is.
impl From<thumbq_repo::RepoError> for AppError {
    fn from(error: thumbq_repo::RepoError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, "The database is unavailable: answering 503.");
            return Self::DatabaseUnavailable;
        }
        Self::Internal(error.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// Browsers get a page that says what went wrong.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let title = self.status().canonical_reason().unwrap_or("Error");
        let page = ErrorPage { title, message: &message }.render().unwrap_or(message);
        self.finish(Html(page).into_response())
    }
}

/// API clients get `{"error": "…"}` instead of a page.
pub struct JsonError(pub AppError);

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.0.to_string() }));
        self.0.finish(body.into_response())
    }
}

impl<E: Into<AppError>> From<E> for JsonError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// "50 MB", "1.5 KB": sizes as people read them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 { format!("{value:.0} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// "40 seconds", "12 minutes", "about 3 hours": a wait as people say it.
pub fn human_wait(secs: u64) -> String {
    match secs {
        0..=90 => format!("{secs} seconds"),
        91..=5400 => format!("{} minutes", secs.div_ceil(60)),
        _ => format!("about {} hours", secs.div_ceil(3600)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(human_wait(40), "40 seconds");
        assert_eq!(human_wait(601), "11 minutes");
        assert_eq!(human_wait(3 * 3600 - 5), "about 3 hours");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(50 * 1024 * 1024), "50 MB");
        assert_eq!(human_bytes(1536), "1.5 KB");
    }
}
