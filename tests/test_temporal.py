"""The warping error (i2i.analysis.temporal) on synthetic clips whose flow is known exactly.

The clip: a smooth analytic still image f (sums of sinusoids, wavelengths >= 24 px) seen through a
smooth random motion, frame_t(p) = f(ψ_t(p)) with ψ_t(p) = p + t·v + D_t(p) (v a drift of a few
pixels, D_t a small smooth random field per frame). The true flow t → t+1 solves
ψ_{t+1}(p + F(p)) = ψ_t(p) and is found by fixed-point iteration to float64 precision, so a
consistent output's error comes from bilinear interpolation alone.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import invoke

from i2i.analysis import temporal
from i2i.errors import I2IError

SIZE = 96
FRAMES = 6
DRIFT = np.array([2.5, -1.5])
WAVES = 6  # sinusoids per channel in the image
WAVELENGTH_MIN = 24.0
AMPLITUDE_SUM = 0.4  # Σ of the sinusoids' amplitudes per channel: values stay in [0.1, 0.9]


def _image_waves(seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per channel: amplitudes (K,), wave vectors (K, 2) and phases (K,)."""
    rng = np.random.default_rng(seed)
    waves = []
    for _ in range(3):
        amplitude = rng.dirichlet(np.ones(WAVES)) * AMPLITUDE_SUM
        length = rng.uniform(WAVELENGTH_MIN, 3 * WAVELENGTH_MIN, WAVES)
        angle = rng.uniform(0, 2 * np.pi, WAVES)
        k = (2 * np.pi / length)[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
        waves.append((amplitude, k, rng.uniform(0, 2 * np.pi, WAVES)))
    return waves


def _image_at(waves: list, coords: np.ndarray) -> np.ndarray:
    """f at (H, W, 2) float64 (x, y) coordinates → (H, W, 3) float64."""
    return np.stack([0.5 + np.sin(coords @ k.T + phase) @ amplitude for amplitude, k, phase in waves], -1)


def _interpolation_bound(waves: list) -> float:
    """Bilinear interpolation on a unit grid errs by at most (max|f_xx| + max|f_yy|) / 8; for
    f = Σ a·sin(k·p + φ), max|f_xx| <= Σ a·k_x² (and likewise for y)."""
    return max(float(amplitude @ (k**2).sum(1)) / 8 for amplitude, k, _ in waves)


def _motion(seed: int) -> list:
    """Per frame: a smooth random field D_t (two sinusoids per axis, 0.4 px, wavelength >= 64 px)."""
    rng = np.random.default_rng(seed)
    fields = []
    for _ in range(FRAMES):
        angle = rng.uniform(0, 2 * np.pi, (2, 2))
        length = rng.uniform(64, 128, (2, 2))
        k = (2 * np.pi / length)[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)  # (axis, wave, 2)
        fields.append((k, rng.uniform(0, 2 * np.pi, (2, 2))))
    return fields


def _psi(fields: list, t: int, p: np.ndarray) -> np.ndarray:
    k, phase = fields[t]
    offset = np.stack([0.2 * np.sin(p @ k[axis].T + phase[axis]).sum(-1) for axis in range(2)], -1)
    return p + t * DRIFT + offset


def _solve_flow(fields: list, source: int, target: int, grid: np.ndarray) -> np.ndarray:
    """F with ψ_target(p + F(p)) = ψ_source(p), by fixed-point iteration (|∇D| << 1: it contracts)."""
    want = _psi(fields, source, grid)
    flow = np.zeros_like(grid)
    for _ in range(60):
        flow += want - _psi(fields, target, grid + flow)
    assert np.abs(want - _psi(fields, target, grid + flow)).max() < 1e-9
    return flow


@pytest.fixture(scope="module")
def clip() -> dict:
    """Float32 frames in [0, 1], the true forward/backward flows and the interpolation bound."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    grid = np.stack([xs, ys], -1)
    waves, fields = _image_waves(1), _motion(2)
    frames = [_image_at(waves, _psi(fields, t, grid)).astype(np.float32) for t in range(FRAMES)]
    flows = {
        t: tuple(_solve_flow(fields, a, b, grid).astype(np.float32) for a, b in ((t, t + 1), (t + 1, t)))
        for t in range(FRAMES - 1)
    }
    return {"frames": frames, "flows": flows, "bound": _interpolation_bound(waves)}


def _true_flow(clip: dict):
    """A flow function that answers each frame pair with its true flow (frames are matched by order)."""
    calls = iter([flow for t in range(FRAMES - 1) for flow in clip["flows"][t]])
    return lambda first, second: next(calls)


def _flicker(frames: list[np.ndarray], sigma: float, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(f + rng.normal(0, sigma, f.shape)).astype(np.float32) for f in frames]


def _meter(clip: dict, outputs: dict[str, list[np.ndarray]], flow=None) -> temporal.WarpingErrorMeter:
    meter = temporal.WarpingErrorMeter(flow=flow or _true_flow(clip))
    for t, frame in enumerate(clip["frames"]):
        meter.add(frame, {name: frames[t] for name, frames in outputs.items()})
    return meter


def test_consistent_output_has_zero_error_with_the_true_flow(clip: dict) -> None:
    # An output that is a pointwise affine map of the input moves exactly with it. Each pixel's
    # residual is then bilinear interpolation error, at most `bound` (x 0.8 for the affine output),
    # plus float32 rounding (values <= 1: ~1e-7, and coordinates <= 100 px: ~1e-5 px times a slope
    # <= Σ a·|k| < 0.11), so e_t <= (bound + 1e-6)².
    affine = [0.8 * f + 0.1 for f in clip["frames"]]
    meter = _meter(clip, {"output": clip["frames"], "affine": affine})
    limit = (clip["bound"] + 1e-6) ** 2
    assert np.mean(meter.coverage) > 0.85  # the checks keep the frame (only the drift's border goes)
    for name in ("output", "affine", temporal.INPUT):
        assert 0 <= meter.e_warp(name) <= limit, name
    assert meter.e_warp("output") == pytest.approx(meter.e_warp(temporal.INPUT), rel=1e-12)


def test_flickering_output_ranks_worse(clip: dict) -> None:
    outputs = {
        "consistent": clip["frames"],
        "flicker_low": _flicker(clip["frames"], 0.01),
        "flicker_high": _flicker(clip["frames"], 0.04),
    }
    meter = _meter(clip, outputs)
    errors = [meter.e_warp(name) for name in outputs]
    assert errors == sorted(errors)
    assert errors[1] > 10 * (clip["bound"] + 1e-6) ** 2  # flicker stands well above the interpolation floor


def test_dis_flow_ranks_the_same_on_8_bit_frames(clip: dict) -> None:
    # The metric's own flow (DIS MEDIUM) on uint8 frames: estimation error raises the floor, but the
    # consistent output sits at the input's own error and flicker well above it.
    to8 = [np.clip(f * 255 + 0.5, 0, 255).astype(np.uint8) for f in clip["frames"]]
    noisy = [np.clip(f * 255 + 0.5, 0, 255).astype(np.uint8) for f in _flicker(clip["frames"], 0.03)]
    meter = temporal.WarpingErrorMeter()
    for frame, out in zip(to8, noisy):
        meter.add(frame, {"consistent": frame, "flicker": out})
    assert meter.e_warp("consistent") == meter.e_warp(temporal.INPUT)
    assert meter.e_warp("consistent") < 0.2 * meter.e_warp("flicker")
    report = meter.report()
    assert report["series"]["flicker"]["tpsnr_db"] == pytest.approx(-10 * np.log10(meter.e_warp("flicker")))


def test_consistency_mask_flags_occlusions_boundaries_and_leaving_pixels() -> None:
    forward = np.zeros((32, 32, 2), np.float32)
    forward[..., 0] = 3.0
    backward = -forward.copy()
    assert temporal.consistency_mask(forward, backward)[:, :29].all()
    assert not temporal.consistency_mask(forward, backward)[:, 29:].any()  # p + F(p) leaves the frame
    disagree = backward.copy()
    disagree[8:16, 11:19, 0] = 3.0  # the way back says +3 where it should say -3: occluded
    mask = temporal.consistency_mask(forward, disagree)
    assert not mask[8:16, 8:16].any() and mask[20:, :29].all()
    step = forward.copy()
    step[:, 16:, 0] = 0.0  # a motion boundary between columns 15 and 16
    mask = temporal.consistency_mask(step, -step)
    assert not mask[:, 15].any() and mask[:, 10].all() and mask[:, 20].all()


def test_ssim_matches_the_torch_metric() -> None:
    torch = pytest.importorskip("torch")
    from i2i.train.metrics import ssim as torch_ssim

    rng = np.random.default_rng(0)
    a = rng.random((40, 48, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    expected = float(torch_ssim(torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None]))
    assert temporal.ssim(a, b) == pytest.approx(expected, abs=1e-12)  # both float64, same window
    assert temporal.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert temporal.psnr01(a, a) == temporal.PSNR_CAP_DB


def test_fidelity_is_reported_against_the_reference(clip: dict) -> None:
    meter = temporal.WarpingErrorMeter(flow=_true_flow(clip), reference="output")
    for frame in clip["frames"]:
        meter.add(frame, {"output": frame, "stabilised": frame * 0.5})
    fidelity = meter.report()["fidelity"]
    assert set(fidelity) == {"stabilised"}
    assert 0 < fidelity["stabilised"]["ssim"] < 1 and fidelity["stabilised"]["psnr_db"] < 20


def test_bad_inputs_are_one_line_errors(clip: dict) -> None:
    meter = temporal.WarpingErrorMeter()
    with pytest.raises(I2IError, match="the input 96x96"):
        meter.add(clip["frames"][0], {"output": clip["frames"][0][:50]})
    with pytest.raises(I2IError, match="names the input"):
        meter.add(clip["frames"][0], {temporal.INPUT: clip["frames"][0]})
    meter.add(clip["frames"][0], {"output": clip["frames"][0]})
    with pytest.raises(I2IError, match="at least 2 frames"):
        meter.report()


def _write_folder(folder, frames: list[np.ndarray]) -> None:
    folder.mkdir()
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{t}.png"), np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8))


def test_command_on_frame_folders(tmp_path, clip: dict) -> None:
    from i2i.eval import temporal_command  # also python -m i2i.analysis.temporal

    _write_folder(tmp_path / "in", clip["frames"])
    _write_folder(tmp_path / "out", _flicker(clip["frames"], 0.03))
    _write_folder(tmp_path / "stab", clip["frames"])
    _write_folder(tmp_path / "short", clip["frames"][:3])
    plot, report = tmp_path / "errors.png", tmp_path / "t.json"
    args = [tmp_path / "in", tmp_path / "out", "--stabilised", tmp_path / "stab", "--plot", plot, "--json", report]
    result = invoke(temporal_command, args)
    assert result.exit_code == 0, result.output
    assert "E_warp" in result.output and "fidelity to it" in result.output
    figures = json.loads(report.read_text())
    assert figures["frames"] == FRAMES and len(figures["series"]["output"]["per_frame"]) == FRAMES - 1
    assert figures["series"]["stabilized"]["e_warp"] < figures["series"]["output"]["e_warp"]
    assert cv2.imread(str(plot)).shape == (420, 760, 3)
    short = invoke(temporal_command, [tmp_path / "in", tmp_path / "short"])
    assert short.exit_code == 1 and "frame counts differ" in short.output
    missing = invoke(temporal_command, [tmp_path / "nowhere", tmp_path / "out"])
    assert missing.exit_code == 1 and "no such file or folder" in missing.output
