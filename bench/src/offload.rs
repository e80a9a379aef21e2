//! Table 5 (`--only offload`, minutes long, so not in the default list): why
//! slow work belongs off the request path. The same upload is handled four
//! ways on this one machine, under the same load:
//!
//! - **offloaded**: thumbq as it is, `thumbq-web` on RabbitMQ with two
//!   `thumbq-worker` processes (concurrency 1) at a lower CPU priority;
//! - **queue only**: `thumbq-web` on RabbitMQ with its workers elsewhere (here:
//!   none during the load), the request path of a deployment whose workers
//!   run on other machines; its jobs are deleted with the queue afterwards;
//! - **inline**: the comparison server (`src/bin/inline_server.rs`) makes the
//!   thumbnails inside the request with the worker's code;
//! - **store only**: the comparison server stores the upload and answers: the floor.
//!
//! Each point (mode × clients) gets fresh processes and a fresh data
//! directory; the modes take turns at each client count, so that whatever
//! else the machine does meanwhile falls on all three alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use crate::chart::{self, Panel, Series};
use crate::images::TestImage;
use crate::load::{self, Measured};
use crate::ready::{self, Timings};
use crate::servers::{Offloaded, Servers, Store};
use crate::table;

/// Worker processes in the offloaded setup, each with concurrency 1: one per core here.
const WORKERS: usize = 2;

/// How long the workers may take to drain a point's queue once its load ended.
const DRAIN_WITHIN: Duration = Duration::from_secs(600);

/// What the offload table is run with.
pub struct Options {
    pub clients: Vec<usize>,
    pub seconds: u64,
    pub worker_nice: i32,
    pub web: PathBuf,
    pub worker: PathBuf,
    pub inline_server: PathBuf,
    pub amqp_url: String,
    pub chart: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Offloaded,
    QueueOnly,
    Inline,
    StoreOnly,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Offloaded, Mode::QueueOnly, Mode::Inline, Mode::StoreOnly];

    fn label(self) -> &'static str {
        match self {
            Mode::Offloaded => "offloaded",
            Mode::QueueOnly => "queue only",
            Mode::Inline => "inline",
            Mode::StoreOnly => "store only",
        }
    }
}

/// One mode at one client count.
struct Point {
    mode: Mode,
    clients: usize,
    measured: Measured,
    /// From each request's start to its thumbnails written; `None` for store only, which makes none.
    ready: Option<Vec<Duration>>,
    /// Offloaded only: publish and confirm times, and jobs that went to the outbox.
    timings: Option<Timings>,
}

pub fn run(options: &Options, image: &TestImage) -> anyhow::Result<()> {
    for (binary, package) in [(&options.web, "thumbq-web"), (&options.worker, "thumbq-worker"), (&options.inline_server, "thumbq-bench")] {
        crate::process::ensure_built(binary, package)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(crate::rabbitmq::check_reachable(&options.amqp_url))?;
    let queue = crate::rabbitmq::unique_queue();
    let image_bytes = Bytes::from(image.bytes.clone());
    let measured = runtime.block_on(measure(options, &queue, &image_bytes));
    // Also after a failure: a run leaves no queue behind.
    let deleted = runtime.block_on(crate::rabbitmq::delete_topology(&options.amqp_url, &queue));
    let points = crate::rabbitmq::after_cleanup(measured, deleted)?;
    print_tables(options, image, &points);
    write_chart(&options.chart, &image.name, &points)
}

async fn measure(options: &Options, queue: &str, image: &Bytes) -> anyhow::Result<Vec<Point>> {
    let duration = Duration::from_secs(options.seconds);
    let setup = Offloaded {
        web: &options.web,
        worker: &options.worker,
        amqp_url: &options.amqp_url,
        queue,
        workers: WORKERS,
        worker_nice: options.worker_nice,
        store: Store::DataDir,
    };
    let without_workers = Offloaded { workers: 0, ..setup };
    let mut points = Vec::new();
    for &clients in &options.clients {
        for mode in Mode::ALL {
            eprintln!("offload: {} with {clients} clients for {}s…", mode.label(), options.seconds);
            let mut servers = match mode {
                Mode::Offloaded => Servers::offloaded(&setup).await?,
                Mode::QueueOnly => Servers::offloaded(&without_workers).await?,
                Mode::Inline => Servers::comparison(&options.inline_server, "inline").await?,
                Mode::StoreOnly => Servers::comparison(&options.inline_server, "store-only").await?,
            };
            let measured = load::run(servers.address(), clients, duration, image.clone()).await?;
            servers.check_running().with_context(|| format!("{} with {clients} clients", mode.label()))?;
            let (ready, timings) = match mode {
                Mode::Offloaded => {
                    let address = servers.address().to_owned();
                    let timings = ready::wait_for_thumbnails(&address, &measured.uploads, DRAIN_WITHIN, || servers.check_running()).await?;
                    (Some(timings.ready.clone()), Some(timings))
                }
                // The thumbnails were written before the answer.
                Mode::Inline => (Some(measured.accepted().map(|upload| upload.latency).collect()), None),
                Mode::QueueOnly | Mode::StoreOnly => (None, None),
            };
            servers.stop();
            if mode == Mode::QueueOnly {
                // Its jobs are nobody's to make: the next offloaded point starts on an empty queue.
                crate::rabbitmq::delete_topology(&options.amqp_url, queue).await?;
            }
            points.push(Point { mode, clients, measured, ready, timings });
        }
    }
    Ok(points)
}

fn print_tables(options: &Options, image: &TestImage, points: &[Point]) {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let megabytes = image.bytes.len() as f64 / 1e6;
    let clients: Vec<String> = options.clients.iter().map(usize::to_string).collect();
    table::heading(
        "Offload",
        &[
            format!(
                "The same upload, a {} of {megabytes:.1} MB, handled four ways on this machine ({cores} cores), by C clients each uploading it in a closed loop for {} s (C = {}), while one more client reads `GET /healthz` every 50 ms.",
                image.name,
                options.seconds,
                clients.join(", ")
            ),
            format!(
                "**offloaded**: thumbq as it is, `thumbq-web` on RabbitMQ and {WORKERS} `thumbq-worker` processes with concurrency 1 at nice {}: on one machine the workers share the cores with the web server, and lowering their priority is exactly what offloading allows and inline cannot do.",
                options.worker_nice
            ),
            "**queue only**: `thumbq-web` on RabbitMQ as above with its workers elsewhere (none run during the load; its jobs are deleted after it): the request path of a deployment whose workers have machines of their own.".into(),
            "**inline**: a comparison server makes the three thumbnails inside the request, with the worker's own code on a blocking thread per request and no bound (as a server without a queue does), and answers once they are written.".into(),
            "**store only**: the same comparison server stores the upload the same way (streamed, fsynced, renamed) and answers with no job at all: the floor of the request path.".into(),
            "Uploads/s counts 2xx answers from the first request to the last answer.".into(),
            "Ready is from a request's start to its last thumbnail written (inline: the answer; offloaded: the worker's timeline, the queue drained after the load).".into(),
            "The load generator runs on the same cores; RabbitMQ's CPU time counts as other processes' in the note below.".into(),
        ]
        .join("\n"),
    );
    table::header(&[
        "mode",
        "clients",
        "uploads/s",
        "2xx",
        "other answers",
        "upload p50 (ms)",
        "upload p95 (ms)",
        "upload p99 (ms)",
        "ready p50 (ms)",
        "ready p95 (ms)",
        "/healthz p50 (ms)",
        "/healthz p95 (ms)",
        "/healthz p99 (ms)",
    ]);
    for mode in Mode::ALL {
        for point in points.iter().filter(|point| point.mode == mode) {
            let measured = &point.measured;
            let latencies: Vec<Duration> = measured.accepted().map(|upload| upload.latency).collect();
            let others = measured.other_answers().values().sum::<usize>();
            let ready = |fraction| match &point.ready {
                Some(ready) => table::ms_cell(load::percentile(ready, fraction)),
                None => "—".into(),
            };
            table::row(&[
                mode.label().into(),
                point.clients.to_string(),
                format!("{:.1}", measured.uploads_per_second()),
                measured.accepted().count().to_string(),
                others.to_string(),
                table::ms_cell(load::percentile(&latencies, 0.50)),
                table::ms_cell(load::percentile(&latencies, 0.95)),
                table::ms_cell(load::percentile(&latencies, 0.99)),
                ready(0.50),
                ready(0.95),
                table::ms_cell(load::percentile(&measured.probes, 0.50)),
                table::ms_cell(load::percentile(&measured.probes, 0.95)),
                table::ms_cell(load::percentile(&measured.probes, 0.99)),
            ]);
        }
    }
    print_failures(points);

    table::heading(
        "Offload: publish and confirm",
        "For the offloaded uploads: from the original stored to RabbitMQ's confirm of its job (`confirmed by RabbitMQ` minus `stored` in each image's timeline, whole milliseconds).",
    );
    table::header(&["clients", "jobs", "confirm p50 (ms)", "confirm p99 (ms)", "kept in the outbox instead"]);
    for point in points.iter().filter(|point| point.mode == Mode::Offloaded) {
        let Some(timings) = &point.timings else { continue };
        table::row(&[
            point.clients.to_string(),
            (timings.confirm.len() + timings.outbox).to_string(),
            table::ms_cell(load::percentile(&timings.confirm, 0.50)),
            table::ms_cell(load::percentile(&timings.confirm, 0.99)),
            timings.outbox.to_string(),
        ]);
    }

    table::heading(
        "Offload: the cost of the queue itself",
        "Uploads/s as a share of store only's at each client count.\nStore only is the comparison server's minimal path (stream, fsync, rename), so queue only's share also counts `thumbq-web`'s own bookkeeping (owner entries, the timeline, the outbox's write-ahead, waiting for the confirm) besides the queue: 1 minus it is an upper bound on what the queue costs the request path. Offloaded's share adds what two busy workers on the same cores cost it.",
    );
    table::header(&[
        "clients",
        "store only (uploads/s)",
        "queue only (uploads/s)",
        "queue only ÷ store only",
        "offloaded (uploads/s)",
        "offloaded ÷ store only",
    ]);
    for &clients in &options.clients {
        let rate = |mode| points.iter().find(|point| point.mode == mode && point.clients == clients).map(|point| point.measured.uploads_per_second());
        let (Some(floor), Some(queue_only), Some(offloaded)) = (rate(Mode::StoreOnly), rate(Mode::QueueOnly), rate(Mode::Offloaded)) else { continue };
        table::row(&[
            clients.to_string(),
            format!("{floor:.1}"),
            format!("{queue_only:.1}"),
            format!("{:.2}", queue_only / floor),
            format!("{offloaded:.1}"),
            format!("{:.2}", offloaded / floor),
        ]);
    }
    let current = std::env::current_dir().unwrap_or_default();
    table::note(&format!("Chart of the p95 latencies: `{}`.", options.chart.strip_prefix(&current).unwrap_or(&options.chart).display()));
}

/// Every answer that was not 2xx, and every failed probe, said below the table.
fn print_failures(points: &[Point]) {
    let mut lines = Vec::new();
    for point in points {
        for (answer, count) in point.measured.other_answers() {
            lines.push(format!("{} with {} clients: {count} × {answer}", point.mode.label(), point.clients));
        }
        if !point.measured.probe_failures.is_empty() {
            let first = &point.measured.probe_failures[0];
            lines.push(format!(
                "{} with {} clients: {} `/healthz` reads failed, the first: {first}",
                point.mode.label(),
                point.clients,
                point.measured.probe_failures.len()
            ));
        }
    }
    table::load_failures(&lines);
}

fn write_chart(path: &Path, image: &str, points: &[Point]) -> anyhow::Result<()> {
    let series = |value: &dyn Fn(&Point) -> Option<Duration>| -> Vec<Series> {
        Mode::ALL
            .iter()
            .map(|&mode| Series {
                label: mode.label().into(),
                points: points
                    .iter()
                    .filter(|point| point.mode == mode)
                    .filter_map(|point| value(point).map(|p95| (point.clients as f64, p95.as_secs_f64() * 1000.0)))
                    .collect(),
            })
            .collect()
    };
    let upload_p95 = |point: &Point| load::percentile(&point.measured.accepted().map(|upload| upload.latency).collect::<Vec<_>>(), 0.95);
    let probe_p95 = |point: &Point| load::percentile(&point.measured.probes, 0.95);
    let panels = [
        Panel {
            title: "Upload, p95".into(),
            x_label: "concurrent uploading clients".into(),
            y_label: "latency (ms, log scale)".into(),
            series: series(&upload_p95),
        },
        Panel {
            title: "GET /healthz meanwhile, p95".into(),
            x_label: "concurrent uploading clients".into(),
            y_label: "latency (ms, log scale)".into(),
            series: series(&probe_p95),
        },
    ];
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let svg = chart::svg(&format!("Uploads of a {image}: thumbnails offloaded, made inline, or none"), &panels);
    std::fs::write(path, svg).with_context(|| format!("cannot write the chart to {}", path.display()))
}
