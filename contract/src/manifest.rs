//! `thumbq.json` at the top of the data directory: written by the first web
//! server that starts on it, read by every process after.
//!
//! It marks the directory as thumbq's, so that a worker started on the wrong
//! path (or an unmounted share) refuses to start instead of failing every job
//! "the upload is gone"; and it holds the settings both sides must agree on
//! (thumbnail sizes, media limits), so that a mismatch stops a start with a
//! message instead of making thumbnails nobody asked for.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{MediaLimits, Sizes};

/// What the data directory was set up with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The layout of the data directory (see [`crate::storage`]); bumped when it changes.
    pub layout: u32,
    /// The thumbnail sizes, as `--sizes` writes them.
    pub sizes: String,
    pub max_file_bytes: u64,
    pub max_side_px: u32,
    pub max_pixels: u64,
}

impl Manifest {
    pub const LAYOUT: u32 = 1;

    pub fn new(sizes: &Sizes, limits: &MediaLimits) -> Self {
        Self {
            layout: Self::LAYOUT,
            sizes: sizes.to_string(),
            max_file_bytes: limits.max_file_bytes,
            max_side_px: limits.max_side_px,
            max_pixels: limits.max_pixels,
        }
    }

    /// Why a worker with `sizes` and `limits` cannot work on this directory:
    /// other thumbnail sizes, or limits that would refuse images the web server accepts.
    pub fn worker_mismatch(&self, sizes: &Sizes, limits: &MediaLimits) -> Option<String> {
        let mut problems = Vec::new();
        if self.layout != Self::LAYOUT {
            problems.push(format!("the directory's layout is version {}, this worker knows version {}", self.layout, Self::LAYOUT));
        }
        if self.sizes != sizes.to_string() {
            problems.push(format!("--sizes is {sizes}, the directory's is {}", self.sizes));
        }
        if limits.max_file_bytes < self.max_file_bytes {
            problems.push(format!("--max-upload-bytes is {}, below the web server's {}", limits.max_file_bytes, self.max_file_bytes));
        }
        if limits.max_side_px < self.max_side_px {
            problems.push(format!("--max-side-px is {}, below the web server's {}", limits.max_side_px, self.max_side_px));
        }
        if limits.max_pixels < self.max_pixels {
            problems.push(format!("--max-pixels is {}, below the web server's {}", limits.max_pixels, self.max_pixels));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--sizes {} --max-upload-bytes {} --max-side-px {} --max-pixels {}", self.sizes, self.max_file_bytes, self.max_side_px, self.max_pixels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_must_make_the_same_sizes_and_accept_what_the_web_server_accepts() {
        let manifest = Manifest::new(&Sizes::default(), &MediaLimits::default());
        assert_eq!(manifest.worker_mismatch(&Sizes::default(), &MediaLimits::default()), None);
        let bigger = MediaLimits { max_pixels: MediaLimits::default().max_pixels * 2, ..MediaLimits::default() };
        assert_eq!(manifest.worker_mismatch(&Sizes::default(), &bigger), None, "a worker may accept more");
        let smaller = MediaLimits { max_pixels: 1000, ..MediaLimits::default() };
        assert!(manifest.worker_mismatch(&Sizes::default(), &smaller).unwrap().contains("--max-pixels"));
        let other_sizes: Sizes = "small=100,medium=600,large=1200".parse().unwrap();
        assert!(manifest.worker_mismatch(&other_sizes, &MediaLimits::default()).unwrap().contains("--sizes"));
    }
}
