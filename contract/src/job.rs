//! The `resize` job: the one message the web server sends to the workers.

use serde::{Deserialize, Serialize};

use crate::{ImageId, SourceFormat, TraceParent};

/// Asks a worker to make the thumbnails of one stored upload.
///
/// The message is JSON so that an operator can read it in the broker's UI.
/// Running the same job twice is harmless: it writes the same files again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeJob {
    /// Bumped whenever the meaning of a field changes; workers refuse versions they do not know.
    pub version: u32,
    pub image_id: ImageId,
    /// The format the web server recognised from the upload's first bytes.
    pub format: SourceFormat,
    /// When the upload was stored, in milliseconds since the Unix epoch, to measure upload→ready latency.
    pub uploaded_at_ms: u64,
    /// The upload's trace context, also sent as the message's `traceparent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceParent>,
}

/// Why a message body is not a job this worker can run.
#[derive(Debug, thiserror::Error)]
pub enum JobDecodeError {
    #[error("the message is not a resize job: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("the job has version {found}, this worker knows version {known}")]
    UnknownVersion { found: u32, known: u32 },
}

impl ResizeJob {
    pub const VERSION: u32 = 1;

    /// How many times a job is tried before it is given up on, its failure
    /// recorded and its message dead-lettered. A worker that died (or was
    /// killed) while holding the job counts as a try.
    pub const MAX_ATTEMPTS: u32 = 5;

    pub fn new(image_id: ImageId, format: SourceFormat, uploaded_at_ms: u64) -> Self {
        Self { version: Self::VERSION, image_id, format, uploaded_at_ms, traceparent: None }
    }

    /// The job of an upload traced as `trace`.
    pub fn traced(self, trace: TraceParent) -> Self {
        Self { traceparent: Some(trace), ..self }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, JobDecodeError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let Versioned { version } = serde_json::from_slice(bytes)?;
        if version != Self::VERSION {
            return Err(JobDecodeError::UnknownVersion { found: version, known: Self::VERSION });
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_survives_the_round_trip_through_bytes() {
        let job = ResizeJob::new(ImageId::new(), SourceFormat::Webp, 1_700_000_000_123);
        assert_eq!(ResizeJob::from_bytes(&job.to_bytes()).unwrap(), job);
    }

    #[test]
    fn a_traced_job_keeps_its_trace_and_an_untraced_one_has_no_field_for_it() {
        let trace = TraceParent::new();
        let job = ResizeJob::new(ImageId::new(), SourceFormat::Jpeg, 5).traced(trace);
        assert_eq!(ResizeJob::from_bytes(&job.to_bytes()).unwrap().traceparent, Some(trace));
        assert!(String::from_utf8(job.to_bytes()).unwrap().contains(&format!(r#""traceparent":"{trace}""#)));
        // A job from before traces, or with a broken one, is no job this worker can trust.
        let untraced = ResizeJob::new(ImageId::new(), SourceFormat::Jpeg, 5);
        assert_eq!(ResizeJob::from_bytes(&untraced.to_bytes()).unwrap().traceparent, None);
        let broken = String::from_utf8(untraced.to_bytes()).unwrap().replace('}', r#","traceparent":"nonsense"}"#);
        assert!(ResizeJob::from_bytes(broken.as_bytes()).is_err());
    }

    #[test]
    fn the_wire_form_is_readable_json() {
        let id: ImageId = "0190b6a4-7c1e-7000-8000-000000000001".parse().unwrap();
        let job = ResizeJob::new(id, SourceFormat::Jpeg, 5);
        assert_eq!(
            String::from_utf8(job.to_bytes()).unwrap(),
            r#"{"version":1,"image_id":"0190b6a4-7c1e-7000-8000-000000000001","format":"jpeg","uploaded_at_ms":5}"#
        );
    }

    #[test]
    fn a_job_of_an_unknown_version_is_refused() {
        let body = br#"{"version":2,"image_id":"0190b6a4-7c1e-7000-8000-000000000001","format":"jpeg","uploaded_at_ms":5,"new":1}"#;
        assert!(matches!(ResizeJob::from_bytes(body), Err(JobDecodeError::UnknownVersion { found: 2, known: 1 })));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(ResizeJob::from_bytes(b"\x00garbage"), Err(JobDecodeError::Malformed(_))));
        assert!(ResizeJob::from_bytes(br#"{"version":1,"image_id":"../../etc","format":"jpeg","uploaded_at_ms":5}"#).is_err());
    }
}
