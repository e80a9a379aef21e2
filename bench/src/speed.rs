//! Table 1: how long one image's three thumbnails take, ours against libvips
//! (three `vipsthumbnail` processes, and in-process) and against sharp.

use std::path::Path;
use std::time::{Duration, Instant};

use thumbq_contract::{MediaLimits, Sizes};
use thumbq_worker::pipeline::{make_thumbnails, make_thumbnails_timed, make_thumbnails_with_webp};

use crate::images::TestImage;
use crate::libvips::{Libvips, Vipsthumbnail};
use crate::machine::CoresUsed;
use crate::reference::SelfTimed;
use crate::sharp::Sharp;
use crate::table::{self, MISSING, median, ms, speed_up};

/// A side measured beside ours, by how it runs.
enum Theirs<'a> {
    Processes(&'a Vipsthumbnail),
    SelfTimed(&'a SelfTimed),
}

impl Theirs<'_> {
    /// The time of one run on the image at `input`.
    fn once(&self, input: &Path, sizes: &Sizes, workdir: &Path) -> anyhow::Result<Duration> {
        match self {
            Self::Processes(vipsthumbnail) => vipsthumbnail.three_sizes(input, workdir, sizes),
            Self::SelfTimed(program) => Ok(program.runs(input, 1, sizes, None)?[0]),
        }
    }
}

/// Prints the table; returns our median for each of `images`, in their order.
pub fn run(images: &[&TestImage], libvips: &Libvips, sharp: &Sharp, runs: usize, workdir: &Path) -> anyhow::Result<Vec<Duration>> {
    let (sizes, limits) = (Sizes::default(), MediaLimits::default());
    let sides: [(&str, Option<Theirs>); 4] = [
        ("vipsthumbnail ×3", libvips.vipsthumbnail.as_ref().map(Theirs::Processes)),
        ("libvips in-process", libvips.in_process.as_ref().map(Theirs::SelfTimed)),
        ("sharp", Some(Theirs::SelfTimed(&sharp.plain))),
        ("sharp + mozjpeg", Some(Theirs::SelfTimed(&sharp.mozjpeg))),
    ];
    table::heading(
        "Speed",
        &format!(
            "Median of {runs} runs of the three thumbnails of one image, each side on one core, interleaved (each run times ours, then each side once); speed-up is their time ÷ ours."
        ),
    );
    let mut columns = vec!["image".to_owned(), "ours (ms)".into(), "decode / resize / encode (ms)".into()];
    for (label, _) in &sides {
        columns.extend([format!("{label} (ms)"), "speed-up".into()]);
    }
    table::header(&columns.iter().map(String::as_str).collect::<Vec<_>>());
    // The most cores each side kept busy, ours first: a side's CPU time ÷ its wall-clock time, over its runs.
    let mut cores = [0.0_f64; 5];
    let mut medians = Vec::with_capacity(images.len());
    let mut default_jobs = Vec::with_capacity(images.len());
    for image in images {
        let input = image.write_into(workdir)?;

        make_thumbnails(&image.bytes, image.format, &sizes, &limits)?;
        // Interleaved: each run times ours and then each side once, so that a
        // slow spell of a shared machine falls on every side alike.
        make_thumbnails_with_webp(&image.bytes[..], image.format, &sizes, &limits)?;
        let mut ours = Vec::with_capacity(runs);
        let mut theirs: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); sides.len()];
        // The default job, ours and sharp's, in the same runs: see `print_default_job`.
        let (mut ours_default, mut sharp_default) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        let mut spent = [CpuAndWall::default(); 5];
        for _ in 0..runs {
            let counting = CoresUsed::ours();
            let started = Instant::now();
            let (_, stages) = make_thumbnails_timed(&image.bytes, image.format, &sizes, &limits)?;
            ours.push((started.elapsed(), stages));
            spent[0].add(&counting);
            let started = Instant::now();
            make_thumbnails_with_webp(&image.bytes[..], image.format, &sizes, &limits)?;
            ours_default.push(started.elapsed());
            sharp_default.push(sharp.with_webp.runs(&input, 1, &sizes, None)?[0]);
            for (((_, side), times), spent) in sides.iter().zip(&mut theirs).zip(&mut spent[1..]) {
                if let Some(side) = side {
                    let counting = CoresUsed::children();
                    times.push(side.once(&input, &sizes, workdir)?);
                    spent.add(&counting);
                }
            }
        }
        ours.sort_by_key(|(total, _)| *total);
        let (ours, stages) = ours[runs / 2];
        medians.push(ours);
        for (most, spent) in cores.iter_mut().zip(spent) {
            *most = most.max(spent.cores());
        }

        let mut cells =
            vec![image.name.clone(), format!("{:.0}", ms(ours)), format!("{:.0} / {:.0} / {:.0}", ms(stages.decode), ms(stages.resize), ms(stages.encode))];
        default_jobs.push(DefaultJob {
            image: image.name.clone(),
            ours: (ours, median(ours_default)),
            sharp: (median(theirs[SHARP].clone()), median(sharp_default)),
        });
        for times in theirs {
            if times.is_empty() {
                cells.extend([MISSING.into(), MISSING.into()]);
            } else {
                let theirs = median(times);
                cells.extend([format!("{:.0}", ms(theirs)), speed_up(theirs, ours)]);
            }
        }
        table::row(&cells);
    }
    let theirs_cores: Vec<String> = sides
        .iter()
        .zip(&cores[1..])
        .map(|((label, side), cores)| format!("{label} {}", if side.is_some() { format!("{cores:.2}") } else { MISSING.into() }))
        .collect();
    table::note(&format!(
        "Cores each side kept busy while timed (CPU time ÷ wall-clock time, the highest over the images; a process's start and warm-up count too): ours {:.2}, {}.",
        cores[0],
        theirs_cores.join(", ")
    ));
    table::note(&format!(
        "sharp: `bench/sharp/reference.mjs` on {} in one process, one libvips thread and no cache, the same steps as libvips in-process, timed by itself alike; + mozjpeg: the same with mozjpeg's encoder settings (trellis quantisation, progressive scans).",
        sharp.version
    ));
    print_default_job(runs, &default_jobs);
    Ok(medians)
}

/// Where sharp (its default settings) stands among the sides of [`run`].
const SHARP: usize = 2;

/// One image's JPEG-only and default jobs: (JPEG only, default), ours and sharp's.
struct DefaultJob {
    image: String,
    ours: (Duration, Duration),
    sharp: (Duration, Duration),
}

/// Table 1b, from the runs of table 1: the job a worker runs by default,
/// which also makes a WebP of each size, beside the JPEG-only job, for us and
/// for sharp doing the same outputs: what the second format costs is never hidden.
fn print_default_job(runs: usize, jobs: &[DefaultJob]) {
    table::heading(
        "Speed of the default job",
        &format!(
            "In the same {runs} interleaved runs as the speed table, each side on one core: the three thumbnails as JPEGs only (`--webp-method off`), and as the worker makes them by default, each size also as a WebP (libwebp quality 86, method 4). sharp does the same: `bench/sharp/reference.mjs` with `THUMBQ_BENCH_WEBP=1` encodes each resized size as the JPEG and as a WebP at quality 86, effort 4."
        ),
    );
    table::header(&[
        "image",
        "ours JPEG only (ms)",
        "ours default (ms)",
        "ours default ÷ JPEG only",
        "sharp JPEG only (ms)",
        "sharp JPEG + WebP (ms)",
        "sharp default ÷ JPEG only",
        "default: sharp ÷ ours",
    ]);
    for DefaultJob { image, ours, sharp } in jobs {
        table::row(&[
            image.clone(),
            format!("{:.0}", ms(ours.0)),
            format!("{:.0}", ms(ours.1)),
            speed_up(ours.1, ours.0),
            format!("{:.0}", ms(sharp.0)),
            format!("{:.0}", ms(sharp.1)),
            speed_up(sharp.1, sharp.0),
            speed_up(sharp.1, ours.1),
        ]);
    }
}

/// CPU and wall-clock time summed over a side's runs.
#[derive(Debug, Clone, Copy, Default)]
struct CpuAndWall {
    cpu: Duration,
    wall: Duration,
}

impl CpuAndWall {
    fn add(&mut self, counting: &CoresUsed) {
        let (cpu, wall) = counting.spent();
        self.cpu += cpu;
        self.wall += wall;
    }

    fn cores(&self) -> f64 {
        if self.wall.is_zero() { 0.0 } else { self.cpu.as_secs_f64() / self.wall.as_secs_f64() }
    }
}
