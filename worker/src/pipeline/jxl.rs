//! JPEG XL through jxl-oxide: pure Rust, one thread (built without rayon).
//!
//! The codestream's orientation is applied in rendering, so the pixels come out
//! upright and any EXIF orientation in the file is not applied again.

use image::metadata::Orientation;
use image::{DynamicImage, GrayAlphaImage, GrayImage, RgbImage, RgbaImage};
use jxl_oxide::{AllocTracker, JxlImage};
use thumbq_contract::{MediaLimits, SourceFormat};

use super::PipelineError;
use super::decode::Decoded;

/// The CICP code points of sRGB: BT.709 primaries, the sRGB curve, RGB, full range.
const SRGB_CICP: [u8; 4] = [1, 13, 0, 1];

pub fn decode(bytes: &[u8], limits: &MediaLimits) -> Result<Decoded, PipelineError> {
    let damaged = |error: Box<dyn std::error::Error + Send + Sync>| {
        if out_of_memory(error.as_ref()) {
            return PipelineError::OverMemoryLimit;
        }
        PipelineError::Corrupt { format: SourceFormat::Jxl.name(), detail: error.to_string() }
    };
    // The decoder's own buffers, an f32 per sample, for the largest image allowed with alpha, and room for its
    // groups: it runs in the worker's process, beside the other jobs, so its budget is kept near what it needs.
    let budget = usize::try_from(limits.max_pixels.saturating_mul(16).saturating_add(64 << 20)).unwrap_or(usize::MAX);
    let mut image = JxlImage::builder().alloc_tracker(AllocTracker::with_limit(budget)).read(bytes).map_err(damaged)?;
    let (width, height) = (image.width(), image.height());
    limits.check_dimensions(width, height)?;
    if image.pixel_format().has_black() {
        // CMYK: let jxl-oxide's colour management make it sRGB.
        image.set_cms(jxl_oxide::Moxcms);
        image.request_color_encoding(jxl_oxide::EnumColourEncoding::srgb(jxl_oxide::RenderingIntent::Relative));
    }
    // Colour is converted later, on the thumbnail, where it costs less.
    let icc = (image.rendered_cicp() != Some(SRGB_CICP)).then(|| image.rendered_icc());
    let render = image.render_frame(0).map_err(damaged)?;
    let mut stream = render.stream();
    let (width, height, channels) = (stream.width(), stream.height(), stream.channels());
    let mut samples = vec![0u8; width as usize * height as usize * channels as usize];
    stream.write_to_buffer(&mut samples);
    let image = match channels {
        1 => GrayImage::from_raw(width, height, samples).map(DynamicImage::ImageLuma8),
        2 => GrayAlphaImage::from_raw(width, height, samples).map(DynamicImage::ImageLumaA8),
        3 => RgbImage::from_raw(width, height, samples).map(DynamicImage::ImageRgb8),
        4 => RgbaImage::from_raw(width, height, samples).map(DynamicImage::ImageRgba8),
        other => return Err(PipelineError::Unsupported { format: SourceFormat::Jxl.name(), detail: format!("{other} channels") }),
    }
    .expect("the buffer has the stream's size");
    Ok(Decoded { image: image.into(), width, height, orientation: Orientation::NoTransforms, icc, cut_off: false })
}

/// Whether jxl-oxide stopped at its allocation budget (its `OutOfMemory`, somewhere down the chain).
fn out_of_memory(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.to_string().starts_with("failed to allocate") {
            return true;
        }
        cause = error.source();
    }
    false
}
