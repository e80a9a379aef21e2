//! Deleting an image: by its owner (`DELETE /images/{id}`, or the delete
//! button's form), by an operator's takedown, or by the retention sweeper.
//! All of them go through [`erase`].
//!
//! [`erase`] marks the record deleted before it removes anything: a worker
//! still making the image's thumbnails finds its next record refused, and
//! removes what it wrote (see `thumbq_worker::job`), so nothing of a deleted
//! image survives in any order of events. Its job, if still in the outbox,
//! goes in the same transaction; a job already queued is acked without work
//! when a worker takes it. Files the store would not remove then are the
//! reconciler's to finish (see `reconcile`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use thumbq_contract::{EventState, ImageEvent, ImageId, StorageKey};
use thumbq_repo::{Deletion, ImageState};

use crate::error::{AppError, JsonError};
use crate::owner::{presented_delete_token, presented_key};
use crate::{AppState, progress, same_origin};

/// Why an image was deleted, for the log.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    Owner,
    Takedown,
    Retention,
}

/// `DELETE /images/{id}`: 204 for the owner; 401 without a key, 403 with another's.
pub async fn delete(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<StatusCode, JsonError> {
    delete_as_owner(&app, &id, &headers).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /images/{id}/delete`: the delete button, a form that needs no script.
/// Back to the home page, which says it is done.
pub async fn delete_form(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, AppError> {
    delete_as_owner(&app, &id, &headers).await?;
    Ok(Redirect::to("/?deleted=1").into_response())
}

async fn delete_as_owner(app: &AppState, id: &str, headers: &HeaderMap) -> Result<(), AppError> {
    same_origin::check(headers)?;
    // The image's own delete token deletes it, and nothing else.
    if let Some(token_hash) = presented_delete_token(headers) {
        let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
        if app.repo.has_delete_token(id, &token_hash).await? {
            return erase(app, id, Reason::Owner).await.map(|_| ());
        }
        let record = app.repo.image(id).await?.ok_or(AppError::UnknownImage)?;
        return Err(if record.state() == ImageState::Deleted { AppError::Deleted } else { AppError::OtherImagesToken });
    }
    let (key, _) = presented_key(headers, app.settings.secure_cookies)?.ok_or(AppError::NoKey)?;
    let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
    let record = app.repo.image(id).await?.ok_or(AppError::UnknownImage)?;
    if record.state() == ImageState::Deleted {
        // Whoever asks, this only removes what a delete cut short left of a deleted image.
        erase(app, id, Reason::Owner).await?;
        return Err(AppError::Deleted);
    }
    if !record.is_owned_by(Some(&key.owner())) {
        return Err(AppError::NotYours);
    }
    erase(app, id, Reason::Owner).await.map(|_| ())
}

/// Deletes `id`. The delete is one transaction that marks its record deleted:
/// from then on every link to it answers 410, whatever the store still holds.
/// Its waiting jobs, original and thumbnails are removed after it, and pages
/// following the image hear it.
///
/// Files that cannot be removed now (a bucket away) do not undo or fail the
/// delete: they are logged, and the reconciler removes them later (as does asking again).
pub async fn erase(app: &AppState, id: ImageId, reason: Reason) -> Result<Deletion, AppError> {
    let deletion = app.repo.mark_deleted(id, progress::now_ms()).await?;
    if deletion == Deletion::Unknown {
        return Ok(deletion);
    }
    match remove_files(&app.store, id).await {
        Ok(()) => {
            if let Err(error) = app.repo.purged(id, progress::now_ms()).await {
                tracing::debug!(image.id = %id, %error, "Could not record that a deleted image's files are gone; the reconciler will look again.");
            }
        }
        Err(error) => {
            tracing::warn!(image.id = %id, %error, "Deleted an image whose files could not all be removed yet; the reconciler will remove them.");
        }
    }
    if deletion == Deletion::Deleted {
        tracing::info!(image.id = %id, ?reason, "Deleted an image.");
        app.metrics.deleted(reason);
        app.announce(ImageEvent::new(id, EventState::Deleted)).await;
    }
    Ok(deletion)
}

/// Removes the original and the thumbnails of `id` from the store. A job of
/// it still queued is acked without work once a worker reads the record.
pub async fn remove_files(store: &thumbq_store::Store, id: ImageId) -> std::io::Result<()> {
    store.remove(StorageKey::Original(id)).await?;
    store.remove_thumbnails(id).await
}
