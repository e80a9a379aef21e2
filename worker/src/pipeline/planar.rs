//! A JPEG's own Y, Cb and Cr planes, kept from decode to encode.
//!
//! A photo's JPEG is YCbCr with subsampled chroma, and so are its JPEG
//! thumbnails. Going through RGB converts every pixel twice, upsamples the
//! chroma only to subsample it again, and resizes three full-resolution
//! channels. Kept planar, luma is resized at full resolution and each chroma
//! plane straight from its own resolution to the thumbnail's 4:2:0: half the
//! samples of RGB, and no conversion at all. RGB is made only from the
//! thumbnails, for the WebPs and the placeholder.

use std::borrow::Cow;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};

use super::PipelineError;

/// Decoded pixels: interleaved (RGB, grey, with or without alpha) or a JPEG's planes.
#[derive(Debug)]
pub enum Pixels {
    Interleaved(DynamicImage),
    Planar(Planes),
}

impl From<DynamicImage> for Pixels {
    fn from(image: DynamicImage) -> Self {
        Self::Interleaved(image)
    }
}

impl Pixels {
    pub fn width(&self) -> u32 {
        match self {
            Self::Interleaved(image) => image.width(),
            Self::Planar(planes) => planes.width,
        }
    }

    pub fn height(&self) -> u32 {
        match self {
            Self::Interleaved(image) => image.height(),
            Self::Planar(planes) => planes.height,
        }
    }

    pub fn has_alpha(&self) -> bool {
        matches!(self, Self::Interleaved(image) if image.color().has_alpha())
    }

    /// The pixels as RGB or grey, converted when planar.
    pub fn interleaved(&self) -> Cow<'_, DynamicImage> {
        match self {
            Self::Interleaved(image) => Cow::Borrowed(image),
            Self::Planar(planes) => Cow::Owned(DynamicImage::ImageRgb8(planes.to_rgb())),
        }
    }

    /// The mean absolute second difference of luma along every 16th row and
    /// column: near 0 where the image is smooth at this scale, up to 4 × 127
    /// where it alternates at every pixel. RGB counts its green, which carries most of luma.
    pub fn fine_detail(&self) -> f64 {
        match self {
            Self::Planar(planes) => second_difference(planes.y.as_raw(), 1, planes.y.width() as usize, planes.width as usize, planes.height as usize),
            Self::Interleaved(DynamicImage::ImageLuma8(grey)) => {
                second_difference(grey.as_raw(), 1, grey.width() as usize, grey.width() as usize, grey.height() as usize)
            }
            Self::Interleaved(DynamicImage::ImageRgb8(rgb)) => {
                second_difference(&rgb.as_raw()[1..], 3, rgb.width() as usize * 3, rgb.width() as usize, rgb.height() as usize)
            }
            Self::Interleaved(other) => Self::Interleaved(DynamicImage::ImageLuma8(other.to_luma8())).fine_detail(),
        }
    }

    pub fn apply_orientation(&mut self, orientation: Orientation) {
        match self {
            Self::Interleaved(image) => image.apply_orientation(orientation),
            Self::Planar(planes) => planes.apply_orientation(orientation),
        }
    }
}

/// Y, Cb and Cr, each a plane of its own. Luma has the image's size, give or
/// take the padding to whole chroma samples that libjpeg-turbo leaves on the
/// right and bottom edges; each chroma sample covers `subsampling` luma samples.
#[derive(Debug)]
pub struct Planes {
    pub y: GrayImage,
    pub cb: GrayImage,
    pub cr: GrayImage,
    /// The image's size, without the padding.
    pub width: u32,
    pub height: u32,
    /// Luma samples per chroma sample, across and down.
    pub subsampling: (u32, u32),
}

impl Planes {
    /// The chroma size of a 4:2:0 image of `width`×`height`: one sample per two by two, rounding up.
    pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// Resized to `width`×`height` with Lanczos 3, as 4:2:0.
    pub fn resize(&self, resizer: &mut Resizer, width: u32, height: u32) -> Result<Self, PipelineError> {
        if (width, height) == (self.width, self.height) && self.subsampling == (2, 2) && self.y.dimensions() == (width, height) {
            return Ok(Self { y: self.y.clone(), cb: self.cb.clone(), cr: self.cr.clone(), ..*self });
        }
        let luma = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).crop(0.0, 0.0, f64::from(self.width), f64::from(self.height));
        let mut y = GrayImage::new(width, height);
        resizer.resize(&self.y, &mut y, &luma).map_err(internal)?;

        // The target's chroma covers whole pairs of its pixels, so with an odd
        // side it reaches one thumbnail pixel past the edge; the source region it is
        // made from reaches as far, where the source has samples to give. Where
        // it has none, the chroma drifts by up to one thumbnail pixel towards that edge.
        let (chroma_width, chroma_height) = Self::chroma_size(width, height);
        let source_side = |side: u32, sampled: u32, target: u32, chroma_target: u32, available: u32| {
            let covered = f64::from(side) * f64::from(2 * chroma_target) / f64::from(target);
            (covered / f64::from(sampled)).min(f64::from(available))
        };
        let (sampled_x, sampled_y) = self.subsampling;
        let chroma = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).crop(
            0.0,
            0.0,
            source_side(self.width, sampled_x, width, chroma_width, self.cb.width()),
            source_side(self.height, sampled_y, height, chroma_height, self.cb.height()),
        );
        let mut cb = GrayImage::new(chroma_width, chroma_height);
        resizer.resize(&self.cb, &mut cb, &chroma).map_err(internal)?;
        let mut cr = GrayImage::new(chroma_width, chroma_height);
        resizer.resize(&self.cr, &mut cr, &chroma).map_err(internal)?;
        Ok(Self { y, cb, cr, width, height, subsampling: (2, 2) })
    }

    /// Turned upright plane by plane. Only for the 4:2:0 planes [`Self::resize`]
    /// makes, whose luma has no padding: with an odd side, a flip moves the
    /// chroma by one pixel of the thumbnail, which no one can see.
    fn apply_orientation(&mut self, orientation: Orientation) {
        debug_assert_eq!((self.y.width(), self.y.height()), (self.width, self.height), "only unpadded planes are turned");
        let turn = |plane: &mut GrayImage| {
            let mut image = DynamicImage::ImageLuma8(std::mem::take(plane));
            image.apply_orientation(orientation);
            *plane = image.into_luma8();
        };
        turn(&mut self.y);
        turn(&mut self.cb);
        turn(&mut self.cr);
        (self.width, self.height) = (self.y.width(), self.y.height());
    }

    /// RGB by JFIF's full-range BT.601 equations, in fixed point as libjpeg
    /// does; each chroma sample is used for the luma samples it covers, and
    /// its part of the sums is worked out once for all of them.
    pub fn to_rgb(&self) -> RgbImage {
        const SHIFT: u32 = 16;
        const HALF: i32 = 1 << (SHIFT - 1);
        let fixed = |factor: f64| (factor * f64::from(1 << SHIFT)).round() as i32;
        let (red_cr, green_cb, green_cr, blue_cb) = (fixed(1.402), fixed(0.344_136), fixed(0.714_136), fixed(1.772));
        let clamp = |value: i32| (value >> SHIFT).clamp(0, 255) as u8;
        let (width, height) = (self.width as usize, self.height as usize);
        let (sampled_x, sampled_y) = (self.subsampling.0 as usize, self.subsampling.1 as usize);
        let (luma_stride, chroma_stride) = (self.y.width() as usize, self.cb.width() as usize);
        let mut rgb = vec![0; width * height * 3];
        for (row, out) in rgb.chunks_exact_mut(width * 3).enumerate() {
            let luma = &self.y.as_raw()[row * luma_stride..][..width];
            let chroma_row = row / sampled_y * chroma_stride;
            let (cb, cr) = (&self.cb.as_raw()[chroma_row..][..chroma_stride], &self.cr.as_raw()[chroma_row..][..chroma_stride]);
            for ((pixels, luma), (&cb, &cr)) in out.chunks_mut(3 * sampled_x).zip(luma.chunks(sampled_x)).zip(cb.iter().zip(cr)) {
                let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
                let (red, green, blue) = (red_cr * cr + HALF, HALF - green_cb * cb - green_cr * cr, blue_cb * cb + HALF);
                for (pixel, &luma) in pixels.chunks_exact_mut(3).zip(luma) {
                    let luma = i32::from(luma) << SHIFT;
                    pixel.copy_from_slice(&[clamp(luma + red), clamp(luma + green), clamp(luma + blue)]);
                }
            }
        }
        RgbImage::from_raw(self.width, self.height, rgb).expect("a buffer of the image's size")
    }
}

/// [`Pixels::fine_detail`] of `samples`, one every `step` bytes and `stride` bytes a row.
fn second_difference(samples: &[u8], step: usize, stride: usize, width: usize, height: usize) -> f64 {
    const EVERY: usize = 16;
    let at = |x: usize, y: usize| i32::from(samples[y * stride + x * step]);
    let (mut sum, mut count) = (0_u64, 0_u64);
    for y in (0..height).step_by(EVERY) {
        for x in 1..width.saturating_sub(1) {
            sum += u64::from((2 * at(x, y) - at(x - 1, y) - at(x + 1, y)).unsigned_abs());
            count += 1;
        }
    }
    // Row by row, so that the three rows each column needs stay in the cache.
    for y in 1..height.saturating_sub(1) {
        for x in (0..width).step_by(EVERY) {
            sum += u64::from((2 * at(x, y) - at(x, y - 1) - at(x, y + 1)).unsigned_abs());
            count += 1;
        }
    }
    if count == 0 { 0.0 } else { sum as f64 / count as f64 }
}

fn internal(error: fast_image_resize::ResizeError) -> PipelineError {
    PipelineError::Internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn flat(width: u32, height: u32, value: u8) -> GrayImage {
        GrayImage::from_pixel(width, height, Luma([value]))
    }

    #[test]
    fn grey_planes_make_grey_rgb_and_pure_red_stays_red() {
        let grey = Planes { y: flat(4, 2, 90), cb: flat(2, 1, 128), cr: flat(2, 1, 128), width: 4, height: 2, subsampling: (2, 2) };
        assert!(grey.to_rgb().pixels().all(|pixel| pixel.0 == [90, 90, 90]));
        // sRGB red in JFIF YCbCr.
        let red = Planes { y: flat(2, 2, 76), cb: flat(1, 1, 85), cr: flat(1, 1, 255), width: 2, height: 2, subsampling: (2, 2) };
        let pixel = red.to_rgb().get_pixel(1, 1).0;
        assert!(pixel[0] >= 253 && pixel[1] <= 2 && pixel[2] <= 2, "{pixel:?}");
    }

    #[test]
    fn every_pixel_takes_the_chroma_sample_that_covers_it_at_any_subsampling() {
        for (sampled_x, sampled_y) in [(2, 2), (2, 1), (1, 1), (4, 1)] {
            // 9×5, padded to whole chroma samples as libjpeg-turbo pads.
            let (width, height) = (9_u32, 5_u32);
            let (chroma_width, chroma_height) = (width.div_ceil(sampled_x), height.div_ceil(sampled_y));
            let y = GrayImage::from_fn(chroma_width * sampled_x, chroma_height * sampled_y, |x, y| Luma([(40 + 13 * x + 7 * y) as u8]));
            let cb = GrayImage::from_fn(chroma_width, chroma_height, |x, y| Luma([(100 + 11 * x + 5 * y) as u8]));
            let cr = GrayImage::from_fn(chroma_width, chroma_height, |x, y| Luma([(150 - 9 * x + 3 * y) as u8]));
            let planes = Planes { y: y.clone(), cb: cb.clone(), cr: cr.clone(), width, height, subsampling: (sampled_x, sampled_y) };
            let rgb = planes.to_rgb();
            for (x, row, pixel) in rgb.enumerate_pixels() {
                let luma = f64::from(y.get_pixel(x, row).0[0]);
                let (blue, red) = (
                    f64::from(cb.get_pixel(x / sampled_x, row / sampled_y).0[0]) - 128.0,
                    f64::from(cr.get_pixel(x / sampled_x, row / sampled_y).0[0]) - 128.0,
                );
                let expected =
                    [luma + 1.402 * red, luma - 0.344_136 * blue - 0.714_136 * red, luma + 1.772 * blue].map(|value| value.round().clamp(0.0, 255.0) as u8);
                for (got, want) in pixel.0.iter().zip(expected) {
                    assert!(got.abs_diff(want) <= 1, "{sampled_x}×{sampled_y} at {x},{row}: {:?} against {expected:?}", pixel.0);
                }
            }
        }
    }

    #[test]
    fn resized_planes_are_4_2_0_of_the_new_size_even_from_odd_padded_planes() {
        // 7×5 luma in 4:2:0 comes padded to 8×6, with 4×3 chroma.
        let planes = Planes { y: flat(8, 6, 100), cb: flat(4, 3, 60), cr: flat(4, 3, 200), width: 7, height: 5, subsampling: (2, 2) };
        let small = planes.resize(&mut Resizer::new(), 3, 3).unwrap();
        assert_eq!((small.y.dimensions(), small.cb.dimensions(), small.cr.dimensions()), ((3, 3), (2, 2), (2, 2)));
        assert!(small.cb.pixels().all(|pixel| pixel.0 == [60]) && small.cr.pixels().all(|pixel| pixel.0 == [200]));
    }

    #[test]
    fn turning_planes_turns_chroma_with_luma() {
        // A 4×2 image whose left half is blue-ish in chroma, turned by 90°.
        let mut cb = flat(2, 1, 128);
        cb.put_pixel(0, 0, Luma([250]));
        let mut planes = Planes { y: flat(4, 2, 128), cb, cr: flat(2, 1, 128), width: 4, height: 2, subsampling: (2, 2) };
        planes.apply_orientation(Orientation::Rotate90);
        assert_eq!((planes.width, planes.height, planes.cb.dimensions()), (2, 4, (1, 2)));
        // Clockwise: the left of the image is now its top.
        assert_eq!(planes.cb.get_pixel(0, 0).0, [250]);
        assert_eq!(planes.cb.get_pixel(0, 1).0, [128]);
    }
}
