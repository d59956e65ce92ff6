"""A file in ``--mode realtime`` stands in for a camera: paced at its frame rate, frames dropped only
when translation is slower, and a video output as long as the input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from conftest import invoke
from test_backends import make_model
from test_runtime_pipeline import FakeBackend

from i2i.runtime.cli import main
from i2i.runtime.pipeline import REPEATED_COUNTER, run_pipeline
from i2i.runtime.sinks import VideoSink
from i2i.runtime.sources import VideoSource

FPS = 20.0
FRAMES = 20


def _clip(path: Path, frames: int = FRAMES, fps: float = FPS) -> Path:
    """A short synthetic clip at a known rate, written as a camera would record it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    y, x = np.mgrid[0:48, 0:64]
    for i in range(frames):
        writer.write(np.stack([(x * 4 + 8 * i) % 256, y * 5, np.full_like(x, 128)], axis=-1).astype(np.uint8))
    writer.release()
    return path


def _frames_and_fps(path: Path) -> tuple[int, float]:
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count, fps


def test_realtime_file_with_a_slow_model_keeps_the_inputs_duration(tmp_path: Path) -> None:
    source = VideoSource(str(_clip(tmp_path / "in.avi")))
    # 0.12 s a frame against a 0.05 s frame period: most frames must drop, as from a camera.
    with source, VideoSink(tmp_path / "rt.avi", fps=source.fps or 0) as sink:
        stats = run_pipeline(source, FakeBackend(delay=0.12), sink, mode="realtime")
    count, fps = _frames_and_fps(tmp_path / "rt.avi")
    assert fps == FPS
    assert count == FRAMES  # same duration as the input: dropped frames' slots hold the output before them
    assert stats.dropped > 0 and stats.frames + stats.dropped == FRAMES
    assert stats.counters[REPEATED_COUNTER] == FRAMES - stats.frames
    # Paced at the file's rate: the last frame is released (FRAMES - 1) periods after the first.
    assert stats.wall_s >= (FRAMES - 1) / FPS


def test_realtime_file_with_a_fast_model_is_paced_not_drained(tmp_path: Path) -> None:
    """The file is read at its frame rate: a model faster than the source translates every frame
    (read as fast as it decodes, nearly all of them used to be dropped)."""
    clip = _clip(tmp_path / "in.avi", frames=10)
    model = make_model(tmp_path / "invert.onnx")
    result = invoke(
        main,
        [model, "-s", clip, "-o", tmp_path / "rt.avi", "--mode", "realtime", "--backend", "ort", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    count, fps = _frames_and_fps(tmp_path / "rt.avi")
    assert (count, fps) == (10, FPS)


def test_the_end_of_a_realtime_source_does_not_drop_its_last_frame() -> None:
    from test_runtime_pipeline import ListSink, ListSource, frame

    sink = ListSink()
    # A slow model: the last frame is still waiting when the source ends, and must be translated.
    run_pipeline(ListSource([frame(8, 8) for _ in range(5)]), FakeBackend(delay=0.05), sink, mode="realtime")
    assert sink.names[-1] == "4"
