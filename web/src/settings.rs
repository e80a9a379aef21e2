//! The web server's settings, from flags or environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use thumbq_contract::{MediaLimits, Sizes, Topology};
use thumbq_deployment::{Deployment, MediaLimitSettings};

/// What `thumbq-web` can be asked to do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Give every image that an earlier release kept as files beside the blobs its
    /// record in the database, then exit; safe to run again, and while serving.
    Migrate,
}

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

    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The largest file and image taken, shared with the workers.
    #[command(flatten)]
    pub media: MediaLimitSettings,

    /// Most files accepted in one request.
    #[arg(long = "max-files", env = "THUMBQ_MAX_FILES", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_files_per_request: u16,

    /// Bounding box of each thumbnail size, longest side in pixels.
    #[arg(long, env = "THUMBQ_SIZES", default_value_t = Sizes::default())]
    pub sizes: Sizes,

    /// Token that opens the operators' dashboard at /admin (HTTP Basic auth, any user name),
    /// at least 16 characters; the dashboard is off when unset.
    #[arg(long, env = "THUMBQ_ADMIN_TOKEN", hide_env_values = true, value_parser = admin_token)]
    pub admin_token: Option<String>,

    /// Seconds a client has to send a request's headers before its connection is closed.
    #[arg(long, env = "THUMBQ_HEADER_TIMEOUT_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_timeout_secs: u64,

    /// Seconds any request may take, except an upload and a live-update stream (408 past it).
    #[arg(long, env = "THUMBQ_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Seconds an upload may go without sending a byte before it is closed with 408; an upload
    /// that keeps sending has no time limit.
    #[arg(long, env = "THUMBQ_UPLOAD_IDLE_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub upload_idle_timeout_secs: u64,

    /// Seconds shutdown waits for the requests in flight before it closes their connections.
    #[arg(long, env = "THUMBQ_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout_secs: u64,

    /// Most connections open at once; more wait until one closes.
    #[arg(long, env = "THUMBQ_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Most connections one client address may hold at once (503 beyond); trusted proxies are exempt.
    #[arg(long, env = "THUMBQ_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_client: u32,

    /// Upload requests one client may have in progress at once (429 beyond), so that a few
    /// addresses sending slowly cannot hold every connection.
    #[arg(long, env = "THUMBQ_MAX_UPLOADS_PER_CLIENT", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_uploads_per_client: u32,

    /// Live-update streams (`/events`) open at once, in all (503 beyond: the page polls instead).
    #[arg(long, env = "THUMBQ_MAX_EVENT_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_event_streams: u32,

    /// Live-update streams one client address may hold at once (503 beyond).
    #[arg(long, env = "THUMBQ_MAX_EVENT_STREAMS_PER_CLIENT", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_event_streams_per_client: u32,

    /// Seconds a live-update stream lasts; the browser then opens it again by itself.
    #[arg(long, env = "THUMBQ_EVENT_STREAM_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub event_stream_secs: u64,

    /// A second address that serves only /healthz, /readyz and /metrics, with connections of
    /// its own, so that probes and scrapes get through whatever holds the public port.
    #[arg(long, env = "THUMBQ_OPS_BIND")]
    pub ops_bind: Option<SocketAddr>,

    /// Files one client may upload per minute, once its burst is spent (429 beyond).
    #[arg(long, env = "THUMBQ_UPLOADS_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub uploads_per_minute: u32,

    /// Files one client may upload at once before the per-minute rate applies.
    #[arg(long, env = "THUMBQ_UPLOAD_BURST", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_burst: u32,

    /// Mebibytes one client may upload per minute, once its burst is spent (429 beyond).
    #[arg(long, env = "THUMBQ_UPLOAD_MIB_PER_MINUTE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_mib_per_minute: u32,

    /// Mebibytes one client may upload at once before the per-minute rate applies; a request
    /// larger than this is always refused, so keep it above --max-files × --max-upload-bytes.
    #[arg(long, env = "THUMBQ_UPLOAD_MIB_BURST", default_value_t = 2560, value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_mib_burst: u32,

    /// Mebibytes of images one owner may have uploaded in any 24 hours (429 beyond).
    #[arg(long, env = "THUMBQ_OWNER_MIB_PER_DAY", default_value_t = 5 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub owner_mib_per_day: u64,

    /// Mebibytes of images one client address may upload in any 24 hours, whoever's, deleted or not (429 beyond).
    #[arg(long, env = "THUMBQ_CLIENT_MIB_PER_DAY", default_value_t = 20 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub client_mib_per_day: u64,

    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client (comma-separated);
    /// without them the client is the socket's peer.
    #[arg(long, env = "THUMBQ_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Uploads are refused (507) while the data directory's disk has less free space than this, in bytes.
    #[arg(long, env = "THUMBQ_MIN_FREE_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub min_free_bytes: u64,

    /// Marks the owner cookie `Secure`; set it when the server is reached over TLS (behind a proxy, say).
    #[arg(long, env = "THUMBQ_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Deletes uploads this many days old, as their owner would; off when unset.
    #[arg(long, env = "THUMBQ_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// How long to wait for the broker to confirm a job before keeping it in the outbox, in milliseconds.
    #[arg(long, env = "THUMBQ_PUBLISH_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub publish_timeout_ms: u64,

    /// Seconds between the reconciler's rounds (one web server at a time runs it): it queues
    /// again the job of an image no one has touched for `--stalled-after-secs`, and finishes deletes.
    #[arg(long, env = "THUMBQ_RECONCILE_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub reconcile_every_secs: u64,

    /// Seconds a pending image may go untouched (no job waiting, no step) before the reconciler queues its job again.
    #[arg(long, env = "THUMBQ_STALLED_AFTER_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub stalled_after_secs: u64,
    /// Seconds an owner's delete can be undone: until then the image is in the trash (deleted
    /// to every page and link, its files kept), then the reconciler deletes it for good.
    /// 0 deletes at once. An operator's takedown and the retention sweeper never wait.
    #[arg(long, env = "THUMBQ_UNDO_DELETE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=7 * 86_400))]
    pub undo_delete_secs: u64,

    /// Seconds a resumable upload (`/uploads`) may take from its creation; then it is removed
    /// with its bytes, finished or not (a late request gets 410, then 404).
    #[arg(long, env = "THUMBQ_RESUMABLE_EXPIRY_SECS", default_value_t = 24 * 3600, value_parser = clap::value_parser!(u64).range(1..=30 * 24 * 3600))]
    pub resumable_expiry_secs: u64,

    /// Resumable uploads one owner may have begun and not finished at once (429 beyond).
    #[arg(long, env = "THUMBQ_MAX_OPEN_RESUMABLE_UPLOADS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_open_resumable_uploads: u64,

    /// Resumable uploads begun from one client address, whoever's, and not finished at once
    /// (429 beyond): keys cost nothing to make, addresses do.
    #[arg(long, env = "THUMBQ_MAX_OPEN_RESUMABLE_UPLOADS_PER_CLIENT", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_open_resumable_uploads_per_client: u64,

    /// Seconds an original with no record is left in the store before the reconciler removes it
    /// (an upload cut short before its commit); also how old a record must be before a missing original fails it.
    #[arg(long, env = "THUMBQ_STRAY_GRACE_SECS", default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub stray_grace_secs: u64,
}

impl Settings {
    /// Settings for tests: a free port, and every value but the deployment at its default.
    pub fn for_tests(deployment: Deployment) -> Self {
        Self {
            bind: "127.0.0.1:0".parse().expect("a valid address"),
            deployment,
            command: None,
            media: MediaLimitSettings::default(),
            max_files_per_request: 50,
            sizes: Sizes::default(),
            publish_timeout_ms: 2_000,
            admin_token: None,
            secure_cookies: false,
            retention_days: None,
            header_timeout_secs: 20,
            request_timeout_secs: 30,
            upload_idle_timeout_secs: 30,
            shutdown_timeout_secs: 30,
            max_connections: 512,
            max_connections_per_client: 64,
            max_uploads_per_client: 16,
            max_event_streams: 256,
            max_event_streams_per_client: 8,
            event_stream_secs: 300,
            ops_bind: None,
            // Tests upload in bulk from one address; the rate limit's own test lowers these.
            uploads_per_minute: 6000,
            upload_burst: 10_000,
            upload_mib_per_minute: 100_000,
            upload_mib_burst: 100_000,
            owner_mib_per_day: 1024 * 1024,
            client_mib_per_day: 1024 * 1024,
            trusted_proxies: Vec::new(),
            // Tests share the machine's disk: only a full disk refuses.
            min_free_bytes: 0,
            reconcile_every_secs: 60,
            // A delete is final at once; the tests of Undo set a time to undo it.
            undo_delete_secs: 0,
            stalled_after_secs: 600,
            stray_grace_secs: 3_600,
            resumable_expiry_secs: 24 * 3600,
            max_open_resumable_uploads: 100,
            max_open_resumable_uploads_per_client: 1000,
        }
    }

    pub fn connection_limits(&self) -> crate::server::ConnectionLimits {
        crate::server::ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            max_connections: self.max_connections as usize,
            max_connections_per_client: self.max_connections_per_client as usize,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn upload_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.upload_idle_timeout_secs)
    }

    pub fn limits(&self) -> MediaLimits {
        self.media.limits()
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    pub fn topology(&self) -> Topology {
        self.deployment.topology()
    }
}

/// The shortest admin token taken: a short one is guessed, an empty one opened the dashboard to anyone.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

fn admin_token(text: &str) -> Result<String, String> {
    if text.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        return Err(format!("the admin token must have at least {MIN_ADMIN_TOKEN_CHARS} characters (unset it to turn the dashboard off)"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn an_empty_or_short_admin_token_stops_the_start() {
        for token in ["", "short"] {
            let error = Settings::try_parse_from(["thumbq-web", "--admin-token", token]).unwrap_err();
            assert!(error.to_string().contains("at least 16 characters"), "{error}");
        }
        let settings = Settings::try_parse_from(["thumbq-web", "--admin-token", "a-long-enough-token"]).unwrap();
        assert_eq!(settings.admin_token.as_deref(), Some("a-long-enough-token"));
    }
}
