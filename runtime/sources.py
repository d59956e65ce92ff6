"""Frame sources: video files and streams, cameras, image folders.

Every source is an iterable of ``Frame`` and a context manager. The base class owns iteration
(indexing, capture timestamps, pixel-format normalisation); subclasses implement only
``_read``, which returns the next image or None at the end. Sources open and read their first
frame in the constructor, so a bad path fails before a model is loaded, not halfway through a
pipeline thread.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import click
import cv2
import numpy as np

from i2i.errors import I2IError

from .frames import to_bgr_uint8

if TYPE_CHECKING:
    from typing_extensions import Self

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = ("*", "?", "[")
# Colour 3-channel, keeping 16-bit depth (rounded properly by to_bgr_uint8 rather than the
# decoder's >> 8), and applying EXIF orientation (which IMREAD_UNCHANGED would ignore).
_IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH


@dataclass
class Frame:
    """One captured frame; ``image`` is always HxWx3 uint8 BGR."""

    index: int
    image: np.ndarray
    name: str | None  # file stem for folder sources, None for video and cameras
    t_capture: float  # time.perf_counter() when the frame was read


class Source:
    """Base class: a single-pass iterable of Frame, closed by ``close()`` or ``with``."""

    name: str = ""
    fps: float | None = None  # native frame rate, if the source knows it
    count: int | None = None  # number of frames, if known (for progress bars)

    def __init__(self) -> None:
        self._closed = False

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        """Return (image, name) for the next frame, or None at the end of the stream."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release the underlying device or file."""

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while not self._closed:
            item = self._read()
            t_capture = time.perf_counter()
            if item is None:
                return
            image, name = item
            yield Frame(index=index, image=to_bgr_uint8(image), name=name, t_capture=t_capture)
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

    def __init__(self, capture: cv2.VideoCapture, name: str) -> None:
        super().__init__()
        self.name = name
        self._capture = capture
        self._pending: np.ndarray | None = None

    def _read_first(self) -> bool:
        """Read one frame and keep it for the first ``_read``; False if the capture yields nothing."""
        if not self._capture.isOpened():
            return False
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
        ok, image = self._capture.read()
        return (image, None) if ok and image is not None else None

    def _close(self) -> None:
        self._capture.release()


class VideoSource(_CaptureSource):
    """A video file or a stream URL (rtsp://, http://, ...) decoded by OpenCV's FFmpeg."""

    def __init__(self, path_or_url: str) -> None:
        super().__init__(cv2.VideoCapture(path_or_url), name=path_or_url)
        if not self._read_first():
            self._capture.release()
            is_local = not _URL.match(path_or_url)
            if is_local and not os.path.exists(path_or_url):
                raise I2IError(f"cannot open video: {path_or_url} (no such file)")
            why = "not a video file, or a codec OpenCV cannot decode" if is_local else "stream unreachable"
            raise I2IError(f"cannot open video: {path_or_url} ({why})")
        self.fps = self._native_fps()
        frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.count = frames if frames > 0 else None


class CameraSource(_CaptureSource):
    """A local camera by index. ``size`` is (width, height); the driver may pick the nearest mode."""

    def __init__(self, index: int, size: tuple[int, int] | None = None, fps: float | None = None) -> None:
        super().__init__(cv2.VideoCapture(index), name=f"camera {index}")
        if size is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
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

    Files are in natural order (frame_2 before frame_10). Unreadable files are skipped with a
    warning so one corrupt image does not end a long batch job.
    """

    def __init__(self, path_or_glob: str) -> None:
        super().__init__()
        self.name = path_or_glob
        self._paths = _list_images(path_or_glob)
        self.count = len(self._paths)
        self._next = 0
        self._pending: tuple[np.ndarray, str | None] | None = None
        self._pending = self._read()  # fail now if no file at all can be decoded
        if self._pending is None:
            raise I2IError(
                f"none of the {self.count} images in {path_or_glob} could be read "
                "(corrupt files, or a format OpenCV cannot decode)"
            )

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        while self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            image = _imread(path)
            if image is not None:
                return image, path.stem
            click.echo(f"warning: skipping unreadable image: {path}", err=True)
        return None


def _imread(path: Path) -> np.ndarray | None:
    """Decode an image file; None if it cannot be read. imdecode also copes with non-ASCII paths."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, _IMREAD_FLAGS)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


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


def open_source(spec: str) -> Source:
    """Pick a source from a command-line spec: camera index, URL, glob, folder, image or video file.

    An existing path is taken literally before glob characters are considered, so a file named
    ``clip[1].mp4`` opens as a video rather than as a pattern that matches nothing.
    """
    if spec.isascii() and spec.isdigit():
        return CameraSource(int(spec))
    if _URL.match(spec):
        return VideoSource(spec)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(spec)
    if path.is_file():
        return FolderSource(spec) if path.suffix.lower() in IMAGE_EXTENSIONS else VideoSource(spec)
    if any(ch in spec for ch in _GLOB_CHARS):
        return FolderSource(spec)
    raise I2IError(f"no such file or folder: {spec}")
