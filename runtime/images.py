"""Image files decoded within a size cap: the declared dimensions are read from the header first.

A 420 KB PNG can declare 12 000 x 12 000 pixels and take gigabytes once decoded, so every image
the runtime reads goes through ``read_image``: the header's width and height (PNG IHDR, JPEG SOF,
BMP, WebP, TIFF's first IFD) are checked against ``max_pixels`` before any pixel is decoded, and
the decoded size is checked again (for a header this module does not parse, or one that lied).

The default cap is 8K UHD, 4320 x 7680 = 33.2 Mpx: the largest standard video frame. At about
40 bytes a pixel on the way through the pipeline (uint8 in, float32 NCHW in and out, uint8 out)
that is some 1.3 GB before the model's own activations, which a machine that runs such frames
has; a larger frame is a deliberate choice (``i2i-run --max-pixels``), not something a crafted
file can make for you.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from i2i.errors import I2IError

DEFAULT_MAX_PIXELS = 4320 * 7680  # 8K UHD

# Colour 3-channel, keeping 16-bit depth (rounded properly by to_bgr_uint8 rather than the
# decoder's >> 8), and applying EXIF orientation (which IMREAD_UNCHANGED would ignore).
IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): C0-CF less DHT, JPG, DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HEADER_BYTES = 1 << 16  # enough for the SOF after EXIF and ICC segments of ordinary files


class UnreadableImage(I2IError):
    """An image file that is not decoded: too large, corrupt, or not an image. The message says which."""


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} Mpx"


def check_frame_size(h: int, w: int, max_pixels: int, what: str, verb: str = "is") -> None:
    """One I2IError when an (h, w) frame is over the cap, naming it and the option that raises it."""
    if h * w > max_pixels:
        raise I2IError(
            f"{what} {verb} {h}x{w} (HxW, {megapixels(h * w)}), over the {megapixels(max_pixels)} limit on decoded "
            f"frames; raise it with --max-pixels {h * w} if this is intended"
        )


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) an image file declares in its header, or None for a format or header not parsed."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return height, width
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"BM"):
            header = struct.unpack("<I", data[14:18])[0]
            if header == 12:
                width, height = struct.unpack("<HH", data[18:22])
            else:
                width, height = struct.unpack("<ii", data[18:26])
            return abs(height), abs(width)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:  # a header cut short: the decoder says what is wrong with the file
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # no length field
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return (height, width) if height else None  # 0: defined later (DNL), decode to know
        if marker == 0xDA:  # start of scan without a frame header: not a JPEG we can size
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return height, width
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return height & 0x3FFF, width & 0x3FFF
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    found: dict[int, int] = {}
    for k in range(count):
        entry = data[offset + 2 + 12 * k : offset + 14 + 12 * k]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8 : 10 if kind == 3 else 12])[0]
    return (found[257], found[256]) if len(found) == 2 else None


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file (any depth, EXIF orientation applied) no larger than ``max_pixels``.

    Raises UnreadableImage saying why: over the cap (by its header, before decoding, or once
    decoded), empty, corrupt or not an image. imdecode also copes with non-ASCII paths.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEADER_BYTES)
    except OSError as exc:
        raise UnreadableImage(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise UnreadableImage(f"{path} is empty")
    size = declared_size(head)
    try:
        if size is not None:
            check_frame_size(*size, max_pixels, f"{path}: its header", "declares")
        data = np.fromfile(path, dtype=np.uint8)
        try:
            image = cv2.imdecode(data, IMREAD_FLAGS)
        except cv2.error as exc:  # OpenCV's own limits and decoder failures
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
            raise UnreadableImage(f"cannot decode {path} ({message})") from None
        if image is None:
            raise UnreadableImage(f"cannot decode {path}: corrupt, or a format OpenCV cannot read")
        check_frame_size(image.shape[0], image.shape[1], max_pixels, f"{path}: it", "decodes to")
    except UnreadableImage:
        raise
    except I2IError as exc:
        raise UnreadableImage(exc.message) from None
    except OSError as exc:
        raise UnreadableImage(f"cannot read {path}: {exc.strerror or exc}") from None
    return image
