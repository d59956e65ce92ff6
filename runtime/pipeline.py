"""source → preprocess → infer → postprocess → sink, each stage timed.

Capture runs in its own thread and hands frames over a bounded queue, so reading/decoding the
next frame overlaps inference of the current one:

* ``every-frame`` (files, folders): the queue blocks, no frame is lost.
* ``realtime`` (cameras, streams): a queue of one where the newest frame replaces an unprocessed
  one, so latency stays bounded when inference is slower than the source; drops are counted.

Ctrl-C (or a window closed with q/Esc) stops capture and the sink is closed, so a video file
written so far is finalised and playable.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend
from i2i.runtime.frames import postprocess, preprocess
from i2i.runtime.sinks import Sink
from i2i.runtime.sources import Frame, Source
from i2i.runtime.stats import StageStats

MODES = ("every-frame", "realtime")
_END = object()


@dataclass
class _Failure:
    error: BaseException


class _Capture(threading.Thread):
    """Reads the source into a bounded queue; records the 'read' stage and drops."""

    def __init__(self, source: Source, mode: str, depth: int, stats: StageStats, max_frames: int) -> None:
        super().__init__(name="i2i-capture", daemon=True)
        self.source = source
        self.mode = mode
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=1 if mode == "realtime" else depth)
        self.stats = stats
        self.max_frames = max_frames
        self.stop_event = threading.Event()
        self.dropped = 0

    def run(self) -> None:
        try:
            iterator = iter(self.source)
            read = 0
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                frame = next(iterator, None)
                if frame is None:
                    break
                self.stats.add("read", time.perf_counter() - t0)
                self._put(frame)
                read += 1
                if self.max_frames and read >= self.max_frames:
                    break
        except BaseException as exc:
            self._put(_Failure(exc), force=True)
            return
        self._put(_END, force=True)

    def _put(self, item: Any, force: bool = False) -> None:
        if self.mode == "realtime" and not force:
            try:  # latest frame wins: replace a frame nobody has taken yet
                self.queue.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
        while not self.stop_event.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if force and self.mode == "realtime":
                    try:
                        self.queue.get_nowait()
                    except queue.Empty:
                        pass


def run_pipeline(
    source: Source,
    backend: Backend,
    sink: Sink,
    *,
    batch_size: int = 1,
    mode: str = "every-frame",
    max_frames: int = 0,
    stats: StageStats | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> StageStats:
    """Stream every frame of ``source`` through ``backend`` into ``sink``; returns the stats."""
    if mode not in MODES:
        raise I2IError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if batch_size < 1:
        raise I2IError("--batch must be >= 1")
    if mode == "realtime" and batch_size != 1:
        raise I2IError("--mode realtime processes the latest frame only; use --batch 1")
    stats = stats or StageStats()
    capture = _Capture(source, mode, depth=4 * batch_size, stats=stats, max_frames=max_frames)
    capture.start()
    pending: list[Frame] = []
    try:
        while True:
            item = capture.queue.get()
            if isinstance(item, _Failure):
                raise item.error
            end = item is _END
            if not end and pending and item.image.shape != pending[0].image.shape:
                _process(pending, backend, sink, stats, on_frames)  # frame size changed: flush
                pending = []
            if not end:
                pending.append(item)
            if pending and (end or len(pending) == batch_size):
                _process(pending, backend, sink, stats, on_frames)
                pending = []
            if end or getattr(sink, "closed", False):
                break
    finally:
        capture.stop_event.set()
        capture.join(timeout=5)
        stats.dropped = capture.dropped  # type: ignore[attr-defined]
        stats.stop()
    return stats


def _process(
    frames: list[Frame], backend: Backend, sink: Sink, stats: StageStats, on_frames: Callable[[int], None] | None
) -> None:
    with stats.time("preprocess"):
        batch, size = preprocess([f.image for f in frames], backend.size_multiple)
    with stats.time("infer"):
        output = backend(batch)
    with stats.time("postprocess"):
        images = postprocess(np.asarray(output), size)
    with stats.time("write"):
        for frame, image in zip(frames, images):
            sink.write(image, frame.name)
    now = time.perf_counter()
    for frame in frames:
        stats.add("latency", now - frame.t_capture)
    stats.count_frame(len(frames))
    if on_frames is not None:
        on_frames(len(frames))
