"""Small torch-free helpers every layer shares: image extensions, PSNR, sizes, hashes.

One definition each, so the training data loader, the exporter's parity check, the runtime's folder
source and the evaluation commands agree on what an image file is, how PSNR is computed and how a
size is written (always ``HxW``: height first, as numpy and OpenCV shapes are).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np

from i2i.errors import I2IError

# Files the data loader, the folder source, calibration and parity treat as images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image(path: str | Path) -> bool:
    """True for a file whose extension is one of ``IMAGE_EXTENSIONS`` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image(p) and not p.name.startswith("."))


def psnr_db(reference: np.ndarray, other: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB of ``other`` against ``reference`` for values spanning ``data_range``
    (255 for uint8 frames, 2 for tensors in [-1, 1]). Identical arrays give +inf; an ``other`` that
    holds NaN or Inf gives -inf, so a broken output always ranks below every real one."""
    if reference.shape != other.shape:
        raise I2IError(f"PSNR of arrays of different shapes: {reference.shape} vs {other.shape}")
    if not np.isfinite(other).all():
        return -math.inf
    mse = float(np.mean((reference.astype(np.float64) - other.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


_SIZE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*")


def parse_hw(text: str, what: str = "size", square: bool = True) -> tuple[int, int]:
    """``"HxW"`` (height first, e.g. ``720x1280``) or, with ``square``, ``"N"`` for N×N → (H, W).

    Every size option of every command is written this way; the error names the option."""
    match = _SIZE.fullmatch(str(text))
    if not match or (match.group(2) is None and not square):
        example = "HxW, e.g. 720x1280" + (" (or N for a square)" if square else "")
        raise I2IError(f"{what}: {text!r} is not a size; use {example}")
    h = int(match.group(1))
    w = int(match.group(2) or h)
    if h < 1 or w < 1:
        raise I2IError(f"{what}: {text!r}: height and width must be at least 1")
    return h, w


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value`` (and >= ``multiple``)."""
    return multiple * max(1, -(-int(value) // multiple))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
