//! JPEG through libjpeg-turbo: decoding at a reduced scale in the DCT, the
//! few markers we read ourselves, and encoding.
//!
//! Scaling in the DCT skips most of the decoder's work on a large photo: at
//! 1/2 scale libjpeg-turbo runs a 4×4 inverse DCT per block and needs no
//! chroma upsampling. We keep enough pixels for the resize filter to do the
//! real downscaling (see [`super::PHOTO_DECODE_MARGIN`] and [`super::REDUCED_DECODE_MARGIN`]).

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use thumbq_contract::MediaLimits;
use turbojpeg::{Colorspace, Compressor, DecompressHeader, Decompressor, Image, PixelFormat, ScalingFactor, Subsamp, YuvImage, YuvPlanesImage};

use super::decode::{Decoded, Keep};
use super::planar::{Pixels, Planes};
use super::{PipelineError, colour};

/// Progressive scans allowed in one file. Real encoders write at most a few
/// dozen; a file with thousands makes the decoder redo the whole image for
/// each (the "progressive scan bomb"). libjpeg-turbo's own tools suggest 500.
const MAX_PROGRESSIVE_SCANS: u32 = 500;

/// JPEG quality of the thumbnails: visually lossless at this size, a fraction of the bytes.
pub const QUALITY: i32 = 85;

/// Mean absolute second difference of luma, along sampled rows and columns,
/// from which a reduced decode is taken to hold detail too fine for its scale
/// and is redone at the safe one. Measured at 1/2 scale: a zone plate 68, the
/// bench's photo-like JPEGs 7.6, real 1800×1200 photos 9.7 to 11.5 (denser
/// in detail per pixel than a phone's 12 MP). Photos over 7200 pixels long are
/// decoded at 1/4 or 1/8, where the same limit is used but was never measured;
/// a busy one may be decoded twice there.
const FINE_DETAIL: f64 = 30.0;

/// Decodes `bytes` at the smallest scale of 1/8, 1/4 and 1/2 that keeps the longest side at
/// least `keep.side` pixels, or `keep.safe_side` when the decoded pixels show
/// detail finer than [`FINE_DETAIL`], after checking the header's dimensions against
/// `limits`. CMYK images come out in sRGB; other images carry their ICC
/// profile for the caller to convert after resizing, when there are fewer
/// pixels. YCbCr images without one come out as their planes ([`super::planar`]).
pub fn decode(bytes: &[u8], limits: &MediaLimits, keep: Keep) -> Result<Decoded, PipelineError> {
    let decoded = decode_keeping(bytes, limits, keep.side)?;
    // Only when the safe scale is another one: the full size, or one that keeps `safe_side`.
    let safe_longest = keep.safe_side.min(decoded.width.max(decoded.height));
    if decoded.image.width().max(decoded.image.height()) < safe_longest && decoded.image.fine_detail() >= FINE_DETAIL {
        // Freed first: a job holds one decoded image at a time.
        drop(decoded);
        return decode_keeping(bytes, limits, keep.safe_side);
    }
    Ok(decoded)
}

fn decode_keeping(bytes: &[u8], limits: &MediaLimits, keep_side: u32) -> Result<Decoded, PipelineError> {
    let markers = Markers::read(bytes);
    // libjpeg-turbo's 8-bit interface (and the `image` crate) cannot decode more.
    if let Some(precision) = markers.precision.filter(|precision| *precision > 8) {
        return Err(PipelineError::Unsupported { format: "JPEG", detail: format!("{precision}-bit samples") });
    }
    let mut decompressor = Decompressor::new().map_err(internal)?;
    decompressor.set_scan_limit(MAX_PROGRESSIVE_SCANS).map_err(internal)?;
    let header = decompressor.read_header(bytes).map_err(corrupt)?;
    let (width, height) = (dimension(header.width)?, dimension(header.height)?);
    limits.check_dimensions(width, height)?;

    let scale = if header.is_lossless { ScalingFactor::ONE } else { scale_keeping(width.max(height), keep_side) };
    decompressor.set_scaling_factor(scale).map_err(internal)?;
    let scaled = header.scaled(scale);
    // libjpeg-turbo has no planar output for lossless JPEGs.
    if header.colorspace == Colorspace::YCbCr && markers.icc.is_none() && !header.is_lossless && !matches!(header.subsamp, Subsamp::Gray | Subsamp::Unknown) {
        let image = Pixels::Planar(decode_planes(&mut decompressor, bytes, &scaled)?);
        return Ok(Decoded { image, width, height, orientation: markers.orientation, icc: None, cut_off: false });
    }
    let format = match header.colorspace {
        Colorspace::Gray => PixelFormat::GRAY,
        Colorspace::CMYK | Colorspace::YCCK => PixelFormat::CMYK,
        _ => PixelFormat::RGB,
    };
    // The buffer is at most the header's pixels, which the limits allowed.
    let pitch = scaled.width * format.size();
    let mut pixels = vec![0; pitch * scaled.height];
    let output = Image { pixels: pixels.as_mut_slice(), width: scaled.width, pitch, height: scaled.height, format };
    decompressor.decompress(bytes, output).map_err(corrupt)?;

    let (scaled_width, scaled_height) = (dimension(scaled.width)?, dimension(scaled.height)?);
    let mismatch = || PipelineError::Internal("the decoded buffer does not match its dimensions".into());
    let (image, icc) = match format {
        PixelFormat::GRAY => (DynamicImage::ImageLuma8(GrayImage::from_raw(scaled_width, scaled_height, pixels).ok_or_else(mismatch)?), None),
        PixelFormat::CMYK => {
            let rgb = colour::cmyk_to_srgb(&pixels, markers.adobe, markers.icc.as_deref());
            (DynamicImage::ImageRgb8(RgbImage::from_raw(scaled_width, scaled_height, rgb).ok_or_else(mismatch)?), None)
        }
        _ => (DynamicImage::ImageRgb8(RgbImage::from_raw(scaled_width, scaled_height, pixels).ok_or_else(mismatch)?), markers.icc),
    };
    Ok(Decoded { image: image.into(), width, height, orientation: markers.orientation, icc, cut_off: false })
}

/// Decodes into the file's own planes, at the scale already set. libjpeg-turbo
/// pads each side of luma to whole chroma samples; the padding is kept, and
/// the planes know the image's own size.
fn decode_planes(decompressor: &mut Decompressor, bytes: &[u8], scaled: &DecompressHeader) -> Result<Planes, PipelineError> {
    let (sampled_x, sampled_y) = scaled.subsamp.size();
    let (luma_width, luma_height) = (scaled.width.next_multiple_of(sampled_x), scaled.height.next_multiple_of(sampled_y));
    let (chroma_width, chroma_height) = (luma_width / sampled_x, luma_height / sampled_y);
    // At most three samples a pixel, as RGB: the limits allowed the header's pixels.
    let mut pixels = vec![0; luma_width * luma_height + 2 * chroma_width * chroma_height];
    let output = YuvImage { pixels: pixels.as_mut_slice(), width: scaled.width, align: 1, height: scaled.height, subsamp: scaled.subsamp };
    decompressor.decompress_to_yuv(bytes, output).map_err(corrupt)?;

    let cr = pixels.split_off(luma_width * luma_height + chroma_width * chroma_height);
    let cb = pixels.split_off(luma_width * luma_height);
    let mismatch = || PipelineError::Internal("the decoded planes do not match their dimensions".into());
    let plane = |width: usize, height: usize, samples: Vec<u8>| GrayImage::from_raw(dimension(width)?, dimension(height)?, samples).ok_or_else(mismatch);
    Ok(Planes {
        y: plane(luma_width, luma_height, pixels)?,
        cb: plane(chroma_width, chroma_height, cb)?,
        cr: plane(chroma_width, chroma_height, cr)?,
        width: dimension(scaled.width)?,
        height: dimension(scaled.height)?,
        subsampling: (dimension(sampled_x)?, dimension(sampled_y)?),
    })
}

/// Decodes `bytes` keeping at least `keep_side` pixels, only when that scale
/// is at most a quarter of the one keeping `full_keep_side` (a sixteenth of
/// the pixels): below that, a second decode saves too little to be worth it.
/// `None` too when the file cannot be decoded this way (the full decode will say why).
pub fn decode_if_reduced_below(bytes: &[u8], limits: &MediaLimits, keep_side: u32, full_keep_side: u32) -> Option<Decoded> {
    let header = Decompressor::new().ok()?.read_header(bytes).ok()?;
    let longest = header.width.max(header.height);
    let side = u32::try_from(longest).ok()?;
    let (reduced, full) = (scale_keeping(side, keep_side), scale_keeping(side, full_keep_side));
    if header.is_lossless || reduced.scale(longest) * 4 > full.scale(longest) {
        return None;
    }
    decode_keeping(bytes, limits, keep_side).ok()
}

/// The smallest of 1/8, 1/4 and 1/2 at which `longest` is still at least
/// `keep_side` pixels, else the full size. The scales in between (3/8, 5/8…)
/// run no faster here, and alias: on a zone plate, decoding at 5/8 left the
/// large thumbnail with an SSIM of 0.964, against 0.992 decoded in full.
fn scale_keeping(longest: u32, keep_side: u32) -> ScalingFactor {
    [ScalingFactor::ONE_EIGHTH, ScalingFactor::ONE_QUARTER, ScalingFactor::ONE_HALF]
        .into_iter()
        .find(|scale| scale.scale(longest as usize) >= keep_side as usize)
        .unwrap_or(ScalingFactor::ONE)
}

/// Encodes an 8-bit RGB or grey image with 4:2:0 chroma subsampling and
/// optimised Huffman tables (a few percent smaller, for little time at thumbnail sizes).
pub fn encode(compressor: &mut Compressor, image: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    let (format, subsampling) = match image {
        DynamicImage::ImageLuma8(_) => (PixelFormat::GRAY, Subsamp::Gray),
        DynamicImage::ImageRgb8(_) => (PixelFormat::RGB, Subsamp::Sub2x2),
        other => return Err(PipelineError::Internal(format!("no JPEG encoding for {:?} pixels", other.color()))),
    };
    compressor.set_subsamp(subsampling).map_err(internal)?;
    let (width, pitch, height) = (image.width() as usize, image.width() as usize * format.size(), image.height() as usize);
    compressor.compress_to_vec(Image { pixels: image.as_bytes(), width, pitch, height, format }).map_err(internal)
}

/// Encodes 4:2:0 planes as they are, with no conversion; libjpeg-turbo wants
/// luma padded to whole chroma samples, so an odd side repeats its last row or column.
pub fn encode_planes(compressor: &mut Compressor, planes: &Planes) -> Result<Vec<u8>, PipelineError> {
    debug_assert_eq!(planes.subsampling, (2, 2), "only 4:2:0 planes are encoded");
    let (width, height) = (planes.width as usize, planes.height as usize);
    let (padded_width, padded_height) = (width.next_multiple_of(2), height.next_multiple_of(2));
    let luma: std::borrow::Cow<'_, [u8]> = if (padded_width, padded_height) == (planes.y.width() as usize, planes.y.height() as usize) {
        std::borrow::Cow::Borrowed(planes.y.as_raw())
    } else {
        let mut padded = Vec::with_capacity(padded_width * padded_height);
        for row in planes.y.as_raw().chunks_exact(width) {
            padded.extend_from_slice(row);
            padded.extend(row.last().filter(|_| padded_width > width));
        }
        if padded_height > height {
            padded.extend_from_within(padded.len() - padded_width..);
        }
        std::borrow::Cow::Owned(padded)
    };
    let chroma_stride = planes.cb.width() as usize;
    let image = YuvPlanesImage {
        y_plane: &luma[..],
        u_plane: planes.cb.as_raw().as_slice(),
        v_plane: planes.cr.as_raw().as_slice(),
        width,
        height,
        y_stride: padded_width,
        u_stride: chroma_stride,
        v_stride: chroma_stride,
        subsamp: Subsamp::Sub2x2,
    };
    compressor.compress_yuv_planes_to_vec(&image).map_err(internal)
}

/// A compressor set up for thumbnails, reused for the three sizes.
pub fn compressor() -> Result<Compressor, PipelineError> {
    let mut compressor = Compressor::new().map_err(internal)?;
    compressor.set_quality(QUALITY).map_err(internal)?;
    compressor.set_optimize(true).map_err(internal)?;
    Ok(compressor)
}

/// What we read from the markers before the image data; libjpeg-turbo's
/// TurboJPEG interface does not give us these.
#[derive(Debug)]
struct Markers {
    /// From the EXIF block (APP1); unturned when it is missing or broken.
    orientation: Orientation,
    /// The ICC profile, put together from its APP2 chunks in order.
    icc: Option<Vec<u8>>,
    /// An Adobe APP14 marker: Adobe software stores CMYK inverted.
    adobe: bool,
    /// Bits per sample, from the frame header (SOFn).
    precision: Option<u8>,
}

impl Markers {
    /// Walks the marker segments up to the first scan. A malformed segment
    /// ends the walk: libjpeg-turbo decides whether the file is usable. (Stray
    /// bytes between segments end it too: TurboJPEG refuses such a file over
    /// libjpeg's warning, and the `image` crate decodes it, orientation and all.)
    fn read(bytes: &[u8]) -> Self {
        let mut markers = Markers { orientation: Orientation::NoTransforms, icc: None, adobe: false, precision: None };
        let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
        let mut at = 2; // after SOI
        while let [0xFF, marker, ..] = bytes.get(at..).unwrap_or_default() {
            let marker = *marker;
            match marker {
                // Fill bytes, and markers that stand alone.
                0xFF => at += 1,
                0x01 | 0xD0..=0xD8 => at += 2,
                // Start of scan, end of image: no more metadata.
                0xDA | 0xD9 => break,
                _ => {
                    let Some(&[high, low]) = bytes.get(at + 2..at + 4) else { break };
                    let length = usize::from(u16::from_be_bytes([high, low]));
                    let Some(payload) = bytes.get(at + 4..at + 2 + length).filter(|_| length >= 2) else { break };
                    match marker {
                        0xE1 => {
                            if let Some(exif) = payload.strip_prefix(b"Exif\0\0") {
                                markers.orientation = Orientation::from_exif_chunk(exif).unwrap_or(Orientation::NoTransforms);
                            }
                        }
                        0xE2 => {
                            if let Some([sequence, _count, chunk @ ..]) = payload.strip_prefix(b"ICC_PROFILE\0") {
                                icc_chunks.push((*sequence, chunk));
                            }
                        }
                        0xEE => markers.adobe |= payload.starts_with(b"Adobe"),
                        _ if thumbq_contract::format::is_jpeg_frame_marker(marker) => markers.precision = payload.first().copied(),
                        _ => {}
                    }
                    at += 2 + length;
                }
            }
        }
        icc_chunks.sort_by_key(|(sequence, _)| *sequence);
        if !icc_chunks.is_empty() {
            markers.icc = Some(icc_chunks.into_iter().flat_map(|(_, chunk)| chunk.iter().copied()).collect());
        }
        markers
    }
}

fn dimension(value: usize) -> Result<u32, PipelineError> {
    u32::try_from(value).map_err(|_| PipelineError::DimensionsOverLimits)
}

fn corrupt(error: turbojpeg::Error) -> PipelineError {
    PipelineError::Corrupt { format: "JPEG", detail: error.to_string() }
}

fn internal(error: turbojpeg::Error) -> PipelineError {
    PipelineError::Internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_keeps_at_least_the_wanted_side() {
        assert_eq!(scale_keeping(6000, 2400), ScalingFactor::ONE_HALF);
        assert_eq!(scale_keeping(4000, 2400), ScalingFactor::ONE, "5/8 would alias");
        assert_eq!(scale_keeping(20000, 2400), ScalingFactor::ONE_EIGHTH);
        assert_eq!(scale_keeping(1000, 2400), ScalingFactor::ONE, "a small image is decoded whole");
    }

    /// Grey rings whose frequency rises to Nyquist at the edges, as the bench's zone plate.
    fn zone_plate(side: u32) -> Vec<u8> {
        let radius = f64::from(side) / 2.0;
        let plate = GrayImage::from_fn(side, side, |x, y| {
            let (dx, dy) = (f64::from(x) + 0.5 - radius, f64::from(y) + 0.5 - radius);
            let squared = dx * dx + dy * dy;
            let ring = if squared <= radius * radius { (std::f64::consts::PI * squared / (2.0 * radius)).cos() } else { 0.0 };
            image::Luma([(127.5 + 127.0 * ring).round() as u8])
        });
        let pixels = Image { pixels: plate.as_raw().as_slice(), width: side as usize, pitch: side as usize, height: side as usize, format: PixelFormat::GRAY };
        turbojpeg::compress(pixels, 95, Subsamp::Gray).unwrap().to_vec()
    }

    #[test]
    fn a_photo_decodes_at_the_photo_scale_and_fine_rings_at_the_safe_one() {
        let keep = Keep { side: 1800, safe_side: 2400 };
        let smooth = RgbImage::from_fn(4000, 3000, |x, y| image::Rgb([(x / 16) as u8, (y / 12) as u8, 128]));
        let pixels = Image { pixels: smooth.as_raw().as_slice(), width: 4000, pitch: 4000 * 3, height: 3000, format: PixelFormat::RGB };
        let photo = turbojpeg::compress(pixels, 90, Subsamp::Sub2x2).unwrap();
        let decoded = decode(&photo, &MediaLimits::default(), keep).unwrap();
        assert_eq!((decoded.image.width(), decoded.image.height()), (2000, 1500), "1/2 keeps 1800");
        let decoded = decode(&zone_plate(4000), &MediaLimits::default(), keep).unwrap();
        assert_eq!((decoded.image.width(), decoded.image.height()), (4000, 4000), "1/2 would alias the rings");
    }

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xFF, marker];
        bytes.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn icc_chunks_are_joined_in_sequence_order_and_adobe_is_noticed() {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend(segment(0xE2, b"ICC_PROFILE\0\x02\x02world"));
        bytes.extend(segment(0xE2, b"ICC_PROFILE\0\x01\x02hello "));
        bytes.extend(segment(0xEE, b"Adobe\0\x64\0\0\0\0\x02"));
        bytes.extend([0xFF, 0xDA, 0, 2]);
        let markers = Markers::read(&bytes);
        assert_eq!(markers.icc.as_deref(), Some(&b"hello world"[..]));
        assert!(markers.adobe);
        assert_eq!(markers.orientation, Orientation::NoTransforms);
        assert_eq!(markers.precision, None);
    }

    #[test]
    fn a_twelve_bit_jpeg_is_refused_as_unsupported_not_as_damaged() {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend(segment(0xC1, &[12, 0, 16, 0, 16, 1, 1, 0x11, 0]));
        bytes.extend([0xFF, 0xDA, 0, 2]);
        let error = decode(&bytes, &MediaLimits::default(), Keep::exactly(2400)).unwrap_err();
        assert_eq!(error.to_string(), "this kind of JPEG image is not supported (12-bit samples)");
    }

    #[test]
    fn a_segment_running_past_the_end_stops_the_walk_without_a_panic() {
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE2, 0xFF, 0xFF];
        bytes.extend_from_slice(b"ICC_PROFILE");
        let markers = Markers::read(&bytes);
        assert!(markers.icc.is_none());
    }
}
