//! The router: every route, every layer, and the state handlers share.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use thumbq_contract::Storage;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::dispatch::Dispatcher;
use crate::{Settings, api, assets, events, health, pages, thumbs, upload};

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub dispatcher: Arc<Dispatcher>,
    /// Finished-image events from the workers; `None` without RabbitMQ.
    pub events: Option<tokio::sync::broadcast::Sender<thumbq_contract::ImageEvent>>,
    /// Becomes true when the server starts shutting down; long-lived responses end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub settings: Arc<Settings>,
}

/// Pages may load scripts, styles and images from this server only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Builds the whole application; tests call it with their own state.
pub fn router(state: AppState) -> Router {
    // Each file is held to its own limit while it streams (see `upload`); this
    // bounds the whole request, multipart framing included.
    let settings = &state.settings;
    let request_limit = settings
        .max_upload_bytes
        .saturating_mul(u64::from(settings.max_files_per_request))
        .saturating_add(1024 * 1024);
    let request_limit = usize::try_from(request_limit).unwrap_or(usize::MAX);

    Router::new()
        .route("/", get(pages::index))
        .route("/images", post(upload::upload).get(pages::batch))
        .route("/images/{id}", get(pages::image))
        .route("/thumbs/{id}/{size}", get(thumbs::thumbnail))
        .route("/api/images/{id}", get(api::image_status))
        .route("/events", get(events::events))
        .route("/static/{file}", get(assets::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(request_limit))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
