//! Table 2: how close each side's thumbnails are to a slow, careful reference.
//!
//! The reference decodes the whole image (the `image` crate) and resizes it
//! straight to each thumbnail's dimensions with Lanczos 3 (`fast_image_resize`,
//! in gamma-encoded sRGB like both sides); it is compared unencoded. Both
//! sides' thumbnails are JPEGs at quality 85, decoded again for the comparison.
//! Each thumbnail is compared with a reference of its own dimensions, so a
//! side that rounds a size the other way is not penalised for it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use thumbq_contract::{MediaLimits, Sizes, ThumbSize};
use thumbq_worker::pipeline::make_thumbnails;

use crate::images::TestImage;
use crate::libvips::InProcess;
use crate::ssim::{Plane, ssim};
use crate::table::{self, MISSING};

pub fn run(images: &[&TestImage], libvips: Option<&InProcess>, workdir: &Path) -> anyhow::Result<()> {
    let sizes = Sizes::default();
    table::heading(
        "Quality",
        "SSIM on luma (Wang et al. 2004: 11×11 Gaussian window, σ = 1.5) of each JPEG thumbnail (quality 85) against a full decode resized straight to that size with Lanczos 3; 1 is identical. The files' sizes show what each side spent for it.",
    );
    table::header(&["image", "size", "SSIM ours", "SSIM libvips", "ours ≥ libvips?", "file ours (KiB)", "file libvips (KiB)"]);
    for image in images {
        let full = image::load_from_memory(&image.bytes).context("the test image decodes")?.into_rgb8();
        let mut references = References { full, by_dimensions: HashMap::new() };
        let ours = make_thumbnails(&image.bytes, image.format, &sizes, &MediaLimits::default())?;
        let theirs = match libvips {
            Some(libvips) => {
                let outputs = tempfile::tempdir_in(workdir)?;
                libvips.runs(&image.write_into(workdir)?, 1, &sizes, Some(outputs.path()))?;
                Some(outputs)
            }
            None => None,
        };
        for size in ThumbSize::ALL.into_iter().rev() {
            let our_thumbnail = ours.iter().find(|thumbnail| thumbnail.size == size).context("a thumbnail of every size")?;
            let our_score = shown(references.score(&our_thumbnail.bytes)?);
            let their_thumbnail = match &theirs {
                Some(outputs) => Some(std::fs::read(outputs.path().join(format!("{size}.jpg")))?),
                None => None,
            };
            let their_score = match &their_thumbnail {
                Some(bytes) => Some(shown(references.score(bytes)?)),
                None => None,
            };
            let kib = |bytes: &[u8]| format!("{:.1}", bytes.len() as f64 / 1024.0);
            table::row(&[
                image.name.clone(),
                size.to_string(),
                format!("{our_score:.4}"),
                their_score.map_or(MISSING.into(), |score| format!("{score:.4}")),
                their_score.map_or(MISSING.into(), |score| if our_score >= score { "yes".into() } else { "no".into() }),
                kib(&our_thumbnail.bytes),
                their_thumbnail.as_deref().map_or(MISSING.into(), kib),
            ]);
        }
    }
    Ok(())
}

/// A score as the table shows it, to 4 decimals, so that "ours ≥ libvips?"
/// agrees with the numbers beside it.
fn shown(score: f64) -> f64 {
    (score * 10_000.0).round() / 10_000.0
}

/// The reference thumbnails of one image, made once per dimensions.
struct References {
    full: RgbImage,
    by_dimensions: HashMap<(u32, u32), Plane>,
}

impl References {
    /// The SSIM of the encoded thumbnail `bytes` against the reference of its dimensions.
    fn score(&mut self, bytes: &[u8]) -> anyhow::Result<f64> {
        let thumbnail = Plane::luma(&image::load_from_memory(bytes).context("a thumbnail decodes")?.into_rgb8());
        let (width, height) = thumbnail.dimensions();
        let full = &self.full;
        let reference = self.by_dimensions.entry((width, height)).or_insert_with(|| lanczos3(full, width, height));
        Ok(ssim(reference, &thumbnail))
    }
}

/// The luma of `full` resized to `width`×`height` with Lanczos 3.
fn lanczos3(full: &RgbImage, width: u32, height: u32) -> Plane {
    let mut resized = RgbImage::new(width, height);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(full, &mut resized, &options).expect("an RGB image resizes into another");
    Plane::luma(&resized)
}
