//! The HTML pages: the upload form with the visitor's own uploads, an image's
//! page and a page of several images.
//!
//! No page lists anyone's images but the visitor's own: an image's page is
//! reached by its link only. Every page reads the images' records in one
//! query (the home page one more to count them, the image page one for its
//! timeline) and asks the store nothing.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use thumbq_contract::{ImageId, OwnerId, SourceFormat, ThumbSize};
use thumbq_repo::{ImageRecord, ImageState};

use crate::AppState;
use crate::dates::Utc;
use crate::error::{AppError, human_bytes};
use crate::owner;
use crate::progress;

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    accept: &'static str,
    accepted_formats: &'static str,
    max_upload: String,
    max_upload_bytes: u64,
    max_files: u16,
    yours: Vec<ImageView>,
    your_total: usize,
    newer_page: Option<usize>,
    older_page: Option<usize>,
    notice: Option<Notice>,
    /// Seconds an owner's delete can be undone (0: none), for the page's script.
    undo_secs: u64,
    /// Whether the visitor already holds an owner key; the page's script
    /// uploads one file at a time until it does, so that all get the same key.
    keyed: bool,
}

/// How many of the visitor's uploads one home page shows.
pub const UPLOADS_PER_PAGE: usize = 24;

#[derive(Deserialize)]
pub struct IndexQuery {
    /// Which page of the visitor's uploads, from 1 (the newest).
    page: Option<usize>,
    /// Set after the delete button's form: the page says it is done, and offers Undo.
    deleted: Option<String>,
    /// Set after Undo's form: the page says the image is back.
    restored: Option<String>,
}

/// What the home page says after a delete or an Undo by its form.
pub enum Notice {
    /// `seconds_left` to undo it, if any; no `name` once deleted for good.
    Deleted {
        id: String,
        name: Option<String>,
        seconds_left: Option<u64>,
    },
    Restored {
        name: String,
    },
}

/// The notice `query` asks for, if it is about an image of `caller`'s: a
/// stale or foreign link says nothing.
async fn notice(app: &AppState, query: &IndexQuery, caller: Option<&OwnerId>) -> Result<Option<Notice>, AppError> {
    let (asked, deleted) = match (&query.deleted, &query.restored) {
        (Some(id), _) => (id, true),
        (None, Some(id)) => (id, false),
        (None, None) => return Ok(None),
    };
    let Ok(id) = asked.parse::<ImageId>() else { return Ok(None) };
    let Some(record) = app.repo.image(id).await? else { return Ok(None) };
    // Deleted for good, the record no longer knows whose it was.
    if !(record.is_owned_by(caller) || deleted && record.is_deleted_for_good()) {
        return Ok(None);
    }
    let name = record.name.clone();
    Ok(match (deleted, record.state() == ImageState::Deleted) {
        (true, true) => {
            let undo_until = record.trashed_ms.map(|trashed| trashed + app.settings.undo_delete_secs * 1000);
            let seconds_left = undo_until.map(|until| until.saturating_sub(progress::now_ms()) / 1000).filter(|left| *left > 0);
            Some(Notice::Deleted { id: id.to_string(), name, seconds_left })
        }
        (false, false) => Some(Notice::Restored { name: name.unwrap_or_default() }),
        _ => None,
    })
}

/// `GET /`: the upload form, and the visitor's own uploads, newest first. It works without JavaScript.
pub async fn index(State(app): State<AppState>, headers: HeaderMap, Query(query): Query<IndexQuery>) -> Result<Response, AppError> {
    let settings = &app.settings;
    let caller = owner::caller(&headers, app.settings.secure_cookies);
    let page_number = query.page.unwrap_or(1).max(1);
    let (records, total) = match &caller {
        Some(owner) => app.repo.images_of(owner, (page_number - 1).saturating_mul(UPLOADS_PER_PAGE), UPLOADS_PER_PAGE).await?,
        None => (Vec::new(), 0),
    };
    let yours: Vec<ImageView> = records.iter().map(|record| ImageView::new(&app, record, caller.as_ref())).collect();
    let pages = total.div_ceil(UPLOADS_PER_PAGE);
    let notice = notice(&app, &query, caller.as_ref()).await?;
    let page = IndexPage {
        accept: SourceFormat::ACCEPT_ATTRIBUTE,
        accepted_formats: SourceFormat::ACCEPTED,
        max_upload: human_bytes(settings.media.max_upload_bytes),
        max_upload_bytes: settings.media.max_upload_bytes,
        max_files: settings.max_files_per_request,
        yours,
        your_total: total,
        newer_page: (page_number > 1).then(|| (page_number - 1).min(pages.max(1))),
        older_page: (page_number < pages).then_some(page_number + 1),
        notice,
        undo_secs: settings.undo_delete_secs,
        keyed: caller.is_some(),
    };
    personal(&page)
}

/// One image as the pages show it.
pub struct ImageView {
    pub id: String,
    /// The name it was uploaded under, or a stand-in from its id.
    pub name: String,
    pub state: &'static str,
    pub failure: Option<String>,
    /// The file ended before its picture did: the page asks for it again.
    pub cut_off: bool,
    pub thumbnails: Vec<ThumbnailView>,
    /// Whether the visitor owns it: only then do pages offer the original and a delete button.
    pub owned: bool,
    /// Seconds its delete can be undone, for the page's script (0: deleted at once).
    pub undo_secs: u64,
}

/// One thumbnail slot: the image once ready, a placeholder until then.
pub struct ThumbnailView {
    pub size: &'static str,
    pub url: String,
    /// The same size in WebP, only once it is written: browsers that show WebP take it, the others the `url`.
    pub webp_url: Option<String>,
    /// The image's ThumbHash (base64) for a slot still waiting, which the page's script paints.
    pub placeholder: Option<String>,
    pub box_px: u32,
    pub ready: bool,
}

impl ImageView {
    /// The image of `record`, which is not deleted, as `caller` sees it.
    fn new(app: &AppState, record: &ImageRecord, caller: Option<&OwnerId>) -> Self {
        let (id, state) = (record.id, record.state());
        // Only a pending image has slots left to paint it in.
        let placeholder = record.placeholder.clone().filter(|_| state == ImageState::Pending);
        let thumbnails = ThumbSize::ALL
            .into_iter()
            .map(|size| {
                let ready = record.thumbnail(size).is_some();
                ThumbnailView {
                    size: size.name(),
                    url: format!("/thumbs/{id}/{size}"),
                    webp_url: (ready && record.webp).then(|| format!("/thumbs/{id}/{size}.webp")),
                    placeholder: placeholder.clone().filter(|_| !ready),
                    box_px: app.settings.sizes.max_side(size),
                    ready,
                }
            })
            .collect();
        Self {
            id: id.to_string(),
            name: record.name.clone().unwrap_or_else(|| format!("Image {}", &id.to_string()[..8])),
            state: state.name(),
            failure: record.failure.as_ref().map(|failure| failure.reason.clone()),
            cut_off: record.cut_off,
            thumbnails,
            owned: record.is_owned_by(caller),
            undo_secs: app.settings.undo_delete_secs,
        }
    }

    /// The image `id` as `caller` sees it, its facts and its steps, in one query: 404 when there is none, 410 once deleted.
    async fn load(app: &AppState, id: ImageId, caller: Option<&OwnerId>) -> Result<(Self, Facts, Vec<thumbq_contract::Step>), AppError> {
        let (record, steps) = app.repo.image_with_timeline(id).await?.ok_or(AppError::UnknownImage)?;
        if record.state() == ImageState::Deleted {
            return Err(AppError::Deleted);
        }
        Ok((Self::new(app, &record, caller), Facts::of(&record), progress::public_timeline(steps)))
    }

    pub fn pending(&self) -> bool {
        self.state == ImageState::Pending.name()
    }
}

/// What the image page says of the file, for people.
struct Facts {
    /// "4032 × 3024 pixels", upright once a worker has decoded it.
    pixels: Option<String>,
    /// "HEIC, 2.4 MB".
    file: String,
    /// "7 Dec 2026, 07:30 UTC", which the page's script puts in the reader's own time.
    uploaded: String,
    uploaded_iso: String,
}

impl Facts {
    fn of(record: &ImageRecord) -> Self {
        let size = human_bytes(record.bytes);
        let uploaded = Utc::from_ms(record.created_ms);
        Self {
            pixels: record.pixels.map(|(width, height)| format!("{width} × {height} pixels")),
            file: match record.format {
                Some(format) => format!("{}, {size}", format.name()),
                None => size,
            },
            uploaded: uploaded.for_people(),
            uploaded_iso: uploaded.iso(),
        }
    }
}

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage {
    image: ImageView,
    facts: Facts,
    steps: Vec<StepView>,
    total_ms: u64,
    /// The web server's last step: when the client had its answer.
    answered_after: Option<String>,
}

/// One step of the image's way, as its page draws it.
struct StepView {
    step: String,
    by: String,
    /// Milliseconds since the step before.
    gap_ms: u64,
    first: bool,
}

/// `GET /images/{id}`: the three sizes, each a placeholder until its thumbnail is ready.
pub async fn image(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, AppError> {
    let id: ImageId = id.parse().map_err(|_| AppError::UnknownImage)?;
    let (image, facts, timeline) = ImageView::load(&app, id, owner::caller(&headers, app.settings.secure_cookies).as_ref()).await?;
    let total_ms = match (timeline.first(), timeline.last()) {
        (Some(first), Some(last)) => last.at.saturating_sub(first.at),
        _ => 0,
    };
    let steps = timeline
        .iter()
        .enumerate()
        .map(|(index, step)| StepView {
            step: step.step.clone(),
            by: step.by.clone(),
            gap_ms: index.checked_sub(1).map_or(0, |before| step.at.saturating_sub(timeline[before].at)),
            first: index == 0,
        })
        .collect();
    let answered_after = timeline.iter().rev().find(|step| step.by.starts_with("web ")).map(|step| step.step.clone());
    let page = ImagePage { image, facts, steps, total_ms, answered_after };
    personal(&page)
}

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    images: Vec<ImageView>,
    any_pending: bool,
    all_yours: bool,
    deleted: usize,
    /// Why the files of the same upload that were not kept were refused.
    refused: Vec<String>,
    /// Where a page without JavaScript looks again while thumbnails are made:
    /// this page by its ids (the answer to a form's POST has no URL of its own).
    refresh_url: String,
}

#[derive(Deserialize)]
pub struct BatchQuery {
    ids: Option<String>,
}

/// `GET /images?ids=a,b,c`: the images of one multi-file upload; those
/// deleted since are counted, not shown.
pub async fn batch(State(app): State<AppState>, Query(query): Query<BatchQuery>, headers: HeaderMap) -> Result<Response, AppError> {
    // No ids: the visitor's uploads are on the home page.
    let Some(asked) = query.ids else { return Ok(Redirect::to("/").into_response()) };
    let mut ids = Vec::new();
    for id in asked.split(',').take(usize::from(app.settings.max_files_per_request)) {
        let id: ImageId = id.trim().parse().map_err(|_| AppError::UnknownImage)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    batch_page(&app, &ids, owner::caller(&headers, app.settings.secure_cookies).as_ref(), Vec::new()).await
}

/// The page of the images of one upload, with the reasons its other files were refused.
pub async fn batch_page(app: &AppState, ids: &[ImageId], caller: Option<&OwnerId>, refused: Vec<String>) -> Result<Response, AppError> {
    let records = app.repo.images(ids).await?;
    if records.len() < ids.len() {
        return Err(AppError::UnknownImage);
    }
    let (mut images, mut deleted) = (Vec::new(), 0);
    for record in &records {
        match record.state() {
            ImageState::Deleted => deleted += 1,
            _ => images.push(ImageView::new(app, record, caller)),
        }
    }
    if images.is_empty() && deleted > 0 {
        return Err(AppError::Deleted);
    }
    let any_pending = images.iter().any(ImageView::pending);
    let all_yours = images.iter().all(|image| image.owned);
    let refresh_url = format!("/images?ids={}", ids.iter().map(ImageId::to_string).collect::<Vec<_>>().join(","));
    personal(&BatchPage { images, any_pending, all_yours, deleted, refused, refresh_url })
}

/// A page whose content depends on who asks (their uploads, their buttons):
/// no shared cache may keep it, and a browser asks again each time.
fn personal(page: &impl Template) -> Result<Response, AppError> {
    let html = Html(page.render().map_err(anyhow::Error::from)?);
    Ok(([(header::CACHE_CONTROL, "private, no-cache"), (header::VARY, "Cookie, Authorization")], html).into_response())
}

/// Every path no route claims.
pub async fn not_found() -> AppError {
    AppError::NotFound
}
