//! What is announced when an image is finished or deleted, so that pages update at once.

use serde::{Deserialize, Serialize};

use crate::ImageId;

/// Announced on the events exchange after a job is settled; best effort:
/// pages that miss one still learn the state by polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEvent {
    pub image_id: ImageId,
    pub state: EventState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// All three thumbnails are written.
    Done,
    /// The job failed for good; the failure record says why.
    Failed,
    /// Its owner (or an operator) deleted the image; announced by the web server.
    Deleted,
}

impl ImageEvent {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}
