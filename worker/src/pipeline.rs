//! The thumbnail pipeline: bytes of an upload in, three encoded thumbnails out.
//!
//! Pure and synchronous: no files, no broker, no async. The job step feeds it
//! and writes what it returns; tests and benchmarks call it directly.
//!
//! Decode once, with limits checked against the header before any pixel
//! buffer is allocated; apply the EXIF orientation; resize the largest size
//! from the original and each smaller size from the one before, which is
//! faster and, with a Lanczos filter at these ratios, as sharp.

use std::io::Cursor;
use std::time::{Duration, Instant};

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits};
pub use thumbq_contract::MediaLimits;
use thumbq_contract::{DimensionError, Sizes, SourceFormat, ThumbFormat, ThumbSize};

/// One finished thumbnail, encoded.
#[derive(Debug)]
pub struct Thumbnail {
    pub size: ThumbSize,
    pub format: ThumbFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// Why an upload cannot be made into thumbnails; every message is for a person.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    OverLimits(#[from] DimensionError),
    #[error("the image's dimensions are over the limits")]
    DimensionsOverLimits,
    #[error("the image is too large to decode within the memory limit")]
    OverMemoryLimit,
    /// The decoder's `detail` is for the logs; people read that the file is damaged.
    #[error("the file is not a valid {format} image; it may be damaged or incomplete")]
    Corrupt { format: &'static str, detail: String },
    #[error("this kind of {format} image is not supported ({detail})")]
    Unsupported { format: &'static str, detail: String },
    #[error("the thumbnail could not be made ({0})")]
    Internal(String),
}

/// Time spent in each stage of the pipeline, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    pub decode: Duration,
    pub resize: Duration,
    pub encode: Duration,
}

/// Makes the three thumbnails of `bytes`, largest first.
pub fn make_thumbnails(bytes: &[u8], format: SourceFormat, sizes: &Sizes, limits: &MediaLimits) -> Result<Vec<Thumbnail>, PipelineError> {
    make_thumbnails_timed(bytes, format, sizes, limits).map(|(thumbnails, _)| thumbnails)
}

/// [`make_thumbnails`], saying how long each stage took.
pub fn make_thumbnails_timed(
    bytes: &[u8],
    format: SourceFormat,
    sizes: &Sizes,
    limits: &MediaLimits,
) -> Result<(Vec<Thumbnail>, StageTimes), PipelineError> {
    let mut times = StageTimes::default();
    let started = Instant::now();
    let largest_box = ThumbSize::ALL.into_iter().map(|size| sizes.max_side(size)).max().unwrap_or(0);
    let image = match format {
        SourceFormat::Jpeg => match decode_jpeg_reduced(bytes, limits, largest_box)? {
            Some(image) => image,
            None => decode(bytes, format, limits)?,
        },
        _ => decode(bytes, format, limits)?,
    };
    times.decode = started.elapsed();
    let format = if has_transparency(&image) { ThumbFormat::Png } else { ThumbFormat::Jpeg };
    // 8 bits a channel is all a thumbnail needs, and all the JPEG encoder takes.
    let mut previous = match format {
        ThumbFormat::Jpeg => DynamicImage::ImageRgb8(image.into_rgb8()),
        ThumbFormat::Png => DynamicImage::ImageRgba8(image.into_rgba8()),
    };
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let mut thumbnails = Vec::with_capacity(ThumbSize::ALL.len());
    for size in ThumbSize::ALL.into_iter().rev() {
        let (width, height) = sizes.fit(size, previous.width(), previous.height());
        let started = Instant::now();
        let resized = if (width, height) == (previous.width(), previous.height()) {
            previous.clone()
        } else {
            let mut target = DynamicImage::new(width, height, previous.color());
            resizer
                .resize(&previous, &mut target, &options)
                .map_err(|error| PipelineError::Internal(error.to_string()))?;
            target
        };
        times.resize += started.elapsed();
        let started = Instant::now();
        let bytes = encode(&resized, format)?;
        times.encode += started.elapsed();
        thumbnails.push(Thumbnail { size, format, width, height, bytes });
        previous = resized;
    }
    Ok((thumbnails, times))
}

/// Decodes `bytes`, refusing from the header alone what is over the limits,
/// and turns the image the way its EXIF orientation says.
pub fn decode(bytes: &[u8], format: SourceFormat, limits: &MediaLimits) -> Result<DynamicImage, PipelineError> {
    let image_format = match format {
        SourceFormat::Jpeg => ImageFormat::Jpeg,
        SourceFormat::Png => ImageFormat::Png,
        SourceFormat::Gif => ImageFormat::Gif,
        SourceFormat::Webp => ImageFormat::WebP,
    };
    let name = format.name();
    let failed = |error| describe(error, name);
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
    // A broken EXIF block is no reason to refuse a photo: show it unturned.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(failed)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Decodes a large JPEG at a reduced scale in the DCT domain (1/2, 1/4 or
/// 1/8), which skips most of the decoding work, keeping at least √2 times the
/// largest thumbnail's side (twice its pixels) so the resize filter still has
/// room to smooth away aliasing. `None` when that would not help (a small
/// image) or this path does not handle the image (CMYK): decode it fully then.
fn decode_jpeg_reduced(bytes: &[u8], limits: &MediaLimits, largest_box: u32) -> Result<Option<DynamicImage>, PipelineError> {
    let corrupt = |error: jpeg_decoder::Error| PipelineError::Corrupt { format: "JPEG", detail: error.to_string() };
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(corrupt)?;
    let Some(info) = decoder.info() else { return Ok(None) };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    limits.check_dimensions(width, height)?;
    let keep = (f64::from(largest_box) * std::f64::consts::SQRT_2).ceil() as u32;
    let longest = width.max(height);
    if longest / 2 < keep || !matches!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8) {
        return Ok(None);
    }
    let wanted = |side: u32| u16::try_from((u64::from(side) * u64::from(keep)).div_ceil(u64::from(longest))).unwrap_or(u16::MAX);
    let (scaled_width, scaled_height) = decoder.scale(wanted(width), wanted(height)).map_err(corrupt)?;
    let pixels = decoder.decode().map_err(corrupt)?;
    let (scaled_width, scaled_height) = (u32::from(scaled_width), u32::from(scaled_height));
    let image = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => image::RgbImage::from_raw(scaled_width, scaled_height, pixels).map(DynamicImage::ImageRgb8),
        _ => image::GrayImage::from_raw(scaled_width, scaled_height, pixels).map(DynamicImage::ImageLuma8),
    };
    let Some(mut image) = image else { return Ok(None) };
    // The orientation is in the EXIF block, which this decoder does not read.
    let orientation = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg)
        .into_decoder()
        .and_then(|mut decoder| decoder.orientation())
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    image.apply_orientation(orientation);
    Ok(Some(image))
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

/// Whether any pixel is less than fully opaque; an alpha channel alone does not count.
fn has_transparency(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(buffer) => buffer.pixels().any(|pixel| pixel.0[1] < u8::MAX),
        DynamicImage::ImageRgba8(buffer) => buffer.pixels().any(|pixel| pixel.0[3] < u8::MAX),
        DynamicImage::ImageLumaA16(buffer) => buffer.pixels().any(|pixel| pixel.0[1] < u16::MAX),
        DynamicImage::ImageRgba16(buffer) => buffer.pixels().any(|pixel| pixel.0[3] < u16::MAX),
        DynamicImage::ImageRgba32F(buffer) => buffer.pixels().any(|pixel| pixel.0[3] < 1.0),
        _ => false,
    }
}

/// JPEG quality: visually lossless for thumbnails at a fraction of the size.
const JPEG_QUALITY: u8 = 85;

fn encode(image: &DynamicImage, format: ThumbFormat) -> Result<Vec<u8>, PipelineError> {
    let mut out = Vec::new();
    let (width, height, color) = (image.width(), image.height(), image.color().into());
    let result = match format {
        ThumbFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).write_image(image.as_bytes(), width, height, color),
        ThumbFormat::Png => PngEncoder::new(&mut out).write_image(image.as_bytes(), width, height, color),
    };
    result.map_err(|error| PipelineError::Internal(error.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128])))
    }

    #[test]
    fn an_opaque_jpeg_makes_three_jpegs_fitting_their_boxes() {
        let jpeg = encoded(&gradient(1600, 1200), ImageFormat::Jpeg);
        let thumbnails = make_thumbnails(&jpeg, SourceFormat::Jpeg, &Sizes::default(), &MediaLimits::default()).unwrap();
        let dimensions: Vec<_> = thumbnails.iter().map(|t| (t.size, t.width, t.height, t.format)).collect();
        assert_eq!(
            dimensions,
            [
                (ThumbSize::Large, 1200, 900, ThumbFormat::Jpeg),
                (ThumbSize::Medium, 600, 450, ThumbFormat::Jpeg),
                (ThumbSize::Small, 200, 150, ThumbFormat::Jpeg),
            ]
        );
        for thumbnail in &thumbnails {
            let decoded = image::load_from_memory_with_format(&thumbnail.bytes, ImageFormat::Jpeg).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (thumbnail.width, thumbnail.height));
        }
    }

    #[test]
    fn a_large_jpeg_decoded_at_reduced_scale_looks_like_one_decoded_in_full() {
        let jpeg = encoded(&gradient(4000, 3000), ImageFormat::Jpeg);
        let reduced = decode_jpeg_reduced(&jpeg, &MediaLimits::default(), 1200).unwrap().expect("the reduced path applies");
        assert_eq!((reduced.width(), reduced.height()), (2000, 1500), "half scale keeps √2 × 1200 px");

        let thumbnails = make_thumbnails(&jpeg, SourceFormat::Jpeg, &Sizes::default(), &MediaLimits::default()).unwrap();
        let small = image::load_from_memory(&thumbnails[2].bytes).unwrap().to_rgb8();
        assert_eq!(small.dimensions(), (200, 150));
        let full = decode(&jpeg, SourceFormat::Jpeg, &MediaLimits::default()).unwrap();
        let mut reference = DynamicImage::new(200, 150, image::ColorType::Rgb8);
        Resizer::new()
            .resize(&DynamicImage::ImageRgb8(full.into_rgb8()), &mut reference, &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)))
            .unwrap();
        let reference = reference.to_rgb8();
        let difference: u64 = small.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
        let mean = difference as f64 / small.as_raw().len() as f64;
        assert!(mean < 4.0, "mean difference {mean:.2} per channel");
    }

    #[test]
    fn a_transparent_png_keeps_its_alpha_in_png_thumbnails() {
        let image = DynamicImage::ImageRgba8(RgbaImage::from_fn(800, 400, |x, _| Rgba([200, 10, 10, if x < 400 { 0 } else { 255 }])));
        let thumbnails = make_thumbnails(&encoded(&image, ImageFormat::Png), SourceFormat::Png, &Sizes::default(), &MediaLimits::default()).unwrap();
        assert!(thumbnails.iter().all(|t| t.format == ThumbFormat::Png));
        let small = image::load_from_memory(&thumbnails[2].bytes).unwrap().into_rgba8();
        assert_eq!(small.dimensions(), (200, 100));
        assert_eq!(small.get_pixel(10, 50).0[3], 0);
        assert_eq!(small.get_pixel(190, 50).0[3], 255);
    }

    #[test]
    fn an_opaque_png_with_an_alpha_channel_becomes_jpeg() {
        let image = DynamicImage::ImageRgba8(RgbaImage::from_pixel(300, 300, Rgba([1, 2, 3, 255])));
        let thumbnails = make_thumbnails(&encoded(&image, ImageFormat::Png), SourceFormat::Png, &Sizes::default(), &MediaLimits::default()).unwrap();
        assert!(thumbnails.iter().all(|t| t.format == ThumbFormat::Jpeg));
    }

    #[test]
    fn a_small_image_is_not_enlarged() {
        let png = encoded(&gradient(120, 80), ImageFormat::Png);
        let thumbnails = make_thumbnails(&png, SourceFormat::Png, &Sizes::default(), &MediaLimits::default()).unwrap();
        assert!(thumbnails.iter().all(|t| (t.width, t.height) == (120, 80)));
    }

    #[test]
    fn an_image_over_the_pixel_limit_is_refused_before_decoding() {
        let png = encoded(&gradient(400, 300), ImageFormat::Png);
        let limits = MediaLimits { max_pixels: 100_000, ..MediaLimits::default() };
        let error = make_thumbnails(&png, SourceFormat::Png, &Sizes::default(), &limits).unwrap_err();
        assert!(matches!(error, PipelineError::OverLimits(DimensionError::TooManyPixels { width: 400, height: 300, .. })), "{error}");
    }

    #[test]
    fn garbage_with_a_valid_signature_is_a_readable_failure() {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend_from_slice(&[0x42; 200]);
        let error = make_thumbnails(&bytes, SourceFormat::Png, &Sizes::default(), &MediaLimits::default()).unwrap_err();
        assert!(error.to_string().starts_with("the file is not a valid PNG image"), "{error}");
    }
}
