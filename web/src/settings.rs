//! The web server's settings, from flags or environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use thumbq_broker::Deployment;
use thumbq_contract::{MediaLimits, Sizes, Topology};

/// Everything the web server can be told at start. A bad value stops the start
/// with a message that names the flag.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "thumbq-web", version, about = "Takes image uploads, queues resize jobs and serves pages and thumbnails.")]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "THUMBQ_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The data directory, the broker and the queue, shared with the other processes.
    #[command(flatten)]
    pub deployment: Deployment,

    /// Largest accepted file, in bytes.
    #[arg(long, env = "THUMBQ_MAX_UPLOAD_BYTES", default_value_t = MediaLimits::DEFAULT_MAX_FILE_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_upload_bytes: u64,

    /// Largest accepted image, in pixels (width × height), read from the file's header.
    #[arg(long, env = "THUMBQ_MAX_PIXELS", default_value_t = MediaLimits::DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,

    /// Widest or tallest accepted image, in pixels, read from the file's header.
    #[arg(long, env = "THUMBQ_MAX_SIDE_PX", default_value_t = MediaLimits::DEFAULT_MAX_SIDE_PX, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_side_px: u32,

    /// Most files accepted in one request.
    #[arg(long = "max-files", env = "THUMBQ_MAX_FILES", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_files_per_request: u16,

    /// Bounding box of each thumbnail size, longest side in pixels.
    #[arg(long, env = "THUMBQ_SIZES", default_value_t = Sizes::default())]
    pub sizes: Sizes,

    /// Token that opens the operators' dashboard at /admin (HTTP Basic auth, any user name);
    /// the dashboard is off when unset.
    #[arg(long, env = "THUMBQ_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Marks the owner cookie `Secure`; set it when the server is reached over TLS (behind a proxy, say).
    #[arg(long, env = "THUMBQ_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Deletes uploads this many days old, as their owner would; off when unset.
    #[arg(long, env = "THUMBQ_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// How long to wait for the broker to confirm a job before keeping it in the outbox, in milliseconds.
    #[arg(long, env = "THUMBQ_PUBLISH_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub publish_timeout_ms: u64,
}

impl Settings {
    /// Settings for tests: a free port, and every value but the deployment at its default.
    pub fn for_tests(deployment: Deployment) -> Self {
        Self {
            bind: "127.0.0.1:0".parse().expect("a valid address"),
            deployment,
            max_upload_bytes: MediaLimits::DEFAULT_MAX_FILE_BYTES,
            max_pixels: MediaLimits::DEFAULT_MAX_PIXELS,
            max_side_px: MediaLimits::DEFAULT_MAX_SIDE_PX,
            max_files_per_request: 50,
            sizes: Sizes::default(),
            publish_timeout_ms: 2_000,
            admin_token: None,
            secure_cookies: false,
            retention_days: None,
        }
    }

    pub fn limits(&self) -> MediaLimits {
        MediaLimits { max_file_bytes: self.max_upload_bytes, max_side_px: self.max_side_px, max_pixels: self.max_pixels }
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    pub fn topology(&self) -> Topology {
        self.deployment.topology()
    }
}
