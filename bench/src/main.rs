//! `scripts/bench` (`cargo run --release -p thumbq-bench`): the thumbnail
//! pipeline and the worker against libvips, on images made here, measured side
//! by side in one run so that the ratios hold whatever the machine. It prints
//! Markdown tables, ready for the README:
//!
//! - [`speed`]: one image's three thumbnails, ours against three
//!   `vipsthumbnail` processes and against libvips in-process, each on one core;
//! - [`quality`]: SSIM of both sides' thumbnails against a careful reference,
//!   a zone plate included to catch aliasing;
//! - [`memory`]: the peak and the steady resident size of a real worker process;
//! - [`scaling`]: a queue of mixed images through one lane, two lanes, two processes.
//!
//! Timings are printed, never asserted.

mod images;
mod libvips;
mod machine;
mod memory;
mod quality;
mod scaling;
mod speed;
mod ssim;
mod table;
mod worker;

use std::cell::LazyCell;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use crate::images::TestImage;
use crate::libvips::Libvips;
use crate::machine::CpuShare;

#[derive(Debug, Parser)]
#[command(about = "Measures thumbq's pipeline and worker against libvips and prints Markdown tables.")]
struct Options {
    /// The tables to measure, in this order.
    #[arg(long, value_delimiter = ',', default_value = "speed,quality,memory,scaling")]
    only: Vec<Table>,

    /// Timed runs per measurement in the speed table; it shows medians.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,

    /// Jobs in the queue of the scaling table.
    #[arg(long, default_value_t = 200)]
    scaling_jobs: usize,

    /// `bench/vips_reference.c`, compiled; default: `bench/vips-reference` in the target directory.
    #[arg(long, env = "THUMBQ_BENCH_VIPS_REFERENCE")]
    vips_reference: Option<PathBuf>,

    /// The worker binary; default: `thumbq-worker` beside this program.
    #[arg(long, env = "THUMBQ_BENCH_WORKER")]
    worker: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Table {
    Speed,
    Quality,
    Memory,
    Scaling,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let here = std::env::current_exe()?.parent().context("this program is in a directory")?.to_owned();
    let reference = options.vips_reference.unwrap_or_else(|| here.join("../bench/vips-reference"));
    let libvips = Libvips::find(&reference);
    let worker = options.worker.unwrap_or_else(|| here.join("thumbq-worker"));
    let workdir = tempfile::tempdir()?;

    let photo_12mp = LazyCell::new(|| TestImage::photo_jpeg("12 MP JPEG", 4000, 3000));
    let photo_24mp = LazyCell::new(|| TestImage::photo_jpeg("24 MP JPEG", 6000, 4000));
    let photo_png = LazyCell::new(|| TestImage::photo_png("2 MP PNG", 1732, 1155));
    let zone_plate = LazyCell::new(|| TestImage::zone_plate("zone plate, 16 MP grey JPEG", 4000));

    println!("## thumbq benchmark\n");
    println!(
        "On {}, {}; ours: `thumbq_worker::pipeline` and `target/release/thumbq-worker`.",
        machine::describe(),
        libvips.version.as_deref().unwrap_or("libvips not installed")
    );
    for table in options.only {
        let share = CpuShare::start();
        match table {
            Table::Speed => speed::run(&[&photo_12mp, &photo_24mp, &photo_png], &libvips, usize::from(options.runs), workdir.path())?,
            Table::Quality => quality::run(&[&photo_12mp, &photo_24mp, &photo_png, &zone_plate], libvips.in_process.as_ref(), workdir.path())?,
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
                memory::run(&worker, &photo_24mp, &small.iter().collect::<Vec<_>>())?;
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
        }
        share.note();
    }
    Ok(())
}
