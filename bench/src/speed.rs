//! Table 1: how long one image's three thumbnails take, ours against libvips
//! (three `vipsthumbnail` processes, and in-process) and against sharp.

use std::path::Path;
use std::time::{Duration, Instant};

use thumbq_contract::{MediaLimits, Sizes};
use thumbq_worker::pipeline::{make_thumbnails, make_thumbnails_timed};

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
    /// The median of `runs` runs on the image at `input`.
    fn median(&self, input: &Path, runs: usize, sizes: &Sizes, workdir: &Path) -> anyhow::Result<Duration> {
        Ok(median(match self {
            Self::Processes(vipsthumbnail) => (0..runs).map(|_| vipsthumbnail.three_sizes(input, workdir, sizes)).collect::<Result<_, _>>()?,
            Self::SelfTimed(program) => program.runs(input, runs, sizes, None)?,
        }))
    }
}

/// Prints the table; returns our median for each of `images`, in their order.
pub fn run(images: &[&TestImage], libvips: &Libvips, sharp: Option<&Sharp>, runs: usize, workdir: &Path) -> anyhow::Result<Vec<Duration>> {
    let (sizes, limits) = (Sizes::default(), MediaLimits::default());
    let sides: [(&str, Option<Theirs>); 4] = [
        ("vipsthumbnail ×3", libvips.vipsthumbnail.as_ref().map(Theirs::Processes)),
        ("libvips in-process", libvips.in_process.as_ref().map(Theirs::SelfTimed)),
        ("sharp", sharp.map(|sharp| Theirs::SelfTimed(&sharp.plain))),
        ("sharp + mozjpeg", sharp.map(|sharp| Theirs::SelfTimed(&sharp.mozjpeg))),
    ];
    table::heading("Speed", &format!("Median of {runs} runs of the three thumbnails of one image, each side on one core; speed-up is their time ÷ ours."));
    let mut columns = vec!["image".to_owned(), "ours (ms)".into(), "decode / resize / encode (ms)".into()];
    for (label, _) in &sides {
        columns.extend([format!("{label} (ms)"), "speed-up".into()]);
    }
    table::header(&columns.iter().map(String::as_str).collect::<Vec<_>>());
    // The most cores each side kept busy while timed, to show that each used one.
    let mut our_cores = 0.0_f64;
    let mut their_cores = [0.0_f64; 4];
    let mut medians = Vec::with_capacity(images.len());
    for image in images {
        let input = image.write_into(workdir)?;

        make_thumbnails(&image.bytes, image.format, &sizes, &limits)?;
        let mut times = Vec::with_capacity(runs);
        let counting = CoresUsed::ours();
        for _ in 0..runs {
            let started = Instant::now();
            let (_, stages) = make_thumbnails_timed(&image.bytes, image.format, &sizes, &limits)?;
            times.push((started.elapsed(), stages));
        }
        times.sort_by_key(|(total, _)| *total);
        let (ours, stages) = times[runs / 2];
        our_cores = our_cores.max(counting.cores());
        medians.push(ours);

        let mut cells =
            vec![image.name.clone(), format!("{:.0}", ms(ours)), format!("{:.0} / {:.0} / {:.0}", ms(stages.decode), ms(stages.resize), ms(stages.encode))];
        for ((_, side), cores) in sides.iter().zip(&mut their_cores) {
            let Some(side) = side else {
                cells.extend([MISSING.into(), MISSING.into()]);
                continue;
            };
            let counting = CoresUsed::children();
            let theirs = side.median(&input, runs, &sizes, workdir)?;
            *cores = cores.max(counting.cores());
            cells.extend([format!("{:.0}", ms(theirs)), speed_up(theirs, ours)]);
        }
        table::row(&cells);
    }
    let cores: Vec<String> = sides
        .iter()
        .zip(their_cores)
        .map(|((label, side), cores)| format!("{label} {}", if side.is_some() { format!("{cores:.2}") } else { MISSING.into() }))
        .collect();
    table::note(&format!(
        "Cores each side kept busy while timed (CPU time ÷ wall-clock time, the highest over the images; a process's start and warm-up count too): ours {our_cores:.2}, {}.",
        cores.join(", ")
    ));
    if let Some(sharp) = sharp {
        table::note(&format!(
            "sharp: `bench/sharp/reference.mjs` on {} in one process, one libvips thread and no cache, the same steps as libvips in-process, timed by itself alike; + mozjpeg: the same with mozjpeg's encoder settings (trellis quantisation, progressive scans).",
            sharp.version
        ));
    }
    Ok(medians)
}
