"""Spectrum plots drawn with OpenCV (no plotting library): mean log-spectra and radial power profiles."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from i2i._files import write_bytes
from i2i.errors import I2IError


def _write_png(path: Path, canvas: np.ndarray) -> Path:
    """Encode in memory, then write atomically: a failed write leaves no half-written plot."""
    ok, data = cv2.imencode(".png", canvas)
    if not ok:
        raise I2IError(f"cannot encode the plot {path}")
    return write_bytes(path, data.tobytes(), "plot")


_COLOURS = [(40, 40, 200), (200, 90, 30), (40, 160, 40), (150, 40, 150)]  # BGR: real red, fake blue, ...


def _label(canvas: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def plot_spectra(maps: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Panels of mean normalised log-magnitude spectra (channel mean, viridis, shared scale), plus
    each set's difference to the first one (diverging map, ± the largest difference)."""
    names = list(maps)
    planes = {k: v.mean(0) for k, v in maps.items()}  # (H, W)
    h, w = next(iter(planes.values())).shape
    scale = max(1, 256 // max(h, w))
    low = min(float(p.min()) for p in planes.values())
    high = max(float(p.max()) for p in planes.values())

    def tile(plane: np.ndarray, lo: float, hi: float, cmap: int) -> np.ndarray:
        u8 = np.clip((plane - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255).astype(np.uint8)
        return cv2.resize(cv2.applyColorMap(u8, cmap), (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)

    top = [tile(planes[k], low, high, cv2.COLORMAP_VIRIDIS) for k in names]
    diffs = {k: planes[k] - planes[names[0]] for k in names[1:]}
    bound = max((float(np.abs(d).max()) for d in diffs.values()), default=1.0)
    bottom = [np.full_like(top[0], 255)] + [
        tile(diffs[k], -bound, bound, cv2.COLORMAP_TWILIGHT_SHIFTED) for k in names[1:]
    ]
    pad = 24
    cell_h, cell_w = top[0].shape[:2]
    canvas = np.full((pad + 2 * (cell_h + pad), len(names) * (cell_w + 8) + 8, 3), 255, np.uint8)
    _label(canvas, title, (8, 16))
    for i, k in enumerate(names):
        x = 8 + i * (cell_w + 8)
        _label(canvas, f"{k}: mean log|F|", (x, pad + 16))
        canvas[2 * pad : 2 * pad + cell_h, x : x + cell_w] = top[i]
        if i:
            _label(canvas, f"{k} - {names[0]} (+-{bound:.3f})", (x, 2 * pad + cell_h + 16))
            canvas[3 * pad + cell_h - 4 : 3 * pad + 2 * cell_h - 4, x : x + cell_w] = bottom[i]
    return _write_png(path, canvas)


def plot_radial(profiles: dict[str, np.ndarray], radius: np.ndarray, path: Path, title: str) -> Path:
    """log10 radial power (channel mean) against normalised frequency, one line per set."""
    width, height, left, right, top, bottom = 760, 460, 70, 20, 40, 50
    canvas = np.full((height, width, 3), 255, np.uint8)
    curves = {k: np.log10(np.maximum(v.mean(0), 1e-12)) for k, v in profiles.items()}
    lo = min(float(c[1:].min()) for c in curves.values())  # ring 0 (DC) would squash the scale
    hi = max(float(c[1:].max()) for c in curves.values())
    x_max = float(radius[-1])

    def xy(r: np.ndarray, v: np.ndarray) -> np.ndarray:
        px = left + r / x_max * (width - left - right)
        py = top + (hi - v) / max(hi - lo, 1e-9) * (height - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    for frac in np.linspace(0, 1, 6):
        r = frac * x_max
        px = int(round(left + frac * (width - left - right)))
        cv2.line(canvas, (px, height - bottom), (px, height - bottom + 5), (0, 0, 0), 1)
        _label(canvas, f"{r:.2f}", (px - 14, height - bottom + 20))
        v = lo + frac * (hi - lo)
        py = int(round(top + (1 - frac) * (height - top - bottom)))
        cv2.line(canvas, (left - 5, py), (left, py), (0, 0, 0), 1)
        _label(canvas, f"{v:.1f}", (left - 45, py + 5))
    _label(canvas, "spatial frequency (cycles/pixel)", (width // 2 - 120, height - 10))
    _label(canvas, "log10 power", (4, top - 12))
    _label(canvas, title, (left + 110, top - 12))
    for i, (k, c) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        cv2.polylines(canvas, [xy(radius[1:], c[1:])], False, colour, 1, cv2.LINE_AA)
        cv2.line(canvas, (width - right - 150, top + 18 + 18 * i), (width - right - 120, top + 18 + 18 * i), colour, 2)
        _label(canvas, k, (width - right - 112, top + 23 + 18 * i), colour)
    return _write_png(path, canvas)
