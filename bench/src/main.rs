//! `scripts/bench` (`cargo run --release -p thumbq-bench`): the thumbnail
//! pipeline and the worker against libvips, on images made here, measured side
//! by side in one run so that the ratios hold whatever the machine. It prints
//! Markdown tables, ready for the README:
//!
//! - [`speed`]: one image's three thumbnails, ours against three
//!   `vipsthumbnail` processes, libvips in-process and [`sharp`] (with and
//!   without mozjpeg), each on one core; then [`worker_cpu`]: the whole worker
//!   process's CPU per job beside the pipeline's time;
//! - [`quality`]: SSIM of every side's thumbnails against a careful reference,
//!   a zone plate included to catch aliasing;
//! - [`phone`]: HEIC, AVIF and JPEG XL files, ours (libheif in a decoder
//!   process per file, jxl-oxide) against libvips in-process, with the decode's
//!   share and the decoder process's peak memory;
//! - [`webp`]: WebP against the worker's JPEG at equal SSIM, and libwebp's
//!   cost per method: the table that chose the worker's WebP settings;
//! - [`memory`]: the peak and the steady resident size of a real worker process;
//! - [`scaling`]: a queue of mixed images through one lane, two lanes, two processes;
//! - [`offload`] (`--only offload`; minutes long, so not run by default; needs
//!   RabbitMQ): the same 12 MP uploads under 1 to 32 concurrent clients, to
//!   `thumbq-web` with its workers, to a server that makes the thumbnails
//!   inside the request, and to one that only stores them; upload and cheap-page
//!   latencies, time to thumbnails, and a chart (`--chart`, `docs/offload.svg`);
//! - [`first_thumbnail`] (`--only first-thumbnail`; needs RabbitMQ and
//!   Chromium): a 12 MP JPEG chosen on the home page in headless Chromium, to
//!   its small thumbnail painted, with each step of its timeline on the way;
//! - [`scale_out`] (`--only scale-out`; needs RabbitMQ, starts an S3 server
//!   and a RabbitMQ cluster of its own): images/s with one and two workers on
//!   one machine's data directory and broker, and on a bucket and a
//!   three-node cluster, with what each upload costs on both;
//! - [`uploads`] (`--only uploads`; minutes long; needs RabbitMQ and strace):
//!   uploads/s of the web tier alone (no workers) on RabbitMQ and the embedded
//!   queue, `thumbq-web` as it is against an earlier commit's (`scripts/bench`
//!   builds 738b44c's) and the store-only server, and the fsyncs per upload;
//! - [`home_page`] (`--only home-page`; needs RabbitMQ and PostgreSQL, starts
//!   an S3 server): a home page of 24 done images on a bucket and PostgreSQL,
//!   p50 and p99, asked again with the bucket's server stopped.
//!
//! Timings are printed, never asserted.

mod browser;
mod chart;
mod confirms;
mod first_thumbnail;
mod home_page;
mod http;
mod images;
mod libvips;
mod load;
mod machine;
mod memory;
mod offload;
mod phone;
mod process;
mod quality;
mod rabbitmq;
mod ready;
mod reference;
mod s3;
mod scale_out;
mod scaling;
mod servers;
mod sharp;
mod speed;
mod ssim;
mod syncs;
mod table;
mod uploads;
mod webp;
mod worker;
mod worker_cpu;

use std::cell::LazyCell;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;

use crate::images::TestImage;
use crate::libvips::Libvips;
use crate::machine::CpuShare;
use crate::sharp::Sharp;

#[derive(Debug, Parser)]
#[command(about = "Measures thumbq's pipeline and worker against libvips and prints Markdown tables.")]
struct Options {
    /// The tables to measure, in this order; `offload` (minutes long, needs RabbitMQ),
    /// `first-thumbnail` (needs RabbitMQ and Chromium), `scale-out` (needs RabbitMQ)
    /// `uploads` (minutes long, needs RabbitMQ and strace) and `home-page` (needs RabbitMQ and PostgreSQL) only when named.
    #[arg(long, value_delimiter = ',', default_value = "speed,quality,phone,webp,memory,scaling")]
    only: Vec<Table>,

    /// Timed runs per measurement in the speed and first-thumbnail tables; they show medians.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,

    /// Jobs in the queue of the scaling table.
    #[arg(long, default_value_t = 200)]
    scaling_jobs: usize,

    /// `bench/vips_reference.c`, compiled; default: `bench/vips-reference` in the target directory.
    #[arg(long, env = "THUMBQ_BENCH_VIPS_REFERENCE")]
    vips_reference: Option<PathBuf>,

    /// `bench/sharp/reference.mjs`, with sharp installed beside it (`npm ci`); default: that file in the workspace.
    #[arg(long, env = "THUMBQ_BENCH_SHARP_REFERENCE")]
    sharp_reference: Option<PathBuf>,

    /// The worker binary; default: `thumbq-worker` beside this program.
    #[arg(long, env = "THUMBQ_BENCH_WORKER")]
    worker: Option<PathBuf>,

    /// The web server binary, for the offload table; default: `thumbq-web` beside this program.
    #[arg(long, env = "THUMBQ_BENCH_WEB")]
    web: Option<PathBuf>,

    /// The offload table's comparison server; default: `thumbq-bench-inline` beside this program.
    #[arg(long, env = "THUMBQ_BENCH_INLINE")]
    inline_server: Option<PathBuf>,

    /// Concurrent uploading clients at each point of the offload table.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32", value_parser = clap::value_parser!(u16).range(1..=1000))]
    offload_clients: Vec<u16>,

    /// Seconds of load at each point of the offload table.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    offload_seconds: u64,

    /// The offloaded workers' nice value: on one machine they share the cores
    /// with the web server, and a lower priority for them is what offloading allows.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(0..=19))]
    worker_nice: i32,

    /// Uploads at each point of the scale-out table.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u16).range(1..))]
    scale_out_images: u16,

    /// Concurrent uploading clients at each point of the uploads table.
    #[arg(long, value_delimiter = ',', default_value = "1,4", value_parser = clap::value_parser!(u16).range(1..=1000))]
    uploads_clients: Vec<u16>,

    /// Seconds of load in each run of the uploads table.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    uploads_seconds: u64,

    /// Home pages asked in each row of the home-page table.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..))]
    home_page_requests: u16,

    /// Runs of each server at each point of the uploads table, the servers taking turns.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    uploads_repetitions: u16,

    /// `thumbq-web` built from an earlier commit, for the uploads table (scripts/bench builds 738b44c's).
    #[arg(long, env = "THUMBQ_BENCH_BASELINE_WEB")]
    baseline_web: Option<PathBuf>,

    /// The commit `--baseline-web` was built from, as the uploads table names it.
    #[arg(long, env = "THUMBQ_BENCH_BASELINE_NAME", default_value = "738b44c")]
    baseline_name: String,

    /// RabbitMQ for the offload, first-thumbnail, scale-out and uploads tables.
    #[arg(long, env = "THUMBQ_BENCH_AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,

    /// Where the offload table's chart goes; default: `docs/offload.svg` in the workspace.
    #[arg(long)]
    chart: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Table {
    Speed,
    Quality,
    Memory,
    Scaling,
    Offload,
    FirstThumbnail,
    ScaleOut,
    Uploads,
    HomePage,
    Webp,
    Phone,
}

/// Said of the sharp found before the speed and quality tables, which alone use it.
const SHARP_FOUND: &str = "sharp is found before the tables that compare with it";

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let here = std::env::current_exe()?.parent().context("this program is in a directory")?.to_owned();
    let reference = options.vips_reference.unwrap_or_else(|| here.join("../bench/vips-reference"));
    let libvips = Libvips::find(&reference);
    let sharp_wanted = options.only.iter().any(|table| matches!(table, Table::Speed | Table::Quality));
    let sharp_reference = options.sharp_reference.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("sharp/reference.mjs"));
    // Found once for both tables that compare with it; the bench stops without it.
    let sharp = if sharp_wanted {
        Some(Sharp::find(&sharp_reference).context("the speed and quality tables compare with sharp (scripts/bench installs it)")?)
    } else {
        None
    };
    let worker = options.worker.unwrap_or_else(|| here.join("thumbq-worker"));
    let offload = offload::Options {
        clients: options.offload_clients.iter().map(|&clients| usize::from(clients)).collect(),
        seconds: options.offload_seconds,
        worker_nice: options.worker_nice,
        web: options.web.unwrap_or_else(|| here.join("thumbq-web")),
        worker: worker.clone(),
        inline_server: options.inline_server.unwrap_or_else(|| here.join("thumbq-bench-inline")),
        amqp_url: options.amqp_url,
        chart: options.chart.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).join("docs/offload.svg")),
    };
    let uploads = uploads::Options {
        clients: options.uploads_clients.iter().map(|&clients| usize::from(clients)).collect(),
        seconds: options.uploads_seconds,
        repetitions: usize::from(options.uploads_repetitions),
        web: offload.web.clone(),
        baseline_web: options.baseline_web,
        baseline_name: options.baseline_name,
        inline_server: offload.inline_server.clone(),
        amqp_url: offload.amqp_url.clone(),
    };
    let workdir = tempfile::tempdir()?;

    let photo_12mp = LazyCell::new(|| TestImage::photo_jpeg("12 MP JPEG", 4000, 3000));
    let photo_24mp = LazyCell::new(|| TestImage::photo_jpeg("24 MP JPEG", 6000, 4000));
    let photo_png = LazyCell::new(|| TestImage::photo_png("2 MP PNG", 1732, 1155));
    let zone_plate = LazyCell::new(|| TestImage::zone_plate("zone plate, 16 MP grey JPEG", 4000));

    println!("## thumbq benchmark\n");
    println!(
        "On {}, {}{}; ours: `thumbq_worker::pipeline` and `target/release/thumbq-worker`.",
        machine::describe(),
        libvips.version.as_deref().unwrap_or("libvips not installed"),
        sharp.as_ref().map_or(String::new(), |sharp| format!(", {}", sharp.version))
    );
    for table in options.only {
        let share = CpuShare::start();
        match table {
            Table::Speed => {
                let ours = speed::run(
                    &[&photo_12mp, &photo_24mp, &photo_png],
                    &libvips,
                    sharp.as_ref().expect(SHARP_FOUND),
                    usize::from(options.runs),
                    workdir.path(),
                )?;
                if worker.is_file() {
                    worker_cpu::run(&worker, &photo_12mp, ours[0])?;
                } else {
                    eprintln!(
                        "The worker binary is not at {} (cargo build --release -p thumbq-worker; scripts/bench builds it): no worker process table.",
                        worker.display()
                    );
                }
            }
            Table::Quality => {
                quality::run(
                    &[&photo_12mp, &photo_24mp, &photo_png, &zone_plate],
                    libvips.in_process.as_ref(),
                    sharp.as_ref().expect(SHARP_FOUND),
                    workdir.path(),
                )?;
            }
            Table::Memory | Table::Scaling if !worker.is_file() => {
                eprintln!(
                    "The worker binary is not at {} (cargo build --release -p thumbq-worker; scripts/bench builds it): no {table:?} table.",
                    worker.display()
                );
                continue;
            }
            Table::Memory => {
                let small = [
                    TestImage::photo_jpeg("0.3 MP JPEG", 640, 480),
                    TestImage::photo_jpeg("0.8 MP JPEG", 1024, 768),
                    TestImage::photo_png("0.5 MP PNG", 800, 600),
                    TestImage::transparent_png("0.1 MP transparent PNG", 400, 300),
                ];
                let heic = phone::heic_12mp()?;
                memory::run(&worker, &[&photo_24mp, &heic], &small.iter().collect::<Vec<_>>())?;
            }
            Table::Scaling => {
                let [photo_6mp, photo_2mp, photo_small, transparent] = [
                    TestImage::photo_jpeg("6 MP JPEG", 3000, 2000),
                    TestImage::photo_jpeg("2 MP JPEG", 1600, 1200),
                    TestImage::photo_jpeg("0.3 MP JPEG", 640, 480),
                    TestImage::transparent_png("0.5 MP transparent PNG", 800, 600),
                ];
                let mix = [&*photo_12mp, &photo_6mp, &photo_2mp, &photo_small, &*photo_png, &transparent];
                scaling::run(&worker, &mix, options.scaling_jobs)?;
            }
            Table::Offload => offload::run(&offload, &photo_12mp)?,
            Table::FirstThumbnail => {
                let first = first_thumbnail::Options { runs: usize::from(options.runs), web: &offload.web, worker: &worker, amqp_url: &offload.amqp_url };
                first_thumbnail::run(&first, &photo_12mp)?;
            }
            Table::Phone => {
                let images = phone::images(workdir.path())?;
                phone::run(
                    &images,
                    libvips.in_process.as_ref(),
                    worker.parent().map(|dir| dir.join("thumbq-heif-decode")),
                    usize::from(options.runs),
                    workdir.path(),
                )?;
            }
            Table::Webp => {
                let mut photos: Vec<webp::Photo> =
                    [&*photo_12mp].into_iter().map(|image| webp::Photo { name: image.name.clone(), bytes: image.bytes.clone(), real: false }).collect();
                photos.extend(webp::corpus_photos());
                webp::run(&photos, usize::from(options.runs))?;
            }
            Table::ScaleOut => {
                let scale_out =
                    scale_out::Options { images: usize::from(options.scale_out_images), web: &offload.web, worker: &worker, amqp_url: &offload.amqp_url };
                scale_out::run(&scale_out, &TestImage::photo_jpeg("2 MP JPEG", 1600, 1200))?;
            }
            // About 0.2 MB: a small photo's size, so that the table is about the request path, not the disk.
            Table::Uploads => uploads::run(&uploads, &TestImage::noise_png("320×208 PNG of noise", 320, 208))?,
            Table::HomePage => home_page::run(&home_page::Options {
                web: &offload.web,
                worker: &worker,
                amqp_url: &offload.amqp_url,
                requests: usize::from(options.home_page_requests),
            })?,
        }
        share.note();
    }
    Ok(())
}
