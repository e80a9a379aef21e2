//! Colour to sRGB: thumbnails are shown by browsers, which assume sRGB for
//! an image without a profile, and we write none.
//!
//! A profile that cannot be read is ignored rather than refused: a photo is
//! worth showing with slightly wrong colours, never worth losing over its profile.

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

/// Converts an RGB or RGBA image from the ICC profile `icc` to sRGB.
pub fn to_srgb(image: DynamicImage, icc: &[u8]) -> DynamicImage {
    let layout = match image {
        DynamicImage::ImageRgb8(_) => Layout::Rgb,
        DynamicImage::ImageRgba8(_) => Layout::Rgba,
        // Grey profiles are near enough to sRGB's curve; other depths never get here.
        other => return other,
    };
    let Some(profile) = profile_of(icc, DataColorSpace::Rgb) else { return image };
    let Ok(transform) = profile.create_transform_8bit(layout, &ColorProfile::new_srgb(), layout, TransformOptions::default()) else {
        tracing::debug!("The image's ICC profile cannot be applied; showing it as sRGB.");
        return image;
    };
    let mut converted = image.clone();
    match (&image, &mut converted) {
        (DynamicImage::ImageRgb8(source), DynamicImage::ImageRgb8(target)) => transform.transform(source, target),
        (DynamicImage::ImageRgba8(source), DynamicImage::ImageRgba8(target)) => transform.transform(source, target),
        _ => return image,
    }
    .map_or(image, |()| converted)
}

/// Converts CMYK pixels (4 bytes each) to sRGB (3 bytes each), through the
/// image's CMYK profile when it has one. Adobe software writes CMYK inverted
/// (255 = no ink) and marks its files, so `inverted` comes from that marker.
pub fn cmyk_to_srgb(cmyk: &[u8], inverted: bool, icc: Option<&[u8]>) -> Vec<u8> {
    let normal: Vec<u8>;
    let cmyk = if inverted {
        normal = cmyk.iter().map(|value| 255 - value).collect();
        &normal
    } else {
        cmyk
    };
    let mut rgb = vec![0; cmyk.len() / 4 * 3];
    let converted = icc
        .and_then(|icc| profile_of(icc, DataColorSpace::Cmyk))
        .and_then(|profile| profile.create_transform_8bit(Layout::Rgba, &ColorProfile::new_srgb(), Layout::Rgb, TransformOptions::default()).ok())
        .is_some_and(|transform| transform.transform(cmyk, &mut rgb).is_ok());
    if !converted {
        // No usable profile: the textbook conversion, which gets hues right
        // and is a little bright and saturated next to a real press profile.
        for (pixel, out) in cmyk.chunks_exact(4).zip(rgb.chunks_exact_mut(3)) {
            let white = 255 - u32::from(pixel[3]);
            for (ink, channel) in pixel[..3].iter().zip(out) {
                *channel = ((255 - u32::from(*ink)) * white / 255) as u8;
            }
        }
    }
    rgb
}

fn profile_of(icc: &[u8], colour_space: DataColorSpace) -> Option<ColorProfile> {
    match ColorProfile::new_from_slice(icc) {
        Ok(profile) if profile.color_space == colour_space => Some(profile),
        Ok(_) => None,
        Err(error) => {
            tracing::debug!(%error, "The image's ICC profile cannot be read; showing it as sRGB.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_without_a_profile_keeps_its_hues() {
        // Cyan, magenta, yellow, black and no ink, written the normal way (0 = no ink).
        let cmyk = [255, 0, 0, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 0, 0];
        let rgb = cmyk_to_srgb(&cmyk, false, None);
        assert_eq!(rgb, [0, 255, 255, 255, 0, 255, 255, 255, 0, 0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn adobe_cmyk_is_inverted_before_conversion() {
        let no_ink_as_adobe_writes_it = [255, 255, 255, 255];
        assert_eq!(cmyk_to_srgb(&no_ink_as_adobe_writes_it, true, None), [255, 255, 255]);
    }

    #[test]
    fn an_unreadable_profile_leaves_the_pixels_as_they_are() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(4, 4, image::Rgb([10, 200, 30])));
        assert_eq!(to_srgb(image.clone(), b"not a profile"), image);
    }
}
