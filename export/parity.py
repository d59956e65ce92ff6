"""Parity between the torch generator and an exported model, on random and real images.

Tensor figures are computed on the model's native [-1, 1] outputs: max/mean absolute difference,
PSNR with a peak-to-peak range of 2 (so 60 dB ≈ RMS error 2e-3), and the share of uint8 pixels
that move by more than one level after the runtime's conversion to 8 bits.

Frame figures (``--io frame`` models) compare uint8 frames: the frame model's output against the
same-precision tensor model run with the host-side ``preprocess`` / ``postprocess``. That
isolates the in-graph pre/post-processing, which must agree within one level of 255 (rounding
ties); the precision's own error is measured on the tensor stage against torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from i2i.common import is_image
from i2i.common import psnr_db as common_psnr
from i2i.errors import I2IError
from i2i.runtime.precisions import get_precision

# The bars an export must clear live in the precision table (i2i.runtime.precisions); frame I/O
# against the tensor model + host pre/post must agree within one level.
FRAME_BAR = {"max_level_diff": 1}
NOMINAL_RANGE = 2.0  # the peak-to-peak range the absolute bars are stated for: outputs in [-1, 1]


def max_abs_allowed(bar_max_abs: float, value_range: float) -> float:
    """The absolute bar for a case whose values span ``value_range``: float32 round-off grows with
    the magnitude of what is summed, so a bar stated for [-1, 1] scales by range / 2 when wider
    (never tighter). ``value_range``: the peak-to-peak range of the output, or of the
    pre-activation of a final tanh/sigmoid where that is what the graph computes in float32."""
    return bar_max_abs * max(1.0, value_range / NOMINAL_RANGE)


def psnr_db(reference: np.ndarray, other: np.ndarray, data_range: float = 2.0) -> float:
    """PSNR of [-1, 1] tensors by default (peak-to-peak 2); ``i2i.common.psnr_db`` underneath."""
    return common_psnr(reference, other, data_range)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def compare(reference: np.ndarray, other: np.ndarray, value_range: float | None = None) -> dict[str, Any]:
    """Figures of one case; ``value_range`` (default: the reference's peak-to-peak range) scales
    the absolute bar (``max_abs_allowed``)."""
    if reference.shape != other.shape:
        raise I2IError(f"parity: output shapes differ: reference {reference.shape} vs exported {other.shape}")
    other = other.astype(np.float32)
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
        "value_range": float(np.ptp(reference)) if value_range is None else float(value_range),
    }


def compare_frames(reference: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """uint8 frames (N, H, W, 3): level differences and PSNR with a peak of 255."""
    if reference.shape != other.shape or other.dtype != np.uint8:
        raise I2IError(
            f"parity: frame outputs differ in shape/dtype: reference {reference.shape} uint8 vs "
            f"exported {other.shape} {other.dtype}"
        )
    diff = np.abs(reference.astype(np.int16) - other.astype(np.int16))
    return {
        "shape": list(reference.shape),
        "max_level_diff": int(diff.max()),
        "mean_level_diff": float(diff.mean()),
        "pct_pixels_off_by_gt1": float(100.0 * (diff > 1).mean()),
        "psnr_db": psnr_db(reference, other, data_range=255.0),
    }


def _sizes(m: int, size: tuple[int, int] | None) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(first size, second size, real-image side): the export's static size, or multiples near 192x320."""
    if size is not None:
        return size, size, 0
    h = m * max(1, math.ceil(192 / m))
    w = m * max(1, math.ceil(320 / m))
    return (h, w), (w, h), m * max(1, math.ceil(256 / m))


def _image_files(image_dir: str | Path | None, max_images: int) -> list[Path]:
    if image_dir is None:
        return []
    return sorted(p for p in Path(image_dir).iterdir() if is_image(p))[:max_images]


def _read_images(files: list[Path], h: int, w: int) -> list[tuple[str, np.ndarray]]:
    import cv2

    images = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            images.append((path.name, cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)))
    return images


def _batches_of(images: list[tuple[str, np.ndarray]], batch: int | None) -> list[tuple[str, list[np.ndarray]]]:
    """One image per case, or groups of exactly ``batch`` (cycling through the images) for a static batch."""
    if not images:
        return []
    if batch is None or batch == 1:
        return [(name, [image]) for name, image in images]
    groups = []
    for start in range(0, len(images), batch):
        picked = [images[(start + k) % len(images)] for k in range(batch)]
        groups.append(("+".join(name for name, _ in picked), [image for _, image in picked]))
    return groups


def parity_inputs(
    size_multiple: int,
    image_dir: str | Path | None = None,
    max_images: int = 4,
    seed: int = 0,
    *,
    batch: int | None = None,
    size: tuple[int, int] | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Named NCHW float32 inputs in [-1, 1]: two random tensors (one a batch of 2) and real photos.

    A static export (``batch`` / ``size``) gets inputs of exactly that batch and size.
    """
    from i2i.runtime.frames import preprocess

    m = max(1, size_multiple)
    (h1, w1), (h2, w2), side = _sizes(m, size)
    n1, n2 = (batch, batch) if batch is not None else (1, 2)
    rng = np.random.default_rng(seed)
    inputs = [
        (f"random {n1}x3x{h1}x{w1}", rng.uniform(-1, 1, (n1, 3, h1, w1)).astype(np.float32)),
        (f"random {n2}x3x{h2}x{w2}", rng.uniform(-1, 1, (n2, 3, h2, w2)).astype(np.float32)),
    ]
    ih, iw = size if size is not None else (side, side)
    for name, frames in _batches_of(_read_images(_image_files(image_dir, max_images), ih, iw), batch):
        inputs.append((f"image {name}", preprocess(frames, m)[0]))
    return inputs


def frame_inputs(
    size_multiple: int,
    image_dir: str | Path | None = None,
    max_images: int = 4,
    seed: int = 0,
    *,
    batch: int | None = None,
    size: tuple[int, int] | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Named uint8 (N, H, W, 3) BGR frame batches. Dynamic exports get sizes that are *not*
    multiples of the size multiple, so the in-graph padding and cropping are exercised."""
    m = max(1, size_multiple)
    if size is None:
        (h1, w1), (h2, w2), side = _sizes(m, None)
        odd = min(5, m - 1)  # pad by a few pixels: still shorter than the frame, as reflection needs
        (h1, w1), (h2, w2), side = (h1 - odd, w1 - odd), (h2 - odd, w2), side - odd
        ih, iw = side, side + m
    else:
        (h1, w1), (h2, w2) = size, size
        ih, iw = size
    n1, n2 = (batch, batch) if batch is not None else (1, 2)
    rng = np.random.default_rng(seed)
    cases = [
        (f"random frames {n1}x{h1}x{w1}", rng.integers(0, 256, (n1, h1, w1, 3), dtype=np.uint8)),
        (f"random frames {n2}x{h2}x{w2}", rng.integers(0, 256, (n2, h2, w2, 3), dtype=np.uint8)),
    ]
    for name, frames in _batches_of(_read_images(_image_files(image_dir, max_images), ih, iw), batch):
        cases.append((f"image {name}", np.stack(frames)))
    return cases


def summarize(cases: list[dict[str, Any]], precision: str) -> dict[str, Any]:
    """The precision's bar over all cases; an absolute bar is checked per case, scaled by each
    case's value range (``max_abs_allowed``); ``max_abs_allowed`` reports the tightest case's."""
    bar = get_precision(precision).bar
    worst_max = max(c["max_abs"] if c["finite"] else math.inf for c in cases)
    worst_psnr = min(c["psnr_db"] for c in cases)
    passed = all(c["finite"] for c in cases) and worst_psnr >= bar.psnr_db
    allowed = None
    if bar.max_abs is not None:
        for case in cases:
            case["max_abs_allowed"] = max_abs_allowed(bar.max_abs, case.get("value_range", NOMINAL_RANGE))
        tightest = max(cases, key=lambda c: c["max_abs"] / c["max_abs_allowed"] if c["finite"] else math.inf)
        allowed = tightest["max_abs_allowed"]
        passed = passed and all(c["finite"] and c["max_abs"] <= c["max_abs_allowed"] for c in cases)
    return {
        "precision": precision,
        "bar": {"max_abs": bar.max_abs, "psnr_db": bar.psnr_db},
        "passed": bool(passed),
        "max_abs": worst_max,
        "max_abs_allowed": allowed,
        "min_psnr_db": worst_psnr,
        "cases": cases,
    }


def summarize_frames(cases: list[dict[str, Any]]) -> dict[str, Any]:
    worst = max(c["max_level_diff"] for c in cases)
    return {
        "bar": dict(FRAME_BAR),
        "passed": worst <= FRAME_BAR["max_level_diff"],
        "max_level_diff": worst,
        "min_psnr_db": min(c["psnr_db"] for c in cases),
        "cases": cases,
    }


def json_safe(obj: Any) -> Any:
    """Infinite PSNR (identical outputs) becomes the string "inf": JSON has no infinity."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
