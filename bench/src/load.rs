//! The load of one point of the offload table: C virtual clients uploading
//! the same photo in a closed loop for a fixed time (or, for the scale-out
//! table, until they have sent a number of uploads between them), and beside
//! them one client of its own reading the cheap page (`GET /healthz`) every
//! 50 ms. Also the percentiles the tables show.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use crate::http::Connection;

/// How often the cheap page is read.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// An upload is given up on after this long: far beyond any answer seen.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// The cheap page is given up on after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// One upload, as its client saw it.
pub struct Upload {
    /// When the request started, in milliseconds since the Unix epoch: the
    /// workers' timelines use the same clock.
    pub started_unix_ms: u64,
    /// From the request's start to the whole answer.
    pub latency: Duration,
    pub outcome: Outcome,
}

pub enum Outcome {
    /// A 2xx answer, and the image's id when the answer gave one.
    Accepted { image_id: Option<String> },
    /// Any other status, with the start of the answer's body.
    Refused { status: u16, body: String },
    /// No answer: the connection failed or timed out.
    Failed(String),
}

/// What one point's load saw.
pub struct Measured {
    pub uploads: Vec<Upload>,
    /// From the first request to the last answer: uploads in flight at the
    /// end of the time are waited for, and counted.
    pub elapsed: Duration,
    /// Latencies of the cheap page's 2xx answers.
    pub probes: Vec<Duration>,
    /// The cheap page's other answers and failures.
    pub probe_failures: Vec<String>,
}

impl Measured {
    pub fn accepted(&self) -> impl Iterator<Item = &Upload> {
        self.uploads.iter().filter(|upload| matches!(upload.outcome, Outcome::Accepted { .. }))
    }

    /// 2xx answers per second.
    pub fn uploads_per_second(&self) -> f64 {
        self.accepted().count() as f64 / self.elapsed.as_secs_f64()
    }

    /// The uploads that were not answered 2xx, counted by what happened: `2 × 503`.
    pub fn other_answers(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for upload in &self.uploads {
            let label = match &upload.outcome {
                Outcome::Accepted { .. } => continue,
                Outcome::Refused { status, body } => format!("{status} ({body})"),
                Outcome::Failed(error) => format!("no answer ({error})"),
            };
            *counts.entry(label).or_insert(0) += 1;
        }
        counts
    }
}

/// Runs `clients` closed-loop uploaders of `image` against `address` for
/// `duration`, and the cheap page's reader meanwhile.
pub async fn run(address: &str, clients: usize, duration: Duration, image: Bytes) -> anyhow::Result<Measured> {
    let deadline = Instant::now() + duration;
    drive(address, clients, move || Instant::now() < deadline, image).await
}

/// Runs `clients` closed-loop uploaders of `image` against `address` until
/// they have sent `count` uploads between them, and the cheap page's reader meanwhile.
pub async fn run_count(address: &str, clients: usize, count: usize, image: Bytes) -> anyhow::Result<Measured> {
    let left = Arc::new(AtomicUsize::new(count));
    drive(address, clients, move || left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).is_ok(), image).await
}

/// Runs `clients` uploaders, each uploading again while `more` says so, and the cheap page's reader.
async fn drive(address: &str, clients: usize, more: impl Fn() -> bool + Clone + Send + 'static, image: Bytes) -> anyhow::Result<Measured> {
    let stop = Arc::new(AtomicBool::new(false));
    // A thread and a runtime of its own, so that the uploaders' work in this
    // process does not delay the probe: what it measures is the server.
    let prober = {
        let (address, stop) = (address.to_owned(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            anyhow::Ok(runtime.block_on(probe(&address, &stop)))
        })
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(upload_while(address.to_owned(), image.clone(), more.clone()));
    }
    let mut uploads = Vec::new();
    while let Some(client) = tasks.join_next().await {
        uploads.extend(client?);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (probes, probe_failures) = prober.join().map_err(|_| anyhow::anyhow!("the probe's thread panicked"))??;
    Ok(Measured { uploads, elapsed, probes, probe_failures })
}

/// One virtual client: uploads, waits for the answer, uploads again, while
/// `more` says so. Like one browser, it sends its owner key back after its
/// first upload (thumbq-web's `owner_key`, which releases before it called
/// `delete_token`; the comparison server gives none).
/// Each upload is a file of its own (see [`crate::http::Connection::upload`]).
async fn upload_while(address: String, image: Bytes, more: impl Fn() -> bool) -> Vec<Upload> {
    let mut connection = Connection::new(&address);
    let mut bearer: Option<String> = None;
    let mut uploads = Vec::new();
    while more() {
        let started_unix_ms = thumbq_contract::timeline::now_ms();
        let started = Instant::now();
        let answer = connection.send(connection.upload(&image, bearer.as_deref()), UPLOAD_TIMEOUT).await;
        let latency = started.elapsed();
        let outcome = match answer {
            Ok(answer) if answer.status.is_success() => {
                let accepted: Option<AcceptedImage> = serde_json::from_slice::<UploadAnswer>(&answer.body).ok().and_then(|body| body.images.into_iter().next());
                let (image_id, token) = accepted.map_or((None, None), |image| (Some(image.id), image.owner_key.or(image.delete_token)));
                if bearer.is_none() {
                    bearer = token;
                }
                Outcome::Accepted { image_id }
            }
            Ok(answer) => Outcome::Refused { status: answer.status.as_u16(), body: excerpt(&answer.body) },
            Err(error) => {
                // Not a tight loop against a server that is gone.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Outcome::Failed(format!("{error:#}"))
            }
        };
        uploads.push(Upload { started_unix_ms, latency, outcome });
    }
    uploads
}

/// `GET /healthz` every [`PROBE_EVERY`] on one connection until `stop`;
/// returns the latencies of the 2xx answers and what went wrong otherwise.
async fn probe(address: &str, stop: &AtomicBool) -> (Vec<Duration>, Vec<String>) {
    let mut connection = Connection::new(address);
    let mut every = tokio::time::interval(PROBE_EVERY);
    // After a slow answer, the next request waits a whole period again: the
    // probe never piles requests onto a struggling server.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut latencies, mut failures) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        let started = Instant::now();
        match connection.send(connection.get("/healthz"), PROBE_TIMEOUT).await {
            Ok(answer) if answer.status.is_success() => latencies.push(started.elapsed()),
            Ok(answer) => failures.push(format!("{} ({})", answer.status.as_u16(), excerpt(&answer.body))),
            Err(error) => failures.push(format!("no answer ({error:#})")),
        }
    }
    (latencies, failures)
}

#[derive(Deserialize)]
struct UploadAnswer {
    images: Vec<AcceptedImage>,
}

#[derive(Deserialize)]
struct AcceptedImage {
    id: String,
    owner_key: Option<String>,
    delete_token: Option<String>,
}

/// The start of a body, on one line, for a report.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(80).collect()
}

/// The value below which `fraction` of `times` lie (nearest rank); `None` when there are none.
pub fn percentile(times: &[Duration], fraction: f64) -> Option<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let times: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 0.50), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&times, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&times[..1], 0.95), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
