"""A working size for inference (i2i-run --infer-size, i2i.load(infer_size=...)): frames shrunk for the
model, outputs brought back to the frame's size in their own 'upsample' stage."""

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
from i2i.runtime.card import ModelCard
from i2i.runtime.pipeline import run_pipeline
from i2i.runtime.working_size import WorkingSize, guided_upsample, working_size_for


def _edges(h: int, w: int) -> np.ndarray:
    """A gray-on-BGR frame of sharp-edged blocks (what bilinear enlargement blurs)."""
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1), dtype=np.uint8)
    gray = np.kron(blocks, np.ones((8, 8), np.uint8))[:h, :w]
    return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize(
    ("bound", "multiple", "frame", "expected"),
    [
        ((360, 640), 8, (720, 1280), (360, 640)),
        ((360, 640), 128, (720, 1280), (384, 640)),  # 360 rounds to the nearest multiple of 128
        ((360, 640), 8, (1280, 720), (360, 200)),  # portrait: within the bound, its own aspect
        ((360, 640), 8, (360, 640), None),  # fits: its own size
        ((360, 640), 8, (100, 2000), (32, 640)),  # a wide frame: its width sets the scale
        ((360, 640), 128, (40, 1280), (40, 640)),  # a side never grows past the frame's (20 -> 128 -> 40)
    ],
)
def test_target_sizes_round_to_the_model_multiple(
    bound: tuple[int, int], multiple: int, frame: tuple[int, int], expected: tuple[int, int] | None
) -> None:
    assert WorkingSize(bound, multiple).target(*frame) == expected


def test_fixed_size_models_and_bad_values_are_refused() -> None:
    fixed = ModelCard.from_dict({"static_size": [64, 64]}).io
    with pytest.raises(I2IError, match="fixed 64x64"):
        working_size_for(fixed, (32, 32))
    with pytest.raises(I2IError, match="unknown upsampler"):
        WorkingSize((32, 32), 8, "nearest")


def test_pipeline_upsamples_in_its_own_stage_to_the_frame_size() -> None:
    frames = [_edges(64, 96) for _ in range(3)]
    working = WorkingSize((32, 48), 8, "bilinear")
    sink = ListSink()
    stats = run_pipeline(ListSource(frames), FakeBackend(), sink, working_size=working)
    stages = stats.summary()["stages"]
    assert "upsample" in stages and stages["upsample"]["count"] == 3
    assert all(image.shape == (64, 96, 3) for image in sink.images)
    # The fake model inverts exactly, so the output is the inverted shrunk frame enlarged bilinearly.
    small = cv2.resize(frames[0], (48, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(sink.images[0], cv2.resize(255 - small, (96, 64), interpolation=cv2.INTER_LINEAR))


def test_no_upsample_stage_when_frames_fit() -> None:
    sink = ListSink()
    stats = run_pipeline(ListSource([_edges(32, 48)]), FakeBackend(), sink, working_size=WorkingSize((64, 96), 8))
    assert "upsample" not in stats.summary()["stages"]
    np.testing.assert_array_equal(sink.images[0], 255 - _edges(32, 48))


def test_pipeline_refuses_a_working_size_for_a_fixed_size_model() -> None:
    backend = FakeBackend({"static_size": [32, 32]})
    with pytest.raises(I2IError, match="--infer-size is for models that take any size"):
        run_pipeline(ListSource([_edges(64, 64)]), backend, ListSink(), working_size=WorkingSize((16, 16)))


def test_guided_upsampling_follows_the_frames_own_edges() -> None:
    """Where the output is a function of the input's luma (here 255 - luma), the guided filter
    recovers the full-resolution edges that bilinear enlargement blurs."""
    full = _edges(96, 128)
    small = cv2.resize(full, (64, 48), interpolation=cv2.INTER_AREA)
    truth = (255 - full).astype(np.float64)
    gray = cv2.cvtColor(full, cv2.COLOR_BGR2GRAY)
    guided = guided_upsample(255 - small, cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), gray)
    bilinear = cv2.resize(255 - small, (128, 96), interpolation=cv2.INTER_LINEAR)
    assert guided.shape == bilinear.shape == full.shape and guided.dtype == np.uint8
    guided_error = np.abs(guided - truth).mean()
    bilinear_error = np.abs(bilinear - truth).mean()
    assert guided_error < 0.5 * bilinear_error


def test_translator_infer_size_and_stream_timings() -> None:
    working = WorkingSize((32, 48), 8, "guided")
    translator = Translator(FakeBackend(), working_size=working)
    frame = _edges(64, 96)
    out = translator(frame)
    assert out.shape == frame.shape
    assert (
        np.abs(out.astype(int) - (255 - frame)).mean()
        < 0.5
        * np.abs(
            cv2.resize(255 - cv2.resize(frame, (48, 32), interpolation=cv2.INTER_AREA), (96, 64)).astype(int)
            - (255 - frame)
        ).mean()
    )
    gray = translator(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))  # gray frames are converted first
    assert gray.shape == frame.shape


def test_cli_infer_size_writes_frames_at_their_size_with_the_stage(tmp_path: Path) -> None:
    from i2i.runtime.cli import main

    model = make_model(tmp_path / "m.onnx", kind="frame", dtype="uint8", multiple=16)
    stats = tmp_path / "stats.json"
    args = ["--source", "pattern:96x128@0", "--max-frames", "3", "--sink", tmp_path / "out", "--stats", stats]
    result = invoke(main, [model, *args, "--infer-size", "48x64", "--no-progress", "--backend", "ort"])
    assert result.exit_code == 0, result.output
    assert "infer size: about 48x64" in result.output
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 3 and cv2.imread(str(pngs[0])).shape == (96, 128, 3)
    summary = json.loads(stats.read_text())
    assert summary["stages"]["upsample"]["count"] == 3 and summary["info"]["infer_size"] == "48x64"


def test_cli_infer_size_written_width_first_is_refused(tmp_path: Path) -> None:
    from i2i.runtime.cli import main

    model = make_model(tmp_path / "m.onnx", kind="frame", dtype="uint8", multiple=16)
    result = invoke(main, [model, "--source", "pattern:96x128@0", "--infer-size", "640x360"])
    assert result.exit_code == 2 and "did you mean 360x640?" in result.output
    assert not list(tmp_path.glob("*.png"))
