//! When the offloaded uploads' thumbnails were ready: after a point's load,
//! waits until the workers have drained the queue, and reads each image's
//! timeline from `GET /api/images/{id}` (web and worker steps, in Unix ms on
//! this machine's one clock). The timelines, not the wait, say when the last
//! thumbnail was written: how often it looks costs no precision.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use thumbq_contract::Step;

use crate::http::Connection;
use crate::load::{Outcome, Upload};

/// How often an unfinished image is looked at again.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// What the timelines of one point's images say.
#[derive(Default)]
pub struct Timings {
    /// From each request's start to its image's last thumbnail written.
    pub ready: Vec<Duration>,
    /// From the upload received to its original stored.
    pub store: Vec<Duration>,
    /// From the original stored to RabbitMQ's confirm of its job.
    pub confirm: Vec<Duration>,
    /// Jobs RabbitMQ did not confirm in time, kept in the outbox instead.
    pub outbox: usize,
    /// When the last thumbnail of them all was written, in Unix ms.
    pub last_written_unix_ms: u64,
}

/// Waits until every accepted upload of `uploads` is done, within `within`
/// (`alive` fails when a server or worker has exited), and reads its timeline.
pub async fn wait_for_thumbnails(
    address: &str,
    uploads: &[Upload],
    within: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Timings> {
    let deadline = Instant::now() + within;
    let mut connection = Connection::new(address);
    let mut timings = Timings::default();
    let mut accepted: Vec<(u64, &str)> = uploads
        .iter()
        .filter_map(|upload| match &upload.outcome {
            Outcome::Accepted { image_id } => Some(image_id.as_deref().map(|id| (upload.started_unix_ms, id)).context("a 202 without an image id")),
            _ => None,
        })
        .collect::<anyhow::Result<_>>()?;
    // Jobs are taken oldest first: once the newest is done, the others are
    // done or nearly, so the wait costs one request per look, not one per job
    // while the workers still run beside it.
    accepted.sort();
    accepted.rotate_right(1);
    for (started_unix_ms, id) in accepted {
        let status = loop {
            let answer = connection.send(connection.get(&format!("/api/images/{id}")), Duration::from_secs(30)).await?;
            anyhow::ensure!(answer.status.is_success(), "GET /api/images/{id} answered {}", answer.status);
            let status: ImageStatus = serde_json::from_slice(&answer.body).with_context(|| format!("the status of image {id}"))?;
            // The worker keeps its timeline just after each thumbnail: the large one's step may lag the `done` it makes by a moment.
            let written = status.timeline.iter().any(|step| step.step == "large written");
            match status.state.as_str() {
                "done" if written => break status,
                "failed" => bail!("the job of image {id} failed: {}", status.error.unwrap_or_default()),
                _ if Instant::now() > deadline => {
                    bail!("image {id} (and maybe others) had no thumbnails, or no worker timeline, {within:?} after the load ended")
                }
                _ => {
                    alive()?;
                    tokio::time::sleep(LOOK_EVERY).await;
                }
            }
        };
        let at = |name: &str| status.timeline.iter().find(|step| step.step == name).map(|step| step.at);
        let written = status.timeline.iter().filter(|step| step.step.ends_with(" written")).map(|step| step.at).max();
        let written = written.context("a thumbnail written")?;
        timings.ready.push(Duration::from_millis(written.saturating_sub(started_unix_ms)));
        timings.last_written_unix_ms = timings.last_written_unix_ms.max(written);
        if let (Some(received), Some(stored)) = (at("received"), at("stored")) {
            timings.store.push(Duration::from_millis(stored.saturating_sub(received)));
        }
        match (at("stored"), at("confirmed by RabbitMQ"), at("kept in the outbox")) {
            (Some(stored), Some(confirmed), _) => timings.confirm.push(Duration::from_millis(confirmed.saturating_sub(stored))),
            (_, _, Some(_)) => timings.outbox += 1,
            _ => bail!("the timeline of image {id} says neither when it was stored nor when its job was confirmed"),
        }
    }
    Ok(timings)
}

#[derive(Deserialize)]
struct ImageStatus {
    state: String,
    error: Option<String>,
    timeline: Vec<Step>,
}
