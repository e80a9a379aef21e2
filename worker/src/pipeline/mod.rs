//! The thumbnail pipeline: bytes of an upload in, three encoded thumbnails out.
//!
//! Pure and synchronous: no files, no broker, no async. The job step feeds it
//! and writes what it returns; tests and benchmarks call it directly. One
//! call runs on one thread, so a worker's throughput grows with its cores.
//!
//! 1. [`decode`] once, with the limits checked against the header first; a
//!    large JPEG at a reduced scale in the DCT ([`jpeg`]).
//! 2. Resize to the large size ([`resize`]), then turn that upright (EXIF) and
//!    make it sRGB ([`colour`]): both cost less on the thumbnail than on the original.
//! 3. Make each smaller size from the one before, which is faster than from
//!    the original and, with a Lanczos filter at these ratios, as sharp.
//! 4. Encode JPEG (libjpeg-turbo), or PNG where there is real transparency ([`encode`]),
//!    and hand each over as soon as it exists; then a lossy WebP of each size
//!    ([`webp`]), so that it delays none of them. Thumbnails carry no
//!    metadata: they are encoded from bare pixels.
//!
//! Besides:
//! - A JPEG is scaled in the DCT by 1/2, 1/4 or 1/8 when 1.5 times the
//!   largest box still fits, and decoded again keeping twice the box when the
//!   result shows detail so fine that the scale may alias it (a zone plate).
//! - A YCbCr JPEG without an ICC profile (most photos) stays in its Y, Cb and
//!   Cr planes from decode to encode ([`planar`]): chroma is resized straight
//!   to the thumbnail's 4:2:0, and RGB is made only from the thumbnails, for
//!   the placeholder and the WebPs.
//! - HEIC and AVIF are decoded by libheif in a child process per decode
//!   ([`heif`], `thumbq-heif-decode`), with limits of its own: its crash fails
//!   one image, never the worker. JPEG XL through jxl-oxide ([`jxl`]).
//! - With nothing else waiting on the queue ([`Preview::First`]), a large
//!   JPEG's small size comes first, from a quick decode of its own at 1/8 or
//!   1/4 scale: a second decode, spent only when the worker has the time.
//! - A JPEG that ends before its picture does still gets thumbnails of what
//!   there is, and is reported as cut off, so that pages ask for the whole file again.

mod colour;
mod decode;
mod encode;
pub mod heif;
mod jpeg;
mod jxl;
mod planar;
mod resize;
pub mod webp;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use fast_image_resize::Resizer;

use self::decode::{Decoded, Keep};
pub use self::encode::encode_jpeg;
use self::encode::{encode, encode_png, placeholder};
use self::planar::Pixels;
use self::resize::{eight_bit, resize, upright_in_box};
pub use thumbq_contract::MediaLimits;
use thumbq_contract::{DimensionError, Sizes, SourceFormat, ThumbFormat, ThumbSize};

/// How many times a thumbnail's side a reduced JPEG decode keeps when the
/// image holds fine detail, and always for the small size's own decode
/// ([`Preview::First`]). Scaling in the DCT is a crude filter; leaving the resize filter a factor
/// of two to work with keeps the result as sharp and alias-free as a full
/// decode (libvips leaves the same margin). The benchmark's quality table
/// measures it: at √2 instead, a zone plate's large thumbnail fell to an SSIM of 0.82.
pub const REDUCED_DECODE_MARGIN: f64 = 2.0;

/// The margin a photo needs: at 1.5, a 12 MP photo decodes at 1/2 scale
/// (2000 pixels for a 1200 box), as sharp decodes it, and its thumbnails
/// scored the same SSIM as sharp's in the benchmark. Where the decoded pixels
/// show detail that fine a scale may have aliased (a zone plate, which fell to 0.82),
/// the decode is redone with [`REDUCED_DECODE_MARGIN`] (`jpeg::decode`).
pub const PHOTO_DECODE_MARGIN: f64 = 1.5;

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
    /// The decoder process died on the file (a crash, or over its CPU or memory limit): no use trying again.
    #[error("the {format} decoder stopped on this file ({detail}); it may be damaged")]
    DecoderFailed { format: &'static str, detail: String },
    /// The decoder process could not do its work for reasons of this machine (it could not start, was killed
    /// from outside, or the host was too slow): the job is tried again, up to its limit.
    #[error("the {format} decoder could not run ({detail})")]
    DecoderUnavailable { format: &'static str, detail: String },
    #[error("this kind of {format} image is not supported ({detail})")]
    Unsupported { format: &'static str, detail: String },
    #[error("the thumbnail could not be made ({0})")]
    Internal(String),
}

/// Time spent in each stage of the pipeline, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    pub decode: Duration,
    /// Resizing, turning upright and converting colour.
    pub resize: Duration,
    /// The JPEGs or PNGs.
    pub encode: Duration,
    /// The WebPs, which come after.
    pub webp: Duration,
}

/// Makes the three thumbnails of `bytes`, largest first, in their baseline format (JPEG or PNG).
pub fn make_thumbnails(bytes: &[u8], format: SourceFormat, sizes: &Sizes, limits: &MediaLimits) -> Result<Vec<Thumbnail>, PipelineError> {
    make_thumbnails_timed(bytes, format, sizes, limits).map(|(thumbnails, _)| thumbnails)
}

/// [`make_thumbnails`], saying how long each stage took.
pub fn make_thumbnails_timed<'a>(
    bytes: impl Into<Cow<'a, [u8]>>,
    format: SourceFormat,
    sizes: &Sizes,
    limits: &MediaLimits,
) -> Result<(Vec<Thumbnail>, StageTimes), PipelineError> {
    collect(bytes.into(), format, sizes, limits, WebP::Without)
}

/// [`make_thumbnails`] and then the three WebPs, each set largest first: what a worker writes.
pub fn make_thumbnails_with_webp<'a>(
    bytes: impl Into<Cow<'a, [u8]>>,
    format: SourceFormat,
    sizes: &Sizes,
    limits: &MediaLimits,
) -> Result<(Vec<Thumbnail>, StageTimes), PipelineError> {
    collect(bytes.into(), format, sizes, limits, WebP::default())
}

fn collect(bytes: Cow<'_, [u8]>, format: SourceFormat, sizes: &Sizes, limits: &MediaLimits, webp: WebP) -> Result<(Vec<Thumbnail>, StageTimes), PipelineError> {
    let mut thumbnails = Vec::with_capacity(2 * ThumbSize::ALL.len());
    let times = make_thumbnails_each(bytes, format, sizes, limits, Preview::WithTheRest, webp, |made| {
        if let Made::Thumbnail(thumbnail) = made {
            thumbnails.push(thumbnail);
        }
        Ok::<_, std::convert::Infallible>(())
    })
    .map_err(|stop| match stop {
        Stop::Pipeline(error) => error,
        Stop::Writing(never) => match never {},
    })?;
    // Smallest first as made; largest first in each set as returned.
    let webps = thumbnails.split_off(thumbnails.iter().position(|thumbnail| thumbnail.format == ThumbFormat::Webp).unwrap_or(thumbnails.len()));
    thumbnails.reverse();
    thumbnails.extend(webps.into_iter().rev());
    Ok((thumbnails, times))
}

/// Whether WebPs are made beside the baseline thumbnails (`--webp-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebP {
    Without,
    /// After all three baseline thumbnails are handed over, with libwebp's method (effort) 0 to 6.
    After {
        method: u8,
    },
}

impl Default for WebP {
    fn default() -> Self {
        Self::After { method: webp::METHOD }
    }
}

impl std::str::FromStr for WebP {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" => Ok(Self::Without),
            _ => match text.parse::<u8>() {
                Ok(method) if method <= 6 => Ok(Self::After { method }),
                _ => Err(format!("“{text}” is not off or a method from 0 (fastest) to 6 (smallest)")),
            },
        }
    }
}

impl std::fmt::Display for WebP {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Without => formatter.write_str("off"),
            Self::After { method } => write!(formatter, "{method}"),
        }
    }
}

/// Whether the small thumbnail of a large JPEG comes first, from a decode of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview {
    /// Decoded once; the small size is made from the large one, with the others.
    WithTheRest,
    /// The small size first, from a JPEG decoded at 1/8 or 1/4 scale in the DCT,
    /// and only then the full decode for the large size. It costs a second
    /// decode (most of a JPEG decode is entropy decoding, which every scale
    /// pays), and it makes the first thumbnail appear sooner: worth it when
    /// the worker has nothing else waiting.
    First,
}

/// What [`make_thumbnails_each`] hands over as it goes.
#[derive(Debug)]
pub enum Made {
    /// The image is decoded, at a scale enough for this size and the smaller ones.
    Decoded(ThumbSize),
    /// The original's width and height once upright, after the full decode.
    Upright(u32, u32),
    /// The image's ThumbHash, handed over just before the small thumbnail: the first thing a page can paint.
    Placeholder(Vec<u8>),
    /// One thumbnail, encoded.
    Thumbnail(Thumbnail),
    /// The file ended before the picture did: the thumbnails show what there was, grey below.
    CutOff,
}

/// Why [`make_thumbnails_each`] stopped: the image, or what was done with a thumbnail.
#[derive(Debug)]
pub enum Stop<E> {
    /// The image could not be made into thumbnails.
    Pipeline(PipelineError),
    /// `made` failed with what it was handed (a thumbnail not written, say).
    Writing(E),
}

/// Makes the thumbnails of `bytes`, smallest first, handing each to `made` as
/// soon as it is encoded (and saying when the image is decoded), so that it can be written and announced before the
/// larger ones exist. Given the upload's bytes to own (a `Vec`), it frees them
/// once decoded: a job's peak memory is then the decoded pixels or the file,
/// not both with the resize buffers. The times leave out `made`'s own.
pub fn make_thumbnails_each<'a, E>(
    bytes: impl Into<Cow<'a, [u8]>>,
    format: SourceFormat,
    sizes: &Sizes,
    limits: &MediaLimits,
    preview: Preview,
    with_webp: WebP,
    mut made: impl FnMut(Made) -> Result<(), E>,
) -> Result<StageTimes, Stop<E>> {
    let bytes = bytes.into();
    let mut times = StageTimes::default();
    let mut resizer = Resizer::new();
    let mut compressor = jpeg::compressor().map_err(Stop::Pipeline)?;
    let largest_box = ThumbSize::ALL.into_iter().map(|size| sizes.max_side(size)).max().unwrap_or(0);
    let keep_side = |side: u32| (f64::from(side) * REDUCED_DECODE_MARGIN).ceil() as u32;
    let keep = Keep { side: (f64::from(largest_box) * PHOTO_DECODE_MARGIN).ceil() as u32, safe_side: keep_side(largest_box) };

    let small_first = match preview {
        Preview::First if format == SourceFormat::Jpeg => {
            let started = Instant::now();
            // Only where it saves a real share of the decode; any problem with the file is the full decode's to report.
            let decoded = jpeg::decode_if_reduced_below(&bytes, limits, keep_side(sizes.max_side(ThumbSize::Small)), keep.side);
            times.decode += started.elapsed();
            match decoded {
                Some(decoded) => {
                    made(Made::Decoded(ThumbSize::Small)).map_err(Stop::Writing)?;
                    let started = Instant::now();
                    let small = upright_in_box(&mut resizer, decoded, sizes, ThumbSize::Small).map_err(Stop::Pipeline)?;
                    let hash = placeholder(&mut resizer, &small.interleaved()).map_err(Stop::Pipeline)?;
                    times.resize += started.elapsed();
                    made(Made::Placeholder(hash)).map_err(Stop::Writing)?;
                    let thumbnail = encode(&mut compressor, ThumbSize::Small, &small, &mut times).map_err(Stop::Pipeline)?;
                    made(Made::Thumbnail(thumbnail)).map_err(Stop::Writing)?;
                    Some(small)
                }
                None => None,
            }
        }
        _ => None,
    };

    let made_first = small_first.is_some();
    let started = Instant::now();
    let decoded = decode::decode(&bytes, format, limits, keep).map_err(Stop::Pipeline)?;
    drop(bytes);
    let decoded = match decoded.image {
        Pixels::Interleaved(image) => Decoded { image: Pixels::Interleaved(eight_bit(image)), ..decoded },
        Pixels::Planar(_) => decoded,
    };
    times.decode += started.elapsed();
    made(Made::Decoded(ThumbSize::Large)).map_err(Stop::Writing)?;
    let (width, height) = decoded.upright_size();
    made(Made::Upright(width, height)).map_err(Stop::Writing)?;
    if decoded.cut_off {
        made(Made::CutOff).map_err(Stop::Writing)?;
    }

    let started = Instant::now();
    let upright = decoded.upright_size();
    let large = upright_in_box(&mut resizer, decoded, sizes, ThumbSize::Large).map_err(Stop::Pipeline)?;
    // Each smaller size from the one before: faster than from the original and,
    // with a Lanczos filter at these ratios, as sharp.
    let (width, height) = sizes.fit(ThumbSize::Medium, upright.0, upright.1);
    let medium = resize(&mut resizer, &large, width, height).map_err(Stop::Pipeline)?;
    let (small, hash) = match small_first {
        Some(small) => (small, None),
        None => {
            let (width, height) = sizes.fit(ThumbSize::Small, upright.0, upright.1);
            let small = resize(&mut resizer, &medium, width, height).map_err(Stop::Pipeline)?;
            let hash = placeholder(&mut resizer, &small.interleaved()).map_err(Stop::Pipeline)?;
            (small, Some(hash))
        }
    };
    times.resize += started.elapsed();
    if let Some(hash) = hash {
        made(Made::Placeholder(hash)).map_err(Stop::Writing)?;
    }

    // One format for all three, chosen on the largest: an alpha channel is kept only where some pixel uses it.
    let transparent = large.has_alpha();
    let all = [(ThumbSize::Small, &small), (ThumbSize::Medium, &medium), (ThumbSize::Large, &large)];
    for (size, image) in all {
        if size == ThumbSize::Small && made_first {
            continue;
        }
        let thumbnail = if transparent { encode_png(size, &image.interleaved(), &mut times) } else { encode(&mut compressor, size, image, &mut times) };
        made(Made::Thumbnail(thumbnail.map_err(Stop::Pipeline)?)).map_err(Stop::Writing)?;
    }
    // Only now: every size is already there to be shown, and a WebP costs ten times a JPEG to encode.
    let WebP::After { method } = with_webp else { return Ok(times) };
    for (size, image) in all {
        let started = Instant::now();
        let encoded = webp::encode_with(&image.interleaved(), webp::QUALITY, method.into());
        times.webp += started.elapsed();
        match encoded {
            Ok(bytes) => made(Made::Thumbnail(Thumbnail { size, format: ThumbFormat::Webp, width: image.width(), height: image.height(), bytes }))
                .map_err(Stop::Writing)?,
            // The baseline sizes are made and shown: a WebP that cannot be made costs bytes later, not the image.
            Err(error) => {
                tracing::warn!(%error, size = %size, "Could not make a WebP; the image keeps its baseline thumbnails.");
                break;
            }
        }
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::resize::resize_interleaved;
    use super::*;
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

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

    /// The reference: a full decode by another decoder, then Lanczos 3 straight
    /// to the size, encoded as ours are, so that only the way there differs.
    fn reference_thumbnail(bytes: &[u8], width: u32, height: u32) -> Vec<u8> {
        let full = DynamicImage::ImageRgb8(image::load_from_memory(bytes).unwrap().into_rgb8());
        let reference = resize_interleaved(&mut Resizer::new(), &full, width, height).unwrap();
        jpeg::encode(&mut jpeg::compressor().unwrap(), &reference).unwrap()
    }

    /// Per pixel, in the JPEG's own luma (BT.601): chroma is subsampled on
    /// purpose, as libvips does, and Rec. 709 luma would mix it back in.
    fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
        let luma = |bytes: &[u8]| {
            let rgb = image::load_from_memory(bytes).unwrap().into_rgb8();
            let values: Vec<f64> = rgb.pixels().map(|Rgb([r, g, b])| 0.299 * f64::from(*r) + 0.587 * f64::from(*g) + 0.114 * f64::from(*b)).collect();
            (rgb.dimensions(), values)
        };
        let ((a_size, a), (b_size, b)) = (luma(a), luma(b));
        assert_eq!(a_size, b_size);
        a.iter().zip(&b).map(|(a, b)| (a - b).abs()).sum::<f64>() / a.len() as f64
    }

    #[test]
    fn a_large_jpeg_decoded_at_reduced_scale_looks_like_one_decoded_in_full() {
        let jpeg = encoded(&gradient(6000, 4000), ImageFormat::Jpeg);
        let reduced = decode::decode(&jpeg, SourceFormat::Jpeg, &MediaLimits::default(), Keep::exactly(2400)).unwrap();
        assert_eq!((reduced.image.width(), reduced.image.height()), (3000, 2000), "half scale keeps 2 × 1200 px");
        assert_eq!((reduced.width, reduced.height), (6000, 4000), "the original's size is kept for the sizes");

        let thumbnails = make_thumbnails(&jpeg, SourceFormat::Jpeg, &Sizes::default(), &MediaLimits::default()).unwrap();
        for thumbnail in &thumbnails {
            let mean = mean_difference(&thumbnail.bytes, &reference_thumbnail(&jpeg, thumbnail.width, thumbnail.height));
            // Measured: 0.97 (large), 0.87 (medium), 0.83 (small, after two steps of the chain).
            // Through RGB instead of planes, 0.43, 0.75 and 1.11; against the unencoded
            // reference both ways are within 0.2 of each other, on either side.
            assert!(mean < 1.5, "{}: mean difference {mean:.2} in luma", thumbnail.size);
        }
    }

    #[test]
    fn planar_thumbnails_have_the_colours_of_the_photo_at_every_subsampling_and_odd_size() {
        // Smooth colour in all three channels, odd on both sides, so that every plane is padded.
        let photo = RgbImage::from_fn(1301, 867, |x, y| Rgb([(x * 255 / 1301) as u8, (y * 255 / 867) as u8, ((x + y) * 255 / 2168) as u8]));
        for subsampling in
            [turbojpeg::Subsamp::Sub2x2, turbojpeg::Subsamp::Sub2x1, turbojpeg::Subsamp::None, turbojpeg::Subsamp::Sub1x2, turbojpeg::Subsamp::Sub4x1]
        {
            let pixels = turbojpeg::Image { pixels: photo.as_raw().as_slice(), width: 1301, pitch: 1301 * 3, height: 867, format: turbojpeg::PixelFormat::RGB };
            let jpeg = turbojpeg::compress(pixels, 95, subsampling).unwrap().to_vec();
            let thumbnails = make_thumbnails(&jpeg, SourceFormat::Jpeg, &Sizes::default(), &MediaLimits::default()).unwrap();
            for thumbnail in &thumbnails {
                let ours = image::load_from_memory(&thumbnail.bytes).unwrap().into_rgb8();
                let reference = image::load_from_memory(&reference_thumbnail(&jpeg, thumbnail.width, thumbnail.height)).unwrap().into_rgb8();
                let difference: u64 = ours.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
                let mean = difference as f64 / ours.as_raw().len() as f64;
                // Measured: 0.12 to 0.29 per channel for large and medium, 0.61 to 0.64 for small,
                // which is made from medium; a plane read with a wrong stride or size is far off.
                assert!(mean < 1.0, "{subsampling:?} {}: mean difference {mean:.2} per channel", thumbnail.size);
            }
        }
    }

    /// What `make_thumbnails_each` hands over, in order: size and dimensions.
    fn made_in_order(bytes: &[u8], format: SourceFormat, preview: Preview) -> Vec<Thumbnail> {
        let mut made = Vec::new();
        make_thumbnails_each(bytes, format, &Sizes::default(), &MediaLimits::default(), preview, WebP::Without, |step| {
            if let Made::Thumbnail(thumbnail) = step {
                made.push(thumbnail);
            }
            Ok::<_, ()>(())
        })
        .unwrap();
        made
    }

    #[test]
    fn thumbnails_are_handed_over_smallest_first_with_or_without_a_preview() {
        let jpeg = encoded(&gradient(4000, 3000), ImageFormat::Jpeg);
        for preview in [Preview::WithTheRest, Preview::First] {
            let sizes: Vec<_> = made_in_order(&jpeg, SourceFormat::Jpeg, preview).iter().map(|t| (t.size, t.width, t.height)).collect();
            assert_eq!(sizes, [(ThumbSize::Small, 200, 150), (ThumbSize::Medium, 600, 450), (ThumbSize::Large, 1200, 900)], "{preview:?}");
        }
    }

    #[test]
    fn a_small_thumbnail_from_its_own_reduced_decode_looks_like_the_one_made_with_the_rest() {
        let jpeg = encoded(&gradient(4000, 3000), ImageFormat::Jpeg);
        let preview = &made_in_order(&jpeg, SourceFormat::Jpeg, Preview::First)[0];
        let mean = mean_difference(&preview.bytes, &reference_thumbnail(&jpeg, preview.width, preview.height));
        assert!(mean < 1.5, "mean difference {mean:.2} in luma");
    }

    #[test]
    fn an_image_too_small_for_a_reduced_decode_gets_no_second_decode() {
        // 1/4 of 1000 is under the 400 pixels the small size keeps; 1/2 would save too little.
        let jpeg = encoded(&gradient(1000, 750), ImageFormat::Jpeg);
        assert!(jpeg::decode_if_reduced_below(&jpeg, &MediaLimits::default(), 400, 2400).is_none());
        let large = encoded(&gradient(4000, 3000), ImageFormat::Jpeg);
        let reduced = jpeg::decode_if_reduced_below(&large, &MediaLimits::default(), 400, 2400).unwrap();
        assert_eq!((reduced.image.width(), reduced.image.height()), (500, 375));
    }

    #[test]
    fn a_jpeg_is_turned_upright_before_its_box_is_fitted() {
        // A 1600×800 landscape stored sideways: 800×1600 pixels with EXIF orientation 6.
        let sideways = encoded(&gradient(800, 1600), ImageFormat::Jpeg);
        let mut with_exif = sideways[..2].to_vec();
        let exif: &[u8] = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
        with_exif.extend_from_slice(&[0xFF, 0xE1]);
        with_exif.extend_from_slice(&u16::try_from(exif.len() + 2).unwrap().to_be_bytes());
        with_exif.extend_from_slice(exif);
        with_exif.extend_from_slice(&sideways[2..]);
        let thumbnails = make_thumbnails(&with_exif, SourceFormat::Jpeg, &Sizes::default(), &MediaLimits::default()).unwrap();
        let dimensions: Vec<_> = thumbnails.iter().map(|t| (t.width, t.height)).collect();
        assert_eq!(dimensions, [(1200, 600), (600, 300), (200, 100)]);
        let preview = &made_in_order(&with_exif, SourceFormat::Jpeg, Preview::First)[0];
        assert_eq!((preview.size, preview.width, preview.height), (ThumbSize::Small, 200, 100), "the preview is turned too");
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
    fn the_placeholder_comes_just_before_the_small_thumbnail_and_paints_the_image_s_colours() {
        let jpeg = encoded(&DynamicImage::ImageRgb8(RgbImage::from_pixel(1600, 800, Rgb([200, 40, 40]))), ImageFormat::Jpeg);
        for preview in [Preview::WithTheRest, Preview::First] {
            let mut order = Vec::new();
            let mut hash = Vec::new();
            make_thumbnails_each(jpeg.as_slice(), SourceFormat::Jpeg, &Sizes::default(), &MediaLimits::default(), preview, WebP::Without, |step| {
                match step {
                    Made::Placeholder(bytes) => {
                        order.push("placeholder".to_owned());
                        hash = bytes;
                    }
                    Made::Thumbnail(thumbnail) => order.push(thumbnail.size.to_string()),
                    Made::Decoded(_) | Made::Upright(..) | Made::CutOff => {}
                }
                Ok::<_, ()>(())
            })
            .unwrap();
            assert_eq!(order, ["placeholder", "small", "medium", "large"], "{preview:?}");
            let (width, height, rgba) = thumbhash::thumb_hash_to_rgba(&hash).unwrap();
            assert!(width > height, "a landscape placeholder: {width}×{height}");
            let centre = &rgba[(height / 2 * width + width / 2) * 4..][..3];
            assert!(centre[0] > 150 && centre[1] < 90 && centre[2] < 90, "red: {centre:?}");
        }
    }

    #[test]
    fn the_webp_setting_reads_off_or_a_method_and_nothing_else() {
        assert_eq!("off".parse::<WebP>(), Ok(WebP::Without));
        assert_eq!("0".parse::<WebP>(), Ok(WebP::After { method: 0 }));
        assert_eq!(WebP::default().to_string().parse::<WebP>(), Ok(WebP::default()));
        assert!("7".parse::<WebP>().unwrap_err().contains("from 0 (fastest) to 6"));
        assert!("fast".parse::<WebP>().is_err());
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
