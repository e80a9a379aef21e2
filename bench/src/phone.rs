//! The phone formats' table: HEIC, AVIF and JPEG XL thumbnails, ours against
//! libvips in-process (which reads HEIC and AVIF through the same libheif),
//! with the share of the decode, and the HEIF decoder process's own memory.
//!
//! The 12 MP AVIF is made here from the 12 MP HEIC, with libheif's own tools
//! (`heif-dec`, `heif-enc` with its AV1 encoder), which `scripts/bench` installs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use thumbq_contract::{MediaLimits, Sizes, SourceFormat};
use thumbq_worker::pipeline::{heif, make_thumbnails_timed};

use crate::images::TestImage;
use crate::machine::own_cpu_time;
use crate::reference::SelfTimed;
use crate::table::{self, MISSING, median, ms, speed_up};

fn fixture(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// A phone photo as an iPhone saves it: pillow-heif's pug.heic, a grid of HEVC tiles.
pub fn heic_12mp() -> anyhow::Result<TestImage> {
    Ok(TestImage::file("12 MP HEIC (pillow-heif pug.heic, 4032×3024)", fixture("pillow-heif/pug.heic")?, SourceFormat::Heic))
}

/// The files of the table, by what they are; the 12 MP AVIF when libheif's tools can make it.
pub fn images(workdir: &Path) -> anyhow::Result<Vec<TestImage>> {
    let mut images = vec![heic_12mp()?];
    match avif_from(&workdir.join("pug.heic"), &images[0].bytes, workdir) {
        Ok(avif) => images.push(TestImage::file("12 MP AVIF (the same photo, heif-enc -q 60)", avif, SourceFormat::Avif)),
        Err(error) => eprintln!("No 12 MP AVIF ({error:#}): scripts/bench installs libheif-examples and libheif-plugin-aomenc."),
    }
    images.push(TestImage::file("5 MP HEIC (pillow-heif xiaomi.heic)", fixture("pillow-heif/xiaomi.heic")?, SourceFormat::Heic));
    images.push(TestImage::file("0.8 MP AVIF grid (libavif sofa_grid1x5_420.avif)", fixture("libavif/sofa_grid1x5_420.avif")?, SourceFormat::Avif));
    images.push(TestImage::file("2 MP JPEG XL (landscape_6_from_jpeg.jxl)", fixture("jxl/landscape_6_from_jpeg.jxl")?, SourceFormat::Jxl));
    Ok(images)
}

fn avif_from(heic: &Path, bytes: &[u8], workdir: &Path) -> anyhow::Result<Vec<u8>> {
    let (png, avif) = (workdir.join("pug.png"), workdir.join("pug.avif"));
    std::fs::write(heic, bytes)?;
    let run = |command: &mut Command| -> anyhow::Result<()> {
        let output = command.output().with_context(|| format!("{command:?} does not start"))?;
        anyhow::ensure!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr).trim());
        Ok(())
    };
    run(Command::new("heif-dec").arg(heic).arg(&png))?;
    run(Command::new("heif-enc").args(["--avif", "-q", "60", "-o"]).arg(&avif).arg(&png))?;
    Ok(std::fs::read(avif)?)
}

pub fn run(images: &[TestImage], libvips: Option<&SelfTimed>, decoder: Option<PathBuf>, runs: usize, workdir: &Path) -> anyhow::Result<()> {
    let (sizes, limits) = (Sizes::default(), MediaLimits::default());
    table::heading(
        "Phone formats",
        &format!(
            "Median of {runs} runs of the three JPEG thumbnails of one file (ours: the worker's pipeline, HEIC and AVIF decoded in the `thumbq-heif-decode` process it starts per file, told to use one thread; libvips 8.14 in-process, through the same libheif, which decodes a grid's tiles on every core whatever `VIPS_CONCURRENCY` says). \
             CPU is the user and system time per file, decoder processes included; the speed-up is libvips's ÷ ours, in CPU and in wall-clock time."
        ),
    );
    table::header(&["file", "ours (ms)", "of it decoding (ms)", "ours CPU (ms)", "libvips (ms)", "libvips CPU (ms)", "speed-up CPU", "speed-up time"]);
    for image in images {
        make_thumbnails_timed(image.bytes.as_slice(), image.format, &sizes, &limits)?;
        let mut times = Vec::with_capacity(runs);
        let cpu = own_cpu_time();
        for _ in 0..runs {
            let started = Instant::now();
            let (_, stages) = make_thumbnails_timed(image.bytes.as_slice(), image.format, &sizes, &limits)?;
            times.push((started.elapsed(), stages.decode));
        }
        let our_cpu = (own_cpu_time() - cpu) / runs as u32;
        times.sort();
        let (ours, decode) = times[runs / 2];
        let theirs = libvips.and_then(|libvips| {
            let input = image.write_into(workdir).ok()?;
            let cpu = own_cpu_time();
            match libvips.runs(&input, runs, &sizes, None) {
                // The program decodes once more, untimed, to warm up.
                Ok(times) => Some((median(times), (own_cpu_time() - cpu) / (runs as u32 + 1))),
                Err(error) => {
                    eprintln!("libvips on {}: {error:#}", image.name);
                    None
                }
            }
        });
        table::row(&[
            image.name.clone(),
            format!("{:.0}", ms(ours)),
            format!("{:.0} ({:.0} %)", ms(decode), 100.0 * decode.as_secs_f64() / ours.as_secs_f64()),
            format!("{:.0}", ms(our_cpu)),
            theirs.map_or(MISSING.into(), |(time, _)| format!("{:.0}", ms(time))),
            theirs.map_or(MISSING.into(), |(_, cpu)| format!("{:.0}", ms(cpu))),
            theirs.map_or(MISSING.into(), |(_, cpu)| speed_up(cpu, our_cpu)),
            theirs.map_or(MISSING.into(), |(time, _)| speed_up(time, ours)),
        ]);
    }
    if let Some(decoder) = decoder.filter(|decoder| decoder.is_file()) {
        let twelve = &images[0];
        let (peak_kib, took) = decoder_peak(&decoder, &twelve.bytes, &limits)?;
        let refused = fixture("pillow-heif/200MP.heic")?;
        let (refused_kib, refused_took) = decoder_peak(&decoder, &refused, &limits)?;
        table::note(&format!(
            "The decoder process's peak resident memory (GNU time): {:.0} MiB for the {} ({:.0} ms), and {:.1} MiB for pillow-heif's 200 MP file (2.4 MB), refused from its `ispe` before any pixel is decoded ({:.0} ms).",
            peak_kib as f64 / 1024.0,
            twelve.name,
            ms(took),
            refused_kib as f64 / 1024.0,
            ms(refused_took),
        ));
    }
    Ok(())
}

/// Runs the decoder on `bytes` under GNU time, which reads its peak RSS, in KiB, when it has ended.
/// (`getrusage` here would count this process's memory too: a child's peak includes what it had before its exec.)
fn decoder_peak(decoder: &Path, bytes: &[u8], limits: &MediaLimits) -> anyhow::Result<(u64, std::time::Duration)> {
    use std::io::Write;
    let started = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(decoder)
        .args(heif::child_limits(limits).to_args())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("/usr/bin/time does not start (Debian: apt-get install time; scripts/bench installs it)")?;
    let mut stdin = child.stdin.take().context("a pipe to the decoder")?;
    let _ = stdin.write_all(bytes);
    drop(stdin);
    let output = child.wait_with_output()?;
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&output.stderr);
    let peak = said.lines().last().and_then(|line| line.trim().parse().ok()).with_context(|| format!("GNU time said {said:?}"))?;
    Ok((peak, took))
}
