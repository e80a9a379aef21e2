//! What the worker and `thumbq-heif-decode` agree on, and nothing else.
//!
//! The worker starts the decoder with its [`ChildLimits`] as arguments and the
//! file on its standard input. The decoder answers on its standard output with
//! a [`Header`] and then the pixels (upright, 8 bits a channel), or exits with
//! one of the [`exit`] codes and a message on its standard error.

use std::io::{Read, Write};

/// The largest ICC profile passed on; larger ones are dropped, as libheif's own limit does.
pub const MAX_ICC_BYTES: u32 = 4 << 20;

/// How the decoder says it refused a file, as its exit code.
pub mod exit {
    /// The file is damaged: its structure or its bitstream.
    pub const CORRUPT: i32 = 65;
    /// A kind of HEIF the decoder does not handle (a codec or feature).
    pub const UNSUPPORTED: i32 = 66;
    /// Over the pixel limits or libheif's security limits.
    pub const OVER_LIMITS: i32 = 67;
    /// The decoder itself cannot work: no plugin for the codec, say.
    pub const BROKEN: i32 = 70;
}

/// What precedes the pixels on the decoder's standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    /// 3 (RGB) or 4 (RGBA).
    pub channels: u8,
    /// The pixels' colour space as an ICC profile; `None` means sRGB.
    pub icc: Option<Vec<u8>>,
}

/// How a header was not what the protocol says: the decoder broke its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Nothing, or less than a header, came.
    Missing,
    /// It does not start as a header does.
    Unknown,
    /// Its channels or its profile's length are out of range.
    OutOfRange,
    /// The profile ended early.
    CutProfile,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "no header",
            Self::Unknown => "an unknown header",
            Self::OutOfRange => "a header out of range",
            Self::CutProfile => "a cut profile",
        })
    }
}

impl std::error::Error for HeaderError {}

impl Header {
    const MAGIC: &'static [u8; 4] = b"THQ1";

    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let icc = self.icc.as_deref().unwrap_or_default();
        out.write_all(Self::MAGIC)?;
        out.write_all(&self.width.to_le_bytes())?;
        out.write_all(&self.height.to_le_bytes())?;
        out.write_all(&[self.channels])?;
        out.write_all(&u32::try_from(icc.len()).unwrap_or(u32::MAX).to_le_bytes())?;
        out.write_all(icc)
    }

    /// Reads a header; `check_size` sees the image's width and height before
    /// anything else is read, and may refuse them (over the pixel limits, say).
    pub fn read_from<E: From<HeaderError>>(input: &mut impl Read, check_size: impl FnOnce(u32, u32) -> Result<(), E>) -> Result<Self, E> {
        let mut fixed = [0; 17];
        input.read_exact(&mut fixed).map_err(|_| HeaderError::Missing)?;
        if &fixed[..4] != Self::MAGIC {
            return Err(HeaderError::Unknown.into());
        }
        let word = |at: usize| u32::from_le_bytes(fixed[at..at + 4].try_into().expect("four bytes"));
        let (width, height, channels, icc_length) = (word(4), word(8), fixed[12], word(13));
        check_size(width, height)?;
        if !matches!(channels, 3 | 4) || icc_length > MAX_ICC_BYTES {
            return Err(HeaderError::OutOfRange.into());
        }
        let mut icc = vec![0; icc_length as usize];
        input.read_exact(&mut icc).map_err(|_| HeaderError::CutProfile)?;
        Ok(Self { width, height, channels, icc: (!icc.is_empty()).then_some(icc) })
    }
}

/// The limits the decoder puts on itself, given as its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildLimits {
    pub max_side_px: u32,
    pub max_pixels: u64,
    pub cpu_seconds: u64,
    /// Address space: the decoded image at 16 bits in YCbCr and again in RGB, with room for libheif and its codec.
    pub memory_bytes: u64,
}

impl ChildLimits {
    pub fn to_args(self) -> [String; 4] {
        [self.max_side_px.to_string(), self.max_pixels.to_string(), self.cpu_seconds.to_string(), self.memory_bytes.to_string()]
    }

    pub fn from_args(args: &[String]) -> Option<Self> {
        let [side, pixels, cpu, memory] = args else { return None };
        Some(Self { max_side_px: side.parse().ok()?, max_pixels: pixels.parse().ok()?, cpu_seconds: cpu.parse().ok()?, memory_bytes: memory.parse().ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], most_pixels: u64) -> Result<Header, String> {
        Header::read_from(&mut &bytes[..], |width, height| {
            if u64::from(width) * u64::from(height) > most_pixels { Err(format!("{width}×{height} is too large")) } else { Ok(()) }
        })
    }

    impl From<HeaderError> for String {
        fn from(error: HeaderError) -> Self {
            error.to_string()
        }
    }

    #[test]
    fn a_header_goes_through_the_pipe_whole() {
        let header = Header { width: 4032, height: 3024, channels: 3, icc: Some(vec![1, 2, 3]) };
        let mut bytes = Vec::new();
        header.write_to(&mut bytes).unwrap();
        assert_eq!(read(&bytes, u64::MAX), Ok(header));
    }

    #[test]
    fn a_size_over_the_limits_is_refused_before_the_rest_is_read() {
        let mut bytes = Vec::new();
        Header { width: 12_240, height: 16_320, channels: 3, icc: None }.write_to(&mut bytes).unwrap();
        assert_eq!(read(&bytes[..17], 100_000_000), Err("12240×16320 is too large".to_owned()));
        assert_eq!(read(b"THQ", u64::MAX), Err("no header".to_owned()));
        assert_eq!(read(&[b'X'; 17], u64::MAX), Err("an unknown header".to_owned()));
    }

    #[test]
    fn limits_go_through_the_arguments_whole() {
        let limits = ChildLimits { max_side_px: 16_384, max_pixels: 100_000_000, cpu_seconds: 30, memory_bytes: 1 << 31 };
        assert_eq!(ChildLimits::from_args(&limits.to_args()), Some(limits));
        assert_eq!(ChildLimits::from_args(&["1".into()]), None);
    }
}
