//! The worker's counters, served in Prometheus' text format on its own small
//! HTTP listener (`--metrics-bind`), since a worker has no web server.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

type Labels = [(&'static str, &'static str); 1];

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// What a worker counts; cheap to clone.
#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Arc<Registry>,
    jobs: Family<Labels, Counter>,
    stage_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    upload_to_ready_seconds: Histogram,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let jobs = Family::default();
        let stage_seconds = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(seconds_histogram);
        let upload_to_ready_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        let mut registry = Registry::with_prefix("thumbq_worker");
        registry.register("jobs", "Jobs settled, by outcome (done, already_done, retried, failed)", jobs.clone());
        registry.register("job_stage_seconds", "Time spent in each stage of a job (decode, resize, encode, webp, write)", stage_seconds.clone());
        registry.register("upload_to_ready_seconds", "Time from an upload being stored to its thumbnails being written", upload_to_ready_seconds.clone());
        Self { registry: Arc::new(registry), jobs, stage_seconds, upload_to_ready_seconds }
    }
}

impl WorkerMetrics {
    pub fn job(&self, outcome: &'static str) {
        self.jobs.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// How many jobs ended with `outcome` so far.
    pub fn jobs_ended(&self, outcome: &'static str) -> u64 {
        self.jobs.get_or_create(&[("outcome", outcome)]).get()
    }

    pub fn stage(&self, stage: &'static str, took: Duration) {
        self.stage_seconds.get_or_create(&[("stage", stage)]).observe(took.as_secs_f64());
    }

    pub fn upload_to_ready(&self, took: Duration) {
        self.upload_to_ready_seconds.observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Serves `GET /metrics` and `GET /healthz` on `bind` until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, metrics: WorkerMetrics, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "Serving the worker's metrics.");
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render()) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
    Ok(())
}
