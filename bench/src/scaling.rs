//! Table 4: whether a worker uses both cores: one queue of mixed images
//! through one lane, two lanes in one process, and two processes.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::images::{TestImage, names};
use crate::table;
use crate::worker::{Queue, WorkerProcess};

/// How the workers are set up: a label, how many processes, and each one's concurrency.
const SETUPS: [(&str, usize, u16); 3] = [("1 process, concurrency 1", 1, 1), ("1 process, concurrency 2", 1, 2), ("2 processes, concurrency 1 each", 2, 1)];

pub fn run(worker: &Path, mix: &[&TestImage], jobs: usize) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    table::heading(
        "Scaling",
        &format!(
            "Wall-clock time from starting the worker processes until all {jobs} queued jobs have their thumbnails (images in turn: {}), on {cores} cores; speed-up against one process with concurrency 1.",
            names(mix)
        ),
    );
    table::header(&["workers", "wall-clock (s)", "jobs/s", "speed-up"]);
    let mut baseline = None;
    for (label, processes, concurrency) in SETUPS {
        let queue = Queue::new()?;
        let ids = queue.enqueue_mix(mix, jobs)?;
        let started = Instant::now();
        let mut workers = (0..processes).map(|_| WorkerProcess::start(worker, &queue, concurrency)).collect::<anyhow::Result<Vec<_>>>()?;
        queue.wait_until_done(&ids, &mut workers, Duration::from_secs(600))?;
        let elapsed = started.elapsed();
        drop(workers);
        let baseline = *baseline.get_or_insert(elapsed);
        table::row(&[
            label.into(),
            format!("{:.1}", elapsed.as_secs_f64()),
            format!("{:.1}", jobs as f64 / elapsed.as_secs_f64()),
            table::speed_up(baseline, elapsed),
        ]);
    }
    Ok(())
}
