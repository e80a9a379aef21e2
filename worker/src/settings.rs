//! The worker's settings, from flags or environment variables.

use std::time::Duration;

use thumbq_contract::{MediaLimits, Sizes, Topology};
use thumbq_deployment::{Deployment, MediaLimitSettings};

use crate::pipeline::WebP;

/// Everything a worker can be told at start. A bad value stops the start with
/// a message that names the flag.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "thumbq-worker", version, about = "Makes thumbnails for the resize jobs on the queue.")]
pub struct Settings {
    /// The data directory, the broker and the queue, shared with the other processes.
    #[command(flatten)]
    pub deployment: Deployment,

    /// Jobs worked on at once; also the broker's prefetch. Default: one per core.
    #[arg(long, env = "THUMBQ_CONCURRENCY", default_value_t = default_concurrency(), value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Bounding box of each thumbnail size, longest side in pixels.
    #[arg(long, env = "THUMBQ_SIZES", default_value_t = Sizes::default())]
    pub sizes: Sizes,

    /// The largest file and image taken: the web server's, so that a worker reads and decodes every original it accepted.
    #[command(flatten)]
    pub media: MediaLimitSettings,

    /// A job running longer than this, in seconds, is abandoned and tried again later.
    #[arg(long, env = "THUMBQ_JOB_TIME_LIMIT_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub job_time_limit_secs: u64,

    /// Where to serve GET /metrics (Prometheus) and /healthz, e.g. 127.0.0.1:9464; off when unset.
    #[arg(long, env = "THUMBQ_METRICS_BIND")]
    pub metrics_bind: Option<std::net::SocketAddr>,

    /// On SIGTERM, how long to let jobs in flight finish before leaving them to the broker, in seconds.
    #[arg(long, env = "THUMBQ_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Each size also as lossy WebP, after the JPEG or PNG: libwebp's method, 0 (fastest) to 6 (smallest), or off.
    /// Method 4 costs about 140 ms of CPU for a photo's three sizes, 15 times the JPEGs; 2 half that, for fewer bytes saved.
    #[arg(long, env = "THUMBQ_WEBP_METHOD", default_value_t = WebP::default())]
    pub webp_method: WebP,

    /// When the disk is full or the object store does not answer, how long a job waits before it is tried again, in seconds; its tries are not counted.
    #[arg(long, env = "THUMBQ_DISK_FULL_RETRY_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub disk_full_retry_secs: u64,
}

fn default_concurrency() -> u16 {
    std::thread::available_parallelism().map_or(1, |cores| u16::try_from(cores.get()).unwrap_or(u16::MAX))
}

impl Settings {
    /// Settings for tests, with every value but the deployment at its default.
    pub fn for_tests(deployment: Deployment) -> Self {
        Self {
            deployment,
            concurrency: 2,
            sizes: Sizes::default(),
            media: MediaLimitSettings::default(),
            job_time_limit_secs: 120,
            metrics_bind: None,
            shutdown_timeout_secs: 10,
            disk_full_retry_secs: 1,
            webp_method: WebP::default(),
        }
    }

    pub fn limits(&self) -> MediaLimits {
        self.media.limits()
    }

    pub fn topology(&self) -> Topology {
        self.deployment.topology()
    }

    pub fn job_time_limit(&self) -> Duration {
        Duration::from_secs(self.job_time_limit_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}
