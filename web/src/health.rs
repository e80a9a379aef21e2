//! `GET /healthz` (the process answers), `GET /readyz` (it can take uploads)
//! and `GET /metrics` (Prometheus).

use std::fmt::Write;

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the data directory is writable and, with RabbitMQ configured,
/// the broker takes jobs. The body says what is wrong, and how many jobs wait on disk.
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, String) {
    let mut ready = true;
    let mut report = String::new();
    let probe = app.storage.root().join("incoming").join(".readyz");
    match tokio::fs::write(&probe, b"").await {
        Ok(()) => report.push_str("data directory: writable\n"),
        Err(error) => {
            ready = false;
            let _ = writeln!(report, "data directory: not writable: {error}");
        }
    }
    match app.dispatcher.readiness().await {
        Ok(readiness) => {
            match readiness.broker {
                None => report.push_str("broker: embedded queue (no AMQP URL set)\n"),
                Some(Ok(())) => report.push_str("broker: reachable\n"),
                Some(Err(error)) => {
                    ready = false;
                    let _ = writeln!(report, "broker: unreachable: {error}");
                }
            }
            let _ = writeln!(report, "jobs waiting on disk: {}", readiness.waiting_on_disk);
        }
        Err(error) => {
            ready = false;
            let _ = writeln!(report, "queue on disk: unreadable: {error}");
        }
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, report)
}

pub async fn metrics(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    let waiting = app.dispatcher.waiting_on_disk().await.unwrap_or(0);
    let queue = app.dispatcher.queue_status().await;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], app.metrics.render(waiting, queue))
}
