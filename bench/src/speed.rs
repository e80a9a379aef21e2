//! Table 1: how long one image's three thumbnails take, ours against libvips.

use std::path::Path;
use std::time::Instant;

use thumbq_contract::{MediaLimits, Sizes};
use thumbq_worker::pipeline::{make_thumbnails, make_thumbnails_timed};

use crate::images::TestImage;
use crate::libvips::Libvips;
use crate::machine::CoresUsed;
use crate::table::{self, MISSING, median, ms, speed_up};

pub fn run(images: &[&TestImage], libvips: &Libvips, runs: usize, workdir: &Path) -> anyhow::Result<()> {
    let (sizes, limits) = (Sizes::default(), MediaLimits::default());
    table::heading("Speed", &format!("Median of {runs} runs of the three thumbnails of one image, each side on one core; speed-up is their time ÷ ours."));
    table::header(&["image", "ours (ms)", "decode / resize / encode (ms)", "vipsthumbnail ×3 (ms)", "speed-up", "libvips in-process (ms)", "speed-up"]);
    // The most cores each side kept busy while timed, to show that each used one.
    let mut cores = [0.0_f64; 3];
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
        cores[0] = cores[0].max(counting.cores());

        let counting = CoresUsed::children();
        let vipsthumbnail = match &libvips.vipsthumbnail {
            Some(vipsthumbnail) => Some(median((0..runs).map(|_| vipsthumbnail.three_sizes(&input, workdir, &sizes)).collect::<Result<_, _>>()?)),
            None => None,
        };
        cores[1] = cores[1].max(counting.cores());
        let counting = CoresUsed::children();
        let in_process = match &libvips.in_process {
            Some(in_process) => Some(median(in_process.runs(&input, runs, &sizes, None)?)),
            None => None,
        };
        cores[2] = cores[2].max(counting.cores());
        let theirs = |time: Option<_>| match time {
            Some(time) => [format!("{:.0}", ms(time)), speed_up(time, ours)],
            None => [MISSING.into(), MISSING.into()],
        };
        let [vipsthumbnail_ms, vipsthumbnail_ratio] = theirs(vipsthumbnail);
        let [in_process_ms, in_process_ratio] = theirs(in_process);
        table::row(&[
            image.name.clone(),
            format!("{:.0}", ms(ours)),
            format!("{:.0} / {:.0} / {:.0}", ms(stages.decode), ms(stages.resize), ms(stages.encode)),
            vipsthumbnail_ms,
            vipsthumbnail_ratio,
            in_process_ms,
            in_process_ratio,
        ]);
    }
    let shown = |cores: f64, measured: bool| if measured { format!("{cores:.2}") } else { MISSING.into() };
    table::note(&format!(
        "Cores each side kept busy while timed (CPU time ÷ wall-clock time, the highest over the images): ours {}, vipsthumbnail {}, libvips in-process {}.",
        shown(cores[0], true),
        shown(cores[1], libvips.vipsthumbnail.is_some()),
        shown(cores[2], libvips.in_process.is_some()),
    ));
    Ok(())
}
