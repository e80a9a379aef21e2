//! Pixels to a thumbnail's size: Lanczos 3 with SIMD, on interleaved or
//! planar pixels, into the box of a size, then upright and sRGB.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use thumbq_contract::{Sizes, ThumbSize};

use super::PipelineError;
use super::colour;
use super::decode::Decoded;
use super::planar::Pixels;

/// The thumbnail of `size` from a decoded image: resized to fit its box
/// (computed on the original's upright size, so that a reduced decode cannot
/// change it by a rounding), then turned upright and made sRGB, which both
/// cost less on the thumbnail than on the original.
pub(super) fn upright_in_box(resizer: &mut Resizer, decoded: Decoded, sizes: &Sizes, size: ThumbSize) -> Result<Pixels, PipelineError> {
    let (upright_width, upright_height) = decoded.upright_size();
    let (width, height) = sizes.fit(size, upright_width, upright_height);
    let (width, height) = if decoded.is_turned() { (height, width) } else { (width, height) };
    let mut image = resize(resizer, &decoded.image, width, height)?;
    drop(decoded.image);
    image.apply_orientation(decoded.orientation);
    Ok(match (image, &decoded.icc) {
        (Pixels::Interleaved(image), Some(icc)) => Pixels::Interleaved(colour::to_srgb(image, icc)),
        (image, _) => image,
    })
}

/// 8 bits a channel, all a thumbnail needs; an alpha channel is kept only
/// when some pixel is less than fully opaque, so opaque images become JPEG.
pub(super) fn eight_bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => image,
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.into_luma8()),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => {
            let grey = image.into_luma_alpha8();
            if grey.pixels().all(|pixel| pixel.0[1] == u8::MAX) {
                DynamicImage::ImageLuma8(DynamicImage::ImageLumaA8(grey).into_luma8())
            } else {
                DynamicImage::ImageLumaA8(grey)
            }
        }
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgb32F(_) => DynamicImage::ImageRgb8(image.into_rgb8()),
        other => {
            let colour = other.into_rgba8();
            if colour.pixels().all(|pixel| pixel.0[3] == u8::MAX) {
                DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(colour).into_rgb8())
            } else {
                DynamicImage::ImageRgba8(colour)
            }
        }
    }
}

/// Lanczos 3 with SIMD, of either kind of pixels.
pub(super) fn resize(resizer: &mut Resizer, source: &Pixels, width: u32, height: u32) -> Result<Pixels, PipelineError> {
    match source {
        Pixels::Interleaved(image) => resize_interleaved(resizer, image, width, height).map(Pixels::Interleaved),
        Pixels::Planar(planes) => planes.resize(resizer, width, height).map(Pixels::Planar),
    }
}

/// Lanczos 3 with SIMD; the source itself when it already has the size (never upscaled).
pub(super) fn resize_interleaved(resizer: &mut Resizer, source: &DynamicImage, width: u32, height: u32) -> Result<DynamicImage, PipelineError> {
    if (width, height) == (source.width(), source.height()) {
        return Ok(source.clone());
    }
    let mut target = DynamicImage::new(width, height, source.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    resizer.resize(source, &mut target, &options).map_err(|error| PipelineError::Internal(error.to_string()))?;
    Ok(target)
}
