//! Table 2: how close each side's thumbnails (ours, libvips in-process,
//! sharp) are to a slow, careful reference.
//!
//! The reference decodes the whole image (the `image` crate) and resizes it
//! straight to each thumbnail's dimensions with Lanczos 3 (`fast_image_resize`,
//! in gamma-encoded sRGB like every side); it is compared unencoded. Every
//! side's thumbnails are JPEGs at quality 85, decoded again for the comparison.
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
use crate::reference::SelfTimed;
use crate::sharp::Sharp;
use crate::ssim::{Plane, ssim};
use crate::table::{self, MISSING};

/// A side compared with ours: its label, the program that makes its
/// thumbnails (`None` when it is not installed), and whether the table says if ours scores as well.
type Side<'a> = (&'a str, Option<&'a SelfTimed>, bool);

pub fn run(images: &[&TestImage], libvips: Option<&SelfTimed>, sharp: &Sharp, workdir: &Path) -> anyhow::Result<()> {
    let sizes = Sizes::default();
    let sides: [Side; 3] = [("libvips", libvips, true), ("sharp", Some(&sharp.plain), true), ("sharp + mozjpeg", Some(&sharp.mozjpeg), false)];
    table::heading(
        "Quality",
        "SSIM on luma (Wang et al. 2004: 11×11 Gaussian window, σ = 1.5) of each JPEG thumbnail (quality 85) against a full decode resized straight to that size with Lanczos 3; 1 is identical. The files' sizes show what each side spent for it.",
    );
    let mut columns = vec!["image".to_owned(), "size".into(), "SSIM ours".into()];
    for (label, _, compared) in sides {
        columns.push(format!("SSIM {label}"));
        if compared {
            columns.push(format!("ours ≥ {label}?"));
        }
    }
    columns.push("file ours (KiB)".into());
    columns.extend(sides.iter().map(|(label, _, _)| format!("file {label} (KiB)")));
    table::header(&columns.iter().map(String::as_str).collect::<Vec<_>>());
    for image in images {
        let full = image::load_from_memory(&image.bytes).context("the test image decodes")?.into_rgb8();
        let mut references = References { full, by_dimensions: HashMap::new() };
        let ours = make_thumbnails(&image.bytes, image.format, &sizes, &MediaLimits::default())?;
        let input = image.write_into(workdir)?;
        // Each side's thumbnails, written into a directory of its own.
        let theirs = sides
            .iter()
            .map(|(_, program, _)| match program {
                Some(program) => {
                    let outputs = tempfile::tempdir_in(workdir)?;
                    program.runs(&input, 1, &sizes, Some(outputs.path()))?;
                    Ok(Some(outputs))
                }
                None => Ok(None),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for size in ThumbSize::ALL.into_iter().rev() {
            let our_thumbnail = ours.iter().find(|thumbnail| thumbnail.size == size).context("a thumbnail of every size")?;
            let our_score = shown(references.score(&our_thumbnail.bytes)?);
            let kib = |bytes: &[u8]| format!("{:.1}", bytes.len() as f64 / 1024.0);
            let mut cells = vec![image.name.clone(), size.to_string(), format!("{our_score:.4}")];
            let mut files = vec![kib(&our_thumbnail.bytes)];
            for ((_, _, compared), outputs) in sides.iter().zip(&theirs) {
                let their_thumbnail = match outputs {
                    Some(outputs) => Some(std::fs::read(outputs.path().join(format!("{size}.jpg")))?),
                    None => None,
                };
                let their_score = match &their_thumbnail {
                    Some(bytes) => Some(shown(references.score(bytes)?)),
                    None => None,
                };
                cells.push(their_score.map_or(MISSING.into(), |score| format!("{score:.4}")));
                if *compared {
                    cells.push(their_score.map_or(MISSING.into(), |score| if our_score >= score { "yes".into() } else { "no".into() }));
                }
                files.push(their_thumbnail.as_deref().map_or(MISSING.into(), kib));
            }
            cells.extend(files);
            table::row(&cells);
        }
    }
    table::note(
        "sharp runs with its defaults, `fastShrinkOnLoad` among them: JPEGs are shrunk on load as far as the DCT allows, which its documentation says can leave a slight moiré; the zone plate shows it.",
    );
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
