//! Real worker processes on the embedded queue, fed the way the web server
//! feeds them: no broker, no web server, nothing in between.
//!
//! A [`Queue`] is a fresh data directory. [`Queue::enqueue`] stores an
//! upload under its `StorageKey` and records it in the data directory's
//! database with its job, free for the workers, as `web/src/upload.rs` does in
//! embedded mode; [`Queue::wait_until_done`] watches for the thumbnail files,
//! the last thing a job writes before its record.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use thumbq_contract::{ImageId, Storage, StorageKey, ThumbFormat, ThumbSize};

use crate::images::TestImage;
use crate::process::Process;

/// How often the thumbnails are looked for. It only bounds how late a
/// finished queue is noticed; the wait itself ends on the files.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// A data directory with its database, deleted when dropped.
pub struct Queue {
    storage: Storage,
    repo: thumbq_repo::Repository,
    /// Runs the repository's queries for this synchronous code.
    runtime: tokio::runtime::Runtime,
    dir: TempDir,
}

impl Queue {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let storage = Storage::new(dir.path());
        thumbq_store::data_dir::create_dirs(&storage)?;
        // What a web server with the default settings writes at its first start.
        thumbq_store::data_dir::init_manifest(
            &storage,
            &thumbq_contract::Manifest::new(&thumbq_contract::Sizes::default(), &thumbq_contract::MediaLimits::default()),
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let database = thumbq_repo::DatabaseSettings::default().location(dir.path());
        let repo = runtime.block_on(thumbq_repo::Repository::open_now(&database))?;
        Ok(Self { storage, repo, runtime, dir })
    }

    /// Stores `image` as a new upload and queues its job; returns its id.
    pub fn enqueue(&self, image: &TestImage) -> anyhow::Result<ImageId> {
        let id = ImageId::new();
        std::fs::write(self.storage.path(&StorageKey::Original(id)), &image.bytes)?;
        self.runtime.block_on(self.repo.add_image(&thumbq_repo::testing::uploaded(id, image.format, 0, 0), &[], None, &thumbq_repo::Lease::none()))?;
        Ok(id)
    }

    /// Queues `count` jobs, going round `images`.
    pub fn enqueue_mix(&self, images: &[&TestImage], count: usize) -> anyhow::Result<Vec<ImageId>> {
        images.iter().cycle().take(count).map(|image| self.enqueue(image)).collect()
    }

    /// Returns once every image of `ids` has its three thumbnails; fails when
    /// one of them failed, a worker exited, or `within` has passed.
    pub fn wait_until_done(&self, ids: &[ImageId], workers: &mut [WorkerProcess], within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        // Jobs are taken oldest first, so the first unfinished one is the one
        // to watch: each look costs a few file checks, not one per job.
        let mut unfinished = ids.iter().peekable();
        while let Some(&id) = unfinished.peek() {
            if self.is_done(*id) {
                unfinished.next();
                continue;
            }
            if let Some(failure) = self.runtime.block_on(self.repo.image(*id))?.and_then(|record| record.failure) {
                bail!("the job of image {id} failed: {}", failure.reason);
            }
            for worker in workers.iter_mut() {
                worker.check_running()?;
            }
            if Instant::now() > deadline {
                bail!("{} of {} jobs were not done within {within:?}", unfinished.len(), ids.len());
            }
            std::thread::sleep(LOOK_EVERY);
        }
        Ok(())
    }

    /// Returns once at most `left` of the queued jobs are unfinished, that is
    /// waiting or being worked on: a worker settles a job only after its last
    /// file (the large WebP) and their sync. Fails when a job failed for good,
    /// a worker exited, or `within` has passed.
    pub fn wait_until_unfinished(&self, left: usize, workers: &mut [WorkerProcess], within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let unfinished = self.runtime.block_on(self.repo.outbox_len())?;
            if let Some(group) = self.runtime.block_on(self.repo.failure_groups(0, 1, 1))?.0.first() {
                bail!("a job failed for good: {}", group.reason);
            }
            if unfinished <= left {
                return Ok(());
            }
            for worker in workers.iter_mut() {
                worker.check_running()?;
            }
            if Instant::now() > deadline {
                bail!("{unfinished} jobs were still unfinished after {within:?}");
            }
            std::thread::sleep(LOOK_EVERY);
        }
    }

    /// Whether every size of `id` is there, as a JPEG or a PNG.
    fn is_done(&self, id: ImageId) -> bool {
        ThumbSize::ALL
            .into_iter()
            .all(|size| [ThumbFormat::Jpeg, ThumbFormat::Png].into_iter().any(|format| self.storage.path(&StorageKey::Thumbnail(id, size, format)).exists()))
    }
}

/// A `thumbq-worker` process on a [`Queue`], stopped (SIGTERM) when dropped.
pub struct WorkerProcess(Process);

/// Memory of a process, from `/proc/{pid}/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub resident_kib: u64,
    /// The largest resident set size so far (`VmHWM`, the high-water mark).
    pub peak_kib: u64,
}

impl WorkerProcess {
    /// Starts `binary` on `queue` in embedded mode with `concurrency` jobs at once.
    pub fn start(binary: &Path, queue: &Queue, concurrency: u16) -> anyhow::Result<Self> {
        Self::start_with(binary, queue, concurrency, &[])
    }

    /// [`WorkerProcess::start`] with `settings` too, e.g. `("THUMBQ_WEBP_METHOD", "off")`.
    pub fn start_with(binary: &Path, queue: &Queue, concurrency: u16, settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        // Every setting but these at its default; no AMQP URL is embedded mode.
        let mut command = Command::new(binary);
        command.env("THUMBQ_DATA_DIR", queue.storage.root()).env("THUMBQ_CONCURRENCY", concurrency.to_string()).envs(settings.iter().copied());
        Ok(Self(Process::start("thumbq-worker", command, queue.dir.path(), 0)?))
    }

    /// User and system time of all the process's threads so far, and of its
    /// children that ended (HEIF decoder processes), from `/proc/{pid}/stat`.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id()))?;
        // The command's name, in parentheses, may hold spaces: the fields are counted after it.
        // After it come state (field 3) and so on: utime, stime, cutime and cstime are fields 14 to 17.
        let fields: Vec<&str> = stat.rsplit_once(')').context("a command name in /proc/PID/stat")?.1.split_whitespace().collect();
        let ticks = fields.get(11..15).context("CPU times in /proc/PID/stat")?.iter().map(|field| field.parse::<u64>()).sum::<Result<u64, _>>()?;
        Ok(Duration::from_secs_f64(ticks as f64 / crate::machine::ticks_per_second()))
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status.lines().find_map(|line| line.strip_prefix(name)).with_context(|| format!("no {name} in /proc/PID/status"))?;
            Ok(line.trim_start_matches(':').trim().trim_end_matches("kB").trim().parse()?)
        };
        Ok(Memory { resident_kib: field("VmRSS")?, peak_kib: field("VmHWM")? })
    }

    /// Fails with the end of the worker's log if it has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        self.0.check_running()
    }
}
