//! Lossy WebP through libwebp (built from source by `libwebp-sys`): the same
//! look as the JPEG at fewer bytes, with the alpha channel where there is one.
//!
//! The `image` crate only writes lossless WebP, which is larger than the JPEG.

use image::DynamicImage;
use libwebp_sys as webp;

use super::PipelineError;

/// Quality of the WebP thumbnails, chosen by `scripts/bench --only webp`: at
/// method 4, the real photos' thumbnails need 80 to 88 for an SSIM at least
/// the JPEG's (quality 85); at 86, 9 of 10 sizes have it, at 14 % fewer bytes.
pub const QUALITY: f32 = 86.0;

/// libwebp's effort, 0 (fastest) to 6 (`--webp-method`). By the same table,
/// method 4 needs 23 % fewer bytes than the JPEG for its SSIM, method 2 only
/// 14 %, and 6 no fewer than 4 at three times its time.
pub const METHOD: u8 = 4;

/// Encodes an 8-bit image at [`QUALITY`] and [`METHOD`]; grey images become RGB, as WebP has no grey.
pub fn encode(image: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    encode_with(image, QUALITY, METHOD.into())
}

/// [`encode`] at another quality (0–100) and method (0–6), for the benchmark that chose ours.
pub fn encode_with(image: &DynamicImage, quality: f32, method: i32) -> Result<Vec<u8>, PipelineError> {
    let failed = |what: &str| PipelineError::Internal(format!("the WebP encoder {what}"));
    let (width, height) = (to_int(image.width())?, to_int(image.height())?);
    let alpha = image.color().has_alpha();
    let pixels = match image {
        DynamicImage::ImageRgb8(rgb) if !alpha => std::borrow::Cow::Borrowed(rgb.as_raw()),
        DynamicImage::ImageRgba8(rgba) => std::borrow::Cow::Borrowed(rgba.as_raw()),
        other if alpha => std::borrow::Cow::Owned(other.to_rgba8().into_raw()),
        other => std::borrow::Cow::Owned(other.to_rgb8().into_raw()),
    };
    let channels = if alpha { 4 } else { 3 };

    let mut config = webp::WebPConfig::new().map_err(|()| failed("has another version than its bindings"))?;
    config.quality = quality;
    config.method = method;
    // SAFETY: every libwebp call gets the structs it initialised itself, and a
    // buffer of `width * height * channels` bytes with that stride; the picture
    // and the writer are freed on every path before this block ends.
    unsafe {
        if webp::WebPValidateConfig(&config) == 0 {
            return Err(failed("refused its settings"));
        }
        let mut picture = std::mem::MaybeUninit::<webp::WebPPicture>::zeroed().assume_init();
        if !webp::WebPPictureInit(&mut picture) {
            return Err(failed("has another version than its bindings"));
        }
        picture.width = width;
        picture.height = height;
        let mut writer = std::mem::MaybeUninit::<webp::WebPMemoryWriter>::zeroed().assume_init();
        webp::WebPMemoryWriterInit(&mut writer);
        picture.writer = Some(webp::WebPMemoryWrite);
        picture.custom_ptr = (&raw mut writer).cast();
        let stride = width * channels;
        let imported = if alpha {
            webp::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), stride)
        } else {
            webp::WebPPictureImportRGB(&mut picture, pixels.as_ptr(), stride)
        };
        let encoded = imported != 0 && webp::WebPEncode(&config, &mut picture) != 0;
        let error = picture.error_code;
        webp::WebPPictureFree(&mut picture);
        let result = if encoded && !writer.mem.is_null() {
            Ok(std::slice::from_raw_parts(writer.mem, writer.size).to_vec())
        } else {
            Err(failed(&format!("stopped ({error:?})")))
        };
        webp::WebPMemoryWriterClear(&mut writer);
        result
    }
}

fn to_int(side: u32) -> Result<i32, PipelineError> {
    i32::try_from(side).map_err(|_| PipelineError::Internal("a thumbnail too large for WebP".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

    #[test]
    fn an_opaque_image_becomes_a_lossy_webp_that_decodes_to_the_same_size_and_look() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(300, 200, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90])));
        let bytes = encode(&image).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[12..16], b"VP8 ", "lossy, without an alpha chunk");
        let decoded = image::load_from_memory_with_format(&bytes, ImageFormat::WebP).unwrap().into_rgb8();
        assert_eq!(decoded.dimensions(), (300, 200));
        let pixel = decoded.get_pixel(150, 100).0;
        assert!(pixel[0].abs_diff(150) < 8 && pixel[1].abs_diff(100) < 8 && pixel[2].abs_diff(90) < 8, "{pixel:?}");
    }

    #[test]
    fn transparency_is_kept() {
        let image = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 32, |x, _| Rgba([200, 10, 10, if x < 32 { 0 } else { 255 }])));
        let decoded = image::load_from_memory_with_format(&encode(&image).unwrap(), ImageFormat::WebP).unwrap().into_rgba8();
        assert_eq!(decoded.get_pixel(5, 16).0[3], 0);
        assert_eq!(decoded.get_pixel(60, 16).0[3], 255);
    }

    #[test]
    fn a_grey_image_is_encoded_too() {
        let image = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(40, 30, image::Luma([128])));
        let decoded = image::load_from_memory_with_format(&encode(&image).unwrap(), ImageFormat::WebP).unwrap().into_rgb8();
        assert!(decoded.get_pixel(20, 15).0[0].abs_diff(128) < 4);
    }
}
