//! `/admin`: the operators' dashboard, behind a token from the settings.
//!
//! It reads RabbitMQ over AMQP only (see `thumbq_broker::admin`): jobs
//! waiting, consumers, jobs finished per second, and the dead-lettered jobs
//! grouped by the reason they failed, each group replayable once its cause
//! is fixed; and takedowns: any image deleted by its id or link, for abuse
//! reports. Off without a token; the dashboard needs RabbitMQ, takedowns do not.
//!
//! Every open tab refreshes it every 10 s, so a report is made at most once
//! per [`REPORT_FOR`] and shared, a page of reasons at a time; a replay runs
//! in a task of its own, past any request's time limit, and the dashboard
//! shows how far it is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;
use thumbq_broker::admin::QueueReport;
use thumbq_repo::{Deletion, FailureGroup};

use crate::AppState;
use crate::delete::{self, Reason};
use crate::error::AppError;
use crate::{progress, same_origin};

mod dead_letters;
use dead_letters::ReplayRun;
pub use dead_letters::replay;

/// How far back the finish rate looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// A report is made at most this often, whatever the number of tabs open.
pub const REPORT_FOR: Duration = Duration::from_secs(5);
/// Reasons on one page of the dashboard, and images named for each.
const REASONS_PER_PAGE: usize = 50;
const EXAMPLES_PER_REASON: usize = 5;

/// What every request to the dashboard shares: the last report, and the replay running or last run.
#[derive(Default)]
pub struct AdminState {
    /// When the report was made, the page of reasons it holds, and the report.
    report: tokio::sync::Mutex<Option<(Instant, usize, Arc<Report>)>>,
    replay: std::sync::Mutex<Option<Arc<ReplayRun>>>,
}

struct Report {
    queue: QueueReport,
    groups: Vec<FailureGroup>,
    /// Reasons in all, on every page.
    reasons: usize,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct Dashboard {
    waiting: u32,
    consumers: u32,
    finished_per_second: String,
    dead_total: u32,
    reasons: Vec<DeadGroup>,
    /// This page's place among the reasons: the first shown (from 1), the last, and how many in all.
    shown: (usize, usize, usize),
    page: usize,
    replay: Option<String>,
    takedown: Option<String>,
    /// Whether any reason on this page is one a replay may mend: only then is "Replay all" offered.
    any_retryable: bool,
}

struct DeadGroup {
    reason: String,
    count: usize,
    examples: Vec<String>,
    /// Whether a replay may help (the fault was ours, not the image's).
    retryable: bool,
    /// When the newest of the group failed, in UTC.
    last_failed: String,
}

#[derive(Deserialize)]
pub struct DashboardQuery {
    /// The page of reasons, from 0.
    page: Option<usize>,
    /// What the last takedown did: `done`, `already`, `unconfirmed` or `unknown`.
    takedown: Option<String>,
    image: Option<String>,
}

pub async fn dashboard(State(app): State<AppState>, headers: HeaderMap, Query(query): Query<DashboardQuery>) -> Result<Response, AppError> {
    let url = match broker_url(&app, &headers).await {
        Ok(url) => url,
        Err(refusal) => return Ok(*refusal),
    };
    let page = query.page.unwrap_or(0).min(10_000);
    let report = match report(&app, url, page).await? {
        Ok(report) => report,
        Err(error) => return Ok(broker_unavailable(&error)),
    };
    let reasons: Vec<DeadGroup> = report
        .groups
        .iter()
        .map(|group| DeadGroup {
            reason: group.reason.clone(),
            count: group.count as usize,
            examples: group.examples.iter().map(ToString::to_string).collect(),
            retryable: group.retryable,
            last_failed: crate::dates::Utc::from_ms(group.last_failed_ms).for_operators(),
        })
        .collect();
    let first = page * REASONS_PER_PAGE;
    let finished = app.recent_finishes.lock().map(|times| times.len()).unwrap_or(0);
    let replay = app.admin.replay.lock().ok().and_then(|run| run.as_ref().and_then(|run| run.notice()));
    let dashboard = Dashboard {
        waiting: report.queue.waiting,
        consumers: report.queue.consumers,
        finished_per_second: format!("{:.2}", finished as f64 / RATE_WINDOW.as_secs_f64()),
        dead_total: report.queue.dead,
        shown: (first + 1, first + reasons.len(), report.reasons),
        reasons,
        page,
        replay,
        takedown: takedown_notice(query.takedown.as_deref(), query.image.as_deref()),
        any_retryable: report.groups.iter().any(|group| group.retryable),
    };
    Ok(Html(dashboard.render().map_err(anyhow::Error::from)?).into_response())
}

/// The queues' counts and a page of the failures' reasons: the last report
/// when it is recent and of that page, or a new one. One is made at a time;
/// the requests that wait for it share it.
async fn report(app: &AppState, url: &str, page: usize) -> Result<Result<Arc<Report>, thumbq_broker::lapin::Error>, AppError> {
    let mut last = app.admin.report.lock().await;
    if let Some((made, of_page, report)) = last.as_ref()
        && *of_page == page
        && made.elapsed() < REPORT_FOR
    {
        return Ok(Ok(Arc::clone(report)));
    }
    let queue = match thumbq_broker::admin::report(url, &app.settings.topology()).await {
        Ok(queue) => queue,
        Err(error) => return Ok(Err(error)),
    };
    // The reasons come from the failure records, not from the dead-letter
    // queue: reading that queue would count as deliveries of its messages.
    let (groups, reasons) = app.repo.failure_groups(page * REASONS_PER_PAGE, REASONS_PER_PAGE, EXAMPLES_PER_REASON).await?;
    let report = Arc::new(Report { queue, groups, reasons });
    *last = Some((Instant::now(), page, Arc::clone(&report)));
    Ok(Ok(report))
}

#[derive(Deserialize)]
pub struct TakedownForm {
    /// An image's id, or any link to it (its page, a thumbnail, the original).
    image: String,
    /// The box ticked to say the operator means it: a takedown cannot be undone.
    confirm: Option<String>,
}

/// `POST /admin/takedown`: deletes any image, as its owner would, and logs
/// who asked (the request id, with the operator's address in the access log)
/// and when. Credentials are checked before the form is read.
pub async fn takedown(State(app): State<AppState>, request: Request) -> Result<Response, AppError> {
    if let Some(refusal) = check_access(&app, request.headers()).await {
        return Ok(refusal);
    }
    same_origin::check(request.headers())?;
    let request_id = request.headers().get("x-request-id").and_then(|id| id.to_str().ok()).unwrap_or("-").to_owned();
    let Form(form) = Form::<TakedownForm>::from_request(request, &app)
        .await
        .map_err(|rejection| AppError::BadForm { status: rejection.status(), message: rejection.body_text() })?;
    let Some(id) = image_id_in(&form.image) else {
        return Ok(Redirect::to("/admin?takedown=unknown").into_response());
    };
    if form.confirm.as_deref() != Some("yes") {
        return Ok(Redirect::to(&format!("/admin?takedown=unconfirmed&image={id}")).into_response());
    }
    let outcome = match delete::erase(&app, id, Reason::Takedown).await? {
        Deletion::Unknown => "unknown",
        Deletion::AlreadyDeleted => "already",
        Deletion::Deleted => "done",
    };
    if outcome != "done" {
        return Ok(Redirect::to(&format!("/admin?takedown={outcome}&image={id}")).into_response());
    }
    tracing::warn!(image.id = %id, request.id = %request_id, at_ms = progress::now_ms(), "Took an image down at an operator's request.");
    Ok(Redirect::to(&format!("/admin?takedown=done&image={id}")).into_response())
}

/// The first image id in `text`: a bare id, or one inside a link.
fn image_id_in(text: &str) -> Option<thumbq_contract::ImageId> {
    text.split(|c: char| matches!(c, '/' | '?' | '#' | '&' | '=' | ',') || c.is_whitespace()).find_map(|part| part.parse().ok())
}

fn takedown_notice(outcome: Option<&str>, image: Option<&str>) -> Option<String> {
    let image = image.and_then(image_id_in).map(|id| id.to_string()).unwrap_or_default();
    match outcome? {
        "done" => Some(format!("Took down image {image}: its original, thumbnails and queued jobs are deleted.")),
        "already" => Some(format!("Image {image} was deleted already.")),
        "unconfirmed" => Some(format!("Nothing was deleted: to take image {image} down, tick the box that confirms it.")),
        _ => Some("No image has that id; nothing was deleted. Paste the image's id, or a link to its page or a thumbnail.".to_owned()),
    }
}

/// 503 when RabbitMQ cannot be read: the operator's problem to see, not a bug of ours.
fn broker_unavailable(error: &thumbq_broker::lapin::Error) -> Response {
    tracing::warn!(%error, "The dashboard cannot reach RabbitMQ.");
    (StatusCode::SERVICE_UNAVAILABLE, format!("RabbitMQ cannot be reached: {error}\n")).into_response()
}

/// The broker to read, when the request may use the dashboard; otherwise the answer to give.
async fn broker_url<'a>(app: &'a AppState, headers: &HeaderMap) -> Result<&'a str, Box<Response>> {
    if let Some(refusal) = check_access(app, headers).await {
        return Err(Box::new(refusal));
    }
    app.settings
        .deployment
        .amqp_url
        .as_deref()
        .ok_or_else(|| Box::new((StatusCode::SERVICE_UNAVAILABLE, "The dashboard reads RabbitMQ; this server runs on the embedded queue.\n").into_response()))
}

/// A wrong password costs its sender this long: guessing stays slow even
/// over many connections, while the dashboard answers the right one at once.
const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);

/// `None` when the request may see the dashboard; otherwise the answer to
/// give. Failed logins are logged, with the request id, and slowed down.
async fn check_access(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.settings.admin_token else {
        return Some(AppError::NotFound.into_response());
    };
    let given = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|value| {
        if let Some(bearer) = value.strip_prefix("Bearer ") {
            return Some(bearer.to_owned());
        }
        let basic = base64::engine::general_purpose::STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
        let basic = String::from_utf8(basic).ok()?;
        basic.split_once(':').map(|(_, password)| password.to_owned())
    });
    let tried = given.is_some();
    if given.is_some_and(|given| thumbq_contract::owner::same_secret(given.as_bytes(), token.as_bytes())) {
        return None;
    }
    if tried {
        // The request's span names the client's address and the request id.
        tracing::warn!("A dashboard login failed: wrong token.");
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
    }
    let challenge = [(header::WWW_AUTHENTICATE, r#"Basic realm="thumbq admin", charset="UTF-8""#)];
    Some((StatusCode::UNAUTHORIZED, challenge, "The dashboard needs the admin token (as the password).\n").into_response())
}

/// Whether `heard` is an image's last event (done or failed for good): each of its sizes has one of its own before.
pub fn is_a_finish(heard: &thumbq_broker::events::Heard) -> bool {
    use thumbq_contract::EventState;
    matches!(heard, thumbq_broker::events::Heard::Event(event) if matches!(event.state, EventState::Done | EventState::Failed))
}

/// Keeps the times of the last minute's finished images, for the rate.
pub fn record_finish(times: &std::sync::Mutex<std::collections::VecDeque<Instant>>) {
    if let Ok(mut times) = times.lock() {
        let now = Instant::now();
        times.push_back(now);
        while times.front().is_some_and(|oldest| now.duration_since(*oldest) > RATE_WINDOW) {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_finishes_once_whatever_the_sizes_announced_before() {
        use thumbq_broker::events::Heard;
        use thumbq_contract::{EventState, ImageEvent, ImageId};
        let id = ImageId::new();
        let heard = [EventState::Written, EventState::Written, EventState::Written, EventState::Done].map(|state| Heard::Event(ImageEvent::new(id, state)));
        assert_eq!(heard.iter().filter(|heard| is_a_finish(heard)).count(), 1);
        assert!(is_a_finish(&Heard::Event(ImageEvent::new(id, EventState::Failed))));
        assert!(!is_a_finish(&Heard::Event(ImageEvent::new(id, EventState::Deleted))) && !is_a_finish(&Heard::Resync));
    }

    #[test]
    fn a_takedown_finds_the_id_in_any_link_to_the_image() {
        let id: thumbq_contract::ImageId = "0190b6a4-7c1e-7000-8000-000000000001".parse().unwrap();
        for text in [
            "0190b6a4-7c1e-7000-8000-000000000001",
            " https://thumbq.example/images/0190b6a4-7c1e-7000-8000-000000000001 ",
            "http://127.0.0.1:8080/thumbs/0190b6a4-7c1e-7000-8000-000000000001/large",
            "/images?ids=0190b6a4-7c1e-7000-8000-000000000001,other",
        ] {
            assert_eq!(image_id_in(text), Some(id), "{text}");
        }
        assert_eq!(image_id_in("https://thumbq.example/"), None);
    }
}
