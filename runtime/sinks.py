"""Frame sinks: video files, image folders, an on-screen window, or nowhere.

Every sink is a context manager whose ``__exit__`` always closes it, so Ctrl-C inside a
``with`` block still leaves a finished, playable file. Files are written under a temporary
name and renamed into place on close: a reader (or a crashed run) never sees a half-written
output under the final name.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click
import cv2
import numpy as np

from i2i.common import is_image
from i2i.errors import I2IError

if TYPE_CHECKING:
    from typing import Self

    from .stats import StageStats

# Extension -> FourCC. pip's opencv-python ships FFmpeg without an H.264 encoder, so MPEG-4
# Part 2 ('mp4v') is the fast choice that every player reads; .mkv and .mov hold it too.
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}
# Suffixes that are clearly meant as video but that VideoSink does not write: routed to
# VideoSink so the user gets its "supported extensions" error instead of a folder named out.webm.
_OTHER_VIDEO_SUFFIXES = (".webm", ".gif", ".m4v", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".h264")


# "before-after": the unrefined output | the refined one (the pipeline hands the unrefined frame as
# ``source`` when there is a refine stage), to see what spectral refinement changes.
VIEWS = ("output", "side-by-side", "before-after")
TWO_UP_VIEWS = ("side-by-side", "before-after")


class Sink:
    """Base class. ``write`` checks the frame and counts it; subclasses implement ``_write``/``_close``.

    ``closed`` becomes True when the sink wants no more frames: after ``close()``, or when the
    user closes a preview window. The pipeline polls it to stop early.

    Every sink can show the input beside the output (``view="side-by-side"``) and draw a
    FPS/latency overlay (``overlay=True``, on by default for the window and the browser viewer):
    the composition happens here, once, so a video file can record exactly what a viewer saw.
    """

    path: str | None = None
    overlay_default = False
    timed = False  # frames play back at a fixed rate (a video file): realtime runs keep dropped frames' slots

    def __init__(self) -> None:
        self.frames_written = 0
        self.closed = False
        self._finalised = False
        self.view = "output"
        self.overlay = self.overlay_default
        self.stats: StageStats | None = None

    def _write(self, image: np.ndarray, name: str | None) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Flush and finalise the output."""

    def configure(self, view: str | None = None, overlay: bool | None = None) -> Self:
        if view is not None:
            if view not in VIEWS:
                raise I2IError(f"unknown view {view!r}; valid: {', '.join(VIEWS)}")
            self.view = view
        if overlay is not None:
            self.overlay = overlay
        return self

    def bind_stats(self, stats: StageStats) -> None:
        """The pipeline hands over its stats, for overlays and viewers."""
        self.stats = stats

    def write(self, image: np.ndarray, name: str | None = None, source: np.ndarray | None = None) -> None:
        """Write one HxWx3 uint8 BGR frame; ignored once the user has closed the sink (window).

        ``source`` is the frame shown left of it in a two-up view: the input the image was translated
        from (``side-by-side``) or the output before refinement (``before-after``).
        """
        if self._finalised:
            raise RuntimeError(f"write() on a closed {type(self).__name__}")
        if self.closed:
            return
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"sinks take HxWx3 uint8 BGR frames, got {image.shape} {image.dtype}")
        if self.view in TWO_UP_VIEWS and source is not None:
            image = side_by_side(source, image)
        if self.overlay and self.stats is not None:
            image = draw_overlay(image, overlay_text(self.stats))
        self._write(image, name)
        self.frames_written += 1

    def close(self) -> None:
        """Finalise the output; closing again does nothing."""
        if self._finalised:
            return
        self._finalised = True
        self.closed = True
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
        return f"{type(self).__name__}({self.path!r}, frames_written={self.frames_written})"


def side_by_side(source: np.ndarray, output: np.ndarray) -> np.ndarray:
    """input | output in one frame; the input is resized to the output's height if they differ."""
    if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
        raise ValueError(f"side-by-side needs an HxWx3 uint8 BGR source frame, got {source.shape} {source.dtype}")
    if source.shape[0] != output.shape[0]:
        h = output.shape[0]
        w = max(1, round(source.shape[1] * h / source.shape[0]))
        source = cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.hconcat([source, output])


def overlay_text(stats: StageStats) -> str:
    snap = stats.snapshot()
    text = f"{snap['fps']:.1f} FPS"
    if snap["e2e_ms"] is not None:
        text += f"  latency {snap['e2e_ms']:.0f} ms"
    if snap["dropped"]:
        text += f"  dropped {snap['dropped']}"
    return text


def draw_overlay(image: np.ndarray, text: str) -> np.ndarray:
    """Text in the top-left corner on a dark box, scaled to the frame (readable from 160 px up)."""
    image = image.copy()  # never draw into a frame someone else holds (the side-by-side input)
    scale = max(0.35, min(image.shape[1] / 900, 1.2))
    thickness = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, int(6 * scale))
    cv2.rectangle(image, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), thickness=-1)
    cv2.putText(image, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image


class NullSink(Sink):
    """Discards frames (benchmarks); still counts them."""

    def _write(self, image: np.ndarray, name: str | None) -> None:
        pass


class VideoSink(Sink):
    """A video file; the codec follows the extension (see VIDEO_CODECS).

    The writer opens on the first frame, taking its size. Encoders need even sizes, so odd
    frames lose their last row/column (with a one-time warning) rather than being cropped
    silently by FFmpeg.
    """

    timed = True

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0) -> None:
        super().__init__()
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in VIDEO_CODECS:
            supported = ", ".join(VIDEO_CODECS)
            raise I2IError(f"cannot write video {target}: unsupported extension; use one of {supported}")
        if not (fps > 0 and np.isfinite(fps)):
            raise I2IError(f"invalid frame rate {fps} for {target}: give a positive fps")
        if target.is_dir():
            raise I2IError(f"cannot write video {target}: it is an existing folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.path = str(target)
        self._target = target
        self.fps = float(fps)
        self.fourcc = VIDEO_CODECS[suffix]
        # Same extension, so FFmpeg picks the same container; hidden, so nobody opens it early.
        self._partial = target.with_name(f".{target.stem}.partial{target.suffix}")
        self._writer: cv2.VideoWriter | None = None
        self._frame_hw: tuple[int, int] = (0, 0)
        self._encoded_hw: tuple[int, int] = (0, 0)

    def _open(self, h: int, w: int) -> None:
        even_h, even_w = h - h % 2, w - w % 2
        if even_h == 0 or even_w == 0:
            raise I2IError(f"cannot encode {w}x{h} frames as video {self.path}; write to a folder instead")
        if (even_h, even_w) != (h, w):
            click.echo(
                f"warning: {self.path}: the video codec needs even sizes; "
                f"{w}x{h} frames are stored as {even_w}x{even_h}",
                err=True,
            )
        fourcc = cv2.VideoWriter.fourcc(*self.fourcc)
        writer = cv2.VideoWriter(str(self._partial), fourcc, self.fps, (even_w, even_h))
        if not writer.isOpened():
            writer.release()
            self._partial.unlink(missing_ok=True)
            raise I2IError(
                f"cannot open video writer for {self.path} (codec {self.fourcc}, {w}x{h}); "
                "check the folder is writable, or write to a folder of images instead"
            )
        self._writer = writer
        self._frame_hw = (h, w)
        self._encoded_hw = (even_h, even_w)

    def _write(self, image: np.ndarray, name: str | None) -> None:
        h, w = image.shape[:2]
        if self._writer is None:
            self._open(h, w)
        elif (h, w) != self._frame_hw:
            fh, fw = self._frame_hw
            raise I2IError(
                f"cannot write a {w}x{h} frame to {self.path}: the video started at {fw}x{fh}, "
                "and all frames of one video must share a size"
            )
        if self._encoded_hw != (h, w):
            image = np.ascontiguousarray(image[: self._encoded_hw[0], : self._encoded_hw[1]])
        assert self._writer is not None
        self._writer.write(image)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames_written == 0:
            self._partial.unlink(missing_ok=True)
            return
        # OpenCV's writer reports no I/O errors: a full disk or a vanished folder shows only as a
        # file that does not decode. Check before it takes the final name.
        problem = _unplayable(self._partial, self.frames_written)
        if problem is not None:
            self._partial.unlink(missing_ok=True)
            raise I2IError(
                f"cannot finish video {self.path}: {problem} (disk full, or the folder not writable?); nothing kept"
            )
        os.replace(self._partial, self._target)


def _unplayable(path: Path, frames: int) -> str | None:
    """Why the video at ``path`` is not a complete, decodable file of ``frames`` frames (None if it is)."""
    if not path.is_file() or path.stat().st_size == 0:
        return "the encoder wrote nothing"
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened() or not capture.read()[0]:
            return "the file written does not decode"
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if 0 <= count < frames:
        return f"it holds {count} of the {frames} frames written"
    return None


class FolderSink(Sink):
    """PNG files in a folder: ``{name}.png`` when a name is given, else ``frame_{index:06d}.png``.

    A name given twice in one run is refused (I2IError) instead of replacing the first file: inputs
    that share a file stem (a.jpg and a.png) would otherwise overwrite each other's output.
    ``i2i-run`` refuses such a source before it starts (``refuse_shared_stems``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise I2IError(f"cannot write images to {folder}: it exists and is not a folder")
        self._created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise I2IError(f"cannot create output folder {folder}: {error.strerror}") from None
        self.path = str(folder)
        self._folder = folder
        self._names: set[str] = set()

    def _write(self, image: np.ndarray, name: str | None) -> None:
        if name is not None and (not name or re.search(r"[/\\]", name)):
            raise ValueError(f"frame name must be a plain file stem, got {name!r}")
        if name is not None:
            if name in self._names:
                raise I2IError(
                    f"two inputs are named {name!r} (the same file stem, e.g. {name}.jpg and {name}.png): the "
                    f"second would replace {self._folder / (name + '.png')}; rename one, or translate them into "
                    "separate folders"
                )
            self._names.add(name)
        filename = f"{name}.png" if name is not None else f"frame_{self.frames_written:06d}.png"
        target = self._folder / filename
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise I2IError(f"cannot encode frame as PNG for {target}")
        partial = self._folder / f".{filename}.partial"
        # Not i2i._files.atomic_file: an fsync per frame would throttle the pipeline; a frame is
        # whole under its name, and the partial file goes on any exception, Ctrl-C and SIGTERM included.
        try:
            partial.write_bytes(encoded.tobytes())  # not ndarray.tofile: its errors carry no errno
            os.replace(partial, target)
        except BaseException as error:
            partial.unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise I2IError(f"cannot write {target}: {error.strerror}") from None
            raise

    def _close(self) -> None:
        # A run that failed before its first frame leaves no empty folder it made itself.
        if self._created and self.frames_written == 0 and self._folder.is_dir() and not any(self._folder.iterdir()):
            self._folder.rmdir()


def _gui_backend() -> str:
    """The 'GUI:' entry of OpenCV's build information ('NONE' for headless builds)."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match.group(1) if match else "UNKNOWN"


def _window_unavailable_reason() -> str | None:
    """Why a window cannot be opened here, or None if it probably can."""
    if _gui_backend().upper() == "NONE":
        return "this OpenCV build has no GUI support (opencv-python-headless?)"
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and not has_display:
        # Checked up front: OpenCV's Qt backend aborts the whole process without a display.
        return "no display ($DISPLAY and $WAYLAND_DISPLAY are unset)"
    return None


class WindowSink(Sink):
    """A preview window; q or Esc (or closing the window) sets ``closed``."""

    overlay_default = True
    _QUIT_KEYS = (ord("q"), ord("Q"), 27)

    def __init__(self, title: str = "i2i") -> None:
        super().__init__()
        self.title = title
        hint = "write to a file instead, e.g. --sink out.mp4 or --sink out_frames/"
        reason = _window_unavailable_reason()
        if reason is not None:
            raise I2IError(f"cannot open a window: {reason}; {hint}")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as error:
            message = str(error).strip().splitlines()[-1] if str(error).strip() else "OpenCV error"
            raise I2IError(f"cannot open a window ({message}); {hint}") from None

    def _write(self, image: np.ndarray, name: str | None) -> None:
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in self._QUIT_KEYS or not self._window_visible():
            self.closed = True

    def _window_visible(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def _close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)  # let the GUI event loop actually remove the window
        except cv2.error:
            pass


def open_sink(
    spec: str,
    fps: float | None = None,
    view: str | None = None,
    overlay: bool | None = None,
    viewer: Mapping[str, Any] | None = None,
) -> Sink:
    """Pick a sink from a command-line spec and configure its view (see ``Sink.configure``).

    ``viewer`` holds the browser viewer's access options (``token``, ``insecure_public``, ``max_clients``;
    see ``WebSink``); other sinks ignore it.
    """
    return _open_sink(spec, fps, viewer or {}).configure(view=view, overlay=overlay)


def sink_kind(spec: str) -> str:
    """What ``open_sink`` makes of ``spec``, decided without opening anything: null, window, web,
    video (a file) or folder."""
    if spec in ("null", "window"):
        return spec
    if spec.lower().startswith(("http://", "https://")):
        return "web"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in VIDEO_CODECS or path.suffix.lower() in _OTHER_VIDEO_SUFFIXES:
        return "video"
    if is_image(path):
        raise I2IError(
            f"cannot write frames to the image file {spec}: give a folder for image output, "
            f"e.g. --sink {path.with_suffix('')}/"
        )
    return "folder"


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path (symlinks followed), or, when
    both exist, the same inode (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_replacing_inputs(spec: str, inputs: Sequence[Path], what: str = "--sink") -> None:
    """An output must never replace its input: a video or file written over a file the source reads
    (resolved paths, symlinks and hard links included), or a folder of images written into the
    folder the source's images are read from. One I2IError, before anything is opened or written."""
    kind = "file" if what != "--sink" else sink_kind(spec)
    if kind in ("null", "window", "web") or not inputs:
        return
    target = Path(spec)
    if kind == "folder":
        folder = target.resolve()
        inside = [p for p in inputs if is_image(p) and p.resolve().parent == folder]
        if inside:
            raise I2IError(
                f"{what} {spec} is the folder the source's images are read from ({inside[0].name} ...): "
                "the outputs would overwrite or mix with the inputs; write to another folder"
            )
        refuse_shared_stems(spec, [p for p in inputs if is_image(p)])
        return
    for path in inputs:
        if _same_file(target, path):
            raise I2IError(f"{what} {spec} is the source file {path} itself: writing it would destroy the input")


def refuse_shared_stems(spec: str, images: Sequence[Path]) -> None:
    """A folder sink names each output after its input's file stem (a.jpg -> a.png): two inputs
    sharing a stem (a.jpg and a.png, or x/a.jpg and y/a.jpg) would write one file, the second
    silently replacing the first. Refused in one line, before anything is written."""
    seen: dict[str, Path] = {}
    for path in images:
        first = seen.setdefault(path.stem, path)
        if first is not path:
            raise I2IError(
                f"{first} and {path} share the file stem {path.stem!r}: both outputs would be "
                f"{Path(spec) / (path.stem + '.png')}; rename one, or translate them into separate folders"
            )


def _open_sink(spec: str, fps: float | None, viewer: Mapping[str, Any]) -> Sink:
    """'null', 'window', an http:// viewer address, a video file, or a folder."""
    kind = sink_kind(spec)
    if kind == "null":
        return NullSink()
    if kind == "window":
        return WindowSink()
    if kind == "web":
        from i2i.runtime.web import WebSink  # the server code loads only when asked for

        return WebSink.from_url(spec, **viewer)
    if kind == "video":
        return VideoSink(spec, fps or 30.0)
    return FolderSink(spec)
