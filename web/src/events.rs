//! `GET /events?ids=a,b`: Server-Sent Events telling a page the moment one of
//! its images has a size written, is done, failed or deleted.
//!
//! Workers announce on RabbitMQ's events exchange; each web server listens
//! (`thumbq_broker::events::listen`) and passes every event to the pages that
//! asked about that image, and only to them. Without RabbitMQ there are no
//! events: the endpoint answers 503 and pages poll.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use thumbq_contract::{EventState, ImageEvent, ImageId};
use tokio::sync::{broadcast, watch};

use crate::AppState;

#[derive(Deserialize)]
pub struct EventsQuery {
    ids: String,
}

pub async fn events(State(app): State<AppState>, Query(query): Query<EventsQuery>) -> Response {
    let Some(sender) = &app.events else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Live updates need RabbitMQ; poll the thumbnail URLs instead.\n").into_response();
    };
    let wanted: HashSet<ImageId> = query.ids.split(',').take(usize::from(app.settings.max_files_per_request)).filter_map(|id| id.trim().parse().ok()).collect();
    if wanted.is_empty() {
        return (StatusCode::BAD_REQUEST, "Name the images to follow: /events?ids=…\n").into_response();
    }
    Sse::new(stream(sender.subscribe(), wanted, app.stopping.clone())).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The events of the `wanted` images; `resync` when some may have been missed.
/// The stream ends when the server shuts down, so that shutdown need not wait for it.
fn stream(
    receiver: broadcast::Receiver<ImageEvent>,
    wanted: HashSet<ImageId>,
    stopping: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((receiver, wanted, stopping), |(mut receiver, wanted, mut stopping)| async move {
        loop {
            let received = tokio::select! {
                received = receiver.recv() => received,
                _ = stopping.wait_for(|stop| *stop) => return None,
            };
            match received {
                Ok(event) if wanted.contains(&event.image_id) => {
                    let state = match event.state {
                        EventState::Written => "written",
                        EventState::Done => "done",
                        EventState::Failed => "failed",
                        EventState::Deleted => "deleted",
                    };
                    let mut data = serde_json::json!({ "id": event.image_id.to_string(), "state": state });
                    if let Some(size) = event.size {
                        data["size"] = size.name().into();
                    }
                    if let Some(placeholder) = event.placeholder.filter(|placeholder| crate::progress::is_placeholder(placeholder)) {
                        data["placeholder"] = placeholder.into();
                    }
                    // Sizes as they land go under a name of their own: a page with an
                    // older script, which reads any unknown state as a failure, ignores them.
                    let name = if event.state == EventState::Written { "size" } else { "image" };
                    return Some((Ok(Event::default().event(name).data(data.to_string())), (receiver, wanted, stopping)));
                }
                Ok(_) => continue,
                // Too slow a reader missed some: the page asks the server again.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some((Ok(Event::default().event("resync").data("{}")), (receiver, wanted, stopping)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
