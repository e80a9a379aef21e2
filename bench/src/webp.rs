//! The WebP table: how many bytes WebP saves against the worker's JPEG at the
//! same SSIM, and what each of libwebp's methods costs, on the bench's photos
//! and on the corpus's real ones. It chose `pipeline::webp::{QUALITY, METHOD}`.
//!
//! Both encode the same pixels: the full decode resized straight to each size
//! with Lanczos 3 (the quality table's reference), so only the codecs differ.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};
use thumbq_contract::{Sizes, ThumbSize};
use thumbq_worker::pipeline::{encode_jpeg, webp};

use crate::ssim::{Plane, ssim};
use crate::table::{self, median, ms};

/// Qualities tried, lowest first: the table gives the lowest whose SSIM is the JPEG's or better.
const QUALITIES: [f32; 14] = [60.0, 65.0, 70.0, 75.0, 78.0, 80.0, 82.0, 84.0, 86.0, 88.0, 90.0, 92.0, 94.0, 96.0];
/// Methods timed; the first three are also searched for the quality that matches the JPEG.
const METHODS: [i32; 5] = [2, 4, 6, 0, 5];
const SEARCHED: usize = 3;

pub struct Photo {
    pub name: String,
    pub bytes: Vec<u8>,
    /// A real photo, not one the bench drew: only those count in the totals.
    pub real: bool,
}

/// The corpus's real photos, from the test fixtures.
pub fn corpus_photos() -> Vec<Photo> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    [
        "exif-orientation/Landscape_1.jpg",
        "exif-orientation/Portrait_1.jpg",
        "image-rs-image/jpg/progressive/3.jpg",
        "image-rs-image/jpg/progressive/cat.jpg",
        "libjpeg-turbo/testorig.jpg",
    ]
    .into_iter()
    .filter_map(|name| std::fs::read(root.join(name)).ok().map(|bytes| Photo { name: name.to_owned(), bytes, real: true }))
    .collect()
}

pub fn run(photos: &[Photo], runs: usize) -> anyhow::Result<()> {
    let sizes = Sizes::default();
    table::heading(
        "WebP against JPEG",
        &format!(
            "The same Lanczos 3 pixels of each size encoded by the worker's JPEG (libjpeg-turbo, quality 85) and by libwebp (lossy); SSIM on luma against those pixels. \
             For methods 2, 4 and 6: the lowest quality whose SSIM is at least the JPEG's, and the bytes it saves there; then ours (quality {}, method {}). A size the image already fits is left out.",
            webp::QUALITY,
            webp::METHOD
        ),
    );
    table::header(&["image", "size", "SSIM JPEG", "JPEG (KiB)", "m2: q, saved", "m4: q, saved", "m6: q, saved", "ours: SSIM", "ours: saved"]);
    let mut encodes: Vec<(ThumbSize, Vec<Vec<std::time::Duration>>)> =
        ThumbSize::ALL.into_iter().map(|size| (size, vec![Vec::new(); METHODS.len() + 1])).collect();
    // Per searched method, the bytes at the matching quality and the JPEG's, over every row that matched.
    let mut totals = [(0usize, 0usize); SEARCHED];
    let mut ours_total = (0usize, 0usize);
    let (mut ours_level, mut rows) = (0, 0);
    for photo in photos {
        let full = image::load_from_memory(&photo.bytes).with_context(|| format!("{} decodes", photo.name))?.into_rgb8();
        let mut seen = Vec::new();
        for size in ThumbSize::ALL {
            let (width, height) = sizes.fit(size, full.width(), full.height());
            // A size the photo already fits is its own pixels: a JPEG re-encoded at its own size says nothing of the codec.
            if seen.contains(&(width, height)) || (width, height) == full.dimensions() {
                continue;
            }
            seen.push((width, height));
            let pixels = lanczos3(&full, width, height);
            let reference = Plane::luma(&pixels);
            let image = DynamicImage::ImageRgb8(pixels);
            let score = |bytes: &[u8]| -> anyhow::Result<f64> { Ok(ssim(&reference, &Plane::luma(&image::load_from_memory(bytes)?.into_rgb8()))) };
            let jpeg = encode_jpeg(&image)?;
            let jpeg_ssim = score(&jpeg)?;
            let saved = |bytes: usize| format!("{:.0} %", 100.0 * (1.0 - bytes as f64 / jpeg.len() as f64));
            let mut cells = vec![photo.name.clone(), size.to_string(), format!("{jpeg_ssim:.4}"), format!("{:.1}", jpeg.len() as f64 / 1024.0)];
            for (method, total) in METHODS[..SEARCHED].iter().zip(totals.iter_mut()) {
                let mut matched = None;
                for quality in QUALITIES {
                    let bytes = webp::encode_with(&image, quality, *method)?;
                    if score(&bytes)? >= jpeg_ssim {
                        matched = Some((quality, bytes.len()));
                        break;
                    }
                }
                cells.push(match matched {
                    Some((quality, bytes)) => {
                        if photo.real {
                            *total = (total.0 + bytes, total.1 + jpeg.len());
                        }
                        format!("{quality}, {}", saved(bytes))
                    }
                    None => format!("> {}", QUALITIES[QUALITIES.len() - 1]),
                });
            }
            let ours = webp::encode(&image)?;
            let ours_ssim = score(&ours)?;
            if photo.real {
                ours_total = (ours_total.0 + ours.len(), ours_total.1 + jpeg.len());
                ours_level += usize::from(ours_ssim >= jpeg_ssim);
                rows += 1;
            }
            cells.push(format!("{ours_ssim:.4}"));
            cells.push(saved(ours.len()));
            table::row(&cells);
            let times = &mut encodes.iter_mut().find(|(each, _)| *each == size).expect("every size").1;
            for (method, times) in METHODS.iter().zip(times.iter_mut()) {
                for _ in 0..runs {
                    let started = Instant::now();
                    webp::encode_with(&image, webp::QUALITY, *method)?;
                    times.push(started.elapsed());
                }
            }
            for _ in 0..runs {
                let started = Instant::now();
                encode_jpeg(&image)?;
                times[METHODS.len()].push(started.elapsed());
            }
        }
    }
    let overall = |(webp, jpeg): (usize, usize)| if jpeg == 0 { "–".to_owned() } else { format!("{:.0} %", 100.0 * (1.0 - webp as f64 / jpeg as f64)) };
    table::note(&format!(
        "Bytes saved over the real photos' rows that matched: method 2 {}, method 4 {}, method 6 {}; ours {} over all {rows} of them, at an SSIM at least the JPEG's in {ours_level}.",
        overall(totals[0]),
        overall(totals[1]),
        overall(totals[2]),
        overall(ours_total)
    ));
    println!();
    table::header(&["size", "JPEG encode (ms)"].into_iter().chain(METHODS.iter().map(|method| leak(format!("WebP m{method} (ms)")))).collect::<Vec<_>>());
    for (size, mut times) in encodes {
        let jpeg = times.pop().expect("the JPEG's times");
        let mut row = vec![size.to_string(), format!("{:.2}", ms(median(jpeg)))];
        row.extend(times.into_iter().map(|times| format!("{:.2}", ms(median(times)))));
        table::row(&row);
    }
    table::note("Encode times: medians over all the photos above, WebP at our quality, one thread.");
    Ok(())
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn lanczos3(full: &RgbImage, width: u32, height: u32) -> RgbImage {
    let mut resized = RgbImage::new(width, height);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(full, &mut resized, &options).expect("an RGB image resizes into another");
    resized
}
