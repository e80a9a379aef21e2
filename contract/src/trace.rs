//! One upload's trace context, in the W3C `traceparent` form
//! (`00-{trace id}-{parent id}-01`). The web server makes it when it stores
//! an upload, logs it, and sends it in the job's message headers and in the
//! job itself (so that a job relayed from the outbox keeps it); the worker
//! logs it on every line of the job. An upload's lines in every process share
//! one trace id, and a tracing backend that reads `traceparent` joins them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The message header that carries it, as W3C Trace Context names it.
pub const HEADER: &str = "traceparent";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
}

impl TraceParent {
    /// A new trace, with random ids (a v4 UUID's 122 random bits; never zero, which the format forbids).
    pub fn new() -> Self {
        Self { trace_id: uuid::Uuid::new_v4().as_u128(), parent_id: uuid::Uuid::new_v4().as_u64_pair().1.max(1) }
    }

    /// The 32 hex digits that name the trace.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl Default for TraceParent {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Version 00, sampled.
        write!(f, "00-{:032x}-{:016x}-01", self.trace_id, self.parent_id)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a W3C traceparent: {0:?}")]
pub struct NotATraceParent(String);

impl FromStr for TraceParent {
    type Err = NotATraceParent;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = || NotATraceParent(text.chars().take(64).collect());
        let parts: Vec<&str> = text.split('-').collect();
        let [version, trace, parent, flags] = parts[..] else { return Err(refuse()) };
        let hex = |part: &str, digits: usize| part.len() == digits && part.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        if version != "00" || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
            return Err(refuse());
        }
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| refuse())?;
        let parent_id = u64::from_str_radix(parent, 16).map_err(|_| refuse())?;
        if trace_id == 0 || parent_id == 0 {
            return Err(refuse());
        }
        Ok(Self { trace_id, parent_id })
    }
}

impl TryFrom<String> for TraceParent {
    type Error = NotATraceParent;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<TraceParent> for String {
    fn from(trace: TraceParent) -> Self {
        trace.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_written_and_names_its_trace() {
        let trace = TraceParent::new();
        let text = trace.to_string();
        assert_eq!(text.len(), 55, "{text}");
        assert!(text.starts_with(&format!("00-{}-", trace.trace_id())) && text.ends_with("-01"), "{text}");
        assert_eq!(text.parse::<TraceParent>().unwrap(), trace);
        assert_ne!(TraceParent::new().trace_id(), trace.trace_id(), "each upload its own trace");
    }

    #[test]
    fn malformed_or_zero_ids_are_refused() {
        for text in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        ] {
            assert!(text.parse::<TraceParent>().is_err(), "{text}");
        }
        assert!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse::<TraceParent>().is_ok());
    }
}
