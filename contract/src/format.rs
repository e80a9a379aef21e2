//! Image formats: the ones we accept as uploads and the ones we write as thumbnails.

use serde::{Deserialize, Serialize};

/// An upload format we accept, recognised by its bytes, never by a name or header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    /// HEIF with HEVC inside: what iPhones and many Android phones take.
    Heic,
    Avif,
    Jxl,
}

/// Whether a JPEG marker starts a frame header (SOFn), whose payload holds the
/// precision, height and width: all of C0 to CF but DHT (C4), JPG (C8) and DAC
/// (CC), which share the range. The web server reads the size there and the
/// worker the precision; both must take the same segment for the frame.
pub fn is_jpeg_frame_marker(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

impl SourceFormat {
    /// How many leading bytes [`SourceFormat::sniff`] needs to decide: a HEIF
    /// file names what it holds in its `ftyp` box's brands, after the first 16 bytes.
    pub const SNIFF_LEN: usize = 32;

    /// Recognises the format from the first bytes of a file.
    ///
    /// Returns `None` for anything we do not accept, including a prefix too
    /// short to tell (an empty upload, say).
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match head {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            // A bare JPEG XL codestream, or one in its ISO BMFF container.
            [0xFF, 0x0A, ..] | [0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', 0x0D, 0x0A, 0x87, 0x0A, ..] => Some(Self::Jxl),
            [_, _, _, _, b'f', b't', b'y', b'p', ..] => Self::heif_kind(head),
            _ => None,
        }
    }

    /// HEIC or AVIF from an `ftyp` box: its major brand, or for the generic
    /// `mif1`/`msf1` ones, the first compatible brand that says which codec.
    fn heif_kind(head: &[u8]) -> Option<Self> {
        let brand = |brand: &[u8]| match brand {
            b"avif" | b"avis" => Some(Self::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => Some(Self::Heic),
            _ => None,
        };
        let major = head.get(8..12)?;
        if let Some(format) = brand(major) {
            return Some(format);
        }
        if major != b"mif1" && major != b"msf1" {
            return None;
        }
        let box_end = u32::from_be_bytes(head[0..4].try_into().ok()?) as usize;
        // Compatible brands follow the major brand and its version; only those within the sniffed bytes count.
        let compatible = head.get(16..box_end.min(head.len()))?;
        compatible.chunks_exact(4).find_map(brand)
    }

    /// The IANA media type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Heic => "image/heic",
            Self::Avif => "image/avif",
            Self::Jxl => "image/jxl",
        }
    }

    /// The format's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Gif => "GIF",
            Self::Webp => "WebP",
            Self::Heic => "HEIC",
            Self::Avif => "AVIF",
            Self::Jxl => "JPEG XL",
        }
    }

    /// A short lowercase code that names the format in records (`jpeg`, `heic`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Heic => "heic",
            Self::Avif => "avif",
            Self::Jxl => "jxl",
        }
    }

    /// The format a [`SourceFormat::code`] names.
    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Jpeg, Self::Png, Self::Gif, Self::Webp, Self::Heic, Self::Avif, Self::Jxl].into_iter().find(|format| format.code() == code)
    }

    /// The list shown to users when an upload is refused.
    pub const ACCEPTED: &'static str = "JPEG, PNG, GIF, WebP, HEIC, AVIF or JPEG XL";

    /// The media types of [`SourceFormat::ACCEPTED`], for a file picker's `accept`
    /// (with the extensions of those a browser may not know by type).
    pub const ACCEPT_ATTRIBUTE: &'static str = "image/jpeg,image/png,image/gif,image/webp,image/heic,image/heif,.heic,.heif,image/avif,.avif,image/jxl,.jxl";
}

/// The format of a thumbnail file: JPEG for opaque images, PNG where there is
/// transparency, and beside either a WebP of the same size, about a seventh smaller at the same look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbFormat {
    Jpeg,
    Png,
    Webp,
}

impl ThumbFormat {
    /// The formats one of which every thumbnail has, and every browser shows,
    /// in the order a reader should look for them: a size is ready when it has one.
    pub const BASELINE: [ThumbFormat; 2] = [ThumbFormat::Jpeg, ThumbFormat::Png];
    /// Every format a thumbnail file may have.
    pub const ALL: [ThumbFormat; 3] = [ThumbFormat::Jpeg, ThumbFormat::Png, ThumbFormat::Webp];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    /// The format whose [`ThumbFormat::extension`] is `extension`.
    pub fn from_extension(extension: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.extension() == extension)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_code_is_its_name_in_the_job_message_and_reads_back() {
        for format in [SourceFormat::Jpeg, SourceFormat::Png, SourceFormat::Gif, SourceFormat::Webp, SourceFormat::Heic, SourceFormat::Avif, SourceFormat::Jxl]
        {
            assert_eq!(serde_json::to_value(format).unwrap(), format.code(), "records and jobs name formats alike");
            assert_eq!(SourceFormat::from_code(format.code()), Some(format));
        }
        assert_eq!(SourceFormat::from_code("JPEG"), None);
    }

    #[test]
    fn sniffing_recognises_each_accepted_format_by_its_magic_bytes() {
        assert_eq!(SourceFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some(SourceFormat::Jpeg));
        assert_eq!(SourceFormat::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"), Some(SourceFormat::Png));
        assert_eq!(SourceFormat::sniff(b"GIF89a\x01\0\x01\0"), Some(SourceFormat::Gif));
        assert_eq!(SourceFormat::sniff(b"GIF87a\x01\0\x01\0"), Some(SourceFormat::Gif));
        assert_eq!(SourceFormat::sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some(SourceFormat::Webp));
        assert_eq!(SourceFormat::sniff(b"\xFF\x0A\xFA\x7F"), Some(SourceFormat::Jxl));
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x0CJXL \x0D\x0A\x87\x0A\0\0\0\x14ftypjxl "), Some(SourceFormat::Jxl));
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), Some(SourceFormat::Heic));
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf"), Some(SourceFormat::Avif));
    }

    #[test]
    fn a_generic_heif_brand_is_told_apart_by_its_compatible_brands() {
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x1cftypmif1\0\0\0\0mif1miafheic"), Some(SourceFormat::Heic));
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x1cftypmif1\0\0\0\0mif1avifmiaf"), Some(SourceFormat::Avif));
        // A brand past the box's own end belongs to the next box, not to this one.
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x14ftypmif1\0\0\0\0mif1heic"), None);
        // MP4 video and QuickTime are ISO BMFF too, and not images.
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2"), None);
        assert_eq!(SourceFormat::sniff(b"\0\0\0\x14ftypqt  \0\0\0\0qt  "), None);
    }

    #[test]
    fn sniffing_refuses_everything_else() {
        for head in [
            &b""[..],
            b"\xFF\xD8",
            b"hello world, not an image",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            b"RIFF\x24\0\0\0WAVEfmt ",
            b"BM\x36\0\0\0\0\0\0\0\x36\0",
            b"%PDF-1.7\n",
            b"\x89PNX\r\n\x1a\n",
        ] {
            assert_eq!(SourceFormat::sniff(head), None, "{head:?}");
        }
    }
}
