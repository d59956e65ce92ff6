"""The stabilising stage in the pipeline, i2i-run --stabilize and the Python API's stream(stabilize=...):
its own 'stabilize' stage, applied at the frame's size, one fresh stabiliser per source."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import invoke
from test_backends import make_model
from test_runtime_pipeline import FakeBackend, ListSink, ListSource

from i2i.api import Translator
from i2i.errors import I2IError
from i2i.runtime.pipeline import run_pipeline
from i2i.runtime.stabilize import FlowStabilizer
from i2i.runtime.working_size import WorkingSize


def _texture(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (3, 3), 0)


class Flicker(FakeBackend):
    """Inverts, plus a brightness offset that alternates frame by frame: per-frame flicker."""

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        offset = np.float32(0.2 if len(self.batches) % 2 else -0.2)
        return np.clip(super()._infer(batch) + offset, -1.0, 1.0)


def test_pipeline_stabilizes_in_its_own_stage_at_the_frame_size() -> None:
    still = [_texture()] * 6
    plain, steady = ListSink(), ListSink()
    run_pipeline(ListSource(still), Flicker(), plain)
    stats = run_pipeline(ListSource(still), Flicker(), steady, stabilizer=FlowStabilizer(strength=0.7))
    assert stats.summary()["stages"]["stabilize"]["count"] == 6
    assert all(image.shape == (64, 96, 3) for image in steady.images)

    def flicker(images: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(images[2:], images[1:])]))

    assert flicker(steady.images) < 0.5 * flicker(plain.images)


def test_stabilize_runs_after_upsampling_on_frame_sized_outputs() -> None:
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def stabilizer(input_frame: np.ndarray, translated: np.ndarray) -> np.ndarray:
        seen.append((input_frame.shape, translated.shape))
        return translated

    stats = run_pipeline(
        ListSource([_texture()] * 2),
        FakeBackend(),
        ListSink(),
        working_size=WorkingSize((32, 48), 8),
        stabilizer=stabilizer,
    )
    assert seen == [((64, 96, 3), (64, 96, 3))] * 2
    stages = list(stats.summary()["stages"])
    assert stages.index("upsample") < stages.index("stabilize") < stages.index("write")


def test_stream_items_carry_the_stabilize_timing_and_each_stream_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[FlowStabilizer] = []

    class Counted(FlowStabilizer):
        def __init__(self, strength: float) -> None:
            super().__init__(strength=strength)
            made.append(self)

    monkeypatch.setattr("i2i.runtime.stabilize.FlowStabilizer", Counted)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), _texture())
    translator = Translator(Flicker(), stabilize=0.6)
    items = list(translator.stream(folder))
    assert all("stabilize" in item.speed and item.speed["stabilize"] >= 0 for item in items)
    # A new stream does not blend with the last one: its first frame is the fresh translation.
    exact = Translator(FakeBackend(), stabilize=0.6)  # inverts exactly
    list(exact.stream(folder))
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "000.png"), _texture(seed=1))
    np.testing.assert_array_equal(next(iter(exact.stream(other))).image, 255 - _texture(seed=1))
    assert len(made) == 3 and all(s.strength == 0.6 for s in made)  # one stabiliser per stream
    assert "stabilize" not in next(iter(translator.stream(folder, stabilize=0.0))).speed
    with pytest.raises(I2IError, match=r"in \[0, 1\)"):
        Translator(FakeBackend(), stabilize=1.0)


def test_cli_stabilize_writes_a_video_with_the_stage_in_the_stats(tmp_path: Path) -> None:
    from i2i.runtime.cli import main

    model = make_model(tmp_path / "m.onnx", kind="frame", dtype="uint8", multiple=16)
    stats, video = tmp_path / "stats.json", tmp_path / "out.avi"
    args = ["--source", "pattern:64x96@0", "--max-frames", "5", "--sink", video, "--stats", stats]
    result = invoke(main, [model, *args, "--stabilize", "0.5", "--no-progress", "--backend", "ort"])
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
    summary = json.loads(stats.read_text())
    assert summary["stages"]["stabilize"]["count"] == 5 and summary["info"]["stabilize"] == 0.5
    refused = invoke(main, [model, "--source", "pattern:64x96@0", "--stabilize", "1"])
    assert refused.exit_code == 2 and "--stabilize" in refused.output
