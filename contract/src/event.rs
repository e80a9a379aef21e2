//! What is announced when an image is finished or deleted, so that pages update at once.

use serde::{Deserialize, Serialize};

use crate::{ImageId, ThumbSize};

/// Announced on the events exchange; best effort: pages that miss one still
/// learn the state by polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEvent {
    pub image_id: ImageId,
    pub state: EventState,
    /// Which size, with [`EventState::Written`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ThumbSize>,
    /// The image's ThumbHash in base64, with the first size written: pages paint it in the slots still waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// One size is written, before the job is settled: pages show it while
    /// the larger ones are still being made.
    Written,
    /// All three thumbnails are written and the job is settled.
    Done,
    /// The job failed for good; the failure record says why.
    Failed,
    /// Its owner (or an operator) deleted the image; announced by the web server.
    Deleted,
}

impl ImageEvent {
    pub fn new(image_id: ImageId, state: EventState) -> Self {
        Self { image_id, state, size: None, placeholder: None }
    }

    pub fn written(image_id: ImageId, size: ThumbSize, placeholder: Option<String>) -> Self {
        Self { image_id, state: EventState::Written, size: Some(size), placeholder }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_event_names_its_size_and_others_need_none() {
        let id = ImageId::new();
        let written = ImageEvent::written(id, ThumbSize::Small, None);
        assert_eq!(ImageEvent::from_bytes(&written.to_bytes()), Some(written.clone()));
        assert!(String::from_utf8(written.to_bytes()).unwrap().contains(r#""state":"written","size":"small""#));
        // What workers announced before sizes were announced one by one.
        let done = format!(r#"{{"image_id":"{id}","state":"done"}}"#);
        assert_eq!(ImageEvent::from_bytes(done.as_bytes()), Some(ImageEvent::new(id, EventState::Done)));
        // A state this side does not know yet is ignored, not misread.
        assert_eq!(ImageEvent::from_bytes(format!(r#"{{"image_id":"{id}","state":"resized"}}"#).as_bytes()), None);
    }

    #[test]
    fn the_first_size_written_may_bring_the_placeholder() {
        let written = ImageEvent::written(ImageId::new(), ThumbSize::Small, Some("1QcSHQRnh493V4dIh4eXh1h4kJUI".into()));
        assert!(String::from_utf8(written.to_bytes()).unwrap().contains(r#""placeholder":"1QcSHQRnh493V4dIh4eXh1h4kJUI""#));
        assert_eq!(ImageEvent::from_bytes(&written.to_bytes()), Some(written));
    }
}
