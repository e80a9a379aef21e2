//! `GET /api/images/{id}`: where an image's job stands, as JSON.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use thumbq_contract::ImageId;

use crate::AppState;
use crate::error::{AppError, JsonError};
use crate::progress;
use crate::upload::thumbnail_urls;

#[derive(Debug, Serialize)]
pub struct ImageStatus {
    pub id: String,
    /// The name it was uploaded under; `null` for images from before names were kept.
    pub name: Option<String>,
    /// `pending`, `done` or `failed`.
    pub state: &'static str,
    pub thumbnails: std::collections::BTreeMap<&'static str, String>,
    /// Why the job failed, in words for a person; `null` unless `failed`.
    pub error: Option<String>,
    /// When each step of the image's way happened, and which process took it.
    pub timeline: Vec<thumbq_contract::Step>,
}

pub async fn image_status(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<ImageStatus>, JsonError> {
    let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
    let Some(progress) = progress::progress(&app.store, id).await? else {
        return Err(crate::delete::absent(&app, id).await?.into());
    };
    let name = crate::owner::record_of(&app.store, id).await?.and_then(|record| record.name);
    let timeline = progress::timeline(&app.store, id).await;
    Ok(Json(ImageStatus {
        id: id.to_string(),
        name,
        timeline,
        state: progress.name(),
        thumbnails: thumbnail_urls(id),
        error: progress.failure_reason().map(str::to_owned),
    }))
}
