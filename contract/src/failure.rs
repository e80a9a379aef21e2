//! How a job's permanent failure is recorded, so that the web side can tell the user.

use serde::{Deserialize, Serialize};

/// Written by a worker when a job cannot succeed; read by the web server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// A sentence a person can read, e.g. "the file is not a valid PNG image".
    pub reason: String,
    /// When the worker gave up, in milliseconds since the Unix epoch.
    pub failed_at_ms: u64,
    /// Whether trying again may help: the fault was thumbq's or its machine's
    /// (workers dying, time limits, errors), not the image's. Only these are
    /// offered for replay. Records from before this field count as retryable.
    #[serde(default = "retryable_by_default")]
    pub retryable: bool,
}

fn retryable_by_default() -> bool {
    true
}
