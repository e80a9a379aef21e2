//! The thumbq web server: it stores uploads, queues a `resize` job for each,
//! and serves the pages and the thumbnails the workers make.
//!
//! Architecture invariant: the web server never decodes an image. It
//! recognises formats by their first bytes and leaves pixels to the workers.
//!
//! - [`settings`]: flags and environment variables.
//! - [`routes`]: the router, its layers and the shared state.
//! - [`server`]: the accept loop: header timeout, connection cap, bounded graceful shutdown; probes on `--ops-bind` apart.
//! - [`slots`]: places for what holds a connection long (connections, uploads, event streams), in all and per client.
//! - [`upload`]: streaming multipart uploads to disk and queueing their jobs.
//! - [`content_hash`]: the hash of each upload that tells the same bytes again.
//! - [`resumable`]: resumable uploads (tus 1.0.0) at `/uploads`, continued by any web server.
//! - [`form`]: the bounds of a multipart form besides its files: progress, parts, overhead.
//! - [`client`], [`rate_limit`], [`disk`]: who is uploading, how fast they may, and whether there is room.
//! - [`owner`]: who owns an image: keys, cookies and the owner's list.
//! - [`dates`]: times as pages write them, in UTC.
//! - [`delete`]: deleting an image, for its owner (with a while to undo it), an operator or the retention sweeper.
//! - [`same_origin`]: requests that change something come only from our own pages.
//! - [`retention`]: deletes uploads older than `--retention-days`.
//! - [`cleanup`]: removes the parts of uploads a crashed process left in `incoming/`.
//! - [`dispatch`]: handing jobs from the repository's outbox to RabbitMQ or the embedded queue, and the relay.
//! - [`group_commit`]: the records of uploads arriving together, committed as one.
//! - [`reconcile`]: one web server at a time queues stalled jobs again, finishes deletes, removes strays.
//! - [`progress`]: what is known of an image (pending, done, failed), read from its record.
//! - [`pages`], [`thumbs`], [`api`], [`assets`], [`health`]: what is served.
//! - [`events`]: live updates for pages, relayed from the workers' announcements.
//! - [`instance`]: who this web server is, in timelines and as a lease holder.
//! - [`metrics`]: counters for `GET /metrics`.
//! - [`migrate`]: `thumbq-web migrate`, records for what an earlier release kept as files.
//! - [`admin`]: the operators' dashboard, behind a token.
//! - [`error`]: the error every handler returns, and what the user sees of it.

pub mod admin;
pub mod api;
pub mod assets;
pub mod cleanup;
pub mod client;
pub mod content_hash;
pub mod dates;
pub mod delete;
pub mod disk;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod form;
pub mod group_commit;
pub mod health;
pub mod instance;
pub mod jpeg_header;
pub mod metrics;
pub mod migrate;
pub mod owner;
pub mod pages;
pub mod progress;
pub mod quota;
pub mod rate_limit;
pub mod reconcile;
pub mod resumable;
pub mod retention;
pub mod routes;
pub mod same_origin;
pub mod server;
pub mod settings;
pub mod slots;
pub mod thumbs;
pub mod upload;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

pub use routes::{AppState, router};
pub use settings::Settings;

/// A web server bound to its port and ready to run.
pub struct Application {
    listener: TcpListener,
    /// `--ops-bind`'s: probes and metrics only, on connections of their own.
    ops_listener: Option<TcpListener>,
    state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Prepares the data directory and binds the listener; the broker is
    /// connected lazily, so the server starts (and says it is not ready) while
    /// RabbitMQ is down.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The data directory is set up before the port opens: whoever waits for the port finds it ready.
        let bind = settings.bind;
        let (state, stop) = AppState::build(settings).await?;
        let listener = TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
        let ops_listener = match state.settings.ops_bind {
            Some(ops_bind) => Some(TcpListener::bind(ops_bind).await.with_context(|| format!("cannot listen on {ops_bind} (--ops-bind)"))?),
            None => None,
        };
        Ok(Self { listener, ops_listener, state, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where probes and metrics are served apart, with `--ops-bind`.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_listener.as_ref().map(|listener| listener.local_addr().expect("a bound listener has an address"))
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let stop = self.stop;
        let stopped = self.state.stopping.clone();
        let relay = tokio::spawn(Arc::clone(&self.state.dispatcher).relay(stopped.clone()));
        tokio::spawn({
            let (limiter, mut stopped) = (Arc::clone(&self.state.upload_limiter), stopped.clone());
            async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(60)) => limiter.forget_idle_clients(),
                        _ = stopped.wait_for(|stop| *stop) => return,
                    }
                }
            }
        });
        tokio::spawn(cleanup::sweep_until_stopped(self.state.clone(), stopped.clone()));
        tokio::spawn(reconcile::run_until_stopped(self.state.clone(), stopped.clone()));
        if let Some(days) = self.state.settings.retention_days {
            tokio::spawn(retention::sweep_until_stopped(self.state.clone(), days, stopped.clone()));
        }
        if let (Some(events), Some(url)) = (&self.state.events, &self.state.settings.deployment.amqp_url) {
            let topology = self.state.settings.topology();
            tokio::spawn(thumbq_broker::events::listen(url.clone(), topology, events.clone(), stopped));
            let (mut finishes, times) = (events.subscribe(), Arc::clone(&self.state.recent_finishes));
            tokio::spawn(async move {
                loop {
                    match finishes.recv().await {
                        Ok(heard) if admin::is_a_finish(&heard) => admin::record_finish(&times),
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        if let Some(ops_listener) = self.ops_listener {
            let limits = server::ConnectionLimits {
                max_connections: OPS_CONNECTIONS,
                max_connections_per_client: OPS_CONNECTIONS,
                ..self.state.settings.connection_limits()
            };
            let mut stopping = self.state.stopping.clone();
            let stopped = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            tokio::spawn(server::serve(ops_listener, routes::ops_router(self.state.clone()), limits, Vec::new(), stopped));
        }
        let limits = self.state.settings.connection_limits();
        let trusted_proxies = self.state.settings.trusted_proxies.clone();
        let dispatcher = Arc::clone(&self.state.dispatcher);
        server::serve(self.listener, router(self.state), limits, trusted_proxies, shutdown).await;
        dispatcher.sent().await;
        let _ = relay.await;
        Ok(())
    }
}

/// Connections the operators' address keeps open at once: probes and scrapers are few.
const OPS_CONNECTIONS: usize = 64;

/// `thumbq-web migrate`: records for the images an earlier release kept as files, then exits.
pub async fn migrate_store(settings: &Settings) -> anyhow::Result<()> {
    let store = settings.deployment.store().map_err(anyhow::Error::msg)?;
    let database = settings.deployment.database();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let repo = thumbq_repo::Repository::open(&database, shutdown).await.with_context(|| format!("cannot open the database, {}", database.describe()))?;
    let migrated = migrate::migrate(&store, &repo).await.with_context(|| format!("cannot migrate {} into {}", store.describe(), repo.describe()))?;
    tracing::info!(
        imported = migrated.imported,
        already = migrated.already,
        deleted = migrated.deleted,
        "Migrated the images of an earlier release into the database."
    );
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("Shutting down: finishing the requests in flight.");
}
