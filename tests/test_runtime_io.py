"""Runtime I/O: frame conversions, sources, sinks and stage statistics (no model involved)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from i2i.errors import I2IError
from i2i.runtime import sinks, sources
from i2i.runtime.frames import NonFiniteOutputError, postprocess, preprocess, to_bgr_uint8
from i2i.runtime.sinks import FolderSink, NullSink, VideoSink, WindowSink, open_sink
from i2i.runtime.sources import CameraSource, FolderSource, VideoSource, open_source
from i2i.runtime.stats import StageStats

RNG = np.random.default_rng(0)


def random_frame(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def smooth_frame(h: int = 48, w: int = 64, shift: int = 0) -> np.ndarray:
    """A gradient frame: lossy codecs keep it recognisable, unlike noise."""
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([(x * 4 + shift) % 256, (y * 5) % 256, np.full_like(x, 128)], axis=-1)
    return frame.astype(np.uint8)


def read_all(path: Path) -> list[np.ndarray]:
    with VideoSource(str(path)) as source:
        return [frame.image for frame in source]


def write_video(path: Path, n: int, fps: float = 25.0) -> None:
    with VideoSink(path, fps=fps) as sink:
        for i in range(n):
            sink.write(smooth_frame(shift=i))


def write_png(path: Path, image: np.ndarray) -> None:
    assert cv2.imwrite(str(path), image)


# --- frames -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (240, 320)])
@pytest.mark.parametrize("multiple", [1, 4, 128])
def test_preprocess_postprocess_round_trip(size: tuple[int, int], multiple: int) -> None:
    frames = [random_frame(*size) for _ in range(2)]
    batch, original = preprocess(frames, multiple)
    h, w = size
    assert original == (h, w)
    expected_h, expected_w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    assert batch.shape == (2, 3, expected_h, expected_w)
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    out = postprocess(batch, original)
    assert len(out) == 2
    for frame, restored in zip(frames, out):
        assert restored.shape == (h, w, 3) and restored.dtype == np.uint8 and restored.flags.c_contiguous
        np.testing.assert_array_equal(restored, frame)


def test_preprocess_scales_to_minus_one_one_in_rgb_order() -> None:
    blue = np.zeros((5, 7, 3), np.uint8)
    blue[..., 0] = 255  # BGR: pure blue
    batch, _ = preprocess([blue], 1)
    np.testing.assert_array_equal(batch[0, 2], 1.0)  # RGB channel 2 is blue
    np.testing.assert_array_equal(batch[0, :2], -1.0)
    gray = np.full((2, 2, 3), 51, np.uint8)
    np.testing.assert_allclose(preprocess([gray], 1)[0], 51 / 127.5 - 1, atol=1e-6)


def test_preprocess_pads_bottom_right_with_reflect_101() -> None:
    frame = random_frame(240, 320)
    batch, _ = preprocess([frame], 128)  # pads 16 rows, 64 columns: both fit one mirror
    rgb = frame[..., ::-1].astype(np.float32) / 127.5 - 1
    expected = np.pad(rgb, ((0, 16), (0, 64), (0, 0)), mode="reflect")  # numpy's reflect == reflect-101
    np.testing.assert_allclose(batch[0].transpose(1, 2, 0), expected, atol=1e-6)


def test_preprocess_falls_back_to_edge_padding_when_too_small() -> None:
    one = np.array([[[10, 20, 30]]], np.uint8)
    batch, _ = preprocess([one], 4)
    assert batch.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(batch[0, :, 3, 3], np.array([30, 20, 10]) / 127.5 - 1, atol=1e-6)
    frame = random_frame(17, 3)  # rows: pad 7 < 17 (mirror); columns: pad 5 >= 3 (edge)
    batch, _ = preprocess([frame], 8)
    rgb = frame[..., ::-1].astype(np.float32) / 127.5 - 1
    rows = np.pad(rgb, ((0, 7), (0, 0), (0, 0)), mode="reflect")
    expected = np.pad(rows, ((0, 0), (0, 5), (0, 0)), mode="edge")
    np.testing.assert_allclose(batch[0].transpose(1, 2, 0), expected, atol=1e-6)


def test_preprocess_rejects_mixed_sizes_and_wrong_dtype() -> None:
    with pytest.raises(I2IError, match="share a size.*frame 1 is 9x8"):
        preprocess([random_frame(8, 8), random_frame(8, 9)], 4)
    with pytest.raises(I2IError, match="expected HxWx3 uint8"):
        preprocess([np.zeros((8, 8, 3), np.float32)], 4)


def test_postprocess_rounds_clips_and_orders_bgr() -> None:
    batch = np.zeros((1, 3, 2, 2), np.float32)
    batch[0, 0] = 5.0  # red far above range -> 255
    batch[0, 1] = -3.0  # green far below -> 0
    batch[0, 2] = 0.5  # blue: 1.5 * 127.5 = 191.25 -> 191
    (frame,) = postprocess(batch, (1, 2))
    assert frame.shape == (1, 2, 3)
    np.testing.assert_array_equal(frame[0, 0], [191, 0, 255])


def test_postprocess_accepts_float16() -> None:
    frame = random_frame(6, 10)
    batch, size = preprocess([frame], 8)
    np.testing.assert_array_equal(postprocess(batch.astype(np.float16), size)[0], frame)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_postprocess_rejects_non_finite(bad: float) -> None:
    batch = np.zeros((2, 3, 4, 4), np.float32)
    batch[1, 0, 3, 3] = bad  # even in the region that would be cropped away
    batch[0, 2, 0, 0] = bad
    with pytest.raises(NonFiniteOutputError, match="2 non-finite values") as info:
        postprocess(batch, (2, 2))
    assert info.value.count == 2 and info.value.total == 96
    assert isinstance(info.value, I2IError)


def test_to_bgr_uint8_conversions() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for image in (gray, gray[..., None]):
        out = to_bgr_uint8(image)
        assert out.shape == (3, 4, 3)
        np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=-1))
    bgra = np.dstack([random_frame(3, 4), np.full((3, 4), 7, np.uint8)])
    np.testing.assert_array_equal(to_bgr_uint8(bgra), bgra[..., :3])
    wide = np.array([[[0, 128, 129], [257 * 100, 257 * 100 + 129, 65535]]], np.uint16)
    np.testing.assert_array_equal(to_bgr_uint8(wide), [[[0, 0, 1], [100, 101, 255]]])
    floats = np.array([[[0.0, 0.5, 1.0], [1.0 + 1e-6, -1e-6, 0.2]]], np.float32)  # float arithmetic's 1 + eps
    np.testing.assert_array_equal(to_bgr_uint8(floats), [[[0, 128, 255], [255, 0, 51]]])
    already = random_frame(3, 4)
    assert to_bgr_uint8(already) is already


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0, 128.0, 255.0], r"values in 0\.\.1; this one spans 0\.\.255; 0\.\.255 data\? pass it as uint8"),
        ([-0.5, 0.5, 1.0], r"spans -0\.5\.\.1$"),
        ([0.0, 1.01, 0.5], r"spans 0\.\.1\.0\d*$"),
        ([0.0, np.nan, 0.5], "holds 1 NaN/Inf values out of 3"),
        ([np.inf, -np.inf, 0.5], "holds 2 NaN/Inf values out of 3"),
    ],
)
def test_float_frames_out_of_0_1_or_non_finite_are_refused(values: list[float], message: str) -> None:
    """Clipping made 0..255 floats a white frame and NaN black: refused, in one line that says why."""
    for dtype in (np.float16, np.float32, np.float64):
        with pytest.raises(I2IError, match=message):
            to_bgr_uint8(np.array([[values]], dtype))


@pytest.mark.parametrize("shape", [(3, 4, 2), (3, 4, 5), (3,), (2, 3, 4, 3), (0, 4, 3)])
def test_to_bgr_uint8_rejects_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(I2IError, match="image"):
        to_bgr_uint8(np.zeros(shape, np.uint8))


# --- video sink and source ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_video_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "nested" / f"clip{suffix}"
    write_video(path, n=7, fps=25.0)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no partial file left
    with VideoSource(str(path)) as source:
        assert source.count == 7
        assert source.fps == pytest.approx(25.0)
        frames = list(source)
    assert [f.index for f in frames] == list(range(7))
    assert all(f.name is None for f in frames)
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].t_capture <= frames[-1].t_capture
    # Lossy, but clearly the same picture (a wrong channel order or garbage would be far off).
    error = np.abs(frames[3].image.astype(int) - smooth_frame(shift=3)).mean()
    assert error < 8


def test_video_sink_without_frames_leaves_nothing(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "empty.mp4")
    sink.close()
    sink.close()  # harmless
    assert list(tmp_path.iterdir()) == []


def test_video_sink_writes_to_partial_file_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoSink(path) as sink:
        sink.write(smooth_frame())
        assert not path.exists()
        assert (tmp_path / ".out.partial.mp4").exists()
    assert path.exists() and not (tmp_path / ".out.partial.mp4").exists()
    assert sink.frames_written == 1 and sink.closed
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(smooth_frame())


def test_video_sink_size_mismatch(tmp_path: Path) -> None:
    with VideoSink(tmp_path / "a.avi") as sink:
        sink.write(smooth_frame(48, 64))
        with pytest.raises(I2IError, match="32x16 frame.*started at 64x48"):
            sink.write(smooth_frame(16, 32))
    assert len(read_all(tmp_path / "a.avi")) == 1


def test_video_sink_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(I2IError, match=r"clip\.webm.*\.mp4, \.avi, \.mkv"):
        VideoSink(tmp_path / "clip.webm")


def test_video_sink_odd_size_is_cropped_to_even(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_video_path = tmp_path / "odd.mp4"
    with VideoSink(write_video_path) as sink:
        for _ in range(2):
            sink.write(smooth_frame(17, 33))
    assert "stored as 32x16" in capsys.readouterr().err
    assert [f.shape for f in read_all(write_video_path)] == [(16, 32, 3)] * 2


def test_keyboard_interrupt_still_finalises_video(tmp_path: Path) -> None:
    path = tmp_path / "interrupted.mp4"
    with pytest.raises(KeyboardInterrupt), VideoSink(path) as sink:
        for i in range(4):
            sink.write(smooth_frame(shift=i))
        raise KeyboardInterrupt
    assert len(read_all(path)) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["interrupted.mp4"]


def test_video_source_errors_name_the_path(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 100)
    with pytest.raises(I2IError, match=f"cannot open video: {fake}.*not a video file"):
        VideoSource(str(fake))
    missing = tmp_path / "missing.mp4"
    with pytest.raises(I2IError, match=f"cannot open video: {missing}.*no such file"):
        VideoSource(str(missing))


def test_camera_source_error() -> None:
    with pytest.raises(I2IError, match="cannot open camera 97"):
        CameraSource(97)


# --- folder source and open_source --------------------------------------------------------------


def test_folder_source_reads_in_natural_order(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        write_png(tmp_path / f"f{i}.png", np.full((4, 6, 3), i, np.uint8))
    write_png(tmp_path / "g.JPG", np.zeros((4, 6, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    write_png(tmp_path / "sub" / "deep.png", np.zeros((4, 6, 3), np.uint8))  # not recursive
    with FolderSource(str(tmp_path)) as source:
        assert source.count == 4
        frames = list(source)
    assert [f.name for f in frames] == ["f1", "f2", "f10", "g"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [int(f.image[0, 0, 0]) for f in frames[:3]] == [1, 2, 10]


def test_folder_source_normalises_16_bit_and_gray(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", np.full((3, 5), 257 * 200, np.uint16))
    write_png(tmp_path / "b.png", np.full((3, 5), 9, np.uint8))
    images = [f.image for f in FolderSource(str(tmp_path))]
    assert all(image.shape == (3, 5, 3) and image.dtype == np.uint8 for image in images)
    assert images[0].max() == 200 and images[0].min() == 200
    assert images[1].max() == 9


def test_folder_source_skips_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_png(tmp_path / "a.png", random_frame(4, 4))
    (tmp_path / "b.png").write_bytes(b"not a png")
    write_png(tmp_path / "c.png", random_frame(4, 4))
    names = [f.name for f in FolderSource(str(tmp_path))]
    assert names == ["a", "c"]
    err = capsys.readouterr().err
    assert "warning: skipping" in err and "b.png" in err and "cannot decode" in err and err.count("\n") == 1


def test_folder_source_all_unreadable(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(I2IError, match=f"none of the 2 images in {tmp_path}"):
        FolderSource(str(tmp_path))


def test_folder_source_empty(tmp_path: Path) -> None:
    (tmp_path / "video.mp4").write_text("x")
    with pytest.raises(I2IError, match=f"no images in folder {tmp_path}.*\\.png.*\\.webp"):
        FolderSource(str(tmp_path))
    with pytest.raises(I2IError, match="no images in pattern"):
        FolderSource(str(tmp_path / "*.png"))


def test_open_source_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_png(tmp_path / "a.png", random_frame(4, 4))
    write_png(tmp_path / "b.png", random_frame(4, 4))
    write_video(tmp_path / "clip.avi", n=3)
    assert isinstance(open_source(str(tmp_path)), FolderSource)
    glob_source = open_source(str(tmp_path / "b*.png"))
    assert isinstance(glob_source, FolderSource) and glob_source.count == 1
    single = open_source(str(tmp_path / "a.png"))
    assert isinstance(single, FolderSource) and [f.name for f in single] == ["a"]
    video = open_source(str(tmp_path / "clip.avi"))
    assert isinstance(video, VideoSource) and video.count == 3
    video.close()
    with pytest.raises(I2IError, match=f"no such file or folder: {tmp_path / 'nope.mp4'}"):
        open_source(str(tmp_path / "nope.mp4"))

    opened: list[object] = []
    monkeypatch.setattr(
        sources,
        "CameraSource",
        lambda index, size=None, fps=None, max_pixels=0: opened.append(("camera", index, size, fps)),
    )
    monkeypatch.setattr(
        sources, "StreamSource", lambda spec, retries, max_pixels=0: opened.append(("stream", spec, retries))
    )
    open_source("2")
    open_source("0", camera_size=(720, 1280), camera_fps=30.0)
    open_source("rtsp://192.168.1.5:554/stream")
    open_source("https://example.com/v.mp4", reconnect=3)
    assert opened == [
        ("camera", 2, None, None),
        ("camera", 0, (720, 1280), 30.0),
        ("stream", "rtsp://192.168.1.5:554/stream", 10),
        ("stream", "https://example.com/v.mp4", 3),
    ]
    assert isinstance(open_source("pattern:64x48@0"), sources.PatternSource)


# --- other sinks --------------------------------------------------------------------------------


def test_folder_sink_names_files(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    images = [random_frame(5, 6) for _ in range(3)]
    with FolderSink(out) as sink:
        sink.write(images[0], name="first")
        sink.write(images[1])
        sink.write(images[2])
    assert sorted(p.name for p in out.iterdir()) == ["first.png", "frame_000001.png", "frame_000002.png"]
    np.testing.assert_array_equal(cv2.imread(str(out / "frame_000002.png")), images[2])  # lossless
    assert sink.frames_written == 3 and sink.path == str(out)


def test_folder_sink_refuses_a_name_twice_instead_of_overwriting(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    first = random_frame(5, 6)
    with FolderSink(out) as sink:
        sink.write(first, name="a")
        with pytest.raises(I2IError, match=r"two inputs are named 'a' .*would replace"):
            sink.write(random_frame(5, 6), name="a")
    np.testing.assert_array_equal(cv2.imread(str(out / "a.png")), first)  # the first output is kept


def test_inputs_sharing_a_stem_are_refused_before_a_folder_sink_is_written(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), random_frame(8, 8))
    cv2.imwrite(str(photos / "a.png"), random_frame(8, 8))
    cv2.imwrite(str(photos / "b.png"), random_frame(8, 8))
    with open_source(str(photos)) as source:
        inputs = source.input_files()
    with pytest.raises(I2IError, match=r"a\.(jpg|png) and .*a\.(jpg|png) share the file stem 'a'"):
        sinks.refuse_replacing_inputs(str(tmp_path / "out"), inputs)
    sinks.refuse_replacing_inputs(str(tmp_path / "out.mp4"), inputs)  # a video has no per-input names
    assert not (tmp_path / "out").exists()


def test_folder_sink_interrupted_mid_frame_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "frames"

    def interrupted(src: object, dst: object) -> None:  # Ctrl-C / SIGTERM between the write and the rename
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), FolderSink(out) as sink:
        sink.write(random_frame(5, 6))
        monkeypatch.setattr(sinks.os, "replace", interrupted)
        sink.write(random_frame(5, 6))
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png"]


def test_folder_sink_rejects_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(I2IError, match="taken: it exists and is not a folder"):
        FolderSink(tmp_path / "taken")


def test_null_sink_counts() -> None:
    with NullSink() as sink:
        for _ in range(5):
            sink.write(random_frame(2, 2))
    assert sink.frames_written == 5 and sink.path is None


def test_window_sink_without_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sinks.sys, "platform", "linux")
    with pytest.raises(I2IError, match=r"no display.*--sink out\.mp4"):
        WindowSink()


def test_window_sink_headless_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(sinks.cv2, "getBuildInformation", lambda: "  GUI:   NONE\n  Video I/O:\n")
    with pytest.raises(I2IError, match=r"no GUI support.*--sink out\.mp4"):
        WindowSink()


def test_open_sink_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_sink("null"), NullSink)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sinks.sys, "platform", "linux")
    with pytest.raises(I2IError, match="cannot open a window"):
        open_sink("window")
    video = open_sink(str(tmp_path / "o.mkv"), fps=12.0)
    assert isinstance(video, VideoSink) and video.fps == 12.0
    assert isinstance(open_sink(str(tmp_path / "o.mp4")), VideoSink)
    with pytest.raises(I2IError, match=r"\.mp4, \.avi"):
        open_sink(str(tmp_path / "o.webm"))
    with pytest.raises(I2IError, match="give a folder for image output"):
        open_sink(str(tmp_path / "o.png"))
    folder = open_sink(str(tmp_path / "frames"))
    assert isinstance(folder, FolderSink) and (tmp_path / "frames").is_dir()


# --- stats --------------------------------------------------------------------------------------


def test_stage_stats_percentiles() -> None:
    stats = StageStats()
    for ms in range(1, 101):
        stats.add("infer", ms / 1e3)
    stats.add("preprocess", 0.002)
    stats.count_frame(100)
    summary = stats.summary()
    assert list(summary["stages"]) == ["infer", "preprocess"]
    infer = summary["stages"]["infer"]
    assert infer["count"] == 100
    assert infer["mean_ms"] == pytest.approx(50.5)
    assert infer["p50_ms"] == pytest.approx(50.5)
    assert infer["p95_ms"] == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert infer["p99_ms"] == pytest.approx(99.01)
    assert infer["max_ms"] == pytest.approx(100.0)
    assert summary["frames"] == 100 and summary["fps"] == pytest.approx(100 / summary["wall_s"], rel=0.05)


def test_stage_stats_bounded_storage() -> None:
    stats = StageStats(max_samples=10)
    for ms in range(1, 1001):
        stats.add("infer", ms / 1e3)
    assert len(stats._stages["infer"].recent) == 10
    infer = stats.summary()["stages"]["infer"]
    assert infer["count"] == 1000
    assert infer["mean_ms"] == pytest.approx(500.5)  # whole run
    assert infer["max_ms"] == pytest.approx(1000.0)
    assert infer["p50_ms"] == pytest.approx(995.5)  # the last 10 samples: 991..1000


def test_stage_stats_timer_clock_and_outputs(tmp_path: Path) -> None:
    stats = StageStats()
    with pytest.raises(ValueError), stats.time("sink"):
        raise ValueError("boom")  # still recorded
    with stats.time("sink"):
        pass
    stats.count_frame()
    stats.count_drop(3)
    stats.stop()
    wall = stats.wall_s
    assert stats.wall_s == wall  # frozen after stop()
    summary = stats.summary()
    assert summary["stages"]["sink"]["count"] == 2 and summary["stages"]["sink"]["max_ms"] >= 0
    table = stats.format_table()
    assert table.splitlines()[0].split()[:7] == ["stage", "count", "mean", "p50", "p95", "p99", "max"]
    assert table.splitlines()[1].split()[:2] == ["sink", "2"]
    assert "frames 1" in table and "FPS" in table and "dropped 3" in table
    assert summary["dropped"] == 3
    stats.write_json(tmp_path / "out" / "stats.json")
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == summary


# --- the runtime stays torch-free ---------------------------------------------------------------


def test_runtime_io_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import i2i.runtime.frames, i2i.runtime.sources, i2i.runtime.sinks, i2i.runtime.stats\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
