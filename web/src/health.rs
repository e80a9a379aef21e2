//! `GET /healthz` (the process answers), `GET /readyz` (it can take uploads)
//! and `GET /metrics` (Prometheus).

use std::fmt::Write;

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when this instance can accept uploads: the data directory is
/// writable, its disk above the watermark, and its bucket and database answer. A broker that is away does not
/// make it unready: uploads then wait in the outbox, which is its whole point,
/// and a load balancer must keep sending them. The body says the broker's
/// state, the backlog on disk and the free space.
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
    // A bucket or a database away would answer uploads 503: send them elsewhere.
    if app.store.is_bucket() {
        ready &= reachable(&mut report, "store", &app.store.describe(), app.store.check().await);
    }
    ready &= reachable(&mut report, "database", &app.repo.describe(), app.repo.check().await);
    match free_bytes(&app).await {
        Ok(free) if free < app.settings.min_free_bytes => {
            ready = false;
            let _ = writeln!(report, "free space: {free} bytes, below the watermark of {} bytes: uploads are refused", app.settings.min_free_bytes);
        }
        Ok(free) => {
            let _ = writeln!(report, "free space: {free} bytes");
        }
        Err(error) => {
            ready = false;
            let _ = writeln!(report, "free space: unknown: {error}");
        }
    }
    match app.dispatcher.readiness().await {
        Ok(readiness) => {
            match readiness.broker {
                None => report.push_str("broker: embedded queue (no AMQP URL set)\n"),
                Some(Ok(())) => report.push_str("broker: reachable\n"),
                Some(Err(error)) => {
                    let _ = writeln!(report, "broker: unreachable ({error}): uploads are kept in the outbox until it is back");
                }
            }
            let _ = writeln!(report, "jobs in the outbox: {}", readiness.in_outbox);
            if let Some(queued) = readiness.in_embedded_queue {
                let _ = writeln!(report, "jobs in the embedded queue: {queued}");
            }
        }
        Err(error) => {
            ready = false;
            let _ = writeln!(report, "queue: unreadable: {error}");
        }
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, report)
}

/// Writes whether `what` at `place` answered; returns whether it did.
fn reachable(report: &mut String, what: &str, place: &str, checked: Result<(), impl std::fmt::Display>) -> bool {
    match checked {
        Ok(()) => {
            let _ = writeln!(report, "{what}: {place} reachable");
            true
        }
        Err(error) => {
            let _ = writeln!(report, "{what}: {place} unreachable: {error}");
            false
        }
    }
}

pub async fn metrics(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    let gauges = crate::metrics::Gauges {
        in_outbox: app.dispatcher.in_outbox().await.ok(),
        in_embedded_queue: app.dispatcher.in_embedded_queue().await.ok().flatten(),
        queue: app.dispatcher.queue_status().await,
        free_bytes: free_bytes(&app).await.ok(),
    };
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], app.metrics.render(&gauges))
}

async fn free_bytes(app: &AppState) -> std::io::Result<u64> {
    let root = app.storage.root().to_owned();
    tokio::task::spawn_blocking(move || crate::disk::free_bytes(&root)).await.map_err(std::io::Error::other)?
}
