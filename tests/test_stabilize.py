"""The run-time stabiliser (i2i.runtime.stabilize.FlowStabilizer) on synthetic clips."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_script

from i2i.analysis import temporal
from i2i.errors import I2IError
from i2i.runtime.stabilize import FlowStabilizer

H, W = 120, 160


def _texture(seed: int, h: int = H + 40, w: int = W + 40) -> np.ndarray:
    """A smooth random BGR texture (blurred noise), larger than a frame so it can be panned."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((h // 4, w // 4, 3)).astype(np.float32)
    big = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(cv2.GaussianBlur(big, (0, 0), 2.0) * 255, 0, 255).astype(np.uint8)


def _pan(texture: np.ndarray, frames: int, step: int = 2) -> list[np.ndarray]:
    """A camera panning right by ``step`` whole pixels per frame (the flow is exactly -step in x)."""
    return [texture[10 : 10 + H, 10 + t * step : 10 + t * step + W].copy() for t in range(frames)]


def _flicker(frames: list[np.ndarray], sigma: float, seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def _run(stabilizer: FlowStabilizer, inputs: list[np.ndarray], translated: list[np.ndarray]) -> list[np.ndarray]:
    return [stabilizer(a, b) for a, b in zip(inputs, translated)]


def test_strength_zero_and_the_first_frame_pass_the_translation_through() -> None:
    inputs = _pan(_texture(0), 3)
    translated = _flicker(inputs, 8.0)
    assert all(np.array_equal(o, t) for o, t in zip(_run(FlowStabilizer(0.0), inputs, translated), translated))
    stabilizer = FlowStabilizer(0.6)
    assert np.array_equal(stabilizer(inputs[0], translated[0]), translated[0])
    assert not np.array_equal(stabilizer(inputs[1], translated[1]), translated[1])
    stabilizer.reset()
    assert np.array_equal(stabilizer(inputs[2], translated[2]), translated[2])  # reset: a fresh start


def test_flicker_on_a_still_scene_is_averaged_out() -> None:
    # A still input and a translation with independent noise per frame: along a trajectory the stage
    # is an exponential moving average, whose stationary variance is (1 - s) / (1 + s) of the noise's
    # (0.25 at s = 0.6). Interpolation of the near-zero flow only averages further.
    still = _pan(_texture(1), 1) * 30
    translated = _flicker(still, 10.0)
    out = np.stack(_run(FlowStabilizer(0.6), still, translated)[10:]).astype(np.float64)
    raw = np.stack(translated[10:]).astype(np.float64)
    assert out.var(0).mean() < 0.35 * raw.var(0).mean()
    assert abs(out.mean() - raw.mean()) < 0.5  # no drift in brightness


def test_moving_flicker_drops_under_the_metric_without_ghosting() -> None:
    inputs = _pan(_texture(2), 12)
    clean = [255 - f for f in inputs]  # a consistent "translation"
    stabilised_clean = _run(FlowStabilizer(0.6), inputs, clean)
    # A consistent translation stays itself (no trails, no blur beyond flow interpolation).
    assert min(temporal.psnr01(c / 255.0, s / 255.0) for c, s in zip(clean, stabilised_clean)) > 35
    flickering = _flicker(clean, 10.0)
    stabilised = _run(FlowStabilizer(0.6), inputs, flickering)
    meter = temporal.WarpingErrorMeter(reference="output")
    for a, f, s in zip(inputs, flickering, stabilised):
        meter.add(a, {"output": f, "stabilised": s})
    assert meter.e_warp("stabilised") < 0.5 * meter.e_warp("output")


def test_scene_cut_and_occlusion_fall_back_to_the_translation() -> None:
    first, second = _pan(_texture(3), 4), _pan(_texture(4), 2)
    stabilizer = FlowStabilizer(0.6)
    _run(stabilizer, first, _flicker(first, 8.0))
    cut = _flicker(second, 8.0, seed=9)
    assert np.array_equal(stabilizer(second[0], cut[0]), cut[0]) and stabilizer.cuts == 1
    # A bright square appears in the input (and the translation): nothing of the past shows there.
    appeared = second[1].copy()
    appeared[40:80, 60:100] = 250
    translated = 255 - appeared
    out = stabilizer(appeared, translated)
    inner = (slice(46, 74), slice(66, 94))  # the square less the flow's blur at its edges
    assert np.abs(out[inner].astype(int) - translated[inner]).max() <= 1
    assert stabilizer.cuts == 1


def test_bad_frames_and_settings_are_one_line_errors() -> None:
    with pytest.raises(I2IError, match=r"in \[0, 1\)"):
        FlowStabilizer(1.0)
    with pytest.raises(I2IError, match="at least 16"):
        FlowStabilizer(0.5, flow_size=8)
    stabilizer = FlowStabilizer(0.5)
    frame = _pan(_texture(5), 1)[0]
    with pytest.raises(I2IError, match="the same size"):
        stabilizer(frame, frame[:60])
    with pytest.raises(I2IError, match="uint8"):
        stabilizer(frame.astype(np.float32), frame)
    with pytest.raises(I2IError, match="HxWx3"):
        stabilizer(frame, frame[..., 0])


def test_gray_input_and_frame_size_change() -> None:
    inputs = _pan(_texture(6), 3)
    stabilizer = FlowStabilizer(0.5, flow_size=64)  # flow at reduced resolution, upsampled
    outputs = [stabilizer(f[..., 0], 255 - f) for f in inputs]
    assert all(o.shape == (H, W, 3) and o.dtype == np.uint8 for o in outputs)
    smaller = inputs[0][:64, :80]
    assert np.array_equal(stabilizer(smaller, 255 - smaller), 255 - smaller)  # a new size starts afresh


def test_the_stage_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "from i2i.runtime.stabilize import FlowStabilizer\n"
        "s = FlowStabilizer(0.5)\n"
        "f = np.zeros((32, 32, 3), np.uint8)\n"
        "s(f, f); s(f, f)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = run_script(code)
    assert result.returncode == 0, result.stderr
