//! The names and arguments of the queues both sides declare on the broker.
//!
//! Both the web server and the workers declare the same topology, so either
//! may start first. Declaring it with other arguments than an existing queue
//! has makes the broker refuse (PRECONDITION_FAILED): change them only here.

/// The queues of one deployment, all named after the resize queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    queue: String,
    retry_delays: RetryDelays,
}

/// How long a failed try waits before the next, in seconds: one delay between
/// each two of the [`crate::ResizeJob::MAX_ATTEMPTS`] tries. Growing by
/// default (1, 5, 30 and 120 s), so that a fault that clears within a few
/// minutes (a store that times out, a decoder killed for memory) never fails
/// an image, and one that does not clear is not tried at full speed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDelays(Vec<u64>);

impl RetryDelays {
    /// The wait after try number `attempt` (from 0) failed.
    pub fn after(&self, attempt: u32) -> std::time::Duration {
        std::time::Duration::from_secs(self.0[(attempt as usize).min(self.0.len() - 1)])
    }

    pub fn secs(&self) -> &[u64] {
        &self.0
    }
}

impl Default for RetryDelays {
    fn default() -> Self {
        Self(vec![1, 5, 30, 120])
    }
}

impl std::str::FromStr for RetryDelays {
    type Err = String;

    /// "1,5,30,120": as many delays as there are gaps between tries, each 1 s to a day.
    fn from_str(text: &str) -> Result<Self, String> {
        let wanted = crate::ResizeJob::MAX_ATTEMPTS as usize - 1;
        let delays = text
            .split(',')
            .map(|delay| delay.trim().parse::<u64>().map_err(|_| format!("{delay:?} is not a number of seconds")))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() != wanted {
            return Err(format!("give {wanted} delays, one between each two of the {} tries, e.g. 1,5,30,120", wanted + 1));
        }
        if let Some(delay) = delays.iter().find(|delay| !(1..=86_400).contains(*delay)) {
            return Err(format!("{delay} s: each delay is 1 s to a day"));
        }
        Ok(Self(delays))
    }
}

impl std::fmt::Display for RetryDelays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let delays: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&delays.join(","))
    }
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
        Self { queue: queue.into(), retry_delays: RetryDelays::default() }
    }

    /// This topology, its failed tries waiting `retry_delays`.
    pub fn with_retry_delays(mut self, retry_delays: RetryDelays) -> Self {
        self.retry_delays = retry_delays;
        self
    }

    pub fn retry_delays(&self) -> &RetryDelays {
        &self.retry_delays
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

    /// The queue a job waits in for `delay_secs` (one of its
    /// [`RetryDelays`]) after a failed try, before it goes back to the resize
    /// queue: one queue per delay, since a queue expires only the message at
    /// its head (and named by it, so that other delays are other queues).
    pub fn retry_queue(&self, delay_secs: u64) -> String {
        format!("{}.retry.{delay_secs}s", self.queue)
    }

    /// The arguments of a retry queue: each message expires after `delay_secs`
    /// and is dead-lettered, at least once, to the resize queue.
    pub fn retry_queue_arguments(&self, delay_secs: u64) -> Vec<(&'static str, ArgumentValue)> {
        vec![
            ("x-queue-type", ArgumentValue::Text("quorum".into())),
            ("x-message-ttl", ArgumentValue::Int(delay_secs as i64 * 1000)),
            ("x-dead-letter-exchange", ArgumentValue::Text(String::new())),
            ("x-dead-letter-routing-key", ArgumentValue::Text(self.queue.clone())),
            ("x-dead-letter-strategy", ArgumentValue::Text("at-least-once".into())),
            ("x-overflow", ArgumentValue::Text("reject-publish".into())),
        ]
    }

    /// Every queue of this topology (the events queues of web servers go with their connections):
    /// what to delete to remove a deployment's queues.
    pub fn queues(&self) -> Vec<String> {
        let retries = self.retry_delays.secs().iter().map(|&delay_secs| self.retry_queue(delay_secs));
        [self.queue.clone(), self.dead_letter_queue()].into_iter().chain(retries).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_are_one_per_gap_between_tries_each_a_second_to_a_day() {
        let delays: RetryDelays = "1, 5,30,120".parse().unwrap();
        assert_eq!(delays, RetryDelays::default());
        assert_eq!(delays.to_string(), "1,5,30,120");
        assert_eq!((delays.after(0).as_secs(), delays.after(3).as_secs(), delays.after(9).as_secs()), (1, 120, 120));
        for bad in ["1,5,30", "1,5,30,120,600", "0,5,30,120", "1,5,30,100000", "1,five,30,120", ""] {
            assert!(bad.parse::<RetryDelays>().is_err(), "{bad}");
        }
    }
}
