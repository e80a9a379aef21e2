//! `POST /admin/replay`: dead-lettered jobs sent back to the queue once their
//! cause is fixed, or discarded when they would only fail again, in a task of
//! its own, one run at a time; the dashboard shows how far it is.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use thumbq_broker::admin::ReplayProgress;

use super::broker_url;
use crate::AppState;
use crate::error::AppError;
use crate::same_origin;

/// How long the dashboard says what the last replay did.
const REPLAY_NOTICE_FOR: Duration = Duration::from_secs(600);

/// The most failure records a replay reads, as many as the dead-lettered messages it looks at.
const MAX_FAILURES_READ: usize = 10_000;

const UNKNOWN_REASON: &str = "No reason was recorded.";

/// One replay of dead-lettered jobs, running or done.
pub(super) struct ReplayRun {
    /// Only the jobs that failed for this reason; all that may succeed when `None`.
    reason: Option<String>,
    /// Removes the jobs of `reason` that would only fail again, instead of replaying.
    discard: bool,
    progress: ReplayProgress,
    /// When it ended, and whether it went through.
    ended: std::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl ReplayRun {
    fn is_running(&self) -> bool {
        self.ended.lock().map(|ended| ended.is_none()).unwrap_or(false)
    }

    /// What the dashboard says of it; `None` once it ended long ago.
    pub(super) fn notice(&self) -> Option<String> {
        let (total, looked_at, replayed) =
            (self.progress.total.load(Ordering::Relaxed), self.progress.looked_at.load(Ordering::Relaxed), self.progress.replayed.load(Ordering::Relaxed));
        let which = self.reason.as_ref().map(|reason| format!(" that failed with “{reason}”")).unwrap_or_default();
        let jobs = if replayed == 1 { "job" } else { "jobs" };
        if self.discard {
            return match &*self.ended.lock().ok()? {
                None => Some(format!("Discarding the jobs{which}: {looked_at} of {total} dead-lettered jobs looked at, {replayed} discarded so far.")),
                Some((at, _)) if at.elapsed() > REPLAY_NOTICE_FOR => None,
                Some((_, Ok(()))) => Some(format!("Discarded {replayed} dead-lettered {jobs}{which}; their images still say why they failed.")),
                Some((_, Err(error))) => Some(format!("Discarding stopped after {replayed} {jobs}: {error}")),
            };
        }
        match &*self.ended.lock().ok()? {
            None => Some(format!("Replaying the jobs{which}: {looked_at} of {total} dead-lettered jobs looked at, {replayed} replayed so far.")),
            Some((at, _)) if at.elapsed() > REPLAY_NOTICE_FOR => None,
            Some((_, Ok(()))) => Some(format!("Replayed {replayed} {jobs}{which}.")),
            Some((_, Err(error))) => Some(format!("The replay stopped after {replayed} {jobs}: {error}")),
        }
    }
}

#[derive(Deserialize)]
pub struct ReplayForm {
    /// Replay only the jobs that failed for this reason; all when absent or empty.
    reason: Option<String>,
    /// `yes`: remove the jobs of `reason` from the dead-letter queue, when they would only fail again.
    discard: Option<String>,
}

/// `POST /admin/replay`. Credentials are checked before the form is read, and
/// only a request from the dashboard's own page is taken: a form post from
/// another site would carry the browser's credentials along. The replay runs
/// in a task of its own (one at a time); the dashboard shows how far it is.
pub async fn replay(State(app): State<AppState>, request: Request) -> Result<Response, AppError> {
    let url = match broker_url(&app, request.headers()).await {
        Ok(url) => url.to_owned(),
        Err(refusal) => return Ok(*refusal),
    };
    same_origin::check(request.headers())?;
    let Form(form) = Form::<ReplayForm>::from_request(request, &app)
        .await
        .map_err(|rejection| AppError::BadForm { status: rejection.status(), message: rejection.body_text() })?;
    let run = {
        let mut replay = app.admin.replay.lock().map_err(|_| anyhow::anyhow!("the replay's lock was poisoned"))?;
        if replay.as_ref().is_some_and(|run| run.is_running()) {
            // The dashboard shows the one running.
            return Ok(Redirect::to("/admin").into_response());
        }
        let reason = form.reason.filter(|reason| !reason.is_empty());
        // Discarding is for one reason at a time, never "all".
        let discard = form.discard.as_deref() == Some("yes") && reason.is_some();
        let run = Arc::new(ReplayRun { reason, discard, progress: ReplayProgress::default(), ended: Default::default() });
        *replay = Some(Arc::clone(&run));
        run
    };
    tokio::spawn(async move {
        let outcome = replay_jobs(&app, &url, &run).await.map_err(|error| {
            tracing::warn!(error = %error, "A replay of dead-lettered jobs stopped.");
            error.to_string()
        });
        if let Ok(mut ended) = run.ended.lock() {
            *ended = Some((Instant::now(), outcome));
        }
        // The counts changed: the next look makes a new report.
        *app.admin.report.lock().await = None;
    });
    Ok(Redirect::to("/admin").into_response())
}

/// Moves the dead-lettered jobs `run` asks for back to the queue, and makes their images pending again.
async fn replay_jobs(app: &AppState, url: &str, run: &ReplayRun) -> anyhow::Result<()> {
    let records: std::collections::HashMap<_, _> = app.repo.failures(MAX_FAILURES_READ).await?.into_iter().collect();
    if run.discard {
        let discarded = thumbq_broker::admin::discard(
            url,
            &app.settings.topology(),
            |job| records.get(&job.image_id).is_some_and(|record| !record.retryable && run.reason.as_deref() == Some(record.reason.as_str())),
            &run.progress,
        )
        .await?;
        tracing::info!(jobs = discarded.len(), reason = ?run.reason, "Discarded dead-lettered jobs that would only fail again.");
        return Ok(());
    }
    let mut chosen_images = Vec::new();
    let replayed = thumbq_broker::admin::replay(
        url,
        &app.settings.topology(),
        |job| {
            let (reason, retryable) = match records.get(&job.image_id) {
                Some(record) => (record.reason.as_str(), record.retryable),
                None => (UNKNOWN_REASON, true),
            };
            // A failure of the image itself would only fail again.
            let chosen = retryable && run.reason.as_ref().is_none_or(|wanted| wanted == reason);
            if chosen {
                chosen_images.push(job.image_id);
            }
            chosen
        },
        &run.progress,
    )
    .await?;
    // The images are pending again, so that their pages wait for the new try.
    // A record the new try already replaced (another failure, newer) stays.
    for id in chosen_images {
        if let Some(record) = records.get(&id) {
            app.repo.clear_failure(id, record.failed_at_ms).await?;
        }
    }
    tracing::info!(jobs = replayed.len(), reason = ?run.reason, "Replayed dead-lettered jobs.");
    Ok(())
}
