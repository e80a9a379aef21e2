//! `GET /healthz` (the process answers) and `GET /readyz` (it can take uploads).

use axum::http::StatusCode;
use axum::extract::State;

use crate::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the data directory is writable and the broker confirms a channel.
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, String) {
    let probe = app.storage.root().join("incoming").join(".readyz");
    if let Err(error) = tokio::fs::write(&probe, b"").await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("the data directory is not writable: {error}\n"));
    }
    match app.publisher.check_connection().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("the broker is not reachable: {error}\n")),
    }
}
