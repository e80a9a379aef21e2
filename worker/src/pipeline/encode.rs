//! Thumbnails' pixels to bytes: JPEG (libjpeg-turbo), PNG where there is
//! transparency, and the ThumbHash placeholder.

use std::time::Instant;

use fast_image_resize::Resizer;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{DynamicImage, ImageEncoder};
use thumbq_contract::{ThumbFormat, ThumbSize};

use super::jpeg;
use super::planar::Pixels;
use super::resize::resize_interleaved;
use super::{PipelineError, StageTimes, Thumbnail};

pub(super) fn encode(compressor: &mut turbojpeg::Compressor, size: ThumbSize, image: &Pixels, times: &mut StageTimes) -> Result<Thumbnail, PipelineError> {
    let started = Instant::now();
    let bytes = match image {
        Pixels::Interleaved(image) => jpeg::encode(compressor, image)?,
        Pixels::Planar(planes) => jpeg::encode_planes(compressor, planes)?,
    };
    times.encode += started.elapsed();
    Ok(Thumbnail { size, format: ThumbFormat::Jpeg, width: image.width(), height: image.height(), bytes })
}

pub(super) fn encode_png(size: ThumbSize, image: &DynamicImage, times: &mut StageTimes) -> Result<Thumbnail, PipelineError> {
    let started = Instant::now();
    let bytes = png_bytes(image)?;
    times.encode += started.elapsed();
    Ok(Thumbnail { size, format: ThumbFormat::Png, width: image.width(), height: image.height(), bytes })
}

/// A thumbnail's pixels as the worker's JPEG (libjpeg-turbo, [`jpeg::QUALITY`]), for the benchmark's comparisons.
pub fn encode_jpeg(image: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    jpeg::encode(&mut jpeg::compressor()?, image)
}

/// The ThumbHash of an upright, sRGB thumbnail: from a copy at most 100 pixels a side, as the format wants.
pub(super) fn placeholder(resizer: &mut Resizer, small: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    const SIDE: u32 = 100;
    let (width, height) = (small.width(), small.height());
    let scale = f64::from(SIDE) / f64::from(width.max(height));
    let tiny = if scale < 1.0 {
        let fit = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, SIDE);
        resize_interleaved(resizer, small, fit(width), fit(height))?
    } else {
        small.clone()
    };
    let rgba = tiny.to_rgba8();
    Ok(thumbhash::rgba_to_thumb_hash(rgba.width() as usize, rgba.height() as usize, rgba.as_raw()))
}

/// PNG keeps the alpha channel. Fast compression: the `image` crate's
/// default level takes ten times as long for files a few percent smaller.
pub(super) fn png_bytes(image: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
        .write_image(image.as_bytes(), image.width(), image.height(), image.color().into())
        .map_err(|error| PipelineError::Internal(error.to_string()))?;
    Ok(out)
}
