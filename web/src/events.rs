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

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use thumbq_broker::events::Heard;
use thumbq_contract::{EventState, ImageId};
use thumbq_repo::ImageState;
use tokio::sync::{broadcast, watch};

use crate::AppState;
use crate::slots::{Full, Slot};

#[derive(Deserialize)]
pub struct EventsQuery {
    ids: String,
}

/// A stream lives for `--event-stream-secs`, and a client may hold only so many
/// (`--max-event-streams-per-client`, and `--max-event-streams` in all): a few
/// addresses cannot keep the server's connections for ever. The browser opens
/// an ended stream again by itself, and the page looks again at what it follows.
pub async fn events(State(app): State<AppState>, Query(query): Query<EventsQuery>, request: Request) -> Response {
    let Some(sender) = &app.events else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Live updates need RabbitMQ; poll the thumbnail URLs instead.\n").into_response();
    };
    let asked: Vec<ImageId> = query.ids.split(',').take(usize::from(app.settings.max_files_per_request)).filter_map(|id| id.trim().parse().ok()).collect();
    if asked.is_empty() {
        return (StatusCode::BAD_REQUEST, "Name the images to follow: /events?ids=…\n").into_response();
    }
    let client = crate::client::address(&request.into_parts().0, &app.settings.trusted_proxies);
    let slot = match app.event_streams.take(client) {
        Ok(slot) => slot,
        Err(full) => {
            let message = match full {
                Full::Client => "Your address has as many live-update streams open as it may; the page checks for its thumbnails instead.\n",
                Full::All => "The server has as many live-update streams open as it may; the page checks for its thumbnails instead.\n",
            };
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    // Only images there are, not deleted: a stream about nothing would hold its slot for nothing.
    let wanted: HashSet<ImageId> = match app.repo.images(&asked).await {
        Ok(records) => records.into_iter().filter(|record| record.state() != ImageState::Deleted).map(|record| record.id).collect(),
        Err(error) => return crate::error::AppError::from(error).into_response(),
    };
    if wanted.is_empty() {
        return (StatusCode::NOT_FOUND, "None of these images exists (any more).\n").into_response();
    }
    let lifetime = Duration::from_secs(app.settings.event_stream_secs);
    let events = stream(sender.subscribe(), wanted, app.stopping.clone(), tokio::time::Instant::now() + lifetime, slot);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The events of the `wanted` images; `resync` when some may have been missed.
/// The stream ends at `ends`, or when the server shuts down, so that shutdown
/// need not wait for it; its `slot` is given back then.
fn stream(
    receiver: broadcast::Receiver<Heard>,
    wanted: HashSet<ImageId>,
    stopping: watch::Receiver<bool>,
    ends: tokio::time::Instant,
    slot: Slot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((receiver, wanted, stopping, slot), move |(mut receiver, wanted, mut stopping, slot)| async move {
        loop {
            let received = tokio::select! {
                received = receiver.recv() => received,
                _ = stopping.wait_for(|stop| *stop) => return None,
                () = tokio::time::sleep_until(ends) => return None,
            };
            match received {
                Ok(Heard::Event(event)) if wanted.contains(&event.image_id) => {
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
                    return Some((Ok(Event::default().event(name).data(data.to_string())), (receiver, wanted, stopping, slot)));
                }
                Ok(Heard::Event(_)) => continue,
                // The listener was away, or this reader too slow: some were missed, and the page asks the server again.
                Ok(Heard::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some((Ok(Event::default().event("resync").data("{}")), (receiver, wanted, stopping, slot)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
