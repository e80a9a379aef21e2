//! What the web server and the workers must agree on, and nothing else.
//!
//! This crate deliberately depends on neither axum, lapin nor image: it is the
//! contract between the two sides, readable on its own.
//! - [`job`]: the `resize` job message and its version.
//! - [`topology`]: the names and arguments of the queues on the broker.
//! - [`storage`]: where every file lives in the data directory.
//! - [`sizes`]: the three thumbnail sizes and their bounding boxes.
//! - [`format`]: the accepted upload formats, recognised by their first bytes.
//! - [`limits`]: how large an image may be, for both sides.
//! - [`failure`]: how a worker records that a job failed for good.
//! - [`event`]: what a worker announces when an image is finished.
//! - [`manifest`]: `thumbq.json`, what the data directory was set up with.
//! - [`timeline`]: when each step of an image's way happened, and who did it.
//! - [`owner`]: who owns an image, known by a hash of their secret key.

pub mod event;
pub mod failure;
pub mod format;
pub mod job;
pub mod limits;
pub mod manifest;
pub mod owner;
pub mod sizes;
pub mod storage;
pub mod timeline;
pub mod topology;
pub mod trace;

pub use event::{EventState, ImageEvent};
pub use failure::FailureRecord;
pub use format::{SourceFormat, ThumbFormat};
pub use job::{JobDecodeError, ResizeJob};
pub use limits::{DimensionError, MediaLimits};
pub use manifest::Manifest;
pub use owner::{OwnerId, OwnerRecord};
pub use sizes::{Sizes, SizesError, ThumbSize};
pub use storage::{ImageId, Listing, Storage, StorageKey, TIMELINE_SIDES, UploadId};
pub use timeline::{Step, Timeline};
pub use topology::{RetryDelays, Topology};
pub use trace::TraceParent;
