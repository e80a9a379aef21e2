//! Golden tests of the thumbnail pipeline over public test images.
//!
//! The images are in `tests/fixtures/` at the top of the repository, each set
//! with a README saying where it came from and a licence file. Tests that loop
//! over a folder pick up files added to it, and report every file at fault at
//! once. The references measured with libvips say how they were measured.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::imageops::{self, FilterType};
use image::{AnimationDecoder, ImageFormat, ImageResult, RgbaImage};
use thumbq_contract::{SourceFormat, ThumbFormat};
use thumbq_worker::pipeline::PipelineError;

use support::{
    Findings, Fixture, Outcome, checked_thumbnails, fixture_files, fixture_files_where, make, make_as, mean_absolute_difference, mean_colour,
    readable_sentence, small_thumbnail, three_thumbnails, worst_channel,
};

/// The most any one allocation in these tests may ask for. The pipeline
/// must bound its allocations before decoding; a request over this means a
/// decoder believed a hostile header (the fuzzer found a WebP whose chunk
/// asked for 3.4 GB), and the test binary aborts saying how many bytes.
const LARGEST_ALLOCATION: usize = 512 << 20;

struct BoundedAllocator;

// SAFETY: every call goes to the system allocator unchanged, or returns null,
// which callers of a GlobalAlloc must handle (Rust's collections abort).
unsafe impl GlobalAlloc for BoundedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.alloc_zeroed(layout) } }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LARGEST_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.realloc(pointer, layout, new_size) } }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator;

/// What a file the pipeline cannot use must come to: an error whose message
/// is a sentence for people, and not an internal fault.
fn readable_refusal(outcome: Outcome) -> Result<(), String> {
    match outcome {
        Outcome::Refused(PipelineError::Internal(detail)) => Err(format!("refused as an internal fault, not as a bad file: {detail}")),
        Outcome::Refused(error) => readable_sentence(&error.to_string()),
        other => Err(format!("expected a refusal, got: {other}")),
    }
}

fn is_corrupt_pngsuite_file(fixture: &Fixture) -> bool {
    fixture.file_name().starts_with('x')
}

// PngSuite: every colour type, bit depth and interlacing, and fourteen broken files.

#[test]
fn every_valid_pngsuite_image_makes_three_thumbnails_of_the_fitted_sizes_that_decode() {
    let mut findings = Findings::default();
    for fixture in fixture_files("pngsuite", &["png"]).iter().filter(|fixture| !is_corrupt_pngsuite_file(fixture)) {
        findings.check(&fixture.name, three_thumbnails(fixture).map(drop));
    }
    findings.assert_none("valid PngSuite images", 161);
}

#[test]
fn a_pngsuite_thumbnail_is_a_png_exactly_when_the_image_has_transparency() {
    let mut findings = Findings::default();
    for fixture in fixture_files("pngsuite", &["png"]).iter().filter(|fixture| !is_corrupt_pngsuite_file(fixture)) {
        let result = (|| {
            let source = image::load_from_memory_with_format(&fixture.bytes, ImageFormat::Png).map_err(|error| error.to_string())?;
            // At 8 bits, as thumbnails are: a 16-bit alpha of 65534 is opaque there.
            let transparent = source.to_rgba8().pixels().any(|pixel| pixel.0[3] < u8::MAX);
            let expected = if transparent { ThumbFormat::Png } else { ThumbFormat::Jpeg };
            match make(&fixture.bytes) {
                Outcome::Made(thumbnails) => match thumbnails.iter().find(|thumbnail| thumbnail.format != expected) {
                    Some(thumbnail) => Err(format!("the {} thumbnail is {:?}, expected {expected:?}", thumbnail.size, thumbnail.format)),
                    None => Ok(()),
                },
                other => Err(other.to_string()),
            }
        })();
        findings.check(&fixture.name, result);
    }
    findings.assert_none("valid PngSuite images", 161);
}

#[test]
fn every_corrupt_pngsuite_image_is_refused_with_a_readable_sentence_never_a_panic() {
    // Six of them have a broken signature, which the upload's sniffing already
    // refuses; the pipeline gets every one as PNG anyway, as a worker must
    // never count on the file being what the job says.
    let mut findings = Findings::default();
    for fixture in fixture_files("pngsuite", &["png"]).iter().filter(|fixture| is_corrupt_pngsuite_file(fixture)) {
        findings.check(&fixture.name, readable_refusal(make_as(&fixture.bytes, SourceFormat::Png)));
    }
    findings.assert_none("corrupt PngSuite images", 14);
}

// EXIF orientation: the same photo stored turned each of the eight ways.

/// How far, at most, a right-side-up small thumbnail may be from the
/// orientation-1 one, as the worst channel's mean absolute difference in
/// 8-bit levels. Measured: 2.17 at most (Landscape_0; the samples were turned
/// in pixels and re-encoded, so they are not bit-identical), while the
/// orientation-1 thumbnail turned 180° or mirrored differs by 40.9 at least
/// (Portrait mirrored left to right). 6 is about three times the first and a
/// seventh of the second.
const RIGHT_SIDE_UP_AT_MOST: f64 = 6.0;

const ORIENTATION_SETS: [&str; 2] = ["Landscape", "Portrait"];

fn orientation_sample(set: &str, orientation: u8) -> Fixture {
    Fixture::read(&format!("exif-orientation/{set}_{orientation}.jpg"))
}

#[test]
fn all_eighteen_exif_orientation_samples_come_out_right_side_up() {
    let mut findings = Findings::default();
    for set in ORIENTATION_SETS {
        let reference = small_thumbnail(&orientation_sample(set, 1)).expect("the orientation-1 sample makes thumbnails").to_rgba8();
        let (width, height) = reference.dimensions();
        let wider = set == "Landscape";
        assert_eq!(width > height, wider, "{set}_1's small thumbnail is {width}×{height}");
        // Orientation 0 is not a valid EXIF value: it must be shown as stored, like 1.
        for orientation in 0..=8 {
            let sample = orientation_sample(set, orientation);
            let result = small_thumbnail(&sample).and_then(|thumbnail| {
                let thumbnail = thumbnail.to_rgba8();
                if thumbnail.dimensions() != (width, height) {
                    return Err(format!("the small thumbnail is {:?}, the orientation-1 one {:?}", thumbnail.dimensions(), (width, height)));
                }
                let difference = mean_absolute_difference(&thumbnail, &reference);
                if worst_channel(difference) > RIGHT_SIDE_UP_AT_MOST {
                    return Err(format!("differs from the orientation-1 thumbnail by {difference:.2?} levels per channel"));
                }
                Ok(())
            });
            findings.check(&sample.name, result);
        }
    }
    findings.assert_none("orientation samples", 18);
}

#[test]
fn the_orientation_comparison_tells_a_wrongly_turned_image_apart() {
    // The comparison above means something only if these photos look
    // different turned the wrong way: a symmetric picture would pass it
    // whatever the pipeline did.
    for set in ORIENTATION_SETS {
        let reference = small_thumbnail(&orientation_sample(set, 1)).expect("the orientation-1 sample makes thumbnails").to_rgba8();
        let wrongly_turned: [(&str, RgbaImage); 3] = [
            ("turned 180°", imageops::rotate180(&reference)),
            ("mirrored left to right", imageops::flip_horizontal(&reference)),
            ("mirrored top to bottom", imageops::flip_vertical(&reference)),
        ];
        for (how, wrong) in wrongly_turned {
            let difference = worst_channel(mean_absolute_difference(&wrong, &reference));
            assert!(
                difference > 3.0 * RIGHT_SIDE_UP_AT_MOST,
                "{set}_1 {how} differs by only {difference:.2} levels: the comparison cannot tell it from right side up"
            );
        }
    }
}

// Colour: CMYK JPEGs against what browsers show, 16-bit PNGs against libvips.

/// The mean colour of a file's small thumbnail as a reference renders it,
/// unless said otherwise libvips 8.14.1:
/// red, green and blue in 8-bit levels, each pixel weighted by its alpha.
/// Measured with
///
/// ```sh
/// vipsthumbnail FILE --size '200x200>' -o ref.v    # never enlarged, like ours
/// vips colourspace ref.v ref8.v srgb                # 16-bit to 8-bit sRGB
/// vips stats ref8.v stats.csv                       # column 5 (mean) of rows 2-4
/// ```
///
/// and, for an image with alpha, `vips premultiply ref8.v pre.v` and
/// `vips stats pre.v stats.csv`, each colour's mean divided by the alpha's
/// mean and multiplied by 255.
struct ReferenceMean {
    fixture: &'static str,
    mean: [f64; 3],
}

/// How far our small thumbnail's mean colour may be from libvips's, per
/// channel, in 8-bit levels, for an image whose colours leave no choice (sRGB
/// or no profile). Measured on these files and on two ordinary JPEGs, the
/// pipeline differs from libvips by 0.73 at most (p_16.png's green, JPEG's
/// chroma subsampling); 3 is four times that. A swapped channel or a wrong
/// 16-to-8-bit scaling is off by tens.
const SAME_COLOURS_WITHIN: f64 = 3.0;

/// How far a CMYK JPEG without a profile may be from Pillow's RGB copy of
/// the same picture (`pil_sample_rgb.jpg`), per channel. Without a profile
/// there is no one right rendering: we use the plain conversion that Chromium,
/// Firefox and Pillow use, so a thumbnail looks like the original does in the
/// browser. Measured: 5.56 levels off at most (blue; red letters on black
/// lose most to the thumbnail's 4:2:0 JPEG, the reference is a JPEG too).
/// Not accepted: a press profile's rendering, libvips's (54.05, 35.34, 44.30),
/// 26 to 41 levels off; and the negative an Adobe file gives when its
/// inversion is not undone, (189.46, 168.48, 165.16).
const CMYK_COLOURS_WITHIN: f64 = 8.0;

fn colours_match(reference: &ReferenceMean, within: f64) -> Result<(), String> {
    let thumbnail = small_thumbnail(&Fixture::read(reference.fixture))?;
    let mean = mean_colour(&thumbnail);
    let off = mean.iter().zip(reference.mean).map(|(ours, theirs)| (ours - theirs).abs()).fold(0.0, f64::max);
    if off > within {
        return Err(format!("mean colour {mean:.2?}, reference {:.2?}: {off:.2} levels off, more than {within}", reference.mean));
    }
    Ok(())
}

/// The only CMYK JPEG in the corpora (Adobe, YCCK-coded, no ICC profile): red
/// letters on a rich black. The mean is Pillow's RGB copy's, `vips stats pillow/pil_sample_rgb.jpg`.
const CMYK_SAMPLE: ReferenceMean = ReferenceMean { fixture: "pillow/pil_sample_cmyk.jpg", mean: [28.00, 4.49, 3.50] };

#[test]
fn a_cmyk_jpeg_comes_out_in_the_colours_browsers_give_it() {
    let mut findings = Findings::default();
    findings.check(CMYK_SAMPLE.fixture, colours_match(&CMYK_SAMPLE, CMYK_COLOURS_WITHIN));
    findings.assert_none("CMYK JPEGs", 1);
}

#[test]
fn a_cmyk_jpeg_is_not_shown_as_its_negative() {
    // Coarser than the test above, so that a failure there says whether the
    // colours are inverted or only rendered another way. Every rendering of
    // this dark picture has every channel's mean under 60 (libvips, with or
    // without black-point compensation, Pillow's own RGB copy
    // pil_sample_rgb.jpg at (28.00, 4.49, 3.50), the textbook formula); its
    // negative is over 160 on each channel.
    let thumbnail = small_thumbnail(&Fixture::read(CMYK_SAMPLE.fixture)).expect("the CMYK sample makes thumbnails");
    let mean = mean_colour(&thumbnail);
    assert!(mean.iter().all(|channel| *channel < 100.0), "the CMYK sample's mean colour is {mean:.2?}: it is shown inverted");
}

#[test]
fn sixteen_bit_pngs_keep_the_colours_libvips_gives_them() {
    let references = [
        // Despite its name, an opaque 8-bit grey image stored as RGBA.
        ReferenceMean { fixture: "pillow/p_16.png", mean: [95.62, 95.62, 95.62] },
        // 16-bit RGB with the sRGB2014 profile.
        ReferenceMean { fixture: "libjpeg-turbo/monkey16.png", mean: [82.26, 98.49, 110.70] },
        ReferenceMean { fixture: "image-rs-image/png/16bpc/basn2c16.png", mean: [127.50, 127.50, 43.77] },
        // 16-bit RGBA, mostly transparent: a PNG thumbnail.
        ReferenceMean { fixture: "image-rs-image/png/16bpc/basn6a16.png", mean: [127.50, 127.50, 63.75] },
        // 16-bit grey, interlaced.
        ReferenceMean { fixture: "image-rs-image/png/16bpc/basi0g16.png", mean: [143.85, 143.85, 143.85] },
        // A 16-bit APNG whose first frame is pure red: a swapped channel shows at once.
        ReferenceMean { fixture: "image-rs-image/png/apng/rgba16.png", mean: [255.0, 0.0, 0.0] },
        // Ordinary 8-bit JPEGs, baseline and progressive (with an ICC profile), as a control.
        ReferenceMean { fixture: "libjpeg-turbo/testorig.jpg", mean: [146.42, 90.48, 81.48] },
        ReferenceMean { fixture: "image-rs-image/jpg/progressive/cat.jpg", mean: [137.48, 143.20, 128.05] },
    ];
    let mut findings = Findings::default();
    for reference in &references {
        findings.check(reference.fixture, colours_match(reference, SAME_COLOURS_WITHIN));
    }
    findings.assert_none("images compared with libvips", references.len());
}

// The JPEG, WebP, GIF and PNG files of the other corpora.

/// Files the pipeline may refuse, with what their uploader reads then. Every
/// other JPEG, WebP, GIF and PNG of these corpora must make thumbnails.
/// (The corpora have no lossless JPEG.)
const MAY_BE_REFUSED: [&str; 1] = [
    // 12-bit precision: neither libjpeg-turbo's 8-bit interface nor the
    // `image` crate decodes it. The uploader reads "This kind of JPEG image
    // is not supported (12-bit samples)."
    "libjpeg-turbo/monkey12.jpg",
];

#[test]
fn every_jpeg_webp_gif_and_png_of_the_corpora_makes_three_thumbnails_or_a_readable_refusal() {
    let mut findings = Findings::default();
    for set in ["libjpeg-turbo", "image-rs-image"] {
        for fixture in fixture_files(set, &["jpg", "jpeg", "webp", "gif", "png"]) {
            let may_be_refused = MAY_BE_REFUSED.contains(&fixture.name.as_str());
            let result = match make(&fixture.bytes) {
                Outcome::Made(thumbnails) => checked_thumbnails(&fixture, &thumbnails).map(drop),
                refused @ Outcome::Refused(_) if may_be_refused => readable_refusal(refused),
                other => Err(other.to_string()),
            };
            findings.check(&fixture.name, result);
        }
    }
    findings.assert_none("JPEG, WebP, GIF and PNG files", 34);
}

#[test]
fn no_hostile_or_broken_image_makes_the_pipeline_panic() {
    // Pillow's bombs, truncated files and broken headers: each may make
    // thumbnails or be refused, but with a sentence people can read.
    let mut findings = Findings::default();
    for fixture in fixture_files("pillow", &["jpg", "webp", "gif", "png"]) {
        let result = match make(&fixture.bytes) {
            Outcome::Made(thumbnails) => checked_thumbnails(&fixture, &thumbnails).map(drop),
            Outcome::NotAccepted => Ok(()),
            refused => readable_refusal(refused),
        };
        findings.check(&fixture.name, result);
    }
    findings.assert_none("Pillow images", 25);
}

#[test]
fn every_input_that_once_failed_the_fuzzer_is_now_answered_cleanly() {
    // Each makes three thumbnails or is refused with a sentence; none may
    // panic, or ask for more memory than LARGEST_ALLOCATION.
    let mut findings = Findings::default();
    let regressions = support::fuzz_regressions();
    for fixture in &regressions {
        let result = match make(&fixture.bytes) {
            Outcome::Made(thumbnails) if thumbnails.len() == 3 => Ok(()),
            Outcome::NotAccepted => Ok(()),
            made @ Outcome::Made(_) => Err(made.to_string()),
            refused => readable_refusal(refused),
        };
        findings.check(&fixture.name, result);
    }
    findings.assert_none("fuzz regressions", 1);
}

/// Every frame of an animation as the `image` crate composes it, or `None`
/// for a file that is not an animation of at least two frames.
fn frames(fixture: &Fixture) -> Option<Vec<RgbaImage>> {
    let cursor = Cursor::new(fixture.bytes.as_slice());
    let frames: ImageResult<Vec<RgbaImage>> = match SourceFormat::sniff(&fixture.bytes)? {
        SourceFormat::Gif => GifDecoder::new(cursor).ok()?.into_frames().map(|frame| frame.map(|frame| frame.into_buffer())).collect(),
        SourceFormat::Webp => WebPDecoder::new(cursor).ok()?.into_frames().map(|frame| frame.map(|frame| frame.into_buffer())).collect(),
        SourceFormat::Png => {
            let decoder = PngDecoder::new(cursor).ok()?;
            if !decoder.is_apng().ok()? {
                return None;
            }
            decoder.apng().ok()?.into_frames().map(|frame| frame.map(|frame| frame.into_buffer())).collect()
        }
        SourceFormat::Jpeg | SourceFormat::Heic | SourceFormat::Avif | SourceFormat::Jxl => return None,
    };
    frames.ok().filter(|frames| frames.len() >= 2)
}

/// How far, at most, the small thumbnail of an animation may be from its
/// first frame resized by the `image` crate (another Lanczos filter), as the
/// worst channel's mean absolute difference. Measured: 0.00 where there is no
/// resizing, 1.76 for a lossy WebP, 5.62 for iss634.gif, a dithered GIF whose
/// JPEG thumbnail cannot keep the dithering's noise (it looks the same; the
/// test checked by eye). 8 leaves room for that, and the first frame must
/// still be nearer than every other frame, or as near where frames are alike.
const FIRST_FRAME_WITHIN: f64 = 8.0;

#[test]
fn an_animated_gif_webp_or_png_shows_its_first_frame() {
    let mut findings = Findings::default();
    for set in ["image-rs-image", "pillow"] {
        for fixture in fixture_files(set, &["webp", "gif", "png"]) {
            // The `image` crate cannot split a 16-bit APNG (rgba16.png) into frames: it is left out.
            let Some(frames) = frames(&fixture) else {
                continue;
            };
            let result = small_thumbnail(&fixture).and_then(|thumbnail| {
                let thumbnail = thumbnail.to_rgba8();
                let differences: Vec<f64> = frames
                    .iter()
                    .map(|frame| {
                        let frame = imageops::resize(frame, thumbnail.width(), thumbnail.height(), FilterType::Lanczos3);
                        worst_channel(mean_absolute_difference(&thumbnail, &frame))
                    })
                    .collect();
                let first = differences[0];
                let nearest_other = differences[1..].iter().copied().fold(f64::INFINITY, f64::min);
                if first > FIRST_FRAME_WITHIN || first > nearest_other {
                    return Err(format!("differs from each frame by {differences:.2?} levels: not the first frame"));
                }
                Ok(())
            });
            findings.check(&fixture.name, result);
        }
    }
    findings.assert_none("animations", 10);
}

// Files that are not of an accepted format.

#[test]
fn files_of_other_formats_and_text_are_refused_by_the_sniffing_as_unsupported() {
    let mut findings = Findings::default();
    let other_formats = fixture_files("image-rs-image", &["bmp", "tif", "tiff", "ico", "qoi", "pbm"]);
    // The fixtures' own READMEs and licences are text files.
    let text = ["pngsuite", "pillow", "exif-orientation", "libjpeg-turbo", "image-rs-image"]
        .into_iter()
        .flat_map(|set| fixture_files_where(set, |name| name.starts_with("LICENSE") || name.starts_with("README")));
    for fixture in other_formats.into_iter().chain(text) {
        let result = match SourceFormat::sniff(&fixture.bytes) {
            None => Ok(()),
            Some(format) => Err(format!("recognised as {}", format.name())),
        };
        findings.check(&fixture.name, result);
    }
    findings.assert_none("files of other formats", 15);
}

// HEIC and AVIF (libheif, in a child process) and JPEG XL (jxl-oxide).

/// Each file that must make thumbnails, with its size once upright, as
/// libheif's `heif-info` and jxl-oxide report it (irot and orientation applied).
const PHONE_FORMATS_UPRIGHT: &[(&str, (u32, u32))] = &[
    ("pillow-heif/zPug_3.heic", (64, 64)),
    ("pillow-heif/RGBA_10__29x100.heif", (29, 100)),
    ("pillow-heif/RGBA_12__128x128.heif", (128, 128)),
    ("pillow-heif/L_12__29x100.heif", (29, 100)),
    ("pillow-heif/LA_8__29x100.heif", (29, 100)),
    ("pillow-heif/RGB_8__128x128.heif", (128, 128)),
    ("pillow-heif/RGBA_8__128x128.heif", (128, 128)),
    ("pillow-heif/xiaomi.heic", (2592, 1944)),
    ("pillow-heif/pug.heic", (4032, 3024)),
    ("pillow-heif/L_exif_xmp_iptc.heic", (64, 64)),
    ("pillow-heif/empty_icc.heic", (1025, 900)),
    ("pillow-heif/truncated.heic", (16, 16)),
    ("libavif/abc_color_irot_alpha_irot.avif", (256, 512)),
    ("libavif/abc_color_irot_alpha_NOirot.avif", (256, 512)),
    ("libavif/sofa_grid1x5_420.avif", (1024, 770)),
    ("libavif/seine_hdr_rec2020.avif", (400, 300)),
    ("libavif/seine_sdr_gainmap_srgb.avif", (400, 300)),
    ("libavif/paris_icc_exif_xmp.avif", (403, 302)),
    ("libavif/colors-animated-8bpc.avif", (150, 150)),
    ("libavif/color_grid_alpha_nogrid.avif", (80, 80)),
    ("libavif/white_1x1.avif", (1, 1)),
    ("libavif/poc_b_506387278.avif", (128, 64)),
    ("jxl/landscape_6_from_jpeg.jxl", (1800, 1200)),
    ("jxl/portrait_8_lossy.jxl", (1200, 1800)),
    ("jxl/basn6a08_alpha.jxl", (32, 32)),
    ("jxl/pq_gradient.jxl", (1088, 64)),
    ("jxl/splines.jxl", (320, 320)),
    ("jxl/spline_on_first_frame.jxl", (32, 32)),
    ("jxl/cropped_traffic_light.jxl", (50, 80)),
    ("jxl/1x1_exif_xmp.jxl", (1, 1)),
];

/// Files that libheif or jxl-oxide refuse, and the refusal people read must say so plainly.
const PHONE_FORMATS_REFUSED: &[&str] = &[
    "pillow-heif/corrupted.heic",
    "pillow-heif/200MP.heic",
    "libavif/clap_irot_imir_non_essential.avif",
    "libavif/color_grid_alpha_grid_tile_shared_in_dimg.avif",
    "libavif/sofa_grid1x5_420_dimg_repeat.avif",
    "libavif/draw_points_idat_metasize0.avif",
    // jxl-oxide 0.12 does not read a box with a 64-bit size.
    "jxl/square-extended-size-container.jxl",
];

#[test]
fn every_heic_avif_and_jpeg_xl_file_makes_its_thumbnails_or_a_readable_refusal() {
    let mut findings = Findings::default();
    for (name, (width, height)) in PHONE_FORMATS_UPRIGHT {
        let fixture = Fixture::read(name);
        let result = match make(&fixture.bytes) {
            Outcome::Made(thumbnails) => support::decoded_thumbnails(&thumbnails, *width, *height).map(drop),
            other => Err(other.to_string()),
        };
        findings.check(name, result);
    }
    for name in PHONE_FORMATS_REFUSED {
        findings.check(name, readable_refusal(make(&Fixture::read(name).bytes)));
    }
    // Every file of the sets is in one list or the other (or is not even recognised, as an empty file).
    for set in ["pillow-heif", "libavif", "jxl"] {
        for fixture in fixture_files(set, &["heic", "heif", "avif", "jxl"]) {
            let listed = PHONE_FORMATS_UPRIGHT.iter().any(|(name, _)| *name == fixture.name) || PHONE_FORMATS_REFUSED.contains(&fixture.name.as_str());
            if !listed && !matches!(make(&fixture.bytes), Outcome::NotAccepted) {
                findings.check(&fixture.name, Err("is in neither list of this test".into()));
            }
        }
    }
    findings.assert_none("HEIC, AVIF and JPEG XL files", 37);
}

#[test]
fn a_heif_over_the_pixel_limit_is_refused_from_its_header() {
    let outcome = make(&Fixture::read("pillow-heif/200MP.heic").bytes);
    assert!(matches!(outcome, Outcome::Refused(PipelineError::DimensionsOverLimits)), "{outcome}");
}

/// The small thumbnail of a file of the table above, after the checks of [`support::decoded_thumbnails`].
fn small_of(name: &str) -> RgbaImage {
    let (_, (width, height)) = PHONE_FORMATS_UPRIGHT.iter().find(|(listed, _)| *listed == name).expect("listed");
    let Outcome::Made(thumbnails) = make(&Fixture::read(name).bytes) else { panic!("{name} makes no thumbnails") };
    support::decoded_thumbnails(&thumbnails, *width, *height).unwrap().pop().unwrap().to_rgba8()
}

#[test]
fn a_jpeg_xl_made_from_a_turned_jpeg_comes_out_right_side_up() {
    for (jxl, reference) in [("jxl/landscape_6_from_jpeg.jxl", "Landscape"), ("jxl/portrait_8_lossy.jxl", "Portrait")] {
        let ours = small_of(jxl);
        let upright = small_thumbnail(&orientation_sample(reference, 1)).unwrap().to_rgba8();
        assert_eq!(ours.dimensions(), upright.dimensions(), "{jxl}");
        let difference = mean_absolute_difference(&ours, &upright);
        assert!(worst_channel(difference) < RIGHT_SIDE_UP_AT_MOST, "{jxl} differs from {reference}_1.jpg by {difference:.2?}");
    }
}

#[test]
fn transparency_in_heic_avif_and_jpeg_xl_is_kept_in_png_thumbnails() {
    for name in ["pillow-heif/RGBA_8__128x128.heif", "libavif/abc_color_irot_alpha_NOirot.avif", "jxl/basn6a08_alpha.jxl"] {
        let Outcome::Made(thumbnails) = make(&Fixture::read(name).bytes) else { panic!("{name} makes no thumbnails") };
        assert!(thumbnails.iter().all(|thumbnail| thumbnail.format == ThumbFormat::Png), "{name}");
    }
}

// WebP beside each baseline thumbnail.

#[test]
fn every_thumbnail_has_a_webp_of_its_size_that_looks_like_it_and_keeps_its_transparency() {
    let mut findings = Findings::default();
    let names = [
        "exif-orientation/Landscape_6.jpg",
        "pillow/pil_sample_cmyk.jpg",
        "pngsuite/basn6a08.png",
        "pngsuite/basn0g08.png",
        "pillow/transparent.webp",
        "libavif/abc_color_irot_alpha_irot.avif",
        "pillow-heif/xiaomi.heic",
    ];
    for name in names {
        let fixture = Fixture::read(name);
        let format = SourceFormat::sniff(&fixture.bytes).expect("an accepted format");
        let result = thumbq_worker::pipeline::make_thumbnails_with_webp(
            fixture.bytes.as_slice(),
            format,
            &thumbq_contract::Sizes::default(),
            &thumbq_worker::pipeline::MediaLimits::default(),
        )
        .map_err(|error| error.to_string())
        .and_then(|(mut thumbnails, _)| {
            let webps = thumbnails.split_off(3);
            let (width, height) = (thumbnails[0].width, thumbnails[0].height);
            if webps.iter().any(|webp| webp.format != ThumbFormat::Webp) {
                return Err("the second set is not all WebP".into());
            }
            let baseline = support::decoded_thumbnails(&thumbnails, width, height)?;
            let ours = support::decoded_thumbnails(&webps, width, height)?;
            for ((webp, jpeg), thumbnail) in ours.iter().zip(&baseline).zip(&thumbnails) {
                let difference = mean_absolute_difference(&webp.to_rgba8(), &jpeg.to_rgba8());
                // Two lossy codecs apart: measured up to 4.7 per channel, on the small size of the orientation chart's sharp lines.
                if worst_channel(difference) > 6.0 {
                    return Err(format!("the {} WebP differs from its {:?} by {difference:.2?}", thumbnail.size, thumbnail.format));
                }
                if thumbnail.format == ThumbFormat::Png && !webp.color().has_alpha() {
                    return Err(format!("the {} WebP lost the transparency of its PNG", thumbnail.size));
                }
            }
            let (webp_bytes, baseline_bytes): (usize, usize) = (webps.iter().map(|t| t.bytes.len()).sum(), thumbnails.iter().map(|t| t.bytes.len()).sum());
            if thumbnails[0].format == ThumbFormat::Jpeg && webp_bytes >= baseline_bytes {
                return Err(format!("the WebPs have {webp_bytes} bytes, the JPEGs {baseline_bytes}"));
            }
            Ok(())
        });
        findings.check(name, result);
    }
    findings.assert_none("WebP thumbnails", names.len());
}

#[test]
fn an_hdr_avif_in_rec2020_pq_comes_out_near_the_sdr_rendition_of_the_same_photo() {
    // libavif's two renditions of one photo: HDR10 (BT.2020, PQ, 10 bits) and SDR sRGB with a gain map.
    let hdr = small_of("libavif/seine_hdr_rec2020.avif");
    let sdr = small_of("libavif/seine_sdr_gainmap_srgb.avif");
    let difference = mean_absolute_difference(&hdr, &sdr);
    let (hdr_mean, sdr_mean) = (mean_colour(&image::DynamicImage::ImageRgba8(hdr)), mean_colour(&image::DynamicImage::ImageRgba8(sdr)));
    // Measured: 13 per channel (means 157 against 168); cut to 8 bits as PQ, the photo was nearly black (30 against 168).
    assert!(worst_channel(difference) < 25.0, "the PQ photo differs from its SDR rendition by {difference:.1?} (means {hdr_mean:.1?} against {sdr_mean:.1?})");
}
