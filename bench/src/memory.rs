//! Table 3: the real worker process's memory: its peak on one large photo, and
//! whether its resident size stays flat over many jobs.

use std::path::Path;
use std::time::Duration;

use crate::images::{TestImage, names};
use crate::table;
use crate::worker::{Memory, Queue, WorkerProcess};

/// After how many jobs of the long run the worker's memory is read.
const CHECKPOINTS: [usize; 3] = [1, 100, 1000];

pub fn run(worker: &Path, large: &[&TestImage], small_mix: &[&TestImage]) -> anyhow::Result<()> {
    table::heading(
        "Memory",
        &format!(
            "The worker process (`target/release/thumbq-worker`, embedded queue) from `/proc/PID/status`: a fresh process for each of {} makes its thumbnails (a HEIC's decoder process is apart: see the phone table); another works through {} jobs of small images ({}) and is read, idle, after each checkpoint.",
            names(large),
            CHECKPOINTS[CHECKPOINTS.len() - 1],
            names(small_mix)
        ),
    );
    table::header(&["worker process", "jobs done", "resident now, VmRSS (MiB)", "peak so far, VmHWM (MiB)"]);

    for large in large {
        let queue = Queue::new()?;
        let ids = [queue.enqueue(large)?];
        let mut workers = [WorkerProcess::start(worker, &queue, 1)?];
        queue.wait_until_done(&ids, &mut workers, Duration::from_secs(120))?;
        print_row(&format!("one {}, concurrency 1", large.name), 1, workers[0].memory()?);
    }

    let queue = Queue::new()?;
    let mut workers = [WorkerProcess::start(worker, &queue, 2)?];
    let mut done = 0;
    for checkpoint in CHECKPOINTS {
        let ids = queue.enqueue_mix(small_mix, checkpoint - done)?;
        queue.wait_until_done(&ids, &mut workers, Duration::from_secs(600))?;
        done = checkpoint;
        print_row("small images, concurrency 2", done, workers[0].memory()?);
    }
    Ok(())
}

fn print_row(process: &str, jobs: usize, memory: Memory) {
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    table::row(&[process.into(), jobs.to_string(), mib(memory.resident_kib), mib(memory.peak_kib)]);
}
