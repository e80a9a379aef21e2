//! The names and arguments of the queues both sides declare on the broker.
//!
//! Both the web server and the workers declare the same topology, so either
//! may start first. Declaring it with other arguments than an existing queue
//! has makes the broker refuse (PRECONDITION_FAILED): change them only here.

/// The queues of one deployment, all named after the resize queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    queue: String,
}

/// A queue argument's value, kept free of any AMQP library's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgumentValue {
    Text(String),
    Int(i64),
}

impl Topology {
    /// The default name of the resize queue.
    pub const DEFAULT_QUEUE: &'static str = "thumbq.resize";

    /// The broker's own limit on redeliveries: one more than the workers'
    /// [`crate::ResizeJob::MAX_ATTEMPTS`], so that after a worker died on the
    /// last try, one more delivery lets a worker record why the job was given up.
    pub const DELIVERY_LIMIT: i64 = crate::ResizeJob::MAX_ATTEMPTS as i64 + 1;

    pub fn new(queue: impl Into<String>) -> Self {
        Self { queue: queue.into() }
    }

    /// Checks a queue name given in the settings; the error says what is wrong with it.
    pub fn check_queue_name(name: &str) -> Result<String, String> {
        if name.is_empty() || name.len() > 200 {
            return Err("a queue name has 1 to 200 bytes".into());
        }
        if name.starts_with("amq.") {
            return Err("names starting with `amq.` are reserved by the broker".into());
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c)) {
            return Err("use only ASCII letters, digits and . _ - :".into());
        }
        Ok(name.to_owned())
    }

    /// The durable quorum queue the `resize` jobs go to.
    pub fn resize_queue(&self) -> &str {
        &self.queue
    }

    /// The fanout exchange a job goes to once it is rejected or over its delivery limit.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    /// The fanout exchange workers announce finished images on; each web
    /// server binds a queue of its own to it and tells the browsers.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.queue)
    }

    /// The durable queue where dead-lettered jobs wait for an operator.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// The arguments of the resize queue: a quorum queue (replicated, and it
    /// counts deliveries) with a delivery limit and at-least-once dead-lettering.
    pub fn resize_queue_arguments(&self) -> Vec<(&'static str, ArgumentValue)> {
        vec![
            ("x-queue-type", ArgumentValue::Text("quorum".into())),
            ("x-delivery-limit", ArgumentValue::Int(Self::DELIVERY_LIMIT)),
            ("x-dead-letter-exchange", ArgumentValue::Text(self.dead_letter_exchange())),
            // At-least-once dead-lettering keeps a job until the dead-letter queue has it;
            // RabbitMQ requires reject-publish overflow for it.
            ("x-dead-letter-strategy", ArgumentValue::Text("at-least-once".into())),
            ("x-overflow", ArgumentValue::Text("reject-publish".into())),
        ]
    }

    /// The arguments of the dead-letter queue.
    pub fn dead_letter_queue_arguments(&self) -> Vec<(&'static str, ArgumentValue)> {
        vec![("x-queue-type", ArgumentValue::Text("quorum".into()))]
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new(Self::DEFAULT_QUEUE)
    }
}
