//! The HTML pages: the upload form, an image's page and a page of several images.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::Deserialize;
use thumbq_contract::{ImageId, SourceFormat, ThumbSize};

use crate::AppState;
use crate::error::{AppError, human_bytes};
use crate::progress::{self, Progress};

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    accept: &'static str,
    accepted_formats: &'static str,
    max_upload: String,
    max_upload_bytes: u64,
    max_files: u16,
    recent: Vec<ImageView>,
}

/// How many recent uploads the home page shows.
const RECENT_UPLOADS: usize = 12;

/// `GET /`: the upload form. It works without JavaScript.
pub async fn index(State(app): State<AppState>) -> Result<Html<String>, AppError> {
    let settings = &app.settings;
    let page = IndexPage {
        accept: "image/jpeg,image/png,image/gif,image/webp",
        accepted_formats: SourceFormat::ACCEPTED,
        max_upload: human_bytes(settings.max_upload_bytes),
        max_upload_bytes: settings.max_upload_bytes,
        max_files: settings.max_files_per_request,
        recent: recent_images(&app).await?,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

/// The newest uploads, newest first: ids are UUID v7, so their order is upload order.
async fn recent_images(app: &AppState) -> Result<Vec<ImageView>, AppError> {
    let mut ids = Vec::new();
    let mut entries = tokio::fs::read_dir(app.storage.root().join("originals")).await?;
    while let Some(entry) = entries.next_entry().await? {
        if let Some(id) = entry.file_name().to_str().and_then(|name| name.parse::<ImageId>().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut images = Vec::with_capacity(RECENT_UPLOADS);
    for id in ids.into_iter().take(RECENT_UPLOADS) {
        // An image removed meanwhile is simply left out.
        if let Ok(image) = ImageView::load(app, id).await {
            images.push(image);
        }
    }
    Ok(images)
}

/// One image as the pages show it.
pub struct ImageView {
    pub id: String,
    pub state: &'static str,
    pub failure: Option<String>,
    pub thumbnails: Vec<ThumbnailView>,
}

/// One thumbnail slot: the image once ready, a placeholder until then.
pub struct ThumbnailView {
    pub size: &'static str,
    pub url: String,
    pub box_px: u32,
    pub ready: bool,
}

impl ImageView {
    async fn load(app: &AppState, id: ImageId) -> Result<Self, AppError> {
        let progress = progress::progress(&app.storage, id).await?.ok_or(AppError::UnknownImage)?;
        let mut thumbnails = Vec::with_capacity(ThumbSize::ALL.len());
        for size in ThumbSize::ALL {
            thumbnails.push(ThumbnailView {
                size: size.name(),
                url: format!("/thumbs/{id}/{size}"),
                box_px: app.settings.sizes.max_side(size),
                ready: progress::thumbnail(&app.storage, id, size).await?.is_some(),
            });
        }
        Ok(Self { id: id.to_string(), state: progress.name(), failure: progress.failure_reason().map(str::to_owned), thumbnails })
    }

    pub fn pending(&self) -> bool {
        self.state == Progress::Pending.name()
    }
}

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage {
    image: ImageView,
}

/// `GET /images/{id}`: the three sizes, each a placeholder until its thumbnail is ready.
pub async fn image(State(app): State<AppState>, Path(id): Path<String>) -> Result<Html<String>, AppError> {
    let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
    let page = ImagePage { image: ImageView::load(&app, id).await? };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    images: Vec<ImageView>,
    any_pending: bool,
}

#[derive(Deserialize)]
pub struct BatchQuery {
    ids: String,
}

/// `GET /images?ids=a,b,c`: the images of one multi-file upload.
pub async fn batch(State(app): State<AppState>, Query(query): Query<BatchQuery>) -> Result<Html<String>, AppError> {
    let mut images = Vec::new();
    for id in query.ids.split(',').take(usize::from(app.settings.max_files_per_request)) {
        let id: ImageId = id.trim().parse().map_err(|_| AppError::UnknownImage)?;
        images.push(ImageView::load(&app, id).await?);
    }
    let any_pending = images.iter().any(ImageView::pending);
    Ok(Html(BatchPage { images, any_pending }.render().map_err(anyhow::Error::from)?))
}

/// Every path no route claims.
pub async fn not_found() -> AppError {
    AppError::NotFound
}
