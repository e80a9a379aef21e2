//! Deleting an image: by its owner (`DELETE /images/{id}`, or the delete
//! button's form), by an operator's takedown, or by the retention sweeper.
//! All of them go through [`erase`].
//!
//! [`erase`] writes the tombstone before it removes anything: a worker still
//! making the image's thumbnails looks for it after writing and removes what
//! it wrote (see `thumbq_worker::job`), so nothing of a deleted image survives
//! in any order of events. Jobs still waiting in a spool are discarded; jobs
//! on RabbitMQ are acked without work when a worker takes them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use thumbq_store::Durability;
use thumbq_contract::{EventState, ImageEvent, ImageId, StorageKey};

use crate::error::{AppError, JsonError};
use crate::owner::{self, presented_key};
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
    let (key, _) = presented_key(headers)?.ok_or(AppError::NoKey)?;
    let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
    match owner::owner_of(&app.store, id).await? {
        Some(owner) if owner.same_as(&key.owner()) => erase(app, id, Reason::Owner).await.map_err(AppError::from),
        Some(_) => Err(AppError::NotYours),
        // Uploaded before owners were recorded: only an operator can take it down.
        None if app.store.exists(StorageKey::Original(id)).await? => Err(AppError::NotYours),
        None => Err(absent(app, id).await?),
    }
}

/// What to answer about an image that is not there: 410 once deleted, 404 otherwise.
pub async fn absent(app: &AppState, id: ImageId) -> std::io::Result<AppError> {
    Ok(if progress::is_deleted(&app.store, id).await? { AppError::Deleted } else { AppError::UnknownImage })
}

/// Removes every trace of `id`: the tombstone first, then waiting jobs, the
/// original, thumbnails, failure record, and last the owner's entries (so that
/// a delete cut short can be asked again). Pages following the image hear it.
pub async fn erase(app: &AppState, id: ImageId, reason: Reason) -> std::io::Result<()> {
    let store = &app.store;
    // An unreadable owner record stops the erase, to be asked again: going on
    // would leave the owner's list naming the image.
    let owner = owner::owner_of(store, id).await?;
    store.put(StorageKey::Tombstone(id), progress::now_ms().to_string().into_bytes(), Durability::Now).await?;
    let discarded = app.dispatcher.discard(id).await?;
    store.remove(StorageKey::Original(id)).await?;
    store.remove_thumbnails_and_timelines(id).await?;
    store.remove(StorageKey::Failure(id)).await?;
    match owner {
        Some(owner) => owner::forget_owner(store, owner, id).await?,
        None => store.remove(StorageKey::Owner(id)).await?,
    }
    tracing::info!(image.id = %id, ?reason, discarded_jobs = discarded, "Deleted an image.");
    app.metrics.deleted(reason);
    app.announce(ImageEvent::new(id, EventState::Deleted)).await;
    Ok(())
}
