"""Frame sources: video files, network streams, cameras, image folders, a synthetic test pattern.

Every source is an iterable of ``Frame`` and a context manager. The base class owns iteration
(indexing, capture timestamps, pixel-format normalisation); subclasses implement only
``_read``, which returns the next image or None at the end. Sources open and read their first
frame in the constructor, so a bad path fails before a model is loaded, not halfway through a
pipeline thread.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import click
import cv2
import numpy as np

from i2i._cli import debug_enabled
from i2i.common import IMAGE_EXTENSIONS, is_image
from i2i.errors import I2IError

from .frames import to_bgr_uint8
from .gallery import split_pair
from .images import DEFAULT_MAX_PIXELS, UnreadableImage, check_frame_size, read_image
from .redact import display_name
from .sizes import written_width_first

if TYPE_CHECKING:
    from typing import Self

    from .stats import StageStats

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = ("*", "?", "[")

# FFmpeg prints its own errors ("moov atom not found", "overread 8") straight to stderr, beside
# the one-line error or warning i2i gives for the same problem; it reads this level once, when
# OpenCV first opens a file with it. --debug (or a level the user set) keeps FFmpeg's lines.
if not debug_enabled():
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log while probing a device (its warnings repeat our error, 12 lines long)."""
    if debug_enabled():
        yield
        return
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


@dataclass
class Frame:
    """One captured frame; ``image`` is always HxWx3 uint8 BGR."""

    index: int
    image: np.ndarray
    name: str | None  # file stem for folder sources, None for video and cameras
    t_capture: float  # time.perf_counter() when the frame was read
    path: str = ""  # where it came from: the image file (folders), else the source's display name


class Source:
    """Base class: a single-pass iterable of Frame, closed by ``close()`` or ``with``.

    ``name`` is what may be shown or written (warnings, stats, viewers): a URL's credentials are
    never in it (see i2i.runtime.redact); ``display`` is the same, for callers that show it.
    """

    name: str = ""
    fps: float | None = None  # native frame rate, if the source knows it
    count: int | None = None  # number of frames, if known (for progress bars)
    live: bool = False  # frames arrive in real time (camera, stream): the default mode is realtime

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._closed = False
        self.stats: StageStats | None = None
        self.max_pixels = max_pixels  # the largest frame (H*W) it may decode; see i2i.runtime.images

    def bind_stats(self, stats: StageStats) -> None:
        """The pipeline hands over its stats, so events (stream reconnects) show up in them."""
        self.stats = stats

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        """Return (image, name) for the next frame, or None at the end of the stream."""
        raise NotImplementedError

    @property
    def display(self) -> str:
        """The source as it may be shown or written: no user, password or secret query value."""
        return self.name

    def input_files(self) -> list[Path]:
        """The local files this source reads (none for cameras, streams and patterns), so that no
        output is allowed to replace them."""
        return []

    def _close(self) -> None:
        """Release the underlying device or file."""

    def _frame_path(self) -> str:
        """Where the frame ``_read`` just returned came from (a folder source names its file)."""
        return self.name

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while not self._closed:
            item = self._read()
            t_capture = time.perf_counter()
            if item is None:
                return
            image, name = item
            if image.ndim >= 2:
                check_frame_size(image.shape[0], image.shape[1], self.max_pixels, f"frame {index} of {self.name}")
            yield Frame(index=index, image=to_bgr_uint8(image), name=name, t_capture=t_capture, path=self._frame_path())
            index += 1

    def close(self) -> None:
        """Release resources; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps}, count={self.count})"


class _CaptureSource(Source):
    """Shared logic for cv2.VideoCapture: the first frame is read eagerly to prove decoding works."""

    def __init__(self, capture: cv2.VideoCapture, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        super().__init__(max_pixels)
        self.name = name
        self._capture = capture
        self._pending: np.ndarray | None = None
        # The capture thread reads while the main thread may close: releasing a VideoCapture in
        # the middle of read() can crash FFmpeg, so both take this lock.
        self._lock = threading.Lock()

    def _read_first(self) -> bool:
        """Read one frame and keep it for the first ``_read``; False if the capture yields nothing.

        The size the container declares is checked first: a small file can declare frames that
        take gigabytes once decoded."""
        if not self._capture.isOpened():
            return False
        h = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        w = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        if h > 0 and w > 0 and h * w > self.max_pixels:
            self._capture.release()
            check_frame_size(h, w, self.max_pixels, f"video {self.name}: its container", "declares frames of")
        ok, image = self._capture.read()
        if not ok or image is None:
            return False
        self._pending = image
        return True

    def _native_fps(self) -> float | None:
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return float(fps) if fps > 0 else None

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image, None
        with self._lock:
            if self._closed:
                return None
            ok, image = self._capture.read()
        return (image, None) if ok and image is not None else None

    def _close(self) -> None:
        # A read stuck on a dead device must not hang shutdown: give up on a clean release then.
        if self._lock.acquire(timeout=2.0):
            try:
                self._capture.release()
            finally:
                self._lock.release()


class VideoSource(_CaptureSource):
    """A video file or a stream URL (rtsp://, http://, ...) decoded by OpenCV's FFmpeg."""

    def __init__(self, path_or_url: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._url = path_or_url  # what is opened; ``name`` (shown, written) has no credentials
        super().__init__(self._make_capture(path_or_url), name=display_name(path_or_url), max_pixels=max_pixels)
        if not self._read_first():
            self._capture.release()
            is_local = not _URL.match(path_or_url)
            if is_local and not os.path.exists(path_or_url):
                raise I2IError(f"cannot open video: {self.name} (no such file)")
            why = "not a video file, or a codec OpenCV cannot decode" if is_local else "stream unreachable"
            raise I2IError(f"cannot open video: {self.name} ({why})")
        self.fps = self._native_fps()
        frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.count = frames if frames > 0 else None
        self.decoded = 0

    def _make_capture(self, path_or_url: str) -> cv2.VideoCapture:
        return cv2.VideoCapture(path_or_url)

    def input_files(self) -> list[Path]:
        return [] if _URL.match(self._url) else [Path(self._url)]

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        item = super()._read()
        if item is not None:
            self.decoded += 1
        elif self.count and not self._closed and self.decoded < self.count - max(1, self.count // 50):
            # A file cut short (a copy in progress, a crashed recorder) decodes up to the damage and
            # then reads as its end: every frame before it is processed, and the user is told why
            # the output is shorter than the header promised. (The count is estimated for some
            # containers, hence the small tolerance.)
            click.echo(
                f"warning: video {self.name} ended after {self.decoded} of {self.count} frames; "
                "the rest could not be decoded (the file is truncated or damaged)",
                err=True,
            )
        return item


class StreamSource(VideoSource):
    """An RTSP/HTTP stream that reconnects when it drops, with exponential backoff.

    A stream with a known frame count (an .mp4 served over HTTP) is a file: it ends at its end.
    A live stream (no count) that stops delivering frames is reopened after 0.5 s, 1 s, 2 s …
    (capped at ``backoff_max``) up to ``retries`` times in a row; the counter resets once frames
    flow again. Open and read timeouts keep a silent server from hanging the capture thread.
    """

    def __init__(
        self,
        url: str,
        retries: int = 10,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        timeout_s: float = 10.0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.timeout_ms = int(timeout_s * 1000)
        super().__init__(url, max_pixels)
        self.live = self.count is None
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.reconnects = 0
        self._wake = threading.Event()  # close() interrupts a backoff wait

    def _make_capture(self, url: str) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        item = super()._read()
        if item is not None or not self.live:
            return item
        for attempt in range(1, self.retries + 1):
            delay = min(self.backoff * 2 ** (attempt - 1), self.backoff_max)
            click.echo(
                f"warning: stream {self.name} dropped; reconnecting in {delay:.1f} s "
                f"(attempt {attempt}/{self.retries})",
                err=True,
            )
            if self._wake.wait(delay) or self._closed:
                return None
            capture = self._make_capture(self._url)
            ok, image = capture.read() if capture.isOpened() else (False, None)
            if ok and image is not None:
                with self._lock:
                    old, self._capture = self._capture, capture
                old.release()
                self.reconnects += 1
                if self.stats is not None:
                    self.stats.count("reconnects")
                return image, None
            capture.release()
        click.echo(f"warning: stream {self.name} gone after {self.retries} reconnect attempts; stopping", err=True)
        return None

    def _close(self) -> None:
        self._wake.set()
        super()._close()


class CameraSource(_CaptureSource):
    """A local camera by index. ``size`` is (height, width); the driver may pick the nearest mode."""

    def __init__(
        self,
        index: int,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        with _quiet_opencv():
            capture = cv2.VideoCapture(index)
        super().__init__(capture, name=f"camera {index}", max_pixels=max_pixels)
        self.live = True
        if size is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
        if fps is not None:
            self._capture.set(cv2.CAP_PROP_FPS, fps)
        if not self._read_first():
            self._capture.release()
            raise I2IError(
                f"cannot open camera {index}: no such device, or another program is using it "
                "(try another index, or give a video file or folder instead)"
            )
        self.fps = self._native_fps() or fps


class FolderSource(Source):
    """Images from a directory (non-recursive), a glob pattern, or a single image file.

    Files are in natural order (frame_2 before frame_10). Unreadable files (corrupt, not an
    image, larger than ``max_pixels`` by their header or once decoded, float data out of 0..1)
    are skipped with a warning that says why, so one bad image does not end a long batch job.

    ``aligned`` ("AtoB" or "BtoA") reads a reference test folder of A|B pair images: each frame is
    the input half (see i2i.runtime.gallery); an image that is not a pair is skipped with a warning.
    """

    def __init__(self, path_or_glob: str, max_pixels: int = DEFAULT_MAX_PIXELS, aligned: str | None = None) -> None:
        super().__init__(max_pixels)
        self.aligned = aligned
        self.name = path_or_glob
        self._paths = _list_images(path_or_glob)
        self.count = len(self._paths)
        self._next = 0
        self._read_path: Path | None = None  # the file of the frame last handed out
        self._pending: tuple[np.ndarray, str | None, Path] | None = None
        self._pending = self._decode_next()  # fail now if no file at all can be decoded
        if self._pending is None:
            raise I2IError(
                f"none of the {self.count} images in {path_or_glob} could be read "
                "(corrupt, too large, or a format OpenCV cannot decode; see the warnings above)"
            )

    def input_files(self) -> list[Path]:
        return list(self._paths)

    def _frame_path(self) -> str:
        return str(self._read_path)

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        item, self._pending = self._pending or self._decode_next(), None
        if item is None:
            return None
        image, name, self._read_path = item
        return image, name

    def _decode_next(self) -> tuple[np.ndarray, str | None, Path] | None:
        while self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            try:
                image = to_bgr_uint8(read_image(path, self.max_pixels))
                if self.aligned is not None:
                    image = split_pair(image, self.aligned, str(path))[0]
                return image, path.stem, path
            except I2IError as exc:  # UnreadableImage, or pixel data outside the frame contract
                reason = exc.message if isinstance(exc, UnreadableImage) else f"{path}: {exc.message}"
                click.echo(f"warning: skipping {reason}", err=True)
        return None


def _is_image(path: Path) -> bool:
    return is_image(path) and path.is_file()


def _natural_key(path: Path) -> list[int | str]:
    """Sort key that orders digit runs numerically: frame_2 < frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _list_images(path_or_glob: str) -> list[Path]:
    """Resolve a folder, glob pattern or image file to a sorted, non-empty list of image files."""
    extensions = " ".join(IMAGE_EXTENSIONS)
    path = Path(path_or_glob)
    if path.is_dir():
        paths = [p for p in path.iterdir() if _is_image(p)]
        where = f"folder {path_or_glob}"
    elif path.is_file():
        if not _is_image(path):
            raise I2IError(f"not an image file: {path_or_glob} (expected one of {extensions})")
        return [path]
    elif any(ch in path_or_glob for ch in _GLOB_CHARS):
        paths = [p for p in map(Path, glob.glob(path_or_glob)) if _is_image(p)]
        where = f"pattern {path_or_glob}"
    else:
        raise I2IError(f"no such file or folder: {path_or_glob}")
    if not paths:
        raise I2IError(f"no images in {where} (looked for {extensions}, case-insensitive)")
    return sorted(paths, key=_natural_key)


def open_source(
    spec: str,
    camera_size: tuple[int, int] | None = None,
    camera_fps: float | None = None,
    reconnect: int = 10,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    aligned: str | None = None,
) -> Source:
    """Pick a source from a command-line spec: camera index, pattern:, URL, glob, folder, image or video file.

    ``camera_size`` is (H, W), as every size in i2i. ``max_pixels`` caps the frames it may decode
    (H*W; see i2i.runtime.images), checked from the header or container before decoding where it can.
    ``aligned`` ("AtoB"/"BtoA"): a folder of A|B pair images, read as their input halves.

    An existing path is taken literally before glob characters are considered, so a file named
    ``clip[1].mp4`` opens as a video rather than as a pattern that matches nothing.
    """
    is_camera = spec.isascii() and spec.isdigit()
    if (camera_size or camera_fps) and not is_camera:
        raise I2IError(f"--camera-size/--camera-fps apply to camera sources (--source 0), not {display_name(spec)}")
    if max_pixels < 1:
        raise I2IError(f"--max-pixels must be at least 1, got {max_pixels}")
    if aligned is not None:
        path = Path(spec)
        if not (path.is_dir() or (path.is_file() and is_image(path)) or any(ch in spec for ch in _GLOB_CHARS)):
            raise I2IError(f"--aligned reads folders of A|B pair images, not {display_name(spec)}")
        return FolderSource(spec, max_pixels, aligned)
    if is_camera:
        return CameraSource(int(spec), size=camera_size, fps=camera_fps, max_pixels=max_pixels)
    if spec.startswith(PATTERN_PREFIX):
        return PatternSource.from_spec(spec, max_pixels)
    if _URL.match(spec):
        return StreamSource(spec, retries=reconnect, max_pixels=max_pixels)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(spec, max_pixels)
    if path.is_file():
        return FolderSource(spec, max_pixels) if is_image(path) else VideoSource(spec, max_pixels)
    if any(ch in spec for ch in _GLOB_CHARS):
        return FolderSource(spec, max_pixels)
    raise I2IError(f"no such file or folder: {spec}")


# -- synthetic test pattern ----------------------------------------------------------------------

PATTERN_PREFIX = "pattern:"
_PATTERN = re.compile(r"pattern:(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d*)?))?(?::(bgr|gray|bgra))?")
# SMPTE-like 75% bars, BGR: white, yellow, cyan, green, magenta, red, blue.
_BARS = [(191, 191, 191), (0, 191, 191), (191, 191, 0), (0, 191, 0), (191, 0, 191), (0, 0, 191), (191, 0, 0)]


class PatternSource(Source):
    """A synthetic moving test pattern, for demos and tests without a camera or a file.

    ``pattern:HxW@FPS[:gray|:bgra]`` (default ``pattern:480x640@30``; height first, as every size in
    i2i, and a landscape mode written width first, ``pattern:640x480``, is refused with the value it
    meant): colour bars, a grey ramp,
    a bouncing disc and the frame number. With a rate it is paced like a camera (and live, so the
    default mode is realtime); ``@0`` delivers frames as fast as they are taken, like a file.
    It never ends by itself: stop it with ``--max-frames`` or Ctrl-C. ``:gray``/``:bgra`` emit
    those pixel formats, to exercise the pipeline's conversions.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        pixel_format: str = "bgr",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(max_pixels)
        if width < 16 or height < 16:
            raise I2IError(f"pattern size {width}x{height} is too small (16x16 at least)")
        check_frame_size(height, width, max_pixels, "the pattern")
        self.name = f"pattern:{height}x{width}@{fps:g}"
        self.width, self.height = width, height
        self.fps = fps if fps > 0 else None
        self.live = self.fps is not None
        self.pixel_format = pixel_format
        self._background = self._draw_background(width, height)
        self._index = 0
        self._due: float | None = None

    @classmethod
    def from_spec(cls, spec: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> PatternSource:
        match = _PATTERN.fullmatch(spec)
        if not match:
            raise I2IError(f"bad pattern source {spec!r}: use pattern:HxW@FPS, e.g. pattern:480x640@30 (@0 = unpaced)")
        height, width, fps, pixel_format = match.groups()
        if height is not None and written_width_first((int(height), int(width))):
            meant = spec.replace(f"{height}x{width}", f"{width}x{height}", 1)
            raise I2IError(f"pattern sizes are HxW (height first), as every size in i2i: did you mean {meant}?")
        rate = float(fps) if fps is not None else 30.0
        return cls(int(width or 640), int(height or 480), rate, pixel_format or "bgr", max_pixels)

    @staticmethod
    def _draw_background(width: int, height: int) -> np.ndarray:
        image = np.empty((height, width, 3), np.uint8)
        bars_h = height * 2 // 3
        edges = np.linspace(0, width, len(_BARS) + 1).astype(int)
        for colour, x0, x1 in zip(_BARS, edges[:-1], edges[1:]):
            image[:bars_h, x0:x1] = colour
        ramp = np.linspace(0, 255, width).astype(np.uint8)
        image[bars_h:] = ramp[None, :, None]
        return image

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        if self.fps is not None:
            now = time.perf_counter()
            self._due = now if self._due is None or now - self._due > 1.0 / self.fps else self._due
            delay = self._due - now
            if delay > 0:
                time.sleep(delay)
            self._due += 1.0 / self.fps
        image = self._background.copy()
        i, w, h = self._index, self.width, self.height
        radius = max(4, min(w, h) // 10)
        span = max(1, w - 2 * radius)
        x = radius + abs((i * max(1, w // 60)) % (2 * span) - span)
        cv2.circle(image, (x, h * 2 // 3), radius, (255, 255, 255), thickness=-1, lineType=cv2.LINE_AA)
        # The frame number sits bottom-right (on the bright end of the ramp), clear of overlays.
        scale = max(0.35, w / 900)
        text = f"#{i:06d}"
        (tw, _), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        origin = (w - tw - 6, h - base - 4)
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        self._index += 1
        if self.pixel_format == "gray":
            return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), None
        if self.pixel_format == "bgra":
            return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA), None
        return image, None
