//! `Idempotency-Key`: a request named by its client is answered once; its
//! retries (the answer was lost) get that first answer, not a second image.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use thumbq_contract::OwnerId;
use thumbq_repo::Attempt;

use crate::AppState;
use crate::error::AppError;
use crate::progress::now_ms;

/// A request's `Idempotency-Key` not yet given its answer. Should the handler
/// be dropped first (the client hung up, the server is stopping), the key is
/// forgotten, so that a retry goes ahead at once rather than waiting out
/// [`ABANDONED_AFTER_MS`]; the retry's files are then the owner's already
/// stored ones, if they were, and come back as `duplicate_of`.
pub(super) struct UnsettledKey {
    repo: thumbq_repo::Repository,
    owner: OwnerId,
    key: String,
}

impl UnsettledKey {
    pub(super) fn settled(mut self) {
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

/// What a request named by its key may do.
pub(super) enum Claim {
    /// Go ahead: it is the first; the key is settled with its answer.
    First(UnsettledKey),
    /// Nothing: an earlier try was answered with this, which the retry gets.
    Answered(String),
}

/// Claims `request_key` of `owner` for this request: the first try goes
/// ahead; a retry of an answered one gets its answer; one still running, or
/// the key reused for other bytes, is refused.
pub(super) async fn claim(app: &AppState, owner: OwnerId, request_key: &str, headers: &HeaderMap) -> Result<Claim, AppError> {
    let now = now_ms();
    // A retry is the same request again: of the same length (a browser's form has a boundary of the same length each time).
    let fingerprint = headers.get(header::CONTENT_LENGTH).and_then(|length| length.to_str().ok());
    match app.repo.attempt(&owner, request_key, fingerprint, now, now.saturating_sub(ABANDONED_AFTER_MS)).await? {
        Attempt::First => Ok(Claim::First(UnsettledKey { repo: app.repo.clone(), owner, key: request_key.to_owned() })),
        Attempt::Answered(answer) => Ok(Claim::Answered(answer)),
        Attempt::Reused => Err(AppError::IdempotencyKeyReused),
        Attempt::Running => Err(AppError::RequestInProgress),
    }
}

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
pub(super) async fn remember(app: &AppState, owner: &OwnerId, request_key: &str, response: Response) -> Response {
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

/// The first answer to a request, given again to its retry, without the
/// images' delete tokens (the server keeps none; the owner key deletes them).
pub(super) fn replayed(answer: String) -> Response {
    let location = serde_json::from_str::<serde_json::Value>(&answer).ok().and_then(|json| json["images"][0]["page"].as_str().map(str::to_owned));
    let mut response = (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], answer).into_response();
    if let Some(location) = location.and_then(|location| header::HeaderValue::try_from(location).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    response
}
