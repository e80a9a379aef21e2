//! Deleting an image: by its owner (`DELETE /images/{id}`, or the delete
//! button's form), by an operator's takedown, or by the retention sweeper.
//! All of them go through [`erase`], the owner's after a while: their delete
//! puts the image in the trash (see `thumbq_repo::trash`), where it is
//! deleted to everyone at once and can be restored (`POST
//! /images/{id}/restore`) for `--undo-delete-secs`; then the reconciler
//! empties the trash ([`empty_trash`]).
//!
//! [`erase`] marks the record deleted before it removes anything: a worker
//! still making the image's thumbnails finds its next record refused, and
//! removes what it wrote (see `thumbq_worker::job`), so nothing of a deleted
//! image survives in any order of events. Its job, if still in the outbox,
//! goes in the same transaction; a job already queued is acked without work
//! when a worker takes it. Files the store would not remove then are the
//! reconciler's to finish (see `reconcile`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use thumbq_contract::{EventState, ImageEvent, ImageId, StorageKey};
use thumbq_repo::{Deletion, Restoration};

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
/// Back to the home page, which says it is done and offers to undo it.
pub async fn delete_form(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, AppError> {
    let id = delete_as_owner(&app, &id, &headers).await?;
    Ok(Redirect::to(&format!("/?deleted={id}")).into_response())
}

/// `POST /images/{id}/restore`: Undo, for `--undo-delete-secs` after the
/// owner's delete. A script asking for JSON gets 204 (or `{"error"}`); a
/// form goes back to the home page, where the image is again.
pub async fn restore(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let json = headers.get(header::ACCEPT).and_then(|accept| accept.to_str().ok()).is_some_and(|accept| accept.contains("application/json"));
    match restore_as_owner(&app, &id, &headers).await {
        Ok(_) if json => StatusCode::NO_CONTENT.into_response(),
        Ok(id) => Redirect::to(&format!("/?restored={id}")).into_response(),
        Err(error) if json => JsonError(error).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Checks that whoever asks may delete (or restore) `id`: the image's own
/// delete token, or its owner's key. Gives its record, not deleted for good.
async fn authorised(app: &AppState, id: &str, headers: &HeaderMap) -> Result<thumbq_repo::ImageRecord, AppError> {
    same_origin::check(headers)?;
    let token_hash = presented_delete_token(headers);
    let key = match token_hash {
        Some(_) => None,
        None => Some(presented_key(headers, app.settings.secure_cookies)?.ok_or(AppError::NoKey)?.0),
    };
    let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
    let record = app.repo.image(id).await?.ok_or(AppError::UnknownImage)?;
    if record.is_deleted_for_good() {
        // Whoever asks, this only removes what a delete cut short left of a deleted image.
        erase(app, id, Reason::Owner).await?;
        return Err(AppError::Deleted);
    }
    match (token_hash, key) {
        // The image's own delete token deletes it, and nothing else.
        (Some(token_hash), _) if !app.repo.has_delete_token(id, &token_hash).await? => Err(AppError::OtherImagesToken),
        (None, Some(key)) if !record.is_owned_by(Some(&key.owner())) => Err(AppError::NotYours),
        _ => Ok(record),
    }
}

async fn delete_as_owner(app: &AppState, id: &str, headers: &HeaderMap) -> Result<ImageId, AppError> {
    let record = authorised(app, id, headers).await?;
    if record.trashed_ms.is_some() {
        return Err(AppError::Deleted);
    }
    if app.settings.undo_delete_secs == 0 {
        erase(app, record.id, Reason::Owner).await?;
    } else if app.repo.trash(record.id, progress::now_ms()).await? == Deletion::Deleted {
        tracing::info!(image.id = %record.id, undo_secs = app.settings.undo_delete_secs, "Deleted an image; its owner can undo it for a while.");
        app.metrics.deleted(Reason::Owner);
        app.announce(ImageEvent::new(record.id, EventState::Deleted)).await;
    }
    Ok(record.id)
}

async fn restore_as_owner(app: &AppState, id: &str, headers: &HeaderMap) -> Result<ImageId, AppError> {
    let record = authorised(app, id, headers).await.map_err(|error| match error {
        AppError::Deleted => AppError::TooLateToRestore,
        error => error,
    })?;
    let not_before = progress::now_ms().saturating_sub(app.settings.undo_delete_secs * 1000);
    match app.repo.restore(record.id, not_before).await? {
        Restoration::Restored => tracing::info!(image.id = %record.id, "Its owner took an image back from the trash."),
        Restoration::NotTrashed => {}
        Restoration::TooLate => return Err(AppError::TooLateToRestore),
        Restoration::Unknown => return Err(AppError::UnknownImage),
    }
    Ok(record.id)
}

/// Deletes, for good, what the owner deleted before `--undo-delete-secs`
/// ago: the reconciler's round. An image restored meanwhile stays.
pub async fn empty_trash(app: &AppState, limit: usize) -> Result<usize, AppError> {
    let now = progress::now_ms();
    let cutoff = now.saturating_sub(app.settings.undo_delete_secs * 1000);
    let mut deleted = 0;
    for id in app.repo.trashed_before(cutoff, limit).await? {
        if app.repo.delete_trashed(id, cutoff, now).await? == Deletion::Deleted {
            finish_erasing(app, id).await;
            deleted += 1;
        }
    }
    Ok(deleted)
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
    finish_erasing(app, id).await;
    if deletion == Deletion::Deleted {
        tracing::info!(image.id = %id, ?reason, "Deleted an image.");
        app.metrics.deleted(reason);
        app.announce(ImageEvent::new(id, EventState::Deleted)).await;
    }
    Ok(deletion)
}

/// Removes the files of `id`, deleted for good, and records that they are gone.
async fn finish_erasing(app: &AppState, id: ImageId) {
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
}

/// Removes the original and the thumbnails of `id` from the store. A job of
/// it still queued is acked without work once a worker reads the record.
pub async fn remove_files(store: &thumbq_store::Store, id: ImageId) -> std::io::Result<()> {
    store.remove(StorageKey::Original(id)).await?;
    store.remove_thumbnails(id).await
}
