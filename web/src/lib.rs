//! The thumbq web server: it stores uploads, queues a `resize` job for each,
//! and serves the pages and the thumbnails the workers make.
//!
//! Architecture invariant: the web server never decodes an image. It
//! recognises formats by their first bytes and leaves pixels to the workers.
//!
//! - [`settings`]: flags and environment variables.
//! - [`routes`]: the router, its layers and the shared state.
//! - [`upload`]: streaming multipart uploads to disk and publishing their jobs.
//! - [`progress`]: what is known of an image (pending, done, failed), read from the data directory.
//! - [`pages`], [`thumbs`], [`api`], [`assets`], [`health`]: what is served.
//! - [`error`]: the error every handler returns, and what the user sees of it.

pub mod api;
pub mod assets;
pub mod error;
pub mod health;
pub mod pages;
pub mod progress;
pub mod routes;
pub mod settings;
pub mod thumbs;
pub mod upload;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use thumbq_broker::Publisher;
use thumbq_contract::Storage;
use tokio::net::TcpListener;

pub use routes::{AppState, router};
pub use settings::Settings;

/// A web server bound to its port and ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Prepares the data directory and binds the listener; the broker is
    /// connected lazily, so the server starts (and says it is not ready) while
    /// RabbitMQ is down.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let storage = Storage::new(&settings.data_dir);
        storage
            .create_dirs()
            .with_context(|| format!("cannot create the data directory {}", settings.data_dir.display()))?;
        let listener =
            TcpListener::bind(settings.bind).await.with_context(|| format!("cannot listen on {}", settings.bind))?;
        let publisher = Publisher::new(&settings.amqp_url, "thumbq-web", settings.topology(), settings.publish_timeout());
        // Connecting now declares the queues and shows a broken broker URL at
        // once; a broker that is down is no reason not to start.
        if let Err(error) = publisher.check_connection().await {
            tracing::warn!(%error, "The broker is not reachable yet; uploads will be refused until it is.");
        }
        let state = AppState { storage, publisher: Arc::new(publisher), settings: Arc::new(settings) };
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.state)).with_graceful_shutdown(shutdown).await
    }
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
