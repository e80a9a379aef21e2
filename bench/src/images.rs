//! The test images, made here so that the benchmark needs no files.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use thumbq_contract::SourceFormat;

/// An upload as the worker receives it: encoded bytes and the format the web
/// server recognised.
pub struct TestImage {
    pub name: String,
    pub bytes: Vec<u8>,
    pub format: SourceFormat,
}

impl TestImage {
    /// A photo-like JPEG at quality 90 with 4:2:0 chroma, as a camera or phone saves one.
    pub fn photo_jpeg(name: &str, width: u32, height: u32) -> Self {
        let photo = DynamicImage::ImageRgb8(photo_like(width, height));
        Self { name: name.into(), bytes: jpeg(&photo, 90), format: SourceFormat::Jpeg }
    }

    /// A photo-like PNG, opaque: its thumbnails are JPEGs.
    pub fn photo_png(name: &str, width: u32, height: u32) -> Self {
        Self { name: name.into(), bytes: png(&DynamicImage::ImageRgb8(photo_like(width, height))), format: SourceFormat::Png }
    }

    /// A PNG of random pixels from a fixed seed, the same bytes on every run:
    /// deflate finds nothing to shrink, so it keeps about 3 bytes a pixel.
    pub fn noise_png(name: &str, width: u32, height: u32) -> Self {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise = RgbImage::from_fn(width, height, |_, _| {
            // xorshift64: plenty random for deflate, and no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let [red, green, blue, ..] = state.to_le_bytes();
            Rgb([red, green, blue])
        });
        Self { name: name.into(), bytes: png(&DynamicImage::ImageRgb8(noise)), format: SourceFormat::Png }
    }

    /// A PNG that fades to transparent from right to left: its thumbnails are PNGs.
    pub fn transparent_png(name: &str, width: u32, height: u32) -> Self {
        let photo = photo_like(width, height);
        let faded = RgbaImage::from_fn(width, height, |x, y| {
            let Rgb([red, green, blue]) = *photo.get_pixel(x, y);
            Rgba([red, green, blue, (255 * x / width.max(1)) as u8])
        });
        Self { name: name.into(), bytes: png(&DynamicImage::ImageRgba8(faded)), format: SourceFormat::Png }
    }

    /// A grey zone plate, `side`×`side`, as a JPEG at quality 95: concentric
    /// rings whose frequency rises from 0 at the centre to Nyquist (one cycle
    /// per two pixels) at the middle of each edge; flat grey outside that circle.
    /// Whatever shrinks it with too little filtering turns the fine outer rings
    /// into coarse false rings (aliasing) that no later filter can remove.
    pub fn zone_plate(name: &str, side: u32) -> Self {
        let radius = f64::from(side) / 2.0;
        let plate = GrayImage::from_fn(side, side, |x, y| {
            let (dx, dy) = (f64::from(x) + 0.5 - radius, f64::from(y) + 0.5 - radius);
            let squared = dx * dx + dy * dy;
            // The phase π r² / 2R has a frequency of r / 2R cycles per pixel.
            let ring = if squared <= radius * radius { (std::f64::consts::PI * squared / (2.0 * radius)).cos() } else { 0.0 };
            Luma([(127.5 + 127.0 * ring).round() as u8])
        });
        Self { name: name.into(), bytes: jpeg(&DynamicImage::ImageLuma8(plate), 95), format: SourceFormat::Jpeg }
    }

    /// A file as it is, from the corpus.
    pub fn file(name: &str, bytes: Vec<u8>, format: SourceFormat) -> Self {
        Self { name: name.into(), bytes, format }
    }

    /// Writes the image into `dir` with the extension its format has, for the
    /// programs that take a file.
    pub fn write_into(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let extension = match self.format {
            SourceFormat::Png => "png",
            SourceFormat::Heic => "heic",
            SourceFormat::Avif => "avif",
            SourceFormat::Jxl => "jxl",
            SourceFormat::Gif => "gif",
            SourceFormat::Webp => "webp",
            SourceFormat::Jpeg => "jpg",
        };
        let path = dir.join(format!("input.{extension}"));
        std::fs::write(&path, &self.bytes)?;
        Ok(path)
    }
}

/// The images' names, for a sentence.
pub fn names(images: &[&TestImage]) -> String {
    images.iter().map(|image| image.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Smooth light, textured areas and sharp edges, like a photo.
fn photo_like(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let sky = 255.0 * (1.0 - fy);
        let texture = ((x as f32 * 0.37).sin() * (y as f32 * 0.23).cos() * 40.0) + ((x ^ y) % 17) as f32;
        let edge = if (fx - 0.5).abs() < 0.1 && fy > 0.4 { -120.0 } else { 0.0 };
        let channel = |base: f32| (base + texture + edge).clamp(0.0, 255.0) as u8;
        Rgb([channel(sky * 0.6 + 60.0 * fx), channel(120.0 + 80.0 * fy), channel(sky)])
    })
}

/// Written by libjpeg-turbo: the `image` crate's encoder only writes 4:4:4
/// chroma, which cameras do not, and which costs both sides more to decode.
fn jpeg(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let (format, subsampling) = match image {
        DynamicImage::ImageLuma8(_) => (turbojpeg::PixelFormat::GRAY, turbojpeg::Subsamp::Gray),
        _ => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::Sub2x2),
    };
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels = turbojpeg::Image { pixels: image.as_bytes(), width, pitch: width * format.size(), height, format };
    turbojpeg::compress(pixels, i32::from(quality), subsampling).expect("the test image encodes").to_vec()
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).expect("the test image encodes");
    out.into_inner()
}
