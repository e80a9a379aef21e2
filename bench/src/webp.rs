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
const QUALITIES: [f32; 9] = [50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0];
const METHODS: [i32; 5] = [0, 2, 4, 5, 6];

pub struct Photo {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The corpus's real photos, from the test fixtures.
pub fn corpus_photos() -> Vec<Photo> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    ["exif-orientation/Landscape_1.jpg", "pillow/pil_sample_rgb.jpg", "libjpeg-turbo/testorig.jpg", "pillow/hopper_16bit_qtables.jpg"]
        .into_iter()
        .filter_map(|name| std::fs::read(root.join(name)).ok().map(|bytes| Photo { name: name.to_owned(), bytes }))
        .collect()
}

pub fn run(photos: &[Photo], runs: usize) -> anyhow::Result<()> {
    let sizes = Sizes::default();
    table::heading(
        "WebP against JPEG",
        &format!(
            "The same Lanczos 3 pixels of each size encoded by the worker's JPEG (libjpeg-turbo, quality 85) and by libwebp (lossy, method {}); SSIM on luma against those pixels. \
             \"WebP q\" is the lowest quality whose SSIM is at least the JPEG's; the bytes are at that quality and at ours ({}).",
            webp::METHOD,
            webp::QUALITY
        ),
    );
    table::header(&["image", "size", "SSIM JPEG", "JPEG (KiB)", "WebP q", "SSIM there", "WebP there (KiB)", "saved", "at ours: SSIM", "at ours (KiB)", "saved"]);
    let mut encodes: Vec<(ThumbSize, Vec<Vec<std::time::Duration>>)> = ThumbSize::ALL.into_iter().map(|size| (size, vec![Vec::new(); METHODS.len() + 1])).collect();
    for photo in photos {
        let full = image::load_from_memory(&photo.bytes).with_context(|| format!("{} decodes", photo.name))?.into_rgb8();
        for size in ThumbSize::ALL {
            let (width, height) = sizes.fit(size, full.width(), full.height());
            let pixels = lanczos3(&full, width, height);
            let reference = Plane::luma(&pixels);
            let image = DynamicImage::ImageRgb8(pixels);
            let score = |bytes: &[u8]| -> anyhow::Result<f64> { Ok(ssim(&reference, &Plane::luma(&image::load_from_memory(bytes)?.into_rgb8()))) };
            let jpeg = encode_jpeg(&image)?;
            let jpeg_ssim = score(&jpeg)?;
            let mut matched = None;
            for quality in QUALITIES {
                let bytes = webp::encode_with(&image, quality, webp::METHOD)?;
                let ssim = score(&bytes)?;
                if ssim >= jpeg_ssim {
                    matched = Some((quality, ssim, bytes.len()));
                    break;
                }
            }
            let ours = webp::encode(&image)?;
            let kib = |bytes: usize| format!("{:.1}", bytes as f64 / 1024.0);
            let saved = |bytes: usize| format!("{:.0} %", 100.0 * (1.0 - bytes as f64 / jpeg.len() as f64));
            table::row(&[
                photo.name.clone(),
                size.to_string(),
                format!("{jpeg_ssim:.4}"),
                kib(jpeg.len()),
                matched.map_or("> 90".into(), |(quality, _, _)| format!("{quality}")),
                matched.map_or("–".into(), |(_, ssim, _)| format!("{ssim:.4}")),
                matched.map_or("–".into(), |(_, _, bytes)| kib(bytes)),
                matched.map_or("–".into(), |(_, _, bytes)| saved(bytes)),
                format!("{:.4}", score(&ours)?),
                kib(ours.len()),
                saved(ours.len()),
            ]);
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
