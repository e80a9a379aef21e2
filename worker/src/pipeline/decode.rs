//! One decode per upload, with the limits checked against the header before
//! any pixel buffer is allocated.
//!
//! JPEG goes through libjpeg-turbo ([`super::jpeg`]), scaled in the DCT.
//! PNG, GIF and WebP go through the `image` crate, which gives the first
//! frame of an animation. So do JPEGs that libjpeg-turbo refuses over what it
//! calls a warning (a file cut short, say): the `image` crate's decoder shows
//! what arrived, which beats no thumbnail at all. HEIC and AVIF go through
//! libheif in a child process ([`super::heif`]), JPEG XL through jxl-oxide ([`super::jxl`]).

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use thumbq_contract::{MediaLimits, SourceFormat};

use super::planar::Pixels;
use super::{PipelineError, heif, jpeg, jxl};

/// A decoded image, before it is resized, turned upright and made sRGB.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels, possibly at a reduced scale, in the file's orientation.
    pub image: Pixels,
    /// The original's size, which the thumbnails' sizes are computed from.
    pub width: u32,
    pub height: u32,
    /// How to turn the image upright (EXIF).
    pub orientation: Orientation,
    /// The ICC profile of the pixels; `None` means they are sRGB already.
    pub icc: Option<Vec<u8>>,
    /// The file ended before the picture did: what is missing is grey.
    pub cut_off: bool,
}

impl Decoded {
    /// Whether turning it upright swaps its width and height.
    pub fn is_turned(&self) -> bool {
        matches!(self.orientation.to_exif(), 5..=8)
    }

    /// The original's size once upright, which each thumbnail's box is fitted to.
    pub fn upright_size(&self) -> (u32, u32) {
        if self.is_turned() { (self.height, self.width) } else { (self.width, self.height) }
    }
}

/// How many pixels a reduced decode keeps on the longest side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Enough for a photo.
    pub side: u32,
    /// Enough for any image: what a decode at `side` is redone at when it
    /// shows detail so fine that the smaller scale may have aliased it.
    pub safe_side: u32,
}

impl Keep {
    /// Always `side`, whatever the image holds.
    #[cfg(test)]
    pub fn exactly(side: u32) -> Self {
        Self { side, safe_side: side }
    }
}

/// libjpeg's warning (JWRN_JPEG_EOF) for data that ends before the last scan does.
const JPEG_ENDED_EARLY: &str = "Premature end of JPEG file";

/// Decodes `bytes`, keeping at least `keep` pixels on the longest side
/// where the format can decode at a reduced scale.
pub fn decode(bytes: &[u8], format: SourceFormat, limits: &MediaLimits, keep: Keep) -> Result<Decoded, PipelineError> {
    match format {
        // libjpeg-turbo refuses a file over a warning; the `image` crate decodes
        // what it can, and says nothing of what was missing: libjpeg's warning does.
        SourceFormat::Jpeg => jpeg::decode(bytes, limits, keep).or_else(|error| match error {
            PipelineError::Corrupt { detail: strict, .. } => decode_with_image_crate(bytes, format, ImageFormat::Jpeg, limits)
                .map(|decoded| Decoded { cut_off: strict.contains(JPEG_ENDED_EARLY), ..decoded })
                .map_err(|error| match error {
                    PipelineError::Corrupt { format, detail } => PipelineError::Corrupt { format, detail: format!("{strict}; {detail}") },
                    other => other,
                }),
            other => Err(other),
        }),
        SourceFormat::Webp => decode_with_image_crate(webp_riff(bytes)?, format, ImageFormat::WebP, limits),
        SourceFormat::Png => decode_with_image_crate(bytes, format, ImageFormat::Png, limits),
        SourceFormat::Gif => decode_with_image_crate(bytes, format, ImageFormat::Gif, limits),
        SourceFormat::Heic | SourceFormat::Avif => heif::decode(bytes, format, limits),
        SourceFormat::Jxl => jxl::decode(bytes, limits),
    }
}

/// The RIFF container of a WebP file, without any bytes after it, once each
/// of its chunks is seen to fit in it. The `image` crate's WebP decoder
/// allocates a metadata chunk's claimed size before reading it, outside its
/// memory limits, and reads chunks a little past the RIFF's end: the fuzzer
/// found a 1.7 KB file whose EXIF chunk, just after the RIFF, asked for 3.4 GB.
fn webp_riff(bytes: &[u8]) -> Result<&[u8], PipelineError> {
    let damaged = |detail: String| PipelineError::Corrupt { format: SourceFormat::Webp.name(), detail };
    let size_at = |at: usize| bytes.get(at..at + 4).map(|size| u32::from_le_bytes(size.try_into().expect("four bytes")) as usize);
    let Some(riff_size) = size_at(4) else { return Err(damaged("no RIFF header".into())) };
    let riff = &bytes[..bytes.len().min(riff_size.saturating_add(8))];
    let mut at = 12; // after "RIFF", its size and "WEBP"
    while at + 8 <= riff.len() {
        let chunk_size = size_at(at + 4).unwrap_or_default();
        let data_end = (at + 8).saturating_add(chunk_size);
        if data_end > riff.len() {
            let name = String::from_utf8_lossy(&riff[at..at + 4]);
            return Err(damaged(format!("the {name} chunk claims {chunk_size} bytes, but the file ends {} bytes later", riff.len() - at - 8)));
        }
        // Chunks are padded to an even size.
        at = data_end + chunk_size % 2;
    }
    Ok(riff)
}

fn decode_with_image_crate(bytes: &[u8], format: SourceFormat, image_format: ImageFormat, limits: &MediaLimits) -> Result<Decoded, PipelineError> {
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
    Ok(Decoded { image: image.into(), width, height, orientation, icc, cut_off: false })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_cut_off_is_decoded_as_far_as_it_goes_and_said_to_be_cut_off() {
        let pixels = turbojpeg::Image { pixels: vec![200u8; 256 * 256 * 3], width: 256, pitch: 256 * 3, height: 256, format: turbojpeg::PixelFormat::RGB };
        let whole = turbojpeg::compress(pixels.as_deref(), 90, turbojpeg::Subsamp::Sub2x2).unwrap().to_vec();
        let limits = MediaLimits::default();
        let decoded = decode(&whole, SourceFormat::Jpeg, &limits, Keep::exactly(256)).unwrap();
        assert!(!decoded.cut_off);
        let cut = &whole[..whole.len() * 6 / 10];
        let decoded = decode(cut, SourceFormat::Jpeg, &limits, Keep::exactly(256)).unwrap();
        assert_eq!((decoded.width, decoded.height, decoded.cut_off), (256, 256, true));
    }

    fn webp(chunks: &[(&[u8; 4], u32, &[u8])]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        for (name, claimed, data) in chunks {
            body.extend_from_slice(*name);
            body.extend_from_slice(&claimed.to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend_from_slice(&body);
        file
    }

    #[test]
    fn a_webp_chunk_claiming_more_than_the_file_holds_is_refused_before_decoding() {
        let bomb = webp(&[(b"VP8X", 10, &[8, 0, 0, 0, 0, 0, 0, 0, 0, 0]), (b"EXIF", 3_453_735_507, b"II*\0")]);
        let error = decode(&bomb, SourceFormat::Webp, &MediaLimits::default(), Keep::exactly(2400)).unwrap_err();
        assert!(matches!(&error, PipelineError::Corrupt { detail, .. } if detail.contains("EXIF chunk claims 3453735507 bytes")), "{error:?}");
    }

    #[test]
    fn a_webp_whose_chunks_fit_goes_to_the_decoder_without_the_bytes_after_its_riff() {
        let mut file = webp(&[(b"VP8X", 10, &[0; 10]), (b"EXIF", 3, b"abc"), (b"VP8L", 1, &[0])]);
        let riff_length = file.len();
        file.extend_from_slice(b"EXIF\xff\xff\xff\xff after the RIFF, hidden from the decoder");
        assert_eq!(webp_riff(&file).unwrap().len(), riff_length);
    }
}
