//! Table (`--only uploads`, minutes long, so not in the default list): how
//! many uploads per second the web tier alone makes now, against the release
//! before owners and the outbox claim, and against the floor. No workers run:
//! what is measured is the request path, from the body streamed in to the
//! answer. Three servers take the same small upload:
//!
//! - **current**: `thumbq-web` of this tree, its SQLite database in its data directory;
//! - **the baseline** (`--baseline-web`; `scripts/bench` builds commit 738b44c's):
//!   `thumbq-web` of an earlier commit. 738b44c takes the same `THUMBQ_DATA_DIR`,
//!   `THUMBQ_BIND`, `THUMBQ_AMQP_URL` and `THUMBQ_QUEUE`, keeps no database
//!   (so needs no setting for one), and ignores the settings it does not
//!   know (rate limits, free space);
//! - **store only**: the comparison server (`src/bin/inline_server.rs`)
//!   stores the upload and answers: the floor.
//!
//! Both `thumbq-web`s run on RabbitMQ (a queue of the run's own, deleted
//! after each run, so that each starts on an empty one) and on the embedded
//! queue. At each point (queue × clients) every server runs a number of
//! times, taking turns (A, B, C, A, B, C, …), each time a fresh process on a
//! fresh data directory, so that whatever else the machine does falls on all
//! three alike. Then one more pass of each, untimed, under strace, counts the
//! server's sync calls per upload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use crate::images::TestImage;
use crate::load::{self, Measured};
use crate::servers::{Broker, Servers, Store};
use crate::table;

/// Uploads of each strace pass, from one client: enough that the syncs of
/// timers (the relay, the reconciler) are noise beside those of the uploads.
const TRACED_UPLOADS: usize = 100;

/// What the uploads table is run with.
pub struct Options {
    pub clients: Vec<usize>,
    pub seconds: u64,
    pub repetitions: usize,
    pub web: PathBuf,
    /// `thumbq-web` of the earlier commit; `None` when it was not given.
    pub baseline_web: Option<PathBuf>,
    /// The commit the baseline was built from, as the table names it.
    pub baseline_name: String,
    pub inline_server: PathBuf,
    pub amqp_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    RabbitMq,
    Embedded,
}

impl Queue {
    const ALL: [Queue; 2] = [Queue::RabbitMq, Queue::Embedded];

    fn label(self) -> &'static str {
        match self {
            Queue::RabbitMq => "RabbitMQ",
            Queue::Embedded => "embedded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Current,
    Baseline,
    StoreOnly,
}

impl Server {
    /// Also the order in which they take turns.
    const ALL: [Server; 3] = [Server::Current, Server::Baseline, Server::StoreOnly];

    fn label(self, options: &Options) -> String {
        match self {
            Server::Current => "current".into(),
            Server::Baseline => options.baseline_name.clone(),
            Server::StoreOnly => "store only".into(),
        }
    }

    /// Whether it publishes to the queue: store only has none.
    fn queues(self) -> bool {
        self != Server::StoreOnly
    }
}

/// One timed run of one server.
struct Run {
    queue: Queue,
    clients: usize,
    server: Server,
    measured: Measured,
    /// The server process's CPU time (all its threads, user and system) over the run.
    cpu: Duration,
}

impl Run {
    /// The server's CPU time per upload answered 2xx.
    fn cpu_per_upload(&self) -> Option<Duration> {
        let accepted = u32::try_from(self.measured.accepted().count()).ok().filter(|&count| count > 0)?;
        Some(self.cpu / accepted)
    }
}

/// Process `pid`'s CPU time so far, all its threads, user and system, from
/// `/proc/PID/stat` (in clock ticks of 1/100 s, which Linux fixes for it).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("cannot read the CPU time of process {pid}"))?;
    // The command name, in parentheses, may hold spaces: the fields are counted after it.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // utime and stime, the 14th and 15th fields of the line, the 12th and 13th after the name.
    let ticks = |at: usize| fields.get(at).and_then(|field| field.parse::<u64>().ok()).with_context(|| format!("no CPU time in {stat}"));
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// One strace pass of one server.
struct Traced {
    queue: Queue,
    server: Server,
    measured: Measured,
    /// Calls by name, as strace counted them on every thread.
    calls: BTreeMap<String, u64>,
}

pub fn run(options: &Options, image: &TestImage) -> anyhow::Result<()> {
    let baseline = options.baseline_web.as_deref().context("no earlier thumbq-web to compare with: pass --baseline-web (scripts/bench builds 738b44c's)")?;
    anyhow::ensure!(baseline.is_file(), "{} is missing: scripts/bench --only uploads builds it", baseline.display());
    for (binary, package) in [(&options.web, "thumbq-web"), (&options.inline_server, "thumbq-bench")] {
        crate::process::ensure_built(binary, package)?;
    }
    Command::new("strace").arg("-V").output().context("strace does not run: it counts the fsyncs (apt-get install strace; scripts/bench installs it)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(crate::rabbitmq::check_reachable(&options.amqp_url))?;
    let queue = format!("thumbq.bench.uploads.{}.{}", std::process::id(), thumbq_contract::timeline::now_ms());
    let image_bytes = Bytes::from(image.bytes.clone());
    let measured = runtime.block_on(measure(options, baseline, &queue, &image_bytes));
    // Also after a failure: a run leaves no queue behind.
    let deleted = runtime.block_on(crate::rabbitmq::delete_topology(&options.amqp_url, &queue));
    let (runs, traced) = crate::rabbitmq::after_cleanup(measured, deleted)?;
    print_tables(options, baseline, image, &runs, &traced);
    Ok(())
}

async fn measure(options: &Options, baseline: &Path, queue: &str, image: &Bytes) -> anyhow::Result<(Vec<Run>, Vec<Traced>)> {
    let duration = Duration::from_secs(options.seconds);
    let mut runs = Vec::new();
    for mode in Queue::ALL {
        for &clients in &options.clients {
            for repetition in 1..=options.repetitions {
                for server in Server::ALL {
                    let what = format!("{} on {} with {clients} clients, run {repetition} of {}", server.label(options), mode.label(), options.repetitions);
                    eprintln!("uploads: {what} for {}s…", options.seconds);
                    let mut servers = start(options, baseline, server, mode, queue).await.with_context(|| format!("starting {what}"))?;
                    let cpu_before = cpu_time(servers.server_pid())?;
                    let measured = load::run(servers.address(), clients, duration, image.clone()).await?;
                    let cpu = cpu_time(servers.server_pid())?.saturating_sub(cpu_before);
                    servers.check_running().with_context(|| what.clone())?;
                    finish(options, servers, server, mode, queue).await?;
                    runs.push(Run { queue: mode, clients, server, measured, cpu });
                }
            }
        }
    }
    let mut traced = Vec::new();
    for mode in Queue::ALL {
        for server in Server::ALL {
            let what = format!("{} on {} under strace", server.label(options), mode.label());
            eprintln!("uploads: {what}, {TRACED_UPLOADS} uploads…");
            let mut servers = start(options, baseline, server, mode, queue).await.with_context(|| format!("starting {what}"))?;
            let trace_dir = tempfile::tempdir()?;
            // Attached once the server is ready: its start's syncs (manifest, migrations) are not the uploads'.
            let strace = crate::syncs::SyncCounter::attach(servers.server_pid(), trace_dir.path()).await.with_context(|| what.clone())?;
            let measured = load::run_count(servers.address(), 1, TRACED_UPLOADS, image.clone()).await?;
            let calls = tokio::task::block_in_place(|| strace.finish()).with_context(|| what.clone())?;
            servers.check_running().with_context(|| what.clone())?;
            finish(options, servers, server, mode, queue).await?;
            traced.push(Traced { queue: mode, server, measured, calls });
        }
    }
    Ok((runs, traced))
}

/// Starts `server` on a fresh data directory, on `mode`'s queue; returns once it serves.
async fn start(options: &Options, baseline: &Path, server: Server, mode: Queue, queue: &str) -> anyhow::Result<Servers> {
    let broker = match mode {
        Queue::RabbitMq => Some(Broker { amqp_url: &options.amqp_url, queue }),
        Queue::Embedded => None,
    };
    match server {
        Server::Current => Servers::web_alone(&options.web, broker, Store::DataDir).await,
        Server::Baseline => Servers::web_alone(baseline, broker, Store::DataDir).await,
        Server::StoreOnly => Servers::comparison(&options.inline_server, "store-only").await,
    }
}

/// Stops the server and removes its data directory, and on RabbitMQ its
/// queue: its jobs are nobody's to make, and the next server starts on an empty one.
async fn finish(options: &Options, servers: Servers, server: Server, mode: Queue, queue: &str) -> anyhow::Result<()> {
    servers.stop();
    if mode == Queue::RabbitMq && server.queues() {
        crate::rabbitmq::delete_topology(&options.amqp_url, queue).await?;
    }
    Ok(())
}

/// Uploads/s of one server at one point over its runs.
struct Rates {
    median: f64,
    min: f64,
    max: f64,
    /// Over every run's accepted uploads together.
    latency_p50: Option<Duration>,
}

impl Rates {
    fn of(runs: &[&Run]) -> Option<Self> {
        let mut rates: Vec<f64> = runs.iter().map(|run| run.measured.uploads_per_second()).collect();
        if rates.is_empty() {
            return None;
        }
        rates.sort_by(f64::total_cmp);
        let middle = rates.len() / 2;
        // With an even number of runs, the mean of the middle two.
        let median = if rates.len().is_multiple_of(2) { (rates[middle - 1] + rates[middle]) / 2.0 } else { rates[middle] };
        let latencies: Vec<Duration> = runs.iter().flat_map(|run| run.measured.accepted().map(|upload| upload.latency)).collect();
        Some(Self { median, min: rates[0], max: rates[rates.len() - 1], latency_p50: load::percentile(&latencies, 0.50) })
    }

    fn cell(&self) -> String {
        format!("{:.1} ({:.1}–{:.1})", self.median, self.min, self.max)
    }
}

fn print_tables(options: &Options, baseline: &Path, image: &TestImage, runs: &[Run], traced: &[Traced]) {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let clients: Vec<String> = options.clients.iter().map(usize::to_string).collect();
    let name = &options.baseline_name;
    table::heading(
        "Uploads: the web tier alone",
        &[
            format!(
                "Uploads/s of the web server alone, no workers, on this machine ({cores} cores): C clients (C = {}) each uploading a {} of {:.0} kB in a closed loop for {} s, streamed, while one more client reads `GET /healthz` every 50 ms.",
                clients.join(", "),
                image.name,
                image.bytes.len() as f64 / 1e3,
                options.seconds
            ),
            "**current**: `thumbq-web` of this tree (release build), with its SQLite database in its data directory (no `--database-url`).".into(),
            format!(
                "**{name}**: `thumbq-web` built from commit {name} (`{}`); scripts/bench builds 738b44c's, the release before owners and the outbox claim, which keeps no database.",
                baseline.display()
            ),
            "**store only**: the bench's comparison server stores the upload (streamed, fsynced, renamed) and answers: the floor; it queues nothing, so it is the same on both queues.".into(),
            "**RabbitMQ**: `THUMBQ_AMQP_URL` and a queue of this run's own, deleted after each run; **embedded**: no AMQP URL, the jobs in the data directory's database.".into(),
            format!(
                "Each server ran {} at each point, taking turns (current, {name}, store only, current, …), each time a fresh process on a fresh data directory. Uploads/s counts 2xx answers from the first request to the last answer: the median of the runs (with an even number, the mean of the middle two), and their lowest and highest; p50 is over every run's uploads together. The ratios divide medians.",
                match options.repetitions {
                    1 => "once".to_owned(),
                    times => format!("{times} times"),
                }
            ),
            "The load generator runs on the same cores.".into(),
        ]
        .join("\n"),
    );
    let current = "current uploads/s".to_owned();
    let theirs = format!("{name} uploads/s");
    let current_p50 = "current p50 (ms)".to_owned();
    let theirs_p50 = format!("{name} p50 (ms)");
    let versus = format!("current ÷ {name}");
    table::header(&[
        "queue",
        "clients",
        current.as_str(),
        theirs.as_str(),
        "store only uploads/s",
        current_p50.as_str(),
        theirs_p50.as_str(),
        "store only p50 (ms)",
        versus.as_str(),
        "current ÷ store only",
    ]);
    for mode in Queue::ALL {
        for &clients in &options.clients {
            let rates = |server| Rates::of(&runs.iter().filter(|run| run.queue == mode && run.clients == clients && run.server == server).collect::<Vec<_>>());
            let (Some(ours), Some(baseline), Some(floor)) = (rates(Server::Current), rates(Server::Baseline), rates(Server::StoreOnly)) else { continue };
            table::row(&[
                mode.label().into(),
                clients.to_string(),
                ours.cell(),
                baseline.cell(),
                floor.cell(),
                table::ms_cell(ours.latency_p50),
                table::ms_cell(baseline.latency_p50),
                table::ms_cell(floor.latency_p50),
                format!("{:.2}", ours.median / baseline.median),
                format!("{:.2}", ours.median / floor.median),
            ]);
        }
    }
    print_failures(options, runs, traced);

    table::heading(
        "Uploads: the server's CPU per upload",
        "The same runs: each server process's CPU time (every thread, user and system, from `/proc/PID/stat`) over its run, divided by the uploads it answered 2xx; the median of the runs. Steadier than uploads/s on a shared machine: what else runs slows a server's answers, not the work each one costs.",
    );
    let current_cpu = "current (ms)".to_owned();
    let theirs_cpu = format!("{name} (ms)");
    let versus_cpu = format!("current ÷ {name}");
    table::header(&["queue", "clients", current_cpu.as_str(), theirs_cpu.as_str(), "store only (ms)", versus_cpu.as_str()]);
    for mode in Queue::ALL {
        for &clients in &options.clients {
            let cpu = |server| {
                let each: Vec<Duration> =
                    runs.iter().filter(|run| run.queue == mode && run.clients == clients && run.server == server).filter_map(Run::cpu_per_upload).collect();
                load::percentile(&each, 0.50)
            };
            let (ours, baseline, floor) = (cpu(Server::Current), cpu(Server::Baseline), cpu(Server::StoreOnly));
            let ratio = match (ours, baseline) {
                (Some(ours), Some(baseline)) if !baseline.is_zero() => format!("{:.2}", ours.as_secs_f64() / baseline.as_secs_f64()),
                _ => "—".into(),
            };
            table::row(&[mode.label().into(), clients.to_string(), table::ms_cell(ours), table::ms_cell(baseline), table::ms_cell(floor), ratio]);
        }
    }

    table::heading(
        "Uploads: syncs per upload",
        &format!(
            "One more pass of each server on each queue, {TRACED_UPLOADS} uploads from 1 client, under `strace -f -c -e trace={} -p PID`: every thread of the server process (SQLite's included), from when it was ready (its start's syncs are not counted) to the last answer, divided by the uploads answered 2xx. strace slows every call it sees, so these passes are not timed.",
            crate::syncs::SYNC_CALLS.join(",")
        ),
    );
    let mut columns = vec!["queue", "server", "uploads"];
    columns.extend(crate::syncs::SYNC_CALLS);
    columns.push("syncs per upload");
    table::header(&columns);
    for pass in traced {
        let accepted = pass.measured.accepted().count();
        let all: u64 = pass.calls.values().sum();
        let mut cells = vec![pass.queue.label().into(), pass.server.label(options), accepted.to_string()];
        cells.extend(crate::syncs::SYNC_CALLS.iter().map(|call| pass.calls.get(*call).copied().unwrap_or(0).to_string()));
        cells.push(if accepted == 0 { "—".into() } else { format!("{:.2}", all as f64 / accepted as f64) });
        table::row(&cells);
    }
    table::note(&format!(
        "Reproduce with `scripts/bench --only uploads --uploads-clients {} --uploads-seconds {} --uploads-repetitions {}` (it builds {name}'s `thumbq-web` once, in ~/.cache/thumbq).",
        clients.join(","),
        options.seconds,
        options.repetitions
    ));
}

/// Every answer that was not 2xx, and every failed probe, said below the table.
fn print_failures(options: &Options, runs: &[Run], traced: &[Traced]) {
    let timed = runs.iter().map(|run| (format!("{} on {} with {} clients", run.server.label(options), run.queue.label(), run.clients), &run.measured));
    let traced = traced.iter().map(|pass| (format!("{} on {} under strace", pass.server.label(options), pass.queue.label()), &pass.measured));
    let mut lines = Vec::new();
    for (what, measured) in timed.chain(traced) {
        for (answer, count) in measured.other_answers() {
            lines.push(format!("{what}: {count} × {answer}"));
        }
        if let Some(first) = measured.probe_failures.first() {
            lines.push(format!("{what}: {} `/healthz` reads failed, the first: {first}", measured.probe_failures.len()));
        }
    }
    table::load_failures(&lines);
}
