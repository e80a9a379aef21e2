//! `GET /api/images/{id}`: where an image's job stands, as JSON; and
//! `GET /api/queue`: what the queue holds, which pages read when a job takes long.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use thumbq_contract::ImageId;
use thumbq_repo::ImageState;

use crate::AppState;
use crate::error::{AppError, JsonError};
use crate::progress;
use crate::upload::thumbnail_urls;

#[derive(Debug, Serialize)]
pub struct ImageStatus {
    pub id: String,
    /// The name it was uploaded under.
    pub name: Option<String>,
    /// `pending`, `done` or `failed`.
    pub state: &'static str,
    /// Each size's baseline file (JPEG, or PNG where there is transparency), by size name.
    pub thumbnails: std::collections::BTreeMap<&'static str, String>,
    /// The same sizes in WebP, about a seventh smaller at the same look (`scripts/bench --only webp`); `null` until they are written (after the baseline files).
    pub webp: Option<std::collections::BTreeMap<&'static str, String>>,
    /// A blurred stand-in for the image (ThumbHash, base64), from the first size written on; `null` before and for a failed image.
    pub placeholder: Option<String>,
    /// Why the job failed, in words for a person; `null` unless `failed`.
    pub error: Option<String>,
    /// The file ended before its picture did: the thumbnails show what there was, grey below. Upload it again.
    pub cut_off: bool,
    /// When each step of the image's way happened, and which process took it.
    pub timeline: Vec<thumbq_contract::Step>,
}

pub async fn image_status(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<ImageStatus>, JsonError> {
    let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
    let (record, steps) = app.repo.image_with_timeline(id).await?.ok_or(AppError::UnknownImage)?;
    let state = record.state();
    if state == ImageState::Deleted {
        return Err(AppError::Deleted.into());
    }
    let timeline = progress::public_timeline(steps);
    Ok(Json(ImageStatus {
        id: id.to_string(),
        name: record.name,
        timeline,
        state: state.name(),
        thumbnails: thumbnail_urls(id),
        webp: record.webp.then(|| thumbnail_urls(id).into_iter().map(|(size, url)| (size, format!("{url}.webp"))).collect()),
        placeholder: record.placeholder,
        error: record.failure.map(|failure| failure.reason),
        cut_off: record.cut_off,
    }))
}

/// `GET /api/queue`: `{"jobs": n|null, "workers": n|null}`, as the queue says
/// (`workers` is `null` on the embedded queue, which does not know them).
pub async fn queue(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CACHE_CONTROL, "no-store")], Json(app.dispatcher.waiting().await))
}
