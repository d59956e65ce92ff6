"""Temporal stability of a translated video: the warping error of Lai et al. 2018 ("Learning Blind
Video Temporal Consistency", ECCV), with the occlusion check of Ruder et al. 2016 ("Artistic Style
Transfer for Videos", GCPR).

For consecutive frames t, t+1 of the INPUT video, F is the optical flow from t to t+1 (input_t(p) ≈
input_{t+1}(p + F(p))) and B the flow from t+1 to t, both from OpenCV's DIS (MEDIUM preset: offline,
no weights). The output O (values in [0, 1]) is judged against the input's motion::

    e_t    = Σ_p M_t(p) · ‖O_t(p) − O_{t+1}(p + F(p))‖² / Σ_p M_t(p)
    E_warp = 1/(T−1) · Σ_t e_t            tPSNR = −10 · log10(E_warp)

‖·‖² is the squared difference averaged over the three colour channels, as Lai's released code
computes it (its mask is read as a 3-channel image, so the denominator counts each pixel thrice);
the literature's figures (per-frame CycleGAN 0.0032, fast-neural-style 0.0043) are on that scale.
A frame pair whose mask keeps no pixel counts all of them (Lai's code does the same).

M_t(p) = 1 where the flow is trusted. Ruder's two checks, on the flow that does the warping
(w = F, and ŵ = B sampled at p + F(p), i.e. B brought into frame t)::

    occluded:        |w + ŵ|² > 0.01 · (|w|² + |ŵ|²) + 0.5
    motion boundary: |∇w|²    > 0.01 · |w|² + 0.002        (|∇w|² = u_x² + u_y² + v_x² + v_y²)

and, beyond Lai's code, pixels whose p + F(p) leaves the frame (nothing to compare them with).
Gradients are forward differences, as Lai's ``compute_flow_gradients``.

The input video's own E_warp is the floor set by flow error (and by the codec): a perfectly
consistent output cannot go far below it. Blurring or freezing frames also lowers E_warp, so a
stabilised output is reported with its fidelity to the per-frame output (PSNR in dB, SSIM).

    python -m i2i.analysis.temporal INPUT.mp4 OUTPUT.mp4 [--stabilised STAB.mp4] [--plot errors.png]

(videos, folders of frames or globs: whatever ``i2i-run --source`` reads).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from i2i.analysis.plots import _COLOURS, _label, _write_png
from i2i.errors import I2IError

# Ruder et al. 2016, Eq. 6-7 (the constants Lai et al. 2018 use).
OCCLUSION_RELATIVE = 0.01
OCCLUSION_ABSOLUTE = 0.5  # px²
BOUNDARY_RELATIVE = 0.01
BOUNDARY_ABSOLUTE = 0.002
PSNR_CAP_DB = 100.0  # identical frames count as 100 dB, as i2i-eval psnr
INPUT = "input"  # the series name of the input video's own warping error

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (gray t, gray t+1) -> (H, W, 2) float32 flow


def to_float01(frame: np.ndarray) -> np.ndarray:
    """A BGR (or gray) frame as float32 in [0, 1]: uint8 / 255, uint16 / 65535, float taken as is."""
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / np.float32(255.0)
    if frame.dtype == np.uint16:
        return frame.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(frame.dtype, np.floating):
        return frame.astype(np.float32, copy=False)
    raise I2IError(f"frames must be uint8, uint16 or float in [0, 1], got {frame.dtype}")


def to_gray_uint8(frame: np.ndarray) -> np.ndarray:
    """What DIS takes: one 8-bit channel."""
    if frame.dtype != np.uint8:
        frame = np.clip(to_float01(frame) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def dis_flow(preset: int = cv2.DISOpticalFlow_PRESET_MEDIUM) -> FlowFn:
    """A flow function backed by one OpenCV DIS instance (MEDIUM by default: the metric's setting)."""
    # OpenCV takes None for an output it should allocate; its stubs do not say so, hence the untyped
    # handle on ``calc``. (An np.empty array instead segfaults DIS in OpenCV 5.1: it reads the contents.)
    calc: Any = cv2.DISOpticalFlow.create(preset).calc

    def flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.asarray(calc(to_gray_uint8(first), to_gray_uint8(second), None), dtype=np.float32)

    return flow


def sampling_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap's maps for sampling at p + flow(p): (x + u, y + v), float32."""
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at p + flow(p) (bilinear, edge pixels repeated outside the frame)."""
    xs, ys = sampling_maps(flow)
    return cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def flow_gradient_energy(flow: np.ndarray) -> np.ndarray:
    """u_x² + u_y² + v_x² + v_y² with forward differences (zero on the last row and column)."""
    dx = np.zeros_like(flow)
    dy = np.zeros_like(flow)
    dx[:, :-1] = flow[:, 1:] - flow[:, :-1]
    dy[:-1] = flow[1:] - flow[:-1]
    return np.asarray((dx**2).sum(-1) + (dy**2).sum(-1))


def consistency_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) bool, True where ``forward`` (frame t → t+1) is trusted: Ruder's forward-backward and
    motion-boundary checks, and the target p + F(p) inside frame t+1. ``backward`` is t+1 → t."""
    h, w = forward.shape[:2]
    back_at_target = warp(backward, forward)  # B(p + F(p)), in frame t's coordinates
    mismatch = ((forward + back_at_target) ** 2).sum(-1)
    scale = (forward**2).sum(-1) + (back_at_target**2).sum(-1)
    occluded = mismatch > OCCLUSION_RELATIVE * scale + OCCLUSION_ABSOLUTE
    boundary = flow_gradient_energy(forward) > BOUNDARY_RELATIVE * (forward**2).sum(-1) + BOUNDARY_ABSOLUTE
    xs, ys = sampling_maps(forward)
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return np.asarray(inside & ~occluded & ~boundary)


def masked_error(current: np.ndarray, next_warped: np.ndarray, mask: np.ndarray) -> float:
    """Σ M · mean_channel(diff²) / Σ M in float64 (all pixels when the mask keeps none)."""
    diff = current.astype(np.float64) - next_warped.astype(np.float64)
    per_pixel = (diff**2).mean(-1) if diff.ndim == 3 else diff**2
    kept = int(mask.sum())
    if kept == 0:
        return float(per_pixel.mean())
    return float(per_pixel[mask].sum() / kept)


def ssim(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean SSIM of two [0, 1] images (Wang et al. 2004: 11x11 Gaussian window, σ 1.5, valid region,
    float64), the arithmetic of ``i2i-eval ssim`` without torch."""
    a = np.atleast_3d(reference).astype(np.float64)
    b = np.atleast_3d(other).astype(np.float64)
    if min(a.shape[:2]) < 11:
        raise I2IError(f"SSIM needs frames of at least 11x11 pixels, got {a.shape[1]}x{a.shape[0]}")
    kernel = cv2.getGaussianKernel(11, 1.5, cv2.CV_64F)

    def blur(x: np.ndarray) -> np.ndarray:
        out = np.atleast_3d(cv2.sepFilter2D(x, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT))
        return out[5:-5, 5:-5]  # the valid region: windows wholly inside the frame

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def psnr01(reference: np.ndarray, other: np.ndarray) -> float:
    """PSNR in dB of two [0, 1] images, capped at PSNR_CAP_DB."""
    mse = float(np.mean((reference.astype(np.float64) - other.astype(np.float64)) ** 2))
    return PSNR_CAP_DB if mse == 0.0 else min(10.0 * math.log10(1.0 / mse), PSNR_CAP_DB)


def tpsnr(e_warp: float) -> float:
    """−10·log10(E_warp) in dB (capped at PSNR_CAP_DB for a zero error)."""
    return PSNR_CAP_DB if e_warp <= 0 else min(-10.0 * math.log10(e_warp), PSNR_CAP_DB)


@dataclass
class WarpingErrorMeter:
    """Accumulates the warping error of several outputs of one input video, frame by frame.

    The flow is computed once per input frame pair and shared by every output, so a per-frame and a
    stabilised output are judged by exactly the same motion. ``reference`` names the output the
    others' fidelity (PSNR/SSIM) is measured against. ``flow`` is swappable (tests pass the true flow).
    """

    flow: FlowFn = field(default_factory=dis_flow)
    reference: str | None = None
    errors: dict[str, list[float]] = field(default_factory=dict)
    fidelity: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    coverage: list[float] = field(default_factory=list)
    frames: int = 0
    _previous: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    def add(self, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        """One frame of the input and of each named output (the same names on every call)."""
        if INPUT in outputs:
            raise I2IError(f"{INPUT!r} names the input video's own series; call the output something else")
        current = {INPUT: to_float01(input_frame), **{k: to_float01(v) for k, v in outputs.items()}}
        shape = current[INPUT].shape[:2]
        for name, image in current.items():
            if image.shape[:2] != shape:
                raise I2IError(
                    f"frame {self.frames}: {name} is {image.shape[1]}x{image.shape[0]}, "
                    f"the input {shape[1]}x{shape[0]}: the warping error compares frames of the input's size"
                )
        if self._previous is not None and set(self._previous[1]) != set(current):
            raise I2IError(f"frame {self.frames}: outputs {sorted(current)} differ from {sorted(self._previous[1])}")
        self._add_fidelity(current)
        if self._previous is not None:
            gray_prev, previous = self._previous
            gray = to_gray_uint8(input_frame)
            forward = self.flow(gray_prev, gray)  # t → t+1, computed on the INPUT frames
            backward = self.flow(gray, gray_prev)
            mask = consistency_mask(forward, backward)
            self.coverage.append(float(mask.mean()))
            for name, image in current.items():
                self.errors.setdefault(name, []).append(masked_error(previous[name], warp(image, forward), mask))
        self._previous = (to_gray_uint8(input_frame), current)
        self.frames += 1

    def _add_fidelity(self, current: dict[str, np.ndarray]) -> None:
        if self.reference is None:
            return
        if self.reference not in current:
            raise I2IError(f"the reference output {self.reference!r} is not among {sorted(current)}")
        base = current[self.reference]
        for name, image in current.items():
            if name not in (INPUT, self.reference):
                self.fidelity.setdefault(name, []).append((psnr01(base, image), ssim(base, image)))

    def e_warp(self, name: str) -> float:
        if self.frames < 2:
            raise I2IError(f"the warping error needs at least 2 frames, got {self.frames}")
        return float(np.mean(self.errors[name]))

    def report(self) -> dict[str, Any]:
        """JSON-ready figures: per series E_warp, tPSNR and the per-frame errors; fidelity per output."""
        if self.frames < 2:
            raise I2IError(f"the warping error needs at least 2 frames, got {self.frames}")
        series = {
            name: {"e_warp": self.e_warp(name), "tpsnr_db": tpsnr(self.e_warp(name)), "per_frame": errors}
            for name, errors in self.errors.items()
        }
        report: dict[str, Any] = {
            "frames": self.frames,
            "mask_coverage": float(np.mean(self.coverage)),
            "series": series,
            "flow": "OpenCV DIS MEDIUM on the input frames",
        }
        if self.reference is not None:
            report["reference"] = self.reference
            report["fidelity"] = {
                name: {
                    "psnr_db": float(np.mean([p for p, _ in pairs])),
                    "psnr_db_min": float(np.min([p for p, _ in pairs])),
                    "ssim": float(np.mean([s for _, s in pairs])),
                }
                for name, pairs in self.fidelity.items()
            }
        return report


def read_frames(spec: str | Path) -> Iterator[np.ndarray]:
    """BGR uint8 frames of a video file, a folder of frames or a glob (the runtime's sources)."""
    from i2i.runtime.sources import open_source

    with open_source(str(spec)) as source:
        for frame in source:
            yield frame.image


def measure(
    input_spec: str | Path,
    outputs: Mapping[str, str | Path],
    reference: str | None = None,
    flow: FlowFn | None = None,
    max_frames: int = 0,
) -> dict[str, Any]:
    """The report of ``outputs`` (name → video or folder) against the motion of ``input_spec``."""
    meter = WarpingErrorMeter(flow=flow or dis_flow(), reference=reference)
    streams = {name: read_frames(spec) for name, spec in outputs.items()}
    for index, input_frame in enumerate(read_frames(input_spec)):
        if max_frames and index >= max_frames:
            break
        frames = {name: next(stream, None) for name, stream in streams.items()}
        missing = [name for name, frame in frames.items() if frame is None]
        if missing:
            raise I2IError(f"{', '.join(missing)} ended at frame {index}, before the input: frame counts differ")
        meter.add(input_frame, {name: frame for name, frame in frames.items() if frame is not None})
    if not max_frames:
        longer = [name for name, stream in streams.items() if next(stream, None) is not None]
        if longer:
            raise I2IError(f"{', '.join(longer)} has more frames than the input ({meter.frames})")
    return meter.report()


def plot_frame_errors(report: Mapping[str, Any], path: Path, title: str = "warping error per frame") -> Path:
    """Per-frame warping error against frame index, one line per series (OpenCV drawing)."""
    width, height, left, right, top, bottom = 760, 420, 80, 20, 40, 50
    canvas = np.full((height, width, 3), 255, np.uint8)
    curves = {name: np.asarray(s["per_frame"], np.float64) for name, s in report["series"].items()}
    n = max(len(c) for c in curves.values())
    hi = max(float(c.max()) for c in curves.values()) or 1.0

    def xy(values: np.ndarray) -> np.ndarray:
        px = left + np.arange(len(values)) / max(n - 1, 1) * (width - left - right)
        py = top + (1 - values / hi) * (height - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    for frac in np.linspace(0, 1, 6):
        px = int(round(left + frac * (width - left - right)))
        py = int(round(top + (1 - frac) * (height - top - bottom)))
        cv2.line(canvas, (px, height - bottom), (px, height - bottom + 5), (0, 0, 0), 1)
        _label(canvas, f"{frac * max(n - 1, 1):.0f}", (px - 10, height - bottom + 20))
        cv2.line(canvas, (left - 5, py), (left, py), (0, 0, 0), 1)
        _label(canvas, f"{frac * hi:.1e}", (left - 72, py + 5))
    _label(canvas, "frame pair (t, t+1)", (width // 2 - 70, height - 10))
    _label(canvas, title, (left, top - 14))
    for i, (name, values) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        if len(values) > 1:
            cv2.polylines(canvas, [xy(values)], False, colour, 1, cv2.LINE_AA)
        text = f"{name}: E_warp {report['series'][name]['e_warp']:.2e}"
        y = top + 18 + 18 * i  # the legend, top left inside the axes, on a white box so curves do not cross it
        cv2.rectangle(canvas, (left + 4, y - 9), (left + 50 + 8 * len(text), y + 9), (255, 255, 255), -1)
        cv2.line(canvas, (left + 10, y), (left + 40, y), colour, 2)
        _label(canvas, text, (left + 48, y + 5), colour)
    return _write_png(path, canvas)


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """What the command prints: one line per series, then the fidelity lines."""
    lines = [f"{report['frames']} frames, flow mask keeps {100 * report['mask_coverage']:.1f} % of the pixels"]
    floor = report["series"][INPUT]["e_warp"]
    for name, s in report["series"].items():
        note = " (the input's own: the floor set by flow error)" if name == INPUT else ""
        ratio = f", {s['e_warp'] / floor:.2f}x the input's" if name != INPUT and floor > 0 else ""
        lines.append(f"{name:>12}: E_warp {s['e_warp']:.6f}, tPSNR {s['tpsnr_db']:.2f} dB{ratio}{note}")
    for name, f in report.get("fidelity", {}).items():
        e_ref, e = report["series"][report["reference"]]["e_warp"], report["series"][name]["e_warp"]
        change = f"E_warp {100 * (e_ref - e) / e_ref:+.1f} % lower" if e_ref > 0 else ""
        lines.append(
            f"{name:>12}: {change} than {report['reference']}, fidelity to it "
            f"PSNR {f['psnr_db']:.2f} dB (min {f['psnr_db_min']:.2f}), SSIM {f['ssim']:.4f}"
        )
    return lines


if __name__ == "__main__":  # python -m i2i.analysis.temporal: the i2i-eval temporal command
    from i2i.eval import temporal_command

    temporal_command()
