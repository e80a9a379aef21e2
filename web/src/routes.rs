//! The router: every route, every layer, and the state handlers share.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use thumbq_contract::Storage;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

use crate::dispatch::Dispatcher;
use crate::{Settings, admin, api, assets, events, health, pages, thumbs, upload};

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub dispatcher: Arc<Dispatcher>,
    /// Finished-image events from the workers; `None` without RabbitMQ.
    pub events: Option<tokio::sync::broadcast::Sender<thumbq_contract::ImageEvent>>,
    pub metrics: crate::metrics::WebMetrics,
    /// When images finished in the last minute, for the dashboard's rate.
    pub recent_finishes: Arc<std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>>,
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
    let request_limit = settings.max_upload_bytes.saturating_mul(u64::from(settings.max_files_per_request)).saturating_add(1024 * 1024);
    let request_limit = usize::try_from(request_limit).unwrap_or(usize::MAX);

    Router::new()
        .route("/", get(pages::index))
        .route("/images", post(upload::upload).get(pages::batch))
        .route("/images/{id}", get(pages::image))
        .route("/thumbs/{id}/{size}", get(thumbs::thumbnail))
        .route("/originals/{id}", get(thumbs::original))
        .route("/api/images/{id}", get(api::image_status))
        .route("/events", get(events::events))
        .route("/static/{file}", get(assets::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/admin", get(admin::dashboard))
        .route("/admin/replay", post(admin::replay))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(request_limit))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        // Every request gets an id (or keeps the one a proxy gave it), logged on
        // each of its lines and sent back in `x-request-id`.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request.headers().get(X_REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", request.id = %id, method = %request.method(), path = %request.uri().path())
        }))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
