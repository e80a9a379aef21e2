//! `GET /metrics`: the web server's counters in Prometheus' text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 1];

/// What the web server counts; cheap to clone, shared by the handlers.
#[derive(Clone)]
pub struct WebMetrics {
    registry: std::sync::Arc<Registry>,
    uploads: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    accepted_bytes: Counter,
    refused_bytes: Counter,
    /// Seconds from publishing a job to RabbitMQ's confirm.
    pub publish_confirm_seconds: Histogram,
    dispatched: Family<Labels, Counter>,
    /// Seconds of each step of the request path: `stored` (from the request's start), `queued` (from stored).
    upload_steps: Family<Labels, Histogram>,
    deletions: Family<Labels, Counter>,
    outbox_dead: Counter,
    waiting_on_disk: Gauge,
    queue_messages: Gauge,
    queue_consumers: Gauge,
    free_bytes: Gauge,
}

impl Default for WebMetrics {
    fn default() -> Self {
        let uploads = Family::default();
        let refusals = Family::default();
        let accepted_bytes = Counter::default();
        let refused_bytes = Counter::default();
        let publish_confirm_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let dispatched = Family::default();
        let deletions = Family::default();
        let upload_steps = Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 14)));
        let outbox_dead = Counter::default();
        let waiting_on_disk = Gauge::default();
        let queue_messages = Gauge::default();
        let queue_consumers = Gauge::default();
        let free_bytes = Gauge::default();
        let mut registry = Registry::with_prefix("thumbq_web");
        registry.register("uploads", "Files accepted, by outcome", uploads.clone());
        registry.register("upload_refusals", "Requests refused, by reason", refusals.clone());
        registry.register("accepted_bytes", "Bytes of accepted files", accepted_bytes.clone());
        registry.register("refused_bytes", "Bytes received in refused requests", refused_bytes.clone());
        registry.register("publish_confirm_seconds", "Time from publishing a job to RabbitMQ's confirm", publish_confirm_seconds.clone());
        registry.register("jobs_dispatched", "Jobs queued, by route (published, outbox, embedded)", dispatched.clone());
        registry.register(
            "upload_step_seconds",
            "Time each step of the request path took: stored (from the request's start), queued (from stored)",
            upload_steps.clone(),
        );
        registry.register("images_deleted", "Images deleted, by who asked (owner, takedown, retention)", deletions.clone());
        registry.register("outbox_set_aside", "Files in the outbox that were no job, moved to its dead/ for an operator", outbox_dead.clone());
        registry.register("jobs_waiting_on_disk", "Jobs in the outbox (or the embedded queue)", waiting_on_disk.clone());
        registry.register("queue_messages", "Jobs waiting in the resize queue on RabbitMQ", queue_messages.clone());
        registry.register("queue_consumers", "Workers consuming the resize queue", queue_consumers.clone());
        registry.register("data_dir_free_bytes", "Free space on the data directory's disk", free_bytes.clone());
        Self {
            registry: std::sync::Arc::new(registry),
            uploads,
            refusals,
            accepted_bytes,
            refused_bytes,
            publish_confirm_seconds,
            dispatched,
            upload_steps,
            deletions,
            outbox_dead,
            waiting_on_disk,
            queue_messages,
            queue_consumers,
            free_bytes,
        }
    }
}

impl WebMetrics {
    pub fn accepted(&self, files: u64, bytes: u64) {
        self.uploads.get_or_create(&[("outcome", "accepted")]).inc_by(files);
        self.accepted_bytes.inc_by(bytes);
    }

    pub fn refused(&self, reason: &'static str, bytes: u64) {
        self.refusals.get_or_create(&[("reason", reason)]).inc();
        self.refused_bytes.inc_by(bytes);
    }

    pub fn dispatched(&self, route: &'static str) {
        self.dispatched.get_or_create(&[("route", route)]).inc();
    }

    pub fn upload_step(&self, step: &'static str, seconds: f64) {
        self.upload_steps.get_or_create(&[("step", step)]).observe(seconds);
    }

    pub fn outbox_dead(&self) {
        self.outbox_dead.inc();
    }

    pub fn deleted(&self, reason: crate::delete::Reason) {
        let reason = match reason {
            crate::delete::Reason::Owner => "owner",
            crate::delete::Reason::Takedown => "takedown",
            crate::delete::Reason::Retention => "retention",
        };
        self.deletions.get_or_create(&[("reason", reason)]).inc();
    }

    /// The text exposition, with the gauges read just now.
    pub fn render(&self, waiting_on_disk: usize, queue: Option<(u32, u32)>, free_bytes: Option<u64>) -> String {
        self.waiting_on_disk.set(waiting_on_disk as i64);
        if let Some(free) = free_bytes {
            self.free_bytes.set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        if let Some((messages, consumers)) = queue {
            self.queue_messages.set(i64::from(messages));
            self.queue_consumers.set(i64::from(consumers));
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
