//! Decodes one HEIC or AVIF file with libheif, in a process of its own (see
//! `thumbq-heif-protocol`): the file on standard input, a header and
//! 8-bit RGB or RGBA pixels on standard output, a refusal as an exit code with
//! one line on standard error.
//!
//! `thumbq-heif-decode MAX_SIDE MAX_PIXELS CPU_SECONDS MEMORY_BYTES` decodes;
//! `thumbq-heif-decode --check` decodes a small HEIC and AVIF and prints libheif's version.

use std::io::{Read, Write};
use std::process::ExitCode;

use libheif_rs::{ColorSpace, CompressionFormat, DecodingOptions, HeifContext, HeifError, HeifErrorCode, ImageHandle, LibHeif, RgbChroma};
use thumbq_heif_protocol::{ChildLimits, Header, MAX_ICC_BYTES, exit};

const SAMPLE_HEIC: &[u8] = include_bytes!("../samples/check.heic");
const SAMPLE_AVIF: &[u8] = include_bytes!("../samples/check.avif");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--check"] {
        return check();
    }
    let Some(limits) = ChildLimits::from_args(&args) else {
        eprintln!("usage: thumbq-heif-decode MAX_SIDE MAX_PIXELS CPU_SECONDS MEMORY_BYTES < file > pixels");
        return ExitCode::from(2);
    };
    limit_self(&limits);
    let mut bytes = Vec::new();
    if let Err(error) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("cannot read the file: {error}");
        return ExitCode::from(exit::BROKEN as u8);
    }
    let lib = LibHeif::new();
    match decode(&lib, &bytes, &limits) {
        Ok((header, pixels)) => {
            let mut out = std::io::stdout().lock();
            // The worker hung up (it gave up on this job): nothing more to say.
            if header.write_to(&mut out).and_then(|()| out.write_all(&pixels)).and_then(|()| out.flush()).is_err() {
                return ExitCode::from(exit::BROKEN as u8);
            }
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code as u8)
        }
    }
}

/// No core dumps (a crash is expected, and a 1 GB core is not), and the CPU and memory limits.
fn limit_self(limits: &ChildLimits) {
    let set = |resource, value: u64, hard: u64| {
        let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: hard as libc::rlim_t };
        // SAFETY: setrlimit(2) on this process, with a valid struct.
        unsafe { libc::setrlimit(resource, &limit) };
    };
    set(libc::RLIMIT_CORE, 0, 0);
    // SIGXCPU at the soft limit, which the worker reads as "over its CPU time"; SIGKILL only at the hard one.
    set(libc::RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds.saturating_add(2));
    set(libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes);
}

type Refusal = (i32, String);

fn decode(lib: &LibHeif, bytes: &[u8], limits: &ChildLimits) -> Result<(Header, Vec<u8>), Refusal> {
    let mut context = HeifContext::read_from_bytes(bytes).map_err(refusal)?;
    // One job, one thread: iPhone photos are grids of tiles that libheif would otherwise decode on every core.
    context.set_max_decoding_threads(1);
    let mut security = context.security_limits();
    security.set_max_image_size_pixels(limits.max_pixels);
    security.set_max_color_profile_size(MAX_ICC_BYTES);
    context.set_security_limits(&security).map_err(refusal)?;
    let handle = context.primary_image_handle().map_err(refusal)?;
    let (width, height) = (handle.width(), handle.height());
    if width > limits.max_side_px || height > limits.max_side_px || u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err((exit::OVER_LIMITS, format!("{width}×{height} is over the limits")));
    }
    let alpha = handle.has_alpha_channel();
    // PQ (HDR10) holds absolute light up to 10 000 nits: cut to 8 bits as it is, a photo comes out nearly black.
    let pq = pq_primaries(&handle);
    let chroma = match (alpha, pq.is_some()) {
        (false, false) => RgbChroma::Rgb,
        (true, false) => RgbChroma::Rgba,
        (false, true) => RgbChroma::HdrRgbLe,
        (true, true) => RgbChroma::HdrRgbaLe,
    };
    let mut options = DecodingOptions::new().ok_or_else(|| (exit::BROKEN, "libheif cannot make decoding options".to_owned()))?;
    options.set_convert_hdr_to_8bit(pq.is_none());
    // irot and imir are applied: the pixels come out upright, and EXIF orientation is not to be applied again.
    options.set_ignore_transformations(false);
    let image = lib.decode(&handle, ColorSpace::Rgb(chroma), Some(options)).map_err(refusal)?;
    let plane = image.planes().interleaved.ok_or_else(|| (exit::BROKEN, "libheif gave no interleaved plane".to_owned()))?;
    let channels: u8 = if alpha { 4 } else { 3 };
    let row = plane.width as usize * usize::from(channels);
    let mut pixels = Vec::with_capacity(row * plane.height as usize);
    if let Some(primaries) = pq {
        let bits = image.bits_per_pixel(libheif_rs::Channel::Interleaved).unwrap_or(plane.bits_per_pixel).clamp(8, 16);
        let tone_map = PqToSrgb::new(bits, primaries);
        for y in 0..plane.height as usize {
            let samples = plane.data[y * plane.stride..y * plane.stride + 2 * row].chunks_exact(2).map(|bytes| u16::from_le_bytes([bytes[0], bytes[1]]));
            tone_map.row(samples, channels, &mut pixels);
        }
        return Ok((Header { width: plane.width, height: plane.height, channels, icc: None }, pixels));
    }
    for y in 0..plane.height as usize {
        pixels.extend_from_slice(&plane.data[y * plane.stride..y * plane.stride + row]);
    }
    let header = Header { width: plane.width, height: plane.height, channels, icc: icc_of(&handle) };
    Ok((header, pixels))
}

/// The primaries of an image whose colour says PQ (CICP transfer 16) and has more than 8 bits; `None` otherwise.
fn pq_primaries(handle: &ImageHandle) -> Option<u8> {
    let nclx = handle.color_profile_nclx()?;
    (nclx.transfer_characteristics() as u8 == 16 && handle.luma_bits_per_pixel() > 8).then(|| nclx.color_primaries() as u8)
}

/// PQ light to 8-bit sRGB, for a thumbnail: the reference white of 203 nits
/// (ITU-R BT.2408) becomes sRGB's white, brighter light is rolled off (extended
/// Reinhard up to 1 000 nits), and BT.2020 or P3 primaries become sRGB's.
struct PqToSrgb {
    /// Linear light, 1.0 at reference white, for each input code.
    linear: Vec<f32>,
    /// Linear (BT.709) to sRGB primaries, row by row.
    matrix: [[f32; 3]; 3],
    /// The largest input code, for alpha.
    max: f32,
}

impl PqToSrgb {
    const REFERENCE_WHITE_NITS: f32 = 203.0;
    const PEAK_NITS: f32 = 1000.0;

    fn new(bits: u8, primaries: u8) -> Self {
        let max = (1u32 << bits) - 1;
        let (m1, m2, c1, c2, c3) = (0.159_301_76_f32, 78.843_75_f32, 0.835_937_5_f32, 18.851_562_f32, 18.6875_f32);
        let linear = (0..=max)
            .map(|code| {
                let power = (code as f32 / max as f32).powf(1.0 / m2);
                let nits = 10_000.0 * ((power - c1).max(0.0) / (c2 - c3 * power)).powf(1.0 / m1);
                nits / Self::REFERENCE_WHITE_NITS
            })
            .collect();
        let matrix = match primaries {
            // BT.2020 and P3 (D65) to BT.709, in linear light.
            9 => [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]],
            12 => [[1.2249, -0.2247, 0.0], [-0.0420, 1.0419, 0.0], [-0.0197, -0.0786, 1.0979]],
            _ => [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        Self { linear, matrix, max: max as f32 }
    }

    fn row(&self, mut samples: impl Iterator<Item = u16>, channels: u8, out: &mut Vec<u8>) {
        let white = Self::PEAK_NITS / Self::REFERENCE_WHITE_NITS;
        let encode = |linear: f32| {
            let light = (linear * (1.0 + linear / (white * white)) / (1.0 + linear)).clamp(0.0, 1.0);
            let srgb = if light <= 0.003_130_8 { 12.92 * light } else { 1.055 * light.powf(1.0 / 2.4) - 0.055 };
            (srgb * 255.0 + 0.5) as u8
        };
        let light = |code: u16| self.linear.get(usize::from(code)).copied().unwrap_or(0.0);
        while let (Some(r), Some(g), Some(b)) = (samples.next(), samples.next(), samples.next()) {
            let rgb = [light(r), light(g), light(b)];
            for row in &self.matrix {
                out.push(encode((row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2]).max(0.0)));
            }
            if channels == 4 {
                let alpha = samples.next().unwrap_or(0);
                out.push((f32::from(alpha) / self.max * 255.0 + 0.5) as u8);
            }
        }
    }
}

/// The pixels' colour space as an ICC profile: the file's own, or one made
/// from its CICP code points (nclx) when they are not sRGB's.
fn icc_of(handle: &ImageHandle) -> Option<Vec<u8>> {
    if let Some(raw) = handle.color_profile_raw() {
        // One over the pipe's bound is dropped: the colours are a little off, rather than no thumbnail.
        return (!raw.data.is_empty() && raw.data.len() <= MAX_ICC_BYTES as usize).then_some(raw.data);
    }
    let nclx = handle.color_profile_nclx()?;
    let primaries = nclx.color_primaries() as u8;
    let transfer = nclx.transfer_characteristics() as u8;
    // 1 = BT.709 primaries (sRGB's); 2 = unspecified. Transfer 1, 6, 13 or 2 look like sRGB to a browser.
    if matches!(primaries, 1 | 2) && matches!(transfer, 1 | 2 | 6 | 13) {
        return None;
    }
    let cicp = moxcms::CicpProfile {
        color_primaries: moxcms::CicpColorPrimaries::try_from(primaries).ok()?,
        transfer_characteristics: moxcms::TransferCharacteristics::try_from(transfer).ok()?,
        matrix_coefficients: moxcms::MatrixCoefficients::try_from(0u8).ok()?,
        full_range: true,
    };
    moxcms::ColorProfile::new_from_cicp(cicp).encode().ok()
}

fn refusal(error: HeifError) -> Refusal {
    let code = match error.code {
        HeifErrorCode::UnsupportedFeature | HeifErrorCode::UnsupportedFileType => exit::UNSUPPORTED,
        HeifErrorCode::MemoryAllocationError => exit::OVER_LIMITS,
        HeifErrorCode::PluginLoadingError | HeifErrorCode::UsageError | HeifErrorCode::ContextCreateFailed => exit::BROKEN,
        _ => exit::CORRUPT,
    };
    (code, error.message)
}

/// libheif's version, and a decode of a small HEIC (HEVC) and AVIF (AV1):
/// without its plugins, libheif reads the files but has no decoder for either.
fn check() -> ExitCode {
    let lib = match LibHeif::new_checked() {
        Ok(lib) => lib,
        Err(error) => {
            eprintln!("libheif cannot load its plugins: {}", error.message);
            return ExitCode::FAILURE;
        }
    };
    let [major, minor, patch] = lib.version();
    let mut missing = Vec::new();
    for (name, format, sample, package) in [
        ("HEVC (HEIC)", CompressionFormat::Hevc, SAMPLE_HEIC, "libheif-plugin-libde265"),
        ("AV1 (AVIF)", CompressionFormat::Av1, SAMPLE_AVIF, "libheif-plugin-dav1d"),
    ] {
        let decoders = lib.decoder_descriptors(8, Some(format));
        let decoded = decode(&lib, sample, &ChildLimits { max_side_px: 100, max_pixels: 10_000, cpu_seconds: 10, memory_bytes: u64::MAX });
        match (decoders.is_empty(), decoded) {
            (false, Ok(_)) => {}
            (true, _) => missing.push(format!("{name}: libheif has no decoder (install {package})")),
            (false, Err((_, message))) => missing.push(format!("{name}: the sample does not decode ({message})")),
        }
    }
    if !missing.is_empty() {
        eprintln!("libheif {major}.{minor}.{patch} cannot decode {}; scripts/ensure-libheif installs what is missing", missing.join("; "));
        return ExitCode::FAILURE;
    }
    println!("libheif {major}.{minor}.{patch} with HEVC and AV1 decoders");
    ExitCode::SUCCESS
}
