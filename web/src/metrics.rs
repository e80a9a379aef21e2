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
    reconciler: Family<Labels, Counter>,
    in_outbox: Gauge,
    in_embedded_queue: Gauge,
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
        let reconciler = Family::default();
        let in_outbox = Gauge::default();
        let in_embedded_queue = Gauge::default();
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
        registry.register(
            "reconciler_actions",
            "What the reconciler did: jobs queued again (requeued), deletes finished (purged), stray originals removed (strays_removed), pending images whose original is missing, failed (missing)",
            reconciler.clone(),
        );
        registry.register("jobs_in_outbox", "Jobs accepted and not yet on the queue", in_outbox.clone());
        registry.register("jobs_in_embedded_queue", "Jobs in the embedded queue, waiting or being worked on", in_embedded_queue.clone());
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
            reconciler,
            in_outbox,
            in_embedded_queue,
            queue_messages,
            queue_consumers,
            free_bytes,
        }
    }
}

/// The gauges, read when `/metrics` is asked; `None` keeps the last value.
pub struct Gauges {
    pub in_outbox: Option<usize>,
    pub in_embedded_queue: Option<usize>,
    /// The resize queue's messages and consumers on RabbitMQ.
    pub queue: Option<(u32, u32)>,
    pub free_bytes: Option<u64>,
}

impl WebMetrics {
    /// Counts files stored and queued, and files the owner had uploaded already.
    pub fn accepted(&self, files: u64, duplicates: u64, bytes: u64) {
        self.uploads.get_or_create(&[("outcome", "accepted")]).inc_by(files);
        if duplicates > 0 {
            self.uploads.get_or_create(&[("outcome", "duplicate")]).inc_by(duplicates);
        }
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

    /// Counts `count` of the reconciler's `action`s.
    pub fn reconciled(&self, action: &'static str, count: u64) {
        self.reconciler.get_or_create(&[("action", action)]).inc_by(count);
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
    pub fn render(&self, gauges: &Gauges) -> String {
        if let Some(jobs) = gauges.in_outbox {
            self.in_outbox.set(i64::try_from(jobs).unwrap_or(i64::MAX));
        }
        if let Some(jobs) = gauges.in_embedded_queue {
            self.in_embedded_queue.set(i64::try_from(jobs).unwrap_or(i64::MAX));
        }
        if let Some(free) = gauges.free_bytes {
            self.free_bytes.set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        if let Some((messages, consumers)) = gauges.queue {
            self.queue_messages.set(i64::from(messages));
            self.queue_consumers.set(i64::from(consumers));
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
