//! One decode per upload, with the limits checked against the header before
//! any pixel buffer is allocated.
//!
//! JPEG goes through libjpeg-turbo ([`super::jpeg`]), scaled in the DCT.
//! PNG, GIF and WebP go through the `image` crate, which gives the first
//! frame of an animation. So do JPEGs that libjpeg-turbo refuses over what it
//! calls a warning (a file cut short, say): the `image` crate's decoder shows
//! what arrived, which beats no thumbnail at all.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use thumbq_contract::{MediaLimits, SourceFormat};

use super::{PipelineError, jpeg};

/// A decoded image, before it is resized, turned upright and made sRGB.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels, possibly at a reduced scale, in the file's orientation.
    pub image: DynamicImage,
    /// The original's size, which the thumbnails' sizes are computed from.
    pub width: u32,
    pub height: u32,
    /// How to turn the image upright (EXIF).
    pub orientation: Orientation,
    /// The ICC profile of the pixels; `None` means they are sRGB already.
    pub icc: Option<Vec<u8>>,
}

/// Decodes `bytes`, keeping at least `keep_side` pixels on the longest side
/// where the format can decode at a reduced scale.
pub fn decode(bytes: &[u8], format: SourceFormat, limits: &MediaLimits, keep_side: u32) -> Result<Decoded, PipelineError> {
    match format {
        SourceFormat::Jpeg => jpeg::decode(bytes, limits, keep_side).or_else(|error| match error {
            PipelineError::Corrupt { detail: strict, .. } => decode_with_image_crate(bytes, format, limits).map_err(|error| match error {
                PipelineError::Corrupt { format, detail } => PipelineError::Corrupt { format, detail: format!("{strict}; {detail}") },
                other => other,
            }),
            other => Err(other),
        }),
        _ => decode_with_image_crate(bytes, format, limits),
    }
}

fn decode_with_image_crate(bytes: &[u8], format: SourceFormat, limits: &MediaLimits) -> Result<Decoded, PipelineError> {
    let image_format = match format {
        SourceFormat::Jpeg => ImageFormat::Jpeg,
        SourceFormat::Png => ImageFormat::Png,
        SourceFormat::Gif => ImageFormat::Gif,
        SourceFormat::Webp => ImageFormat::WebP,
    };
    let failed = |error| describe(error, format.name());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side_px);
    decoder_limits.max_image_height = Some(limits.max_side_px);
    // Room for the decoded image at 16 bits and four channels, plus the decoder's own buffers.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(failed)?;
    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height)?;
    // A broken EXIF block or profile is no reason to refuse a photo: show it unturned, as sRGB.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().unwrap_or_default();
    let image = DynamicImage::from_decoder(decoder).map_err(failed)?;
    Ok(Decoded { image, width, height, orientation, icc })
}

fn describe(error: image::ImageError, format: &'static str) -> PipelineError {
    use image::ImageError;
    use image::error::LimitErrorKind;
    match error {
        ImageError::Limits(limit) => match limit.kind() {
            LimitErrorKind::DimensionError => PipelineError::DimensionsOverLimits,
            _ => PipelineError::OverMemoryLimit,
        },
        ImageError::Unsupported(detail) => PipelineError::Unsupported { format, detail: detail.to_string() },
        ImageError::Decoding(detail) => PipelineError::Corrupt { format, detail: detail.to_string() },
        ImageError::IoError(detail) => PipelineError::Corrupt { format, detail: detail.to_string() },
        other => PipelineError::Internal(other.to_string()),
    }
}
