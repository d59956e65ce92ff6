"""i2i-eval temporal: the warping error of a translated clip against its input's motion, on tiny synthetic clips."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from conftest import invoke

from i2i.eval import main


def _clip(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    return folder


def _panning_texture(n: int = 6, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """A smooth texture moving 1 px right per frame (flow the metric can follow)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (h // 4, (w + n) // 4 + 1, 3), dtype=np.uint8)
    wide = cv2.resize(small, (small.shape[1] * 4, h), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(wide[:, n - i : n - i + w]) for i in range(n)]


def test_temporal_ranks_a_flickering_output_worse_and_writes_plot_and_json(tmp_path: Path) -> None:
    frames = _panning_texture()
    source = _clip(tmp_path / "input", frames)
    consistent = _clip(tmp_path / "consistent", [255 - f for f in frames])  # a per-pixel map: no flicker
    offsets = [40 if i % 2 else 0 for i in range(len(frames))]
    flicker = _clip(tmp_path / "flicker", [cv2.add(255 - f, (o, o, o, 0)) for f, o in zip(frames, offsets)])
    report_path, plot = tmp_path / "report.json", tmp_path / "warp.png"
    result = invoke(
        main, ["temporal", source, flicker, "--stabilized", consistent, "--plot", plot, "--json", report_path]
    )
    assert result.exit_code == 0, result.output
    assert "E_warp" in result.output and "fidelity to it" in result.output
    report = json.loads(report_path.read_text())
    series = report["series"]
    assert report["frames"] == len(frames) and set(series) == {"input", "output", "stabilized"}
    assert series["output"]["e_warp"] > 10 * series["stabilized"]["e_warp"]
    assert cv2.imread(str(plot)) is not None
    # British spelling accepted too.
    assert invoke(main, ["temporal", source, consistent, "--stabilised", consistent]).exit_code == 0


def test_temporal_refuses_clips_of_different_lengths(tmp_path: Path) -> None:
    frames = _panning_texture()
    source = _clip(tmp_path / "input", frames)
    short = _clip(tmp_path / "short", frames[:3])
    result = invoke(main, ["temporal", source, short])
    assert result.exit_code != 0
    assert "frame counts differ" in result.output and "Traceback" not in result.output
