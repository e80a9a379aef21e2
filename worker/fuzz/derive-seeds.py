#!/usr/bin/env python3
"""Makes the seeds that no fixture covers, from the fixtures and by hand.

The other files in seeds/ are copies of fixtures (see README.md). These give
the fuzzer a start on paths it would take long to find alone: an ICC profile
and EXIF orientation in PNG and WebP, and a lossless JPEG (decoded unscaled).
Run from anywhere: python3 worker/fuzz/derive-seeds.py
"""

import struct
import zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
FIXTURES = FUZZ.parent.parent / "tests" / "fixtures"
SEEDS = FUZZ / "seeds"

# Big-endian TIFF with one IFD entry: orientation (0x0112) = 6, turned 90° clockwise.
EXIF_ORIENTATION_6 = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0"


def jpeg_segments(data):
    """The marker segments before the first scan, as (marker, payload)."""
    at = 2
    while data[at] == 0xFF and data[at + 1] != 0xDA:
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        yield data[at + 1], data[at + 4 : at + 2 + length]
        at += 2 + length


def icc_profile_of(jpeg):
    chunks = sorted(
        (payload[12], payload[14:])
        for marker, payload in jpeg_segments(jpeg)
        if marker == 0xE2 and payload.startswith(b"ICC_PROFILE\0")
    )
    return b"".join(chunk for _, chunk in chunks)


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with(png, *chunks):
    """`png` with `chunks` inserted right after IHDR (8 signature + 25 IHDR bytes)."""
    return png[:33] + b"".join(chunks) + png[33:]


def riff_chunk(kind, payload):
    padding = b"\0" if len(payload) % 2 else b""
    return kind + struct.pack("<I", len(payload)) + payload + padding


def webp_extended(simple_lossy, icc, exif):
    """A VP8X WebP with ICC profile and EXIF around the VP8 bitstream of `simple_lossy`."""
    assert simple_lossy[12:16] == b"VP8 "
    vp8_length = struct.unpack("<I", simple_lossy[16:20])[0]
    vp8 = simple_lossy[20 : 20 + vp8_length]
    width = struct.unpack("<H", vp8[6:8])[0] & 0x3FFF
    height = struct.unpack("<H", vp8[8:10])[0] & 0x3FFF
    flags = 0x20 | 0x08  # ICC profile, EXIF
    canvas = struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]
    body = b"WEBP" + riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)
    body += riff_chunk(b"ICCP", icc) + riff_chunk(b"VP8 ", vp8) + riff_chunk(b"EXIF", exif)
    return b"RIFF" + struct.pack("<I", len(body)) + body


class Bits:
    """Entropy-coded bits of a JPEG scan, with 0xFF bytes stuffed."""

    def __init__(self):
        self.out, self.value, self.count = bytearray(), 0, 0

    def put(self, value, length):
        for shift in range(length - 1, -1, -1):
            self.value = (self.value << 1) | ((value >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.value)
                if self.value == 0xFF:
                    self.out.append(0)
                self.value, self.count = 0, 0

    def bytes(self):
        while self.count:
            self.put(1, 1)
        return bytes(self.out)


def jpeg_segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def lossless_jpeg(width, height):
    """A grey lossless JPEG (SOF3, predictor 1): every difference is 0, coded as one bit."""
    bits = Bits()
    for _ in range(width * height):
        bits.put(0, 1)
    return (
        b"\xFF\xD8"
        + jpeg_segment(0xC3, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")
        + jpeg_segment(0xDA, b"\x01\x01\x00\x01\x00\x00")
        + bits.bytes()
        + b"\xFF\xD9"
    )


def main():
    icc = icc_profile_of((FIXTURES / "image-rs-image/jpg/progressive/test.jpg").read_bytes())
    exif = EXIF_ORIENTATION_6
    png = (FIXTURES / "pngsuite/basn2c08.png").read_bytes()
    outputs = {
        "png-rgb-iccp-exif.png": png_with(png, png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(icc)), png_chunk(b"eXIf", exif)),
        "webp-lossy-iccp-exif.webp": webp_extended((FIXTURES / "image-rs-image/webp/lossy_images/simple-rgb.webp").read_bytes(), icc, exif),
        "jpeg-lossless.jpg": lossless_jpeg(24, 16),
    }
    for name, data in outputs.items():
        (SEEDS / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
