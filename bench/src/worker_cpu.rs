//! The speed table's companion: what one job costs the whole worker process,
//! beside what the pipeline alone takes for the same image. The process also
//! reads the original, writes and syncs the files, makes the WebPs (by
//! default) and takes jobs from the queue: the gap between the two is all that.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::images::TestImage;
use crate::table::{self, ms};
use crate::worker::{Queue, WorkerProcess};

/// Jobs timed in each batch, after one warm-up job.
const JOBS: usize = 20;

/// The worker settings compared: a label, and the settings that are not at their default.
const SETUPS: [(&str, &[(&str, &str)]); 2] = [("default: WebPs after the JPEGs", &[]), ("WebP off", &[("THUMBQ_WEBP_METHOD", "off")])];

/// Prints the table; `pipeline` is our median for `image` in the speed table.
pub fn run(worker: &Path, image: &TestImage, pipeline: Duration) -> anyhow::Result<()> {
    table::heading(
        "Worker process",
        &format!(
            "{JOBS} jobs of the {} queued at once, after a warm-up job, to one worker process (`target/release/thumbq-worker`, embedded queue, concurrency 1). \
             CPU is the process's user and system time over the {JOBS} jobs, all its threads (`/proc/PID/stat`); wall-clock runs from the warm-up job settled to the last one settled; both ÷ {JOBS}. \
             Pipeline is ours in the speed table: the same image's three JPEGs, in memory. \
             Wall-clock above CPU is waiting: for the disk (each job's files are synced before it is settled) or for the cores.",
            image.name
        ),
    );
    table::header(&["worker", "pipeline (ms)", "process CPU per job (ms)", "wall-clock per job (ms)", "CPU ÷ pipeline"]);
    for (label, settings) in SETUPS {
        let queue = Queue::new()?;
        // All queued before the worker starts, warm-up first: it never waits idle between jobs.
        queue.enqueue_mix(&[image], JOBS + 1)?;
        let mut workers = [WorkerProcess::start_with(worker, &queue, 1, settings)?];
        queue.wait_until_unfinished(JOBS, &mut workers, Duration::from_secs(120))?;
        let (cpu, started) = (workers[0].cpu_time()?, Instant::now());
        queue.wait_until_unfinished(0, &mut workers, Duration::from_secs(600))?;
        let (cpu, elapsed) = ((workers[0].cpu_time()? - cpu) / JOBS as u32, started.elapsed() / JOBS as u32);
        table::row(&[
            label.into(),
            format!("{:.0}", ms(pipeline)),
            format!("{:.0}", ms(cpu)),
            format!("{:.0}", ms(elapsed)),
            format!("{:.2}×", cpu.as_secs_f64() / pipeline.as_secs_f64()),
        ]);
    }
    Ok(())
}
