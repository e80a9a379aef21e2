//! The router: every route, every layer, and the state handlers share.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use thumbq_contract::Storage;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

use crate::dispatch::Dispatcher;
use crate::{Settings, admin, api, assets, delete, events, health, pages, resumable, thumbs, upload};

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    /// The local data directory: uploads being received, the spools, the disk's free space.
    pub storage: Storage,
    /// Where originals and thumbnails are kept: the data directory or a bucket.
    pub store: thumbq_store::Store,
    /// Everything known about each image: the metadata database.
    pub repo: thumbq_repo::Repository,
    pub dispatcher: Arc<Dispatcher>,
    /// What the workers say of images, passed on to open pages; `None` without RabbitMQ.
    pub events: Option<tokio::sync::broadcast::Sender<thumbq_broker::events::Heard>>,
    pub metrics: crate::metrics::WebMetrics,
    /// The daily quotas' counts, as lately read and added to.
    pub quota_counts: Arc<crate::quota::Counts>,
    /// The dashboard's last report and replay, shared by its requests.
    pub admin: Arc<crate::admin::AdminState>,
    /// When images finished in the last minute, for the dashboard's rate.
    pub recent_finishes: Arc<std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>>,
    /// How fast each client may upload.
    pub upload_limiter: Arc<crate::rate_limit::UploadLimiter>,
    /// Uploads in progress, per client: a slow one holds its connection for long.
    pub uploads: Arc<crate::slots::Slots>,
    /// The requests receiving each resumable upload on this server, one at a time.
    pub turns: Arc<crate::resumable::Turns>,
    /// This server's live-update streams, by name, to add images to.
    pub streams: Arc<crate::events::Streams>,
    /// Live-update streams open, in all and per client.
    pub event_streams: Arc<crate::slots::Slots>,
    /// Becomes true when the server starts shutting down; long-lived responses end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub settings: Arc<Settings>,
}

impl AppState {
    /// Prepares the data directory and the way jobs go; returns the state and
    /// the switch that tells long-lived responses the server is stopping.
    /// Handler tests call it and serve the router without a socket.
    pub async fn build(settings: Settings) -> anyhow::Result<(Self, tokio::sync::watch::Sender<bool>)> {
        use anyhow::Context;
        use thumbq_broker::Publisher;

        let storage = settings.deployment.storage();
        let store = settings.deployment.store().map_err(anyhow::Error::msg)?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let database = settings.deployment.database();
        let repo =
            thumbq_repo::Repository::open(&database, stopping.clone()).await.with_context(|| format!("cannot open the database, {}", database.describe()))?;
        let made = if store.is_bucket() { thumbq_store::data_dir::create_incoming_dir(&storage) } else { thumbq_store::data_dir::create_dirs(&storage) };
        made.with_context(|| format!("cannot create the data directory {}", settings.deployment.data_dir.display()))?;
        let ours = thumbq_contract::Manifest::new(&settings.sizes, &settings.limits());
        let manifest = store.init_manifest(&ours).await.with_context(|| format!("cannot read or write thumbq.json in {}", store.describe()))?;
        if manifest != ours {
            anyhow::bail!(
                "the store {} was set up with {manifest}, and this server has {ours}: start every process with the same settings, \
                 or remove its thumbq.json to set it up with these",
                store.describe(),
            );
        }
        crate::migrate::on_first_start(&store, &repo).await;
        let metrics = crate::metrics::WebMetrics::default();
        crate::migrate::earlier_spools(&storage, &repo).await;
        let dispatcher = match &settings.deployment.amqp_url {
            Some(url) => {
                let publisher = Publisher::new(url, "thumbq-web", settings.topology(), settings.publish_timeout());
                // Connecting now declares the queues and shows a wrong URL at
                // once; a broker that is down is no reason not to start.
                if let Err(error) = publisher.check_connection().await {
                    tracing::warn!(%error, "RabbitMQ is not reachable yet; jobs wait in the outbox until it is.");
                }
                Dispatcher::broker(publisher, repo.clone(), settings.publish_timeout(), metrics.clone())
            }
            None => {
                tracing::info!(database = %repo.describe(), "No AMQP URL is set: jobs wait for the workers in the database (the embedded queue).");
                Dispatcher::embedded(repo.clone(), metrics.clone())
            }
        };
        let events = settings.deployment.amqp_url.as_ref().map(|_| tokio::sync::broadcast::channel(1024).0);
        let upload_limiter = Arc::new(crate::rate_limit::UploadLimiter::new(
            settings.uploads_per_minute,
            settings.upload_burst,
            settings.upload_mib_per_minute,
            settings.upload_mib_burst,
        ));
        let state = Self {
            storage,
            store,
            repo,
            dispatcher: Arc::new(dispatcher),
            events,
            stopping,
            metrics,
            quota_counts: Arc::default(),
            admin: Arc::default(),
            recent_finishes: Arc::default(),
            upload_limiter,
            // An upload's total is bounded by the connections; its share per client here.
            uploads: crate::slots::Slots::new(usize::MAX, settings.max_uploads_per_client as usize),
            turns: Arc::default(),
            streams: Arc::default(),
            event_streams: crate::slots::Slots::new(settings.max_event_streams as usize, settings.max_event_streams_per_client as usize),
            settings: Arc::new(settings),
        };
        Ok((state, stop))
    }

    /// Passes `event` to this server's pages at once, and to every other web
    /// server's through RabbitMQ (pages take a repeated event in their stride).
    pub async fn announce(&self, event: thumbq_contract::ImageEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(thumbq_broker::events::Heard::Event(event.clone()));
        }
        self.dispatcher.announce(event).await;
    }
}

/// Pages may load scripts, styles and images from this server only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The largest body of any request but an upload: the forms (delete, replay, takedown) are tiny.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

/// What the operators' address serves (`--ops-bind`): probes and metrics, nothing a visitor can reach.
pub fn ops_router(state: AppState) -> Router {
    let timeout = TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.settings.request_timeout());
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(timeout)
        .layer(DefaultBodyLimit::max(SMALL_BODY_BYTES))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .with_state(state)
}

/// Builds the whole application; tests call it with their own state.
pub fn router(state: AppState) -> Router {
    // Each file is held to its own limit while it streams (see `upload`); this
    // bounds the whole request, multipart framing included. It is the only
    // large body taken: every other route keeps to `SMALL_BODY_BYTES`.
    let settings = &state.settings;
    let upload_limit = settings.media.max_upload_bytes.saturating_mul(u64::from(settings.max_files_per_request)).saturating_add(1024 * 1024);
    let upload_limit = usize::try_from(upload_limit).unwrap_or(usize::MAX);
    // An upload is bounded by its progress (see `upload`), a live-update stream
    // lasts as long as its page; every other request by this.
    let timeout = TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, settings.request_timeout());
    let trusted_proxies = settings.trusted_proxies.clone();
    // A resumable upload's request carries at most the file; every answer says the protocol's version.
    let file_limit = usize::try_from(settings.media.max_upload_bytes.saturating_add(1024 * 1024)).unwrap_or(usize::MAX);
    let tus = SetResponseHeaderLayer::overriding(HeaderName::from_static("tus-resumable"), HeaderValue::from_static(resumable::TUS_VERSION));

    let timed = Router::new()
        .route("/", get(pages::index))
        .route("/images/{id}", get(pages::image).delete(delete::delete))
        .route("/images/{id}/delete", post(delete::delete_form))
        .route("/images/{id}/restore", post(delete::restore))
        .route("/thumbs/{id}/{size}", get(thumbs::thumbnail))
        .route("/originals/{id}", get(thumbs::original))
        .route("/api/images/{id}", get(api::image_status))
        .route("/api/queue", get(api::queue))
        .route("/static/{file}", get(assets::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/admin", get(admin::dashboard))
        .route("/admin/replay", post(admin::replay))
        .route("/admin/takedown", post(admin::takedown))
        .layer(timeout);

    let resumable = Router::new()
        .route("/uploads", post(resumable::create).layer(DefaultBodyLimit::max(file_limit)).options(resumable::options))
        .route(
            "/uploads/{id}",
            get(resumable::accepted)
                .head(resumable::status)
                .delete(resumable::terminate)
                .layer(timeout)
                .patch(resumable::patch)
                .layer(DefaultBodyLimit::max(file_limit)),
        )
        .layer(tus);

    Router::new()
        .merge(timed)
        .route("/images", get(pages::batch).layer(timeout).post(upload::upload).layer(DefaultBodyLimit::max(upload_limit)))
        .merge(resumable)
        .route("/events", get(events::events))
        .route("/events/{stream}", post(events::follow).layer(timeout))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(SMALL_BODY_BYTES))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        // Every request gets an id (or keeps the one a proxy gave it), logged with
        // its client on each of its lines and sent back in `x-request-id`; its
        // answer is one line at `info`: the access log.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| {
                    let id = request.headers().get(X_REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or("-");
                    let route = request.extensions().get::<MatchedPath>().map_or("-", MatchedPath::as_str);
                    let client = crate::client::address_of(request.extensions(), request.headers(), &trusted_proxies);
                    let client = client.map_or_else(|| "-".to_owned(), |client| client.to_string());
                    tracing::info_span!("request", request.id = %id, method = %request.method(), route = %route, path = %request.uri().path(), client.address = %client)
                })
                .on_response(|response: &Response, latency: std::time::Duration, _: &tracing::Span| {
                    use axum::body::HttpBody;
                    // A streamed body (a file, an event stream) has no length yet: "-".
                    let bytes = response.body().size_hint().exact().map_or_else(|| "-".to_owned(), |bytes| bytes.to_string());
                    tracing::info!(status = response.status().as_u16(), bytes = %bytes, ms = latency.as_secs_f64() * 1000.0, "Answered.");
                }),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
