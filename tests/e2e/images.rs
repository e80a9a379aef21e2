//! Test images: made here, or read from `tests/fixtures` (see the licence notes there).

use std::io::Cursor;
use std::path::PathBuf;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("the image encodes");
    out.into_inner()
}

/// A photo-like opaque JPEG: smooth gradients with some detail.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let ripple = (((x as f32 / 13.0).sin() + (y as f32 / 17.0).cos()) * 30.0) as i32;
        let channel = |base: u32, span: u32| ((base * 255 / span) as i32 + ripple).clamp(0, 255) as u8;
        Rgb([channel(x, width), channel(y, height), channel(x + y, width + height)])
    });
    encode(&DynamicImage::ImageRgb8(image), ImageFormat::Jpeg)
}

/// A PNG whose left half is fully transparent.
pub fn transparent_png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbaImage::from_fn(width, height, |x, _| Rgba([20, 120, 220, if x < width / 2 { 0 } else { 255 }]));
    encode(&DynamicImage::ImageRgba8(image), ImageFormat::Png)
}

/// A JPEG's first bytes followed by garbage: it passes the upload's check and fails in the worker.
pub fn corrupt_jpeg() -> Vec<u8> {
    let mut bytes = jpeg(64, 64);
    bytes.truncate(200);
    bytes.extend(std::iter::repeat_n(0x5A, 500));
    bytes
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

pub fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("a decodable thumbnail")
}

/// Mean absolute difference per channel, 0 to 255, between two images of the same size.
pub fn mean_difference(a: &DynamicImage, b: &DynamicImage) -> f64 {
    let (a, b) = (a.to_rgb8(), b.to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions(), "images of the same size");
    let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    total as f64 / a.as_raw().len() as f64
}

/// A PNG whose header claims `width`×`height` pixels, followed by a tiny
/// image data chunk: a decompression bomb as far as any header reader can tell.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut png, b"IHDR", &header);
    png_chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// The CRC-32 PNG chunks carry (IEEE 802.3, reflected).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
