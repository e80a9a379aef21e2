//! `GET /events?ids=a,b`: Server-Sent Events telling a page the moment one of
//! its images has a size written, is done, failed or deleted.
//!
//! A stream's first event names it (`event: stream`); `POST /events/{stream}?ids=…`
//! adds images to it, so that a page follows its new uploads on the stream it
//! has rather than opening another for each (a browser has six connections to
//! a server over HTTP/1.1, and uploads hold some of them). Streams are this web
//! server's: a page whose addition lands on another (404) opens a new stream.
//!
//! Workers announce on RabbitMQ's events exchange; each web server listens
//! (`thumbq_broker::events::listen`) and passes every event to the pages that
//! asked about that image, and only to them. Without RabbitMQ there are no
//! events: the endpoint answers 503 and pages poll.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use thumbq_broker::events::Heard;
use thumbq_contract::{EventState, ImageId};
use thumbq_repo::ImageState;
use tokio::sync::{broadcast, mpsc, watch};

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
    let (name, additions) = app.streams.open();
    let named = Event::default().event("stream").data(serde_json::json!({ "stream": name.0 }).to_string());
    let following = Following { receiver: sender.subscribe(), wanted, additions, stopping: app.stopping.clone(), _name: name, _slot: slot };
    let events = futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(named) }), stream(following, tokio::time::Instant::now() + lifetime));
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The most images one stream follows, those it began with and those added since.
const MOST_FOLLOWED: usize = 1000;

/// `POST /events/{stream}?ids=a,b`: the stream follows these images too.
/// `404` when this server has no such stream (it ended, or is another
/// server's), `409` when it follows as many as it may: the page opens another.
pub async fn follow(State(app): State<AppState>, Path(stream): Path<String>, Query(query): Query<EventsQuery>, request: Request) -> Response {
    if let Err(error) = crate::same_origin::check(request.headers()) {
        return error.into_response();
    }
    let asked: Vec<ImageId> = query.ids.split(',').take(usize::from(app.settings.max_files_per_request)).filter_map(|id| id.trim().parse().ok()).collect();
    let Some(additions) = app.streams.find(&stream) else {
        return (StatusCode::NOT_FOUND, "There is no such stream here (any more): open another.\n").into_response();
    };
    let existing: Vec<ImageId> = match app.repo.images(&asked).await {
        Ok(records) => records.into_iter().filter(|record| record.state() != ImageState::Deleted).map(|record| record.id).collect(),
        Err(error) => return crate::error::AppError::from(error).into_response(),
    };
    if existing.is_empty() {
        return (StatusCode::NOT_FOUND, "None of these images exists (any more).\n").into_response();
    }
    let (answer, added) = tokio::sync::oneshot::channel();
    if additions.try_send((existing, answer)).is_err() {
        return (StatusCode::CONFLICT, "The stream is busy or ending: open another.\n").into_response();
    }
    match added.await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (StatusCode::CONFLICT, "The stream follows as many images as it may: open another.\n").into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "The stream ended: open another.\n").into_response(),
    }
}

/// Images to add to a stream, and who waits to hear whether they were.
type Addition = (Vec<ImageId>, tokio::sync::oneshot::Sender<bool>);

/// This server's open streams, by name, each with the way to add images to it.
#[derive(Default)]
pub struct Streams(Mutex<HashMap<String, mpsc::Sender<Addition>>>);

/// A stream's name, given up when the stream ends.
struct StreamName(String, Arc<Streams>);

impl Drop for StreamName {
    fn drop(&mut self) {
        self.1.0.lock().expect("streams").remove(&self.0);
    }
}

impl Streams {
    fn open(self: &Arc<Self>) -> (StreamName, mpsc::Receiver<Addition>) {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        let name: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let (sender, additions) = mpsc::channel(8);
        self.0.lock().expect("streams").insert(name.clone(), sender);
        (StreamName(name, Arc::clone(self)), additions)
    }

    fn find(&self, name: &str) -> Option<mpsc::Sender<Addition>> {
        self.0.lock().expect("streams").get(name).cloned()
    }
}

/// What a stream follows, and what it holds while it lasts.
struct Following {
    receiver: broadcast::Receiver<Heard>,
    wanted: HashSet<ImageId>,
    additions: mpsc::Receiver<Addition>,
    stopping: watch::Receiver<bool>,
    _name: StreamName,
    _slot: Slot,
}

/// The events of the images `following` wants; `resync` when some may have
/// been missed. The stream ends at `ends`, or when the server shuts down, so
/// that shutdown need not wait for it; its slot and its name are given back then.
fn stream(following: Following, ends: tokio::time::Instant) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(following, move |mut following| async move {
        loop {
            let received = tokio::select! {
                received = following.receiver.recv() => received,
                Some((ids, answer)) = following.additions.recv() => {
                    let fits = following.wanted.len() + ids.len() <= MOST_FOLLOWED;
                    if fits {
                        following.wanted.extend(ids);
                    }
                    let _ = answer.send(fits);
                    continue;
                }
                _ = following.stopping.wait_for(|stop| *stop) => return None,
                () = tokio::time::sleep_until(ends) => return None,
            };
            match received {
                Ok(Heard::Event(event)) if following.wanted.contains(&event.image_id) => {
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
                    return Some((Ok(Event::default().event(name).data(data.to_string())), following));
                }
                Ok(Heard::Event(_)) => continue,
                // The listener was away, or this reader too slow: some were missed, and the page asks the server again.
                Ok(Heard::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some((Ok(Event::default().event("resync").data("{}")), following));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
