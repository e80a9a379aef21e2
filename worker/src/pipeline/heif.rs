//! HEIC and AVIF, decoded by libheif in a child process of their own.
//!
//! libheif is C, and some damaged files make it abort the whole process (a
//! failed assertion: SIGABRT), which no panic boundary catches. So each decode
//! runs in `thumbq-heif-decode`, with limits on its memory and CPU time: when
//! it dies, only that job ends, as `failed` with a reason, and the worker and
//! its other jobs go on. The cost is one process start (a few milliseconds)
//! against a decode of a quarter to half a second for a phone photo.
//!
//! The child reads the file on its standard input and writes, on its standard
//! output, a [`Header`] and then the pixels, upright (libheif applies `irot` and
//! `imir`), 8 bits a channel. Its exit code says why it refused a file. That
//! protocol is `thumbq-heif-protocol`, the one crate the two share.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};
use thumbq_contract::{MediaLimits, SourceFormat};
use thumbq_heif_protocol::{ChildLimits, Header, HeaderError, exit};

use super::PipelineError;
use super::decode::Decoded;

/// The decoder's executable, beside the worker's.
pub const DECODER: &str = "thumbq-heif-decode";
/// Overrides where the decoder is looked for (tests and packagers).
pub const DECODER_ENV: &str = "THUMBQ_HEIF_DECODER";

/// CPU time a decode may take: a 100-megapixel HEIC takes about 4 s here.
pub const CPU_SECONDS: u64 = 30;
/// Time a decode may take from start to end, waits included.
pub const WALL_TIME: Duration = Duration::from_secs(60);
/// The most bytes the decoder may say about a file it refuses.
const MESSAGE_BYTES: u64 = 4096;
/// The pipe the pixels come through: Linux's default most processes may ask for (`/proc/sys/fs/pipe-max-size`).
const PIPE_BYTES: libc::c_int = 1 << 20;
/// The limits the decoder puts on itself, from the worker's.
pub fn child_limits(limits: &MediaLimits) -> ChildLimits {
    ChildLimits {
        max_side_px: limits.max_side_px,
        max_pixels: limits.max_pixels,
        cpu_seconds: CPU_SECONDS,
        // The decoded image at 16 bits in YCbCr and again in RGB, with room for libheif and its codec.
        memory_bytes: limits.max_pixels.saturating_mul(16).saturating_add(1 << 30),
    }
}

impl From<HeaderError> for PipelineError {
    fn from(error: HeaderError) -> Self {
        PipelineError::Internal(format!("the HEIF decoder sent {error}"))
    }
}

/// Where the decoder is: `THUMBQ_HEIF_DECODER`, or beside this executable
/// (or one directory up, where Cargo puts test binaries).
pub fn decoder_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(DECODER_ENV) {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().skip(1).take(2).map(|dir| dir.join(DECODER)).find(|path| path.is_file())
}

/// Checks that the decoder runs and that libheif decodes both HEVC and AV1,
/// on a small sample of each; the error says what is missing and how to mend it.
pub fn check_decoder() -> Result<String, String> {
    let path = decoder_path().ok_or_else(|| format!("{DECODER} is not beside the worker; build it (cargo build --bins) or set {DECODER_ENV}"))?;
    let output = Command::new(&path).arg("--check").stdin(Stdio::null()).output().map_err(|error| format!("cannot run {}: {error}", path.display()))?;
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    if output.status.success() { Ok(said(&output.stdout)) } else { Err(said(&output.stderr)) }
}

/// Decodes a HEIC or AVIF file in a child process.
pub fn decode(bytes: &[u8], format: SourceFormat, limits: &MediaLimits) -> Result<Decoded, PipelineError> {
    let unavailable = |detail: String| PipelineError::DecoderUnavailable { format: format.name(), detail };
    let path = decoder_path().ok_or_else(|| unavailable(format!("{DECODER} is missing")))?;
    let mut child = Command::new(&path)
        .args(child_limits(limits).to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| unavailable(format!("cannot start {}: {error}", path.display())))?;
    let pid = child.id() as libc::pid_t;
    let (mut stdin, mut stdout, stderr) = (child.stdin.take(), child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    // 36 MB of pixels for a 12 MP photo: through the default 64 KiB pipe that is
    // hundreds of hand-overs between the two processes; a larger pipe needs fewer.
    // SAFETY: fcntl(2) on a pipe we own; a refusal (a lower system limit) only keeps the default.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&stdout), libc::F_SETPIPE_SZ, PIPE_BYTES) };
    let (finished, watch) = mpsc::channel::<()>();
    let (read, message, timed_out) = std::thread::scope(|scope| {
        // The file goes in while the pixels come out: a pipe holds only 64 KiB.
        scope.spawn(move || {
            if let Some(mut stdin) = stdin.take() {
                // A child that stops reading (it refused the file) closes the pipe; that is its exit code's to say.
                let _ = stdin.write_all(bytes);
            }
        });
        let message = scope.spawn(move || {
            let mut message = Vec::new();
            let _ = stderr.take(MESSAGE_BYTES).read_to_end(&mut message);
            String::from_utf8_lossy(&message).into_owned()
        });
        // Not yet reaped, so the pid is still the child's.
        let watchdog = scope.spawn(move || {
            let timed_out = watch.recv_timeout(WALL_TIME) == Err(mpsc::RecvTimeoutError::Timeout);
            if timed_out {
                // SAFETY: kill(2) with a pid we own and have not waited for.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            timed_out
        });
        let read = read_image(&mut stdout, limits);
        drop(stdout);
        let message = message.join().unwrap_or_default();
        let _ = finished.send(());
        (read, message, watchdog.join().unwrap_or(false))
    });
    let status = child.wait().map_err(|error| PipelineError::Internal(error.to_string()))?;
    // Refused here from its header (over the limits): the child, hung up on, says only that its pipe broke.
    if let Err(error @ (PipelineError::OverLimits(_) | PipelineError::DimensionsOverLimits)) = read {
        return Err(error);
    }
    match refusal(status, format, message.trim(), timed_out) {
        Some(error) => Err(error),
        None => read,
    }
}

fn read_image(stdout: &mut impl Read, limits: &MediaLimits) -> Result<Decoded, PipelineError> {
    let header = Header::read_from(stdout, |width, height| limits.check_dimensions(width, height).map_err(PipelineError::from))?;
    let length = header.width as usize * header.height as usize * usize::from(header.channels);
    let mut pixels = vec![0; length];
    stdout.read_exact(&mut pixels).map_err(|_| PipelineError::Internal("the HEIF decoder stopped mid-image".into()))?;
    let (width, height) = (header.width, header.height);
    let image = match header.channels {
        3 => RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
        _ => RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8),
    }
    .expect("the buffer has the header's size");
    Ok(Decoded { image: image.into(), width, height, orientation: Orientation::NoTransforms, icc: header.icc, cut_off: false })
}

/// Why the child's exit means no image, if it does.
fn refusal(status: ExitStatus, format: SourceFormat, message: &str, timed_out: bool) -> Option<PipelineError> {
    use std::os::unix::process::ExitStatusExt;
    let format = format.name();
    let detail = || message.lines().last().unwrap_or("no message").to_owned();
    // Its CPU time is bounded in the child (SIGXCPU): past the wall-clock limit it was waiting, on a host too busy.
    if timed_out {
        return Some(PipelineError::DecoderUnavailable { format, detail: format!("it took more than {} s", WALL_TIME.as_secs()) });
    }
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(exit::CORRUPT), _) => Some(PipelineError::Corrupt { format, detail: detail() }),
        (Some(exit::UNSUPPORTED), _) => Some(PipelineError::Unsupported { format, detail: detail() }),
        (Some(exit::OVER_LIMITS), _) => Some(PipelineError::DimensionsOverLimits),
        (Some(code), _) => Some(PipelineError::DecoderUnavailable { format, detail: format!("it exited with {code}: {}", detail()) }),
        // Killed from outside (the OOM killer, an operator): not the file's doing, as far as we know.
        (None, Some(libc::SIGKILL)) => Some(PipelineError::DecoderUnavailable { format, detail: "it was killed (SIGKILL)".into() }),
        (None, Some(signal)) => Some(PipelineError::DecoderFailed { format, detail: signal_name(signal) }),
        (None, None) => Some(PipelineError::Internal("the HEIF decoder ended without a status".into())),
    }
}

/// What a signal that ended the decoder means, for the failure's reason.
fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGABRT => "it aborted (SIGABRT)".into(),
        libc::SIGSEGV => "it crashed (SIGSEGV)".into(),
        libc::SIGXCPU => format!("it used more than {CPU_SECONDS} s of CPU"),
        other => format!("it was ended by signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_over_the_limits_is_refused_before_its_pixels_are_read() {
        let mut bytes = Vec::new();
        Header { width: 12_240, height: 16_320, channels: 3, icc: None }.write_to(&mut bytes).unwrap();
        let error = read_image(&mut bytes.as_slice(), &MediaLimits::default()).err().unwrap();
        assert!(matches!(error, PipelineError::OverLimits(_)), "{error:?}");
    }

    #[test]
    fn a_decoder_that_crashes_fails_its_image_and_one_the_machine_stopped_is_tried_again() {
        use std::os::unix::process::ExitStatusExt;
        let (died, exited) = (ExitStatus::from_raw, |code: i32| ExitStatus::from_raw(code << 8));
        let refused = |status, timed_out| refusal(status, SourceFormat::Heic, "Invalid input: Unspecified: Insufficient input data", timed_out);
        assert!(refused(exited(0), false).is_none());
        assert!(matches!(refused(died(libc::SIGABRT), false), Some(PipelineError::DecoderFailed { detail, .. }) if detail.contains("SIGABRT")));
        assert!(matches!(refused(died(libc::SIGXCPU), false), Some(PipelineError::DecoderFailed { detail, .. }) if detail.contains("s of CPU")));
        assert!(matches!(refused(exited(exit::CORRUPT), false), Some(PipelineError::Corrupt { detail, .. }) if detail.contains("Insufficient")));
        assert!(matches!(refused(exited(exit::OVER_LIMITS), false), Some(PipelineError::DimensionsOverLimits)));
        // Not the file's doing: the OOM killer, an operator, a host too busy, a decoder that cannot work.
        assert!(matches!(refused(died(libc::SIGKILL), false), Some(PipelineError::DecoderUnavailable { .. })));
        assert!(matches!(refused(died(libc::SIGKILL), true), Some(PipelineError::DecoderUnavailable { .. })));
        assert!(matches!(refused(exited(exit::BROKEN), false), Some(PipelineError::DecoderUnavailable { .. })));
    }

    #[test]
    fn the_child_is_limited_as_the_worker_is() {
        let limits = MediaLimits::default();
        let child = ChildLimits::from_args(&child_limits(&limits).to_args()).unwrap();
        assert_eq!((child.max_side_px, child.max_pixels, child.cpu_seconds), (limits.max_side_px, limits.max_pixels, CPU_SECONDS));
    }
}
