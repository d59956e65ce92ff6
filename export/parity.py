"""Parity between the torch generator and an exported model, on random and real images.

Figures are computed on the model's native [-1, 1] outputs: max/mean absolute difference, PSNR
with a peak-to-peak range of 2 (so 60 dB ≈ RMS error 2e-3), and the share of uint8 pixels that
move by more than one level after the runtime's conversion to 8 bits.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from i2i.errors import I2IError

# Bars an export must clear, per precision.
PARITY_BARS = {"fp32": {"max_abs": 1e-4, "psnr_db": 60.0}}


def psnr_db(reference: np.ndarray, other: np.ndarray, data_range: float = 2.0) -> float:
    mse = float(np.mean((reference.astype(np.float64) - other.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def compare(reference: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    if reference.shape != other.shape:
        raise I2IError(f"parity: output shapes differ: reference {reference.shape} vs exported {other.shape}")
    diff = np.abs(reference.astype(np.float64) - other.astype(np.float64))
    finite = bool(np.isfinite(other).all())
    off = np.abs(_to_uint8(reference).astype(np.int16) - _to_uint8(other).astype(np.int16)) > 1
    return {
        "shape": list(reference.shape),
        "finite": finite,
        "max_abs": float(diff.max()) if finite else math.nan,
        "mean_abs": float(diff.mean()) if finite else math.nan,
        "psnr_db": psnr_db(reference, other) if finite else -math.inf,
        "pct_pixels_off_by_gt1": float(100.0 * off.mean()),
    }


def parity_inputs(
    size_multiple: int, image_dir: str | Path | None = None, max_images: int = 4, seed: int = 0
) -> list[tuple[str, np.ndarray]]:
    """Named NCHW float32 inputs in [-1, 1]: two random tensors (one a batch of 2) and real photos."""
    m = max(1, size_multiple)
    h = m * max(1, math.ceil(192 / m))
    w = m * max(1, math.ceil(320 / m))
    rng = np.random.default_rng(seed)
    inputs = [
        (f"random 1x3x{h}x{w}", rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)),
        (f"random 2x3x{w}x{h}", rng.uniform(-1, 1, (2, 3, w, h)).astype(np.float32)),
    ]
    if image_dir is not None:
        import cv2

        from i2i.runtime.frames import preprocess

        exts = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
        files = sorted(p for p in Path(image_dir).iterdir() if p.suffix.lower() in exts)[:max_images]
        side = m * max(1, math.ceil(256 / m))
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            image = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
            batch, _ = preprocess([image], m)
            inputs.append((f"image {path.name}", batch))
    return inputs


def summarize(cases: list[dict[str, Any]], precision: str) -> dict[str, Any]:
    bar = PARITY_BARS[precision]
    worst_max = max(c["max_abs"] if c["finite"] else math.inf for c in cases)
    worst_psnr = min(c["psnr_db"] for c in cases)
    passed = all(c["finite"] for c in cases) and worst_max <= bar["max_abs"] and worst_psnr >= bar["psnr_db"]
    return {
        "precision": precision,
        "bar": bar,
        "passed": bool(passed),
        "max_abs": worst_max,
        "min_psnr_db": worst_psnr,
        "cases": cases,
    }


def json_safe(obj: Any) -> Any:
    """Infinite PSNR (identical outputs) becomes the string "inf": JSON has no infinity."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj
