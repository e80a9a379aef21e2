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
}

impl SourceFormat {
    /// How many leading bytes [`SourceFormat::sniff`] needs to decide.
    pub const SNIFF_LEN: usize = 12;

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
            _ => None,
        }
    }

    /// The IANA media type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    /// The format's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Gif => "GIF",
            Self::Webp => "WebP",
        }
    }

    /// The list shown to users when an upload is refused.
    pub const ACCEPTED: &'static str = "JPEG, PNG, GIF or WebP";
}

/// The format of a thumbnail file: JPEG for opaque images, PNG where there is transparency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbFormat {
    Jpeg,
    Png,
}

impl ThumbFormat {
    /// Every format a thumbnail may have, in the order a reader should look for them.
    pub const ALL: [ThumbFormat; 2] = [ThumbFormat::Jpeg, ThumbFormat::Png];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_recognises_each_accepted_format_by_its_magic_bytes() {
        assert_eq!(SourceFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some(SourceFormat::Jpeg));
        assert_eq!(SourceFormat::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"), Some(SourceFormat::Png));
        assert_eq!(SourceFormat::sniff(b"GIF89a\x01\0\x01\0"), Some(SourceFormat::Gif));
        assert_eq!(SourceFormat::sniff(b"GIF87a\x01\0\x01\0"), Some(SourceFormat::Gif));
        assert_eq!(SourceFormat::sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some(SourceFormat::Webp));
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
