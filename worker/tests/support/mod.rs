//! What the golden tests share: the fixture files, one run of the pipeline
//! that turns a panic into a finding, the checks every set of thumbnails must
//! pass, and the pixel measures the comparisons use.

use std::fmt;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbaImage};
use thumbq_contract::{MediaLimits, Sizes, SourceFormat, ThumbFormat, ThumbSize};
use thumbq_worker::pipeline::{PipelineError, Thumbnail, make_thumbnails};

/// One test image from `tests/fixtures/` at the top of the repository.
pub struct Fixture {
    /// The path below `tests/fixtures/`, as failure reports name the file.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Fixture {
    /// Reads `tests/fixtures/{name}`.
    pub fn read(name: &str) -> Self {
        let path = fixtures_root().join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read the fixture {}: {error}", path.display()));
        Self { name: name.to_owned(), bytes }
    }

    /// The file name without its folders.
    pub fn file_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// Every file below `tests/fixtures/{set}` whose name ends in one of
/// `extensions`, sorted by name, so that adding a file adds a case.
pub fn fixture_files(set: &str, extensions: &[&str]) -> Vec<Fixture> {
    fixture_files_where(set, |file_name| {
        let file_name = file_name.to_ascii_lowercase();
        extensions.iter().any(|extension| file_name.ends_with(&format!(".{extension}")))
    })
}

/// Every file below `tests/fixtures/{set}` whose file name passes `wanted`, sorted by name.
pub fn fixture_files_where(set: &str, wanted: impl Fn(&str) -> bool) -> Vec<Fixture> {
    let mut names = Vec::new();
    collect_names(&fixtures_root(), Path::new(set), &mut names);
    names.retain(|name| wanted(name.rsplit('/').next().unwrap_or(name)));
    names.sort();
    names.iter().map(|name| Fixture::read(name)).collect()
}

/// Every input in `worker/fuzz/regressions/`: files that once made the fuzz target fail.
pub fn fuzz_regressions() -> Vec<Fixture> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let entries = std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()));
    let mut paths: Vec<PathBuf> = entries.map(|entry| entry.expect("a directory entry").path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
            Fixture { name: format!("fuzz/regressions/{}", path.file_name().unwrap_or_default().to_string_lossy()), bytes }
        })
        .collect()
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn collect_names(root: &Path, relative: &Path, names: &mut Vec<String>) {
    let directory = root.join(relative);
    let entries = std::fs::read_dir(&directory).unwrap_or_else(|error| panic!("cannot list {}: {error}", directory.display()));
    for entry in entries.map(|entry| entry.expect("a directory entry")) {
        let relative = relative.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            collect_names(root, &relative, names);
        } else {
            names.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// How one file ended, the way its uploader would meet it.
pub enum Outcome {
    /// The format sniffing did not recognise the bytes: the upload is refused as unsupported.
    NotAccepted,
    Made(Vec<Thumbnail>),
    Refused(PipelineError),
    Panicked(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAccepted => write!(f, "refused by the format sniffing as not {}", SourceFormat::ACCEPTED),
            Self::Made(thumbnails) => write!(f, "made {} thumbnails", thumbnails.len()),
            Self::Refused(error) => write!(f, "refused: {error} ({error:?})"),
            Self::Panicked(message) => write!(f, "PANICKED: {message}"),
        }
    }
}

/// Recognises the format as the upload does, then runs the pipeline with the
/// default sizes and limits.
pub fn make(bytes: &[u8]) -> Outcome {
    match SourceFormat::sniff(bytes) {
        Some(format) => make_as(bytes, format),
        None => Outcome::NotAccepted,
    }
}

/// Runs the pipeline on `bytes` as `format`, whatever the bytes are.
pub fn make_as(bytes: &[u8], format: SourceFormat) -> Outcome {
    let run = catch_unwind(AssertUnwindSafe(|| make_thumbnails(bytes, format, &Sizes::default(), &MediaLimits::default())));
    match run {
        Ok(Ok(thumbnails)) => Outcome::Made(thumbnails),
        Ok(Err(error)) => Outcome::Refused(error),
        Err(panic) => Outcome::Panicked(
            panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned())).unwrap_or_default(),
        ),
    }
}

/// The source's size once turned upright, read with the `image` crate (or libjpeg-turbo),
/// independently of the pipeline.
pub fn upright_dimensions(bytes: &[u8]) -> Result<(u32, u32), String> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|error| error.to_string())?;
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        // The `image` crate has no arithmetic-coded JPEG; libjpeg-turbo reads its header.
        Err(error) => {
            let header =
                turbojpeg::read_header(bytes).map_err(|_| format!("neither the image crate nor libjpeg-turbo can read the source's header: {error}"))?;
            return Ok((header.width as u32, header.height as u32));
        }
    };
    let (width, height) = decoder.dimensions();
    let turned = decoder.orientation().is_ok_and(|orientation| matches!(orientation.to_exif(), 5..=8));
    Ok(if turned { (height, width) } else { (width, height) })
}

/// The decoded thumbnails of `fixture`, largest first, after the checks of
/// [`decoded_thumbnails`] against the source's upright size.
pub fn checked_thumbnails(fixture: &Fixture, thumbnails: &[Thumbnail]) -> Result<Vec<DynamicImage>, String> {
    let (width, height) = upright_dimensions(&fixture.bytes)?;
    decoded_thumbnails(thumbnails, width, height)
}

/// What an ordinary image must come to: three thumbnails of the fitted sizes
/// that decode. Returns their pixels, largest first.
pub fn three_thumbnails(fixture: &Fixture) -> Result<Vec<DynamicImage>, String> {
    match make(&fixture.bytes) {
        Outcome::Made(thumbnails) => checked_thumbnails(fixture, &thumbnails),
        other => Err(other.to_string()),
    }
}

/// The small thumbnail of `fixture`, decoded, after the checks of [`three_thumbnails`].
pub fn small_thumbnail(fixture: &Fixture) -> Result<DynamicImage, String> {
    three_thumbnails(fixture)?.pop().ok_or_else(|| "no thumbnails".to_owned())
}

/// The pixels of a `width`×`height` source's thumbnails, largest first, after
/// checking what `make_thumbnails` promises: one thumbnail per size, largest
/// first, each of the size `Sizes::fit` gives, each decoding to that size in
/// the format it claims.
pub fn decoded_thumbnails(thumbnails: &[Thumbnail], width: u32, height: u32) -> Result<Vec<DynamicImage>, String> {
    let sizes: Vec<ThumbSize> = thumbnails.iter().map(|thumbnail| thumbnail.size).collect();
    if sizes != [ThumbSize::Large, ThumbSize::Medium, ThumbSize::Small] {
        return Err(format!("the thumbnails are {sizes:?}, not large, medium and small in that order"));
    }
    thumbnails
        .iter()
        .map(|thumbnail| {
            let expected = Sizes::default().fit(thumbnail.size, width, height);
            let claimed = (thumbnail.width, thumbnail.height);
            if claimed != expected {
                return Err(format!("the {} thumbnail of a {width}×{height} image is {claimed:?}, not {expected:?}", thumbnail.size));
            }
            let format = match thumbnail.format {
                ThumbFormat::Jpeg => ImageFormat::Jpeg,
                ThumbFormat::Png => ImageFormat::Png,
                ThumbFormat::Webp => ImageFormat::WebP,
            };
            let image = image::load_from_memory_with_format(&thumbnail.bytes, format)
                .map_err(|error| format!("the {} thumbnail does not decode as {format:?}: {error}", thumbnail.size))?;
            if (image.width(), image.height()) != expected {
                return Err(format!("the {} thumbnail decodes to {}×{}, not {expected:?}", thumbnail.size, image.width(), image.height()));
            }
            Ok(image)
        })
        .collect()
}

/// Whether `message` reads as a sentence for the person who sent the file,
/// rather than a decoder's dump: one line of words, starting with a letter,
/// with no debug formatting in it.
pub fn readable_sentence(message: &str) -> Result<(), String> {
    let words = message.split_whitespace().filter(|word| word.chars().any(char::is_alphabetic)).count();
    let starts_with_a_letter = message.chars().next().is_some_and(char::is_alphabetic);
    let debug_marks = ["{", "}", "::", "Error(", "Some(", "None", "\\n"];
    if !starts_with_a_letter || words < 4 || message.len() > 300 || message.contains('\n') || debug_marks.iter().any(|mark| message.contains(mark)) {
        return Err(format!("the message “{message}” is not a readable sentence"));
    }
    Ok(())
}

/// The mean of each colour channel in 8-bit levels, each pixel weighted by its
/// alpha, so the colour of fully transparent pixels, which nobody sees, does
/// not count. For an opaque image this is the plain mean.
pub fn mean_colour(image: &DynamicImage) -> [f64; 3] {
    let pixels = image.to_rgba8();
    let mut sums = [0.0; 3];
    let mut weight = 0.0;
    for pixel in pixels.pixels() {
        let alpha = f64::from(pixel.0[3]);
        for (sum, channel) in sums.iter_mut().zip(pixel.0) {
            *sum += f64::from(channel) * alpha;
        }
        weight += alpha;
    }
    sums.map(|sum| if weight > 0.0 { sum / weight } else { 0.0 })
}

/// The mean absolute difference between two images of the same size, per
/// channel (red, green, blue, alpha) in 8-bit levels. Colours are multiplied
/// by their alpha first, so differences nobody can see do not count.
pub fn mean_absolute_difference(first: &RgbaImage, second: &RgbaImage) -> [f64; 4] {
    assert_eq!(first.dimensions(), second.dimensions(), "only images of the same size compare pixel by pixel");
    let premultiplied = |pixel: &image::Rgba<u8>, channel: usize| {
        let alpha = f64::from(pixel.0[3]);
        if channel == 3 { alpha } else { f64::from(pixel.0[channel]) * alpha / 255.0 }
    };
    let mut sums = [0.0; 4];
    for (one, other) in first.pixels().zip(second.pixels()) {
        for (channel, sum) in sums.iter_mut().enumerate() {
            *sum += (premultiplied(one, channel) - premultiplied(other, channel)).abs();
        }
    }
    let count = f64::from(first.width()) * f64::from(first.height());
    sums.map(|sum| sum / count)
}

/// The largest of the per-channel differences.
pub fn worst_channel(differences: [f64; 4]) -> f64 {
    differences.into_iter().fold(0.0, f64::max)
}

/// What went wrong over many files, reported together: one run names every
/// file at fault, not only the first.
#[derive(Default)]
pub struct Findings {
    checked: usize,
    faults: Vec<String>,
}

impl Findings {
    /// Counts one file checked, and keeps its fault if it has one.
    pub fn check(&mut self, name: &str, result: Result<(), String>) {
        self.checked += 1;
        if let Err(fault) = result {
            self.faults.push(format!("{name}: {fault}"));
        }
    }

    /// Fails, listing every fault, if there is one, or if fewer than
    /// `at_least` files were checked (a fixture folder gone missing).
    pub fn assert_none(self, what: &str, at_least: usize) {
        assert!(self.checked >= at_least, "only {} of {what} were checked, expected at least {at_least}", self.checked);
        assert!(self.faults.is_empty(), "{} of {} {what} are wrong:\n{}", self.faults.len(), self.checked, self.faults.join("\n"));
    }
}
