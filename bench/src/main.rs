//! `cargo run --release -p thumbq-bench`: the thumbnail pipeline against
//! libvips' `vipsthumbnail`, on images it makes itself, in one run, so the
//! ratios hold whatever the machine. Both sides get one core: our pipeline
//! runs one job on one thread; vips runs with `VIPS_CONCURRENCY=1`.
//!
//! The reference is what an ops team would script: three `vipsthumbnail`
//! processes, one per size. Timings are medians of several runs.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use thumbq_contract::{MediaLimits, Sizes, SourceFormat, ThumbSize};
use thumbq_worker::pipeline::{make_thumbnails, make_thumbnails_timed};

const RUNS: usize = 7;

fn main() {
    let sizes = Sizes::default();
    let limits = MediaLimits::default();
    let workdir = tempfile::tempdir().expect("a temporary directory");
    let vips = Command::new("vipsthumbnail").arg("--version").output().is_ok();
    if !vips {
        eprintln!("vipsthumbnail is missing (Debian: apt-get install -y libvips-tools; scripts/bench installs it): showing our numbers alone.");
    }

    println!("| image | ours (ms) | decode / resize / encode (ms) | vipsthumbnail ×3 (ms) | speed-up |");
    println!("|---|---:|---:|---:|---:|");
    for (name, bytes, format) in [
        ("12 MP JPEG", photo_like(4000, 3000, ImageFormat::Jpeg), SourceFormat::Jpeg),
        ("24 MP JPEG", photo_like(6000, 4000, ImageFormat::Jpeg), SourceFormat::Jpeg),
        ("2 MP PNG", photo_like(1732, 1155, ImageFormat::Png), SourceFormat::Png),
    ] {
        let input = workdir.path().join(format!("input.{}", if format == SourceFormat::Png { "png" } else { "jpg" }));
        std::fs::write(&input, &bytes).expect("the input is written");

        make_thumbnails(&bytes, format, &sizes, &limits).expect("a warm-up run");
        let mut stages = Vec::new();
        let ours = median(RUNS, || {
            let started = Instant::now();
            let (_, times) = make_thumbnails_timed(&bytes, format, &sizes, &limits).expect("thumbnails");
            stages.push(times);
            started.elapsed()
        });
        stages.sort_by_key(|times| times.decode + times.resize + times.encode);
        let typical = stages[stages.len() / 2];

        let reference = vips.then(|| median(RUNS, || vipsthumbnail_three_sizes(&input, workdir.path(), &sizes)));
        println!(
            "| {name} | {:.0} | {:.0} / {:.0} / {:.0} | {} | {} |",
            ms(ours),
            ms(typical.decode),
            ms(typical.resize),
            ms(typical.encode),
            reference.map_or("–".into(), |reference| format!("{:.0}", ms(reference))),
            reference.map_or("–".into(), |reference| format!("{:.2}×", ms(reference) / ms(ours))),
        );
    }
}

/// Three `vipsthumbnail` processes, one per size, as a script would run them.
fn vipsthumbnail_three_sizes(input: &Path, workdir: &Path, sizes: &Sizes) -> Duration {
    let started = Instant::now();
    for size in ThumbSize::ALL {
        let side = sizes.max_side(size);
        let output = workdir.join(format!("vips-{size}.jpg[Q=85,strip]"));
        let status = Command::new("vipsthumbnail")
            .env("VIPS_CONCURRENCY", "1")
            .arg(input)
            .arg("--size")
            .arg(format!("{side}x{side}"))
            .arg("-o")
            .arg(&output)
            .status()
            .expect("vipsthumbnail runs");
        assert!(status.success(), "vipsthumbnail failed");
    }
    started.elapsed()
}

fn median(runs: usize, mut run: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| run()).collect();
    times.sort();
    times[runs / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A photo-like test image: smooth light, textured areas and sharp edges.
fn photo_like(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let sky = 255.0 * (1.0 - fy);
        let texture = ((x as f32 * 0.37).sin() * (y as f32 * 0.23).cos() * 40.0) + ((x ^ y) % 17) as f32;
        let edge = if (fx - 0.5).abs() < 0.1 && fy > 0.4 { -120.0 } else { 0.0 };
        let channel = |base: f32| (base + texture + edge).clamp(0.0, 255.0) as u8;
        Rgb([channel(sky * 0.6 + 60.0 * fx), channel(120.0 + 80.0 * fy), channel(sky)])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image).write_to(&mut out, format).expect("the test image encodes");
    out.into_inner()
}
