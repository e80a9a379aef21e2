//! A JPEG's dimensions, read from its frame header the way libjpeg walks the
//! markers: bytes where the next marker should start are skipped, as libjpeg
//! skips them with a warning ("extraneous bytes before marker"). Pillow,
//! libvips and browsers show such files; a stricter reader would refuse a
//! photo that every one of them opens.

use std::io::{self, BufRead, ErrorKind};

/// Markers walked before giving up on finding the frame header: real files
/// have a few dozen segments before it, each read in one step.
const MAX_SEGMENTS: usize = 4096;

/// The width and height in the frame header (SOFn), or `None` when there is
/// none before the image data or the file ends first.
pub fn dimensions(mut reader: impl BufRead) -> io::Result<Option<(u32, u32)>> {
    let mut start = [0; 2];
    match reader.read_exact(&mut start) {
        Ok(()) if start == [0xFF, 0xD8] => {}
        Ok(()) => return Ok(None),
        Err(error) if error.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    for _ in 0..MAX_SEGMENTS {
        let Some(marker) = next_marker(&mut reader)? else { return Ok(None) };
        match marker {
            // Standalone markers, which have no length.
            0x01 | 0xD0..=0xD7 => continue,
            // Image data or its end before any frame header.
            0xDA | 0xD9 => return Ok(None),
            _ => {}
        }
        let Some(length) = read_u16(&mut reader)? else { return Ok(None) };
        let Some(payload) = usize::from(length).checked_sub(2) else { return Ok(None) };
        if thumbq_contract::format::is_jpeg_frame_marker(marker) {
            let mut frame = [0; 5];
            return match reader.read_exact(&mut frame) {
                Ok(()) => Ok(Some((u32::from(u16::from_be_bytes([frame[3], frame[4]])), u32::from(u16::from_be_bytes([frame[1], frame[2]]))))),
                Err(error) if error.kind() == ErrorKind::UnexpectedEof => Ok(None),
                Err(error) => Err(error),
            };
        }
        if !skip(&mut reader, payload)? {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The next marker's code: what follows a 0xFF that is neither fill (more
/// 0xFF) nor a stuffed 0x00. Any other byte on the way is skipped, as libjpeg does.
fn next_marker(reader: &mut impl BufRead) -> io::Result<Option<u8>> {
    let mut after_ff = false;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(None);
        }
        for (at, &byte) in buffer.iter().enumerate() {
            match (after_ff, byte) {
                (_, 0xFF) => after_ff = true,
                (true, 0x00) | (false, _) => after_ff = false,
                (true, marker) => {
                    reader.consume(at + 1);
                    return Ok(Some(marker));
                }
            }
        }
        let used = buffer.len();
        reader.consume(used);
    }
}

fn read_u16(reader: &mut impl BufRead) -> io::Result<Option<u16>> {
    let mut bytes = [0; 2];
    match reader.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u16::from_be_bytes(bytes))),
        Err(error) if error.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
    }
}

/// Skips `count` bytes; `false` when the file ends first.
fn skip(reader: &mut impl BufRead, mut count: usize) -> io::Result<bool> {
    while count > 0 {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(false);
        }
        let step = count.min(buffer.len());
        reader.consume(step);
        count -= step;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xFF, marker];
        bytes.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// A baseline frame header of `width`×`height`, three components.
    fn frame(width: u16, height: u16) -> Vec<u8> {
        let mut payload = vec![8];
        payload.extend_from_slice(&height.to_be_bytes());
        payload.extend_from_slice(&width.to_be_bytes());
        payload.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        segment(0xC0, &payload)
    }

    fn read(bytes: &[u8]) -> Option<(u32, u32)> {
        dimensions(bytes).unwrap()
    }

    #[test]
    fn the_frame_header_gives_width_then_height() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        jpeg.extend(segment(0xC4, &[0; 20]));
        jpeg.extend(frame(4000, 3000));
        assert_eq!(read(&jpeg), Some((4000, 3000)));
    }

    #[test]
    fn junk_between_segments_and_fill_bytes_are_skipped_as_libjpeg_does() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xFE, b"a comment"));
        jpeg.extend_from_slice(b"hello\xFF\x00junk");
        jpeg.extend_from_slice(&[0xFF, 0xFF]);
        jpeg.extend(frame(640, 480));
        assert_eq!(read(&jpeg), Some((640, 480)));
    }

    #[test]
    fn no_frame_before_the_scan_or_a_file_cut_short_has_no_dimensions() {
        let mut scan_first = vec![0xFF, 0xD8];
        scan_first.extend(segment(0xDA, &[0; 10]));
        scan_first.extend(frame(10, 10));
        assert_eq!(read(&scan_first), None);
        let whole = [&[0xFF, 0xD8][..], &frame(10, 10)].concat();
        // Marker, length, precision, height and width: 11 bytes are needed.
        for cut in 0..11 {
            assert_eq!(read(&whole[..cut]), None, "cut at {cut}");
        }
        assert_eq!(read(b"\x89PNG\r\n\x1a\n"), None);
    }
}
