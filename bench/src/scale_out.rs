//! Table 7 (`--only scale-out`, a few minutes, so not in the default list;
//! needs RabbitMQ): what sharing nothing costs. The same queue of uploads is
//! made into thumbnails by one and by two worker processes, in two deployments:
//!
//! - **one machine**: the data directory and the one RabbitMQ node, the default;
//! - **shared nothing**: an S3 bucket on a real S3 server (s3s-fs) and a
//!   three-node RabbitMQ cluster of the bench's own, each worker with an
//!   empty data directory of its own, as on a machine of its own.
//!
//! Each point (deployment × workers) gets a fresh web server and store: N
//! uploads by 4 clients while no worker runs, then the workers start and the
//! clock runs until the last thumbnail is written (the workers' timelines).
//! The deployments take turns at each worker count. It all runs on this one
//! machine: the shared-nothing rows say what the bucket and the cluster cost,
//! not what more machines would bring.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use thumbq_broker::admin::QueueReport;

use crate::images::TestImage;
use crate::load::{self, Measured};
use crate::rabbitmq::{self, Cluster};
use crate::ready::{self, Timings};
use crate::s3::S3Server;
use crate::servers::{Offloaded, Servers, Store};
use crate::table;

/// Concurrent uploading clients.
const CLIENTS: usize = 4;

/// Worker processes at each point, each with concurrency 1.
const WORKERS: [usize; 2] = [1, 2];

/// How long the queue may take to fill, and the workers to drain it.
const WAIT_WITHIN: Duration = Duration::from_secs(300);

/// What the table is run with.
pub struct Options<'a> {
    /// Uploads at each point.
    pub images: usize,
    pub web: &'a Path,
    pub worker: &'a Path,
    /// The one machine's RabbitMQ node.
    pub amqp_url: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deployment {
    OneMachine,
    SharedNothing,
}

impl Deployment {
    const ALL: [Deployment; 2] = [Deployment::OneMachine, Deployment::SharedNothing];

    fn label(self) -> &'static str {
        match self {
            Deployment::OneMachine => "one machine",
            Deployment::SharedNothing => "shared nothing",
        }
    }
}

/// What the shared-nothing deployment runs on; both stopped when dropped.
struct SharedNothing {
    s3: S3Server,
    cluster: Cluster,
}

/// One deployment with one number of workers.
struct Point {
    deployment: Deployment,
    workers: usize,
    uploads: Measured,
    timings: Timings,
    /// From the workers' start to the last thumbnail written.
    made_in: Duration,
}

pub fn run(options: &Options, image: &TestImage) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::process::ensure_built(options.web, "thumbq-web")?;
    crate::process::ensure_built(options.worker, "thumbq-worker")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(rabbitmq::check_reachable(options.amqp_url))?;
    eprintln!("scale-out: starting an S3 server and a three-node RabbitMQ cluster…");
    let shared_nothing = SharedNothing { s3: S3Server::start()?, cluster: Cluster::start()? };
    let queue = rabbitmq::unique_queue();
    let measured = runtime.block_on(measure(options, &shared_nothing, &queue, &Bytes::from(image.bytes.clone())));
    let confirms = runtime.block_on(measure_confirms(options.amqp_url, &shared_nothing.cluster.urls));
    // The cluster's queue goes with the cluster; the one node's is deleted, also after a failure.
    drop(shared_nothing);
    let deleted = runtime.block_on(rabbitmq::delete_topology(options.amqp_url, &queue));
    let points = measured?;
    deleted?;
    let confirms = confirms?;
    print_tables(options, image, &points, &confirms, started.elapsed());
    Ok(())
}

/// Jobs in flight at once in the confirm-rate table: one upload at a time, and many.
const IN_FLIGHT: [usize; 2] = [1, 64];

/// Confirmed jobs per second on the one node, then on the cluster, at each of [`IN_FLIGHT`].
async fn measure_confirms(node: &str, cluster: &str) -> anyhow::Result<Vec<(Deployment, usize, f64)>> {
    let mut rates = Vec::new();
    for (deployment, urls) in [(Deployment::OneMachine, node), (Deployment::SharedNothing, cluster)] {
        for in_flight in IN_FLIGHT {
            eprintln!("scale-out: confirms on {} with {in_flight} in flight…", deployment.label());
            rates.push((deployment, in_flight, crate::confirms::rate(urls, in_flight).await?));
        }
    }
    Ok(rates)
}

fn print_confirms_table(rates: &[(Deployment, usize, f64)]) {
    table::heading(
        "Scale-out: confirms",
        &format!(
            "{} resize jobs published with `thumbq_broker::Publisher`, as the web server publishes them (persistent, mandatory, each awaited until RabbitMQ confirms it), to a quorum queue of the bench's own: one at a time, and {} in flight.",
            crate::confirms::JOBS,
            IN_FLIGHT[1]
        ),
    );
    table::header(&["broker", "in flight", "confirmed jobs/s"]);
    for (deployment, in_flight, per_second) in rates {
        let broker = match deployment {
            Deployment::OneMachine => "one node",
            Deployment::SharedNothing => "three-node cluster",
        };
        table::row(&[broker.into(), in_flight.to_string(), format!("{per_second:.0}")]);
    }
}

async fn measure(options: &Options<'_>, shared_nothing: &SharedNothing, queue: &str, image: &Bytes) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for workers in WORKERS {
        for deployment in Deployment::ALL {
            eprintln!("scale-out: {} with {workers} workers, {} uploads…", deployment.label(), options.images);
            let point = measure_point(options, shared_nothing, deployment, workers, queue, image).await;
            points.push(point.with_context(|| format!("{} with {workers} workers", deployment.label()))?);
        }
    }
    Ok(points)
}

async fn measure_point(
    options: &Options<'_>,
    shared_nothing: &SharedNothing,
    deployment: Deployment,
    workers: usize,
    queue: &str,
    image: &Bytes,
) -> anyhow::Result<Point> {
    let mut bucket = shared_nothing.s3.fresh_store();
    // Sharing nothing but the bucket, the broker and PostgreSQL: a database of this point's own, dropped with it.
    let database = thumbq_repo::testing::TestDatabase::create().await;
    bucket.push(("THUMBQ_DATABASE_URL", database.url().to_owned()));
    let (amqp_url, store) = match deployment {
        Deployment::OneMachine => (options.amqp_url, Store::DataDir),
        Deployment::SharedNothing => (shared_nothing.cluster.urls.as_str(), Store::Bucket(&bucket)),
    };
    let setup = Offloaded { web: options.web, worker: options.worker, amqp_url, queue, workers, worker_nice: 0, store };
    let mut servers = Servers::web(&setup).await?;
    let uploads = upload_and_queue(&mut servers, &setup, options.images, image).await?;
    let workers_started_unix_ms = thumbq_contract::timeline::now_ms();
    servers.start_workers(&setup)?;
    let address = servers.address().to_owned();
    let timings = ready::wait_for_thumbnails(&address, &uploads.uploads, WAIT_WITHIN, || servers.check_running()).await?;
    servers.stop();
    let made_in = Duration::from_millis(timings.last_written_unix_ms.saturating_sub(workers_started_unix_ms));
    Ok(Point { deployment, workers, uploads, timings, made_in })
}

/// Uploads `count` images while no worker runs, and waits until the queue holds all their jobs.
async fn upload_and_queue(servers: &mut Servers, setup: &Offloaded<'_>, count: usize, image: &Bytes) -> anyhow::Result<Measured> {
    let uploads = load::run_count(servers.address(), CLIENTS, count, image.clone()).await?;
    let accepted = uploads.accepted().count();
    anyhow::ensure!(accepted == count, "{accepted} of {count} uploads were accepted: {:?}", uploads.other_answers());
    let queued = |report: &QueueReport| report.waiting as usize >= count;
    rabbitmq::wait_for_queue(setup.amqp_url, setup.queue, WAIT_WITHIN, || servers.check_running(), queued)
        .await
        .context("waiting for every job in the queue")?;
    Ok(uploads)
}

fn print_tables(options: &Options, image: &TestImage, points: &[Point], confirms: &[(Deployment, usize, f64)], took: Duration) {
    print_images_table(options, image, points);
    print_uploads_table(points);
    print_confirms_table(confirms);
    let outbox: usize = points.iter().map(|point| point.timings.outbox).sum();
    if outbox > 0 {
        table::note(&format!("{outbox} jobs were kept in the outbox rather than confirmed in time: their uploads count no confirm."));
    }
    table::note(&format!("Measured in {:.0} s by `scripts/bench --only scale-out --scale-out-images {}`.", took.as_secs_f64(), options.images));
}

fn print_images_table(options: &Options, image: &TestImage, points: &[Point]) {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    table::heading(
        "Scale-out",
        &[
            format!(
                "{} uploads of a {} of {:.1} MB, queued while no worker runs; then 1 or 2 `thumbq-worker` processes (concurrency 1 each) start, and images/s is {} ÷ the time from their start to the last thumbnail written (the workers' timelines), process start-up included.",
                options.images,
                image.name,
                image.bytes.len() as f64 / 1e6,
                options.images
            ),
            "**one machine**: the data directory and one RabbitMQ node, the default. **shared nothing**: an S3 bucket (s3s-fs) and a three-node RabbitMQ cluster, each worker with an empty data directory of its own.".into(),
            format!("Everything, the S3 server and the three nodes included, shares this machine's {cores} cores: the shared-nothing rows show what the bucket and the cluster cost, not what more machines would bring."),
        ]
        .join("\n"),
    );
    table::header(&["deployment", "workers", "images/s", "seconds", "÷ one machine, same workers"]);
    for deployment in Deployment::ALL {
        for point in points.iter().filter(|point| point.deployment == deployment) {
            let rate = images_per_second(point);
            let baseline = points.iter().find(|other| other.deployment == Deployment::OneMachine && other.workers == point.workers).map(images_per_second);
            table::row(&[
                deployment.label().into(),
                point.workers.to_string(),
                format!("{rate:.1}"),
                format!("{:.2}", point.made_in.as_secs_f64()),
                baseline.map_or(table::MISSING.into(), |baseline| format!("{:.2}", rate / baseline)),
            ]);
        }
    }
}

fn images_per_second(point: &Point) -> f64 {
    point.uploads.uploads.len() as f64 / point.made_in.as_secs_f64()
}

/// One deployment's uploads, over all its points.
struct UploadSide {
    count: usize,
    per_second: f64,
    p50: Option<Duration>,
    store_p50: Option<Duration>,
    confirm_p50: Option<Duration>,
}

impl UploadSide {
    fn of(points: &[Point], deployment: Deployment) -> Self {
        let points: Vec<&Point> = points.iter().filter(|point| point.deployment == deployment).collect();
        let latencies: Vec<Duration> = points.iter().flat_map(|point| point.uploads.accepted().map(|upload| upload.latency)).collect();
        let elapsed: Duration = points.iter().map(|point| point.uploads.elapsed).sum();
        let all = |part: fn(&Timings) -> &Vec<Duration>| points.iter().flat_map(|point| part(&point.timings).iter().copied()).collect::<Vec<_>>();
        Self {
            count: latencies.len(),
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: load::percentile(&latencies, 0.50),
            store_p50: load::percentile(&all(|timings| &timings.store), 0.50),
            confirm_p50: load::percentile(&all(|timings| &timings.confirm), 0.50),
        }
    }
}

fn print_uploads_table(points: &[Point]) {
    table::heading(
        "Scale-out: uploads",
        &format!(
            "The same uploads, by {CLIENTS} concurrent clients, all points of a deployment together: uploads/s from the first request to the last answer; upload p50 as the client saw it; store p50 from the upload received to its original stored (the local file or the bucket's PUT), confirm p50 from then to RabbitMQ's confirm of its job (one node, or a quorum of three), both from each image's timeline. Ratios: shared nothing ÷ one machine."
        ),
    );
    table::header(&[
        "deployment",
        "uploads",
        "uploads/s",
        "upload p50 (ms)",
        "store p50 (ms)",
        "confirm p50 (ms)",
        "uploads/s ÷ one machine",
        "p50 ÷ one machine",
    ]);
    let local = UploadSide::of(points, Deployment::OneMachine);
    for deployment in Deployment::ALL {
        let side = UploadSide::of(points, deployment);
        let p50_ratio = match (side.p50, local.p50) {
            (Some(p50), Some(local)) => format!("{:.2}", p50.as_secs_f64() / local.as_secs_f64()),
            _ => table::MISSING.into(),
        };
        table::row(&[
            deployment.label().into(),
            side.count.to_string(),
            format!("{:.1}", side.per_second),
            table::ms_cell(side.p50),
            table::ms_cell(side.store_p50),
            table::ms_cell(side.confirm_p50),
            format!("{:.2}", side.per_second / local.per_second),
            p50_ratio,
        ]);
    }
}
