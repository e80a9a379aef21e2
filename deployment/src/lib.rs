//! The settings every process of one deployment must agree on.

use std::path::PathBuf;

use thumbq_broker::check_url;
use thumbq_contract::{MediaLimits, RetryDelays, Storage, Topology};
use thumbq_repo::{DatabaseSettings, Location};
use thumbq_store::{Store, StoreSettings};

/// Where the web server and the workers meet: the data directory, the broker
/// and the queue. Both binaries flatten this into their own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Deployment {
    /// Directory holding uploads, thumbnails and (without --database-url) the database, shared by every process.
    #[arg(long, env = "THUMBQ_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// RabbitMQ to pass jobs through, e.g. amqp://guest:guest@127.0.0.1:5672/%2f, or the
    /// comma-separated URLs of a cluster's nodes: each process connects to one and moves
    /// to the next when it fails. Without it, jobs go through the embedded queue: the database's outbox.
    #[arg(long, env = "THUMBQ_AMQP_URL", value_parser = check_url)]
    pub amqp_url: Option<String>,

    /// Name of the resize queue; the dead-letter queue is named after it.
    #[arg(long, env = "THUMBQ_QUEUE", default_value = Topology::DEFAULT_QUEUE, value_parser = Topology::check_queue_name)]
    pub queue: String,

    /// Seconds a job waits after each failed try before the next, one delay per gap between
    /// its five tries (with RabbitMQ, each delay is a queue of its own, named after it).
    #[arg(long, env = "THUMBQ_RETRY_DELAYS_SECS", default_value_t = RetryDelays::default())]
    pub retry_delays_secs: RetryDelays,

    #[command(flatten)]
    pub store: StoreSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,
}

impl Deployment {
    /// `amqp_url` `None` is embedded mode.
    pub fn new(data_dir: impl Into<PathBuf>, amqp_url: Option<String>, queue: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            amqp_url,
            queue: queue.into(),
            retry_delays_secs: RetryDelays::default(),
            store: StoreSettings::default(),
            database: DatabaseSettings::default(),
        }
    }

    /// This deployment, its failed tries waiting `retry_delays` rather than the default's.
    pub fn with_retry_delays(mut self, retry_delays: RetryDelays) -> Self {
        self.retry_delays_secs = retry_delays;
        self
    }

    /// This deployment, storing in `store` rather than the data directory.
    pub fn with_store(mut self, store: StoreSettings) -> Self {
        self.store = store;
        self
    }

    /// This deployment, keeping its records in the database at `location` rather than the data directory's SQLite.
    pub fn with_database(mut self, location: Location) -> Self {
        self.database = DatabaseSettings::at(location);
        self
    }

    /// Where the metadata database is: `--database-url`, or SQLite in the data directory.
    pub fn database(&self) -> Location {
        self.database.location(&self.data_dir)
    }

    /// The local data directory: uploads being received, SQLite's database,
    /// and everything else unless `--store` names an S3 bucket.
    pub fn storage(&self) -> Storage {
        Storage::new(&self.data_dir)
    }

    /// Where originals, thumbnails and records are kept.
    pub fn store(&self) -> Result<Store, String> {
        Store::from_settings(&self.data_dir, &self.store)
    }

    pub fn topology(&self) -> Topology {
        Topology::new(self.queue.clone()).with_retry_delays(self.retry_delays_secs.clone())
    }
}

/// The largest image thumbq takes, judged from its file's size and header
/// before anything is decoded: the web server refuses a larger upload, and a
/// worker fails a larger original. Both binaries flatten this, so one setting
/// (a flag, or its variable) bounds them alike; a worker's may be larger than
/// the web server's, never smaller (the data directory's manifest is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct MediaLimitSettings {
    /// Largest file taken, in bytes: a worker's must be at least the web server's.
    #[arg(long, env = "THUMBQ_MAX_UPLOAD_BYTES", default_value_t = MediaLimits::DEFAULT_MAX_FILE_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_upload_bytes: u64,

    /// Largest image taken, in pixels (width × height), read from the file's header.
    #[arg(long, env = "THUMBQ_MAX_PIXELS", default_value_t = MediaLimits::DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,

    /// Widest or tallest image taken, in pixels, read from the file's header.
    #[arg(long, env = "THUMBQ_MAX_SIDE_PX", default_value_t = MediaLimits::DEFAULT_MAX_SIDE_PX, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_side_px: u32,
}

impl Default for MediaLimitSettings {
    fn default() -> Self {
        let limits = MediaLimits::default();
        Self { max_upload_bytes: limits.max_file_bytes, max_pixels: limits.max_pixels, max_side_px: limits.max_side_px }
    }
}

impl MediaLimitSettings {
    pub fn limits(&self) -> MediaLimits {
        MediaLimits { max_file_bytes: self.max_upload_bytes, max_side_px: self.max_side_px, max_pixels: self.max_pixels }
    }
}
