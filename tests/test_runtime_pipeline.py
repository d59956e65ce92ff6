"""The streaming pipeline: frame codecs for every card kind, modes, batching, refine, sources, Ctrl-C.

Most tests use fake backends (exact 'invert' models: output = 255 - input pixels), so they check
ordering, drops and geometry exactly and run in milliseconds; the Ctrl-C test runs the real
``i2i-run`` on the tiny trained model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import invoke
from test_backends import make_model

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend, TensorSpec
from i2i.runtime.card import ModelCard, ModelIO
from i2i.runtime.frames import FrameCodec
from i2i.runtime.live import LiveDisplay, live_supported, status_line
from i2i.runtime.pipeline import run_pipeline
from i2i.runtime.sinks import FolderSink, NullSink, Sink, VideoSink, draw_overlay, open_sink, side_by_side
from i2i.runtime.sources import PatternSource, Source, StreamSource, VideoSource, open_source
from i2i.runtime.stats import StageStats

RNG = np.random.default_rng(0)


# --- helpers ------------------------------------------------------------------------------------


def _io(card: dict[str, Any]) -> ModelIO:
    return ModelCard.from_dict(card).io


class FakeBackend(Backend):
    """An exact invert model for any card; records batch sizes; optional delay (a slow model)."""

    name = "fake"

    def __init__(self, card: dict[str, Any] | None = None, delay: float = 0.0, batch: int | None = None) -> None:
        model_card = ModelCard.from_dict(card or {"size_multiple": 8})
        io = model_card.io
        h, w = io.static_size or ("H", "W")
        spec = TensorSpec("x", io.batch_shape(batch or "N", h, w), io.dtype)
        super().__init__(Path("fake.onnx"), model_card, [spec], [spec], "cpu", "fp32")
        self.delay = delay
        self.batches: list[tuple[int, ...]] = []

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, "fake"

    @classmethod
    def open(cls, path: Any, device: str = "cpu", precision: str = "auto", **opts: Any) -> Backend:
        return cls()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch.shape)
        if self.delay:
            time.sleep(self.delay)
        return 255 - batch if self.io.kind == "frame" else -batch


class ListSource(Source):
    """In-memory frames named by their index (any pixel format: the base class normalises)."""

    def __init__(self, images: list[np.ndarray]) -> None:
        super().__init__()
        self.name, self.count = "list", len(images)
        self._images = list(images)
        self._i = 0

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        if self._i >= len(self._images):
            return None
        self._i += 1
        return self._images[self._i - 1], str(self._i - 1)


class ListSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[np.ndarray] = []
        self.names: list[str | None] = []

    def _write(self, image: np.ndarray, name: str | None) -> None:
        self.images.append(image)
        self.names.append(name)


def frame(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    return image[..., :3] if image.shape[2] == 4 else image


# --- frame codec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        {"size_multiple": 8},
        {"size_multiple": 8, "io": {"dtype": "float16"}},
        {"size_multiple": 8, "io": {"kind": "frame"}},
    ],
    ids=["tensor-fp32", "tensor-fp16", "frame"],
)
@pytest.mark.parametrize("size", [(1, 1), (17, 33), (48, 64)])
def test_codec_round_trip_exact_through_invert(card: dict[str, Any], size: tuple[int, int]) -> None:
    io = _io(card)
    codec = FrameCodec(io)
    frames = [frame(*size) for _ in range(2)]
    batch, geometry = codec.encode(frames)
    assert batch.dtype == np.dtype(io.dtype) and batch.flags.c_contiguous
    h, w = io.hw(batch.shape)
    assert h % 8 == 0 and w % 8 == 0 and not geometry.resized
    if io.kind == "frame":
        assert batch.shape == (2, h, w, 3)
        np.testing.assert_array_equal(batch[0, : size[0], : size[1]], frames[0])  # no host conversion
    out = codec.decode(FakeBackend(card)(batch), geometry)
    for source, result in zip(frames, out):
        assert result.shape == (*size, 3) and result.dtype == np.uint8 and result.flags.c_contiguous
        np.testing.assert_array_equal(result, 255 - source)


def test_codec_resizes_for_static_models() -> None:
    for kind in ("tensor", "frame"):
        card = {"size_multiple": 8, "static_size": [32, 48], "io": {"kind": kind}}
        codec = FrameCodec(_io(card))
        smooth = cv2.resize(frame(6, 8), (160, 120), interpolation=cv2.INTER_CUBIC)
        batch, geometry = codec.encode([smooth])
        assert geometry.resized and geometry.model_size == (32, 48) and codec.io.hw(batch.shape) == (32, 48)
        (out,) = codec.decode(FakeBackend(card)(batch), geometry)
        assert out.shape == (120, 160, 3)
        assert np.abs(out.astype(int) - (255 - smooth.astype(int))).mean() < 6  # resampled, same picture
        exact, geometry = codec.encode([frame(32, 48)])
        assert not geometry.resized  # the model's own size is not resampled


def test_codec_rejects_bad_model_output() -> None:
    codec = FrameCodec(_io({"io": {"kind": "frame"}}))
    batch, geometry = codec.encode([frame(8, 8)])
    with pytest.raises(I2IError, match=r"expected uint8 \(N, H, W, 3\) BGR"):
        codec.decode(batch.astype(np.float32), geometry)


# --- pipeline: pixel formats, sizes, modes, batching --------------------------------------------


def test_pipeline_handles_gray_bgra_and_size_changes_in_order() -> None:
    gray = RNG.integers(0, 256, (21, 30), dtype=np.uint8)
    bgra = np.dstack([frame(21, 30), np.full((21, 30), 9, np.uint8)])
    images = [frame(21, 30), gray, bgra, frame(40, 8), gray[..., None], frame(21, 30)]
    for card in ({"size_multiple": 16}, {"size_multiple": 16, "io": {"kind": "frame"}}):
        sink = ListSink()
        stats = run_pipeline(ListSource(images), FakeBackend(card), sink, batch_size=3)
        assert sink.names == [str(i) for i in range(len(images))]
        for image, out in zip(images, sink.images):
            np.testing.assert_array_equal(out, 255 - bgr(image))
        assert stats.frames == len(images) and stats.dropped == 0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_every_frame_mode_keeps_every_frame_in_order(tmp_path: Path, batch_size: int) -> None:
    """A real video file in, a real video file out: frame k of the output is frame k, inverted."""
    clip = tmp_path / "clip.avi"
    levels = [(7 * k) % 200 + 20 for k in range(23)]
    with VideoSink(clip, fps=25) as writer:
        for level in levels:
            writer.write(np.full((40, 56, 3), level, np.uint8))
    backend = FakeBackend()
    with VideoSource(str(clip)) as source, VideoSink(tmp_path / "out.avi", fps=25) as sink:
        stats = run_pipeline(source, backend, sink, batch_size=batch_size, mode="every-frame")
    assert stats.frames == len(levels) and stats.dropped == 0
    assert [shape[0] for shape in backend.batches] == [batch_size] * (23 // batch_size) + (
        [23 % batch_size] if 23 % batch_size else []
    )
    with VideoSource(str(tmp_path / "out.avi")) as out:
        got = [int(round(f.image.mean())) for f in out]
    assert len(got) == len(levels)
    assert all(abs(g - (255 - level)) <= 3 for g, level in zip(got, levels)), (got, levels)


def test_realtime_mode_with_a_slow_backend_drops_and_counts() -> None:
    images = [frame(16, 16) for _ in range(60)]
    source = ListSource(images)
    sink = ListSink()
    stats = run_pipeline(source, FakeBackend(delay=0.02), sink, mode="realtime")
    summary = stats.summary()
    assert summary["dropped"] > 0
    assert summary["frames"] + summary["dropped"] == len(images)  # every frame: shown or counted as dropped
    indices = [int(n) for n in sink.names if n is not None]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)  # newest first, never reordered
    for name, out in zip(sink.names, sink.images):
        np.testing.assert_array_equal(out, 255 - images[int(name or 0)])


def test_static_batch_models_get_padded_last_batches() -> None:
    backend = FakeBackend(batch=2)
    images = [frame(8, 8) for _ in range(5)]
    sink = ListSink()
    run_pipeline(ListSource(images), backend, sink, batch_size=2)
    assert [shape[0] for shape in backend.batches] == [2, 2, 2]
    assert sink.names == ["0", "1", "2", "3", "4"]
    np.testing.assert_array_equal(sink.images[4], 255 - images[4])
    with pytest.raises(I2IError, match="fixed batch of 2: use --batch 2 and --mode every-frame"):
        run_pipeline(ListSource(images), backend, NullSink(), mode="realtime")


def test_pipeline_option_errors() -> None:
    with pytest.raises(I2IError, match="use --batch 1"):
        run_pipeline(ListSource([frame(8, 8)]), FakeBackend(), NullSink(), mode="realtime", batch_size=2)
    with pytest.raises(I2IError, match="unknown mode"):
        run_pipeline(ListSource([frame(8, 8)]), FakeBackend(), NullSink(), mode="fast")


def test_pipeline_stop_event_and_max_frames() -> None:
    sink = ListSink()
    stats = run_pipeline(PatternSource(64, 48, fps=0), FakeBackend(), sink, max_frames=7)
    assert stats.frames == 7 and len(sink.images) == 7 and not stats.interrupted
    stop = threading.Event()
    stop.set()
    stats = run_pipeline(PatternSource(64, 48, fps=0), FakeBackend(), NullSink(), stop=stop)
    assert stats.interrupted


def test_source_errors_reach_the_caller() -> None:
    class Broken(ListSource):
        def _read(self) -> tuple[np.ndarray, str | None] | None:
            raise I2IError("camera unplugged")

    with pytest.raises(I2IError, match="camera unplugged"):
        run_pipeline(Broken([]), FakeBackend(), NullSink())


# --- refine stage -------------------------------------------------------------------------------


def test_refine_is_its_own_stage_between_infer_and_postprocess() -> None:
    seen: list[tuple[tuple[int, ...], np.dtype[Any]]] = []

    def refiner(batch: np.ndarray) -> np.ndarray:
        seen.append((batch.shape, batch.dtype))
        return np.zeros_like(batch)  # 0 in [-1, 1] is mid-grey

    card = {"size_multiple": 8, "io": {"dtype": "float16"}}
    sink = ListSink()
    stats = run_pipeline(ListSource([frame(10, 12)] * 2), FakeBackend(card), sink, refiner=refiner, batch_size=2)
    assert seen == [((2, 3, 16, 16), np.dtype(np.float32))]  # float32 NCHW whatever the model's dtype
    assert all((image == 128).all() for image in sink.images)
    stages = list(stats.summary()["stages"])
    assert stages.index("infer") < stages.index("refine") < stages.index("postprocess")
    with pytest.raises(I2IError, match="bake it in at export instead"):
        run_pipeline(ListSource([frame(8, 8)]), FakeBackend({"io": {"kind": "frame"}}), NullSink(), refiner=refiner)
    with pytest.raises(I2IError, match="refiner returned shape"):
        run_pipeline(ListSource([frame(8, 8)]), FakeBackend(), NullSink(), refiner=lambda b: b[:, :1])


def test_before_after_view_shows_the_unrefined_output_left_of_the_refined_one() -> None:
    source = frame(10, 12)
    sink = ListSink().configure(view="before-after")
    run_pipeline(ListSource([source]), FakeBackend(), sink, refiner=lambda batch: np.zeros_like(batch))
    (image,) = sink.images
    assert image.shape == (10, 24, 3)
    np.testing.assert_array_equal(image[:, :12], 255 - source)  # the model (invert) alone
    assert (image[:, 12:] == 128).all()  # after the refiner (mid-grey)
    # Without a refine stage there is nothing to compare: the output alone.
    plain = ListSink().configure(view="before-after")
    run_pipeline(ListSource([source]), FakeBackend(), plain)
    assert plain.images[0].shape == (10, 12, 3)


def test_cli_refine_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from i2i.runtime.cli import main

    model = make_model(tmp_path / "m.onnx")
    args = [model, "--source", "pattern:32x24@0", "--max-frames", "3", "--backend", "ort", "--no-progress"]
    result = invoke(main, [*args, "--view", "before-after"])
    assert result.exit_code == 1 and "--view before-after" in result.output and "give --refine" in result.output

    opened: list[tuple[Path, str]] = []

    def open_refiner(path: Path, device: str = "auto") -> Any:
        opened.append((Path(path), device))
        return lambda batch: batch * 0.0

    monkeypatch.setitem(sys.modules, "i2i.runtime.spectral", types.SimpleNamespace(open_refiner=open_refiner))
    stats = tmp_path / "stats.json"
    result = invoke(main, [*args, "--refine", tmp_path / "p.npz", "--stats", stats, "--sink", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    assert opened == [(tmp_path / "p.npz", "cpu")] and "refine" in json.loads(stats.read_text())["stages"]
    assert all((cv2.imread(str(p)) == 128).all() for p in (tmp_path / "out").glob("*.png"))
    frame_model = make_model(tmp_path / "f.onnx", kind="frame", dtype="uint8")
    result = invoke(main, [frame_model, *args[1:], "--refine", tmp_path / "p.npz"])
    assert result.exit_code == 1 and "bake the refinement in at export instead" in result.output


# --- sources --------------------------------------------------------------------------------------


def test_pattern_source() -> None:
    source = open_source("pattern:96x64@0")  # HxW, as every size in i2i
    assert isinstance(source, PatternSource) and not source.live and source.fps is None
    assert source.name == "pattern:96x64@0"
    frames = [f for _, f in zip(range(3), source)]
    assert [f.index for f in frames] == [0, 1, 2] and frames[0].image.shape == (96, 64, 3)
    assert not np.array_equal(frames[0].image, frames[1].image)  # it moves
    paced = open_source("pattern:")
    assert isinstance(paced, PatternSource) and paced.live and paced.fps == 30
    assert (paced.height, paced.width) == (480, 640) and paced.name == "pattern:480x640@30"
    # A landscape mode written width first (the old pattern:WxH) is refused with the value it meant.
    for old, meant in [("pattern:640x480@30", "pattern:480x640@30"), ("pattern:1280x720", "pattern:720x1280")]:
        with pytest.raises(I2IError, match=f"pattern sizes are HxW .*did you mean {meant}\\?"):
            open_source(old)
    assert next(iter(open_source("pattern:480x640@0"))).image.shape == (480, 640, 3)
    gray = next(iter(open_source("pattern:32x32@0:gray")))
    assert gray.image.shape == (32, 32, 3) and (gray.image[..., 0] == gray.image[..., 2]).all()
    assert next(iter(open_source("pattern:32x32@0:bgra"))).image.shape == (32, 32, 3)
    for bad in ("pattern:big", "pattern:8x8@0"):
        with pytest.raises(I2IError, match="pattern"):
            open_source(bad)


def test_camera_options_only_for_cameras() -> None:
    with pytest.raises(I2IError, match="apply to camera sources"):
        open_source("pattern:", camera_size=(640, 480))
    with pytest.raises(I2IError, match="cannot open camera 97"):
        open_source("97", camera_size=(640, 480), camera_fps=30)


class _DroppingMjpeg(BaseHTTPRequestHandler):
    """Serves 5 MJPEG frames per connection, then hangs up: a stream that keeps dropping."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=fr")
        self.end_headers()
        server: Any = self.server
        for _ in range(5):
            ok, data = cv2.imencode(".jpg", np.full((32, 48, 3), (server.sent * 8) % 256, np.uint8))
            server.sent += 1
            header = f"--fr\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            self.wfile.write(header + data.tobytes() + b"\r\n")


def test_stream_source_reconnects_with_backoff(capsys: pytest.CaptureFixture[str]) -> None:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _DroppingMjpeg)
    server.sent = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    source = open_source(url, reconnect=2)
    assert isinstance(source, StreamSource) and source.live
    source.backoff = 0.02
    stats = StageStats()
    source.bind_stats(stats)
    levels = []
    for f in source:
        levels.append(int(round(f.image.mean())))
        if len(levels) == 12:
            break
    assert levels == [8 * k for k in range(12)]  # in order across two reconnects
    assert source.reconnects >= 2 and stats.counters["reconnects"] == source.reconnects
    server.shutdown()
    server.server_close()
    rest = list(source)  # the server is gone: retries run out, the stream ends (no exception)
    assert len(rest) <= 5
    err = capsys.readouterr().err
    assert "reconnecting in" in err and "gone after 2 reconnect attempts" in err
    source.close()


# --- sinks: side-by-side and overlay ------------------------------------------------------------------


def test_side_by_side_and_overlay(tmp_path: Path) -> None:
    out, src = frame(40, 30), frame(20, 10)
    both = side_by_side(src, out)
    assert both.shape == (40, 30 + 20, 3)  # the input is scaled to the output's height
    np.testing.assert_array_equal(both[:, 20:], out)
    drawn = draw_overlay(out, "12.3 FPS")
    assert not np.array_equal(drawn[:10], out[:10]) and np.array_equal(drawn[-5:], out[-5:])
    stats = StageStats()
    stats.count_frame()
    sink = open_sink(str(tmp_path / "frames"), view="side-by-side", overlay=True)
    sink.bind_stats(stats)
    with sink:
        sink.write(out, "a", source=out)
    written = cv2.imread(str(tmp_path / "frames" / "a.png"))
    assert written.shape == (40, 60, 3) and not np.array_equal(written[:5, :5], out[:5, :5])
    with pytest.raises(I2IError, match="unknown view"):
        NullSink().configure(view="top-bottom")
    assert isinstance(sink, FolderSink) and not FolderSink(tmp_path / "x").overlay  # files: off by default


# --- stats and the live display ------------------------------------------------------------------


def test_snapshot_and_live_display_fallback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    stats = StageStats()
    for _ in range(5):
        stats.add("e2e", 0.040)
        stats.count_frame()
    stats.count_drop(2)
    snap = stats.snapshot()
    assert snap["frames"] == 5 and snap["dropped"] == 2 and snap["e2e_ms"] == pytest.approx(40.0)
    assert "frames 5/10" in status_line(stats, 10) and "dropped 2" in status_line(stats, 10)
    assert not live_supported(io.StringIO())
    monkeypatch.setitem(sys.modules, "rich", None)  # rich is optional: a plain status line instead
    monkeypatch.setattr("i2i.runtime.live.REFRESH_S", 0.01)
    with LiveDisplay(stats, 10) as display:
        time.sleep(0.1)
    assert display._live is None and "\rframes 5/10" in capsys.readouterr().err


def test_rich_live_table_when_available() -> None:
    rich_console = pytest.importorskip("rich.console")
    import io

    stats = StageStats()
    stats.add("infer", 0.010)
    stats.add("e2e", 0.030)
    buffer = io.StringIO()
    rich_console.Console(file=buffer, width=100).print(LiveDisplay(stats).table())
    assert "infer" in buffer.getvalue() and "e2e (capture→sink)" in buffer.getvalue()


# --- the command line -----------------------------------------------------------------------------


def test_cli_pattern_to_folder_with_stats(tmp_path: Path) -> None:
    from i2i.runtime.cli import main

    model = make_model(tmp_path / "m.onnx", kind="frame", dtype="uint8", multiple=16)
    stats = tmp_path / "stats.json"
    result = invoke(
        main,
        [
            model,
            "--source",
            "pattern:30x50@0:bgra",
            "--max-frames",
            "4",
            "--sink",
            tmp_path / "out",
            "--stats",
            stats,
            "--no-progress",
            "--backend",
            "ort",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "backend: ort CPUExecutionProvider" in result.output
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 4 and cv2.imread(str(pngs[0])).shape == (30, 50, 3)
    reference = next(iter(PatternSource(50, 30, fps=0, pixel_format="bgra"))).image
    np.testing.assert_array_equal(cv2.imread(str(pngs[0])), 255 - reference)
    summary = json.loads(stats.read_text())
    assert summary["frames"] == 4 and summary["info"]["mode"] == "every-frame"
    assert {"read", "preprocess", "infer", "postprocess", "write", "e2e"} <= set(summary["stages"])
    assert all({"p50_ms", "p95_ms", "p99_ms"} <= set(s) for s in summary["stages"].values())


def test_cli_errors(tmp_path: Path) -> None:
    from i2i.runtime.cli import main

    model = make_model(tmp_path / "m.onnx")
    result = invoke(main, [model, "--source", "pattern:", "--camera-size", "480x640"])
    assert result.exit_code == 1 and "apply to camera sources" in result.output
    result = invoke(main, [model, "--source", "pattern:", "--camera-size", "big"])
    assert result.exit_code == 2 and "HxW, e.g. 720x1280" in result.output
    # Sizes are HxW everywhere: a camera mode written width first is refused with the value it meant.
    result = invoke(main, [model, "--source", "0", "--camera-size", "1280x720"])
    assert result.exit_code == 2 and "--camera-size is HxW (height first): did you mean 720x1280?" in result.output
    result = invoke(main, [model, "--source", "0", "--camera-size", "720"])
    assert result.exit_code == 2 and "HxW" in result.output  # a camera size is never a square shorthand
    result = invoke(main, [model, "--source", "pattern:", "-O", "threads"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
    result = invoke(main, [model, "--source", "pattern:@0", "--backend", "ort", "-O", "warp=9", "--max-frames", "1"])
    assert result.exit_code == 1 and "has no option warp" in result.output


def _i2i_run() -> str:
    return str(Path(sys.executable).parent / "i2i-run")


def test_ctrl_c_leaves_a_playable_video_with_every_processed_frame(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.avi"
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [
            _i2i_run(),
            str(tiny_onnx),
            "--source",
            "pattern:120x160@30",
            "--mode",
            "every-frame",
            "--sink",
            str(out),
            "--stats",
            str(stats_path),
            "--no-progress",
            "--backend",
            "ort",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / ".out.partial.avi"
    assert process.stderr is not None
    first = process.stderr.readline()  # printed once the model is loaded, just before streaming starts
    assert first.startswith("backend:"), first + process.communicate()[1]
    time.sleep(2.0)  # a pattern paced at 30 FPS: some tens of frames
    assert process.poll() is None and partial.exists()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    written = int(stderr.split("Interrupted: ")[1].split()[0])
    assert written > 0 and f"frames written to {out}" in stderr
    assert out.exists() and not partial.exists()
    with VideoSource(str(out)) as video:
        frames = [f.image for f in video]
    assert len(frames) == written  # playable, and nothing processed was lost
    assert frames[0].shape == (120, 160, 3)
    summary = json.loads(stats_path.read_text())
    assert summary["interrupted"] is True and summary["frames"] == written
    assert os.path.getsize(out) > 0


def test_window_sink_shows_side_by_side_with_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    """No display here: OpenCV's GUI calls are replaced, the composition is real."""
    from i2i.runtime import sinks

    shown: list[np.ndarray] = []
    monkeypatch.setattr(sinks, "_window_unavailable_reason", lambda: None)
    monkeypatch.setattr(sinks.cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(sinks.cv2, "imshow", lambda title, image: shown.append(image))
    monkeypatch.setattr(sinks.cv2, "waitKey", lambda delay: -1)
    monkeypatch.setattr(sinks.cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(sinks.cv2, "destroyWindow", lambda *a: None)
    images = [frame(60, 80) for _ in range(3)]
    sink = open_sink("window", view="side-by-side")
    assert sink.overlay  # on by default for a window
    run_pipeline(ListSource(images), FakeBackend(), sink)
    sink.close()
    assert len(shown) == 3 and shown[0].shape == (60, 160, 3)
    np.testing.assert_array_equal(shown[2][-20:, 80:], 255 - images[2][-20:])  # output half, below the overlay
    assert not np.array_equal(shown[2][:8, :40], images[2][:8, :40])  # FPS/latency text drawn top-left
