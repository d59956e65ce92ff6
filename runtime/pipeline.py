"""source → preprocess → infer → refine → postprocess → upsample → stabilize → sink, each stage timed.

``refine`` (a spectral refiner), ``upsample`` (a working size for inference: frames are shrunk in
``preprocess`` and the outputs brought back to the frame's size, see ``i2i.runtime.working_size``)
and ``stabilize`` (flow-guided temporal stabilisation, ``i2i.runtime.stabilize``; one stabiliser per
run, so each source starts afresh, and it restarts itself at scene cuts and size changes) are optional.

Capture runs in its own thread and hands frames over a bounded queue, so reading/decoding the
next frame overlaps inference of the current one:

* ``every-frame`` (files, folders): the queue blocks, no frame is lost.
* ``realtime`` (cameras, streams): a queue of one where the newest frame replaces an unprocessed
  one, so latency stays bounded when inference is slower than the source; drops are counted.
  A file (or an unpaced source with a known rate) in realtime mode stands in for a camera: it is
  paced at its frame rate, so frames drop only when translation is slower than the source. Into a
  video file, each dropped frame's slot holds the output before it (counted as ``repeated``), so
  the output lasts as long as the input, as a recording of the live view would.

Ctrl-C: with ``handle_sigint`` the first Ctrl-C asks the loop to stop after the batch in hand
(a second one aborts at once); either way capture stops and the sink is closed by its owner, so a
video written so far is finalised and playable and holds every frame processed.

NaN/Inf in a model's output (``on_nonfinite``): ``stop`` (the default) writes the frames before
the broken one and raises an error naming it; ``pass`` writes the input frame unchanged in its
place and counts it (``nonfinite_passed`` in the stats), for a run that must not stop.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import click
import numpy as np

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend
from i2i.runtime.frames import FrameCodec, Geometry, NonFiniteOutputError
from i2i.runtime.sinks import Sink
from i2i.runtime.sources import Frame, Source
from i2i.runtime.stats import E2E, StageStats
from i2i.runtime.working_size import WorkingSize, refuse_fixed_size

MODES = ("every-frame", "realtime")
ON_NONFINITE = ("stop", "pass")
NONFINITE_COUNTER = "nonfinite_passed"
REPEATED_COUNTER = "repeated"  # realtime into a video file: outputs written again in dropped frames' slots
_END = object()

Refiner = Callable[[np.ndarray], np.ndarray]
Stabilizer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input frame, translated frame) -> frame


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
        self.read = 0
        # A source that does not pace itself (a file) but knows its rate is paced like the camera
        # it stands in for: frame i is released at i / fps after the first.
        fps = source.fps
        self.period = 1.0 / fps if mode == "realtime" and not source.live and fps and fps > 0 else None
        self._t_first: float | None = None

    def run(self) -> None:
        try:
            iterator = iter(self.source)
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                frame = next(iterator, None)
                if frame is None:
                    break
                self.stats.add("read", time.perf_counter() - t0)
                if self.period is not None:
                    self._pace(frame)
                self.read += 1
                self._put(frame)
                if self.max_frames and self.read >= self.max_frames:
                    break
        except BaseException as exc:
            self._put(_Failure(exc), force=True)
            return
        self._put(_END, force=True)

    def _pace(self, frame: Frame) -> None:
        """Hold the frame until its time on the source's clock; it counts as captured then."""
        assert self.period is not None
        now = time.perf_counter()
        if self._t_first is None:
            self._t_first = now
        delay = self._t_first + self.read * self.period - now
        if delay > 0:
            self.stop_event.wait(delay)
            frame.t_capture = time.perf_counter()

    def _put(self, item: Any, force: bool = False) -> None:
        # Latest frame wins: a frame (or a failure) replaces a frame nobody has taken yet. The end
        # of the source waits behind the last frame instead: that frame is not dropped for it.
        replace = self.mode == "realtime" and item is not _END
        if replace:
            self._take_unprocessed()
        while not self.stop_event.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if force and replace:
                    self._take_unprocessed()

    def _take_unprocessed(self) -> None:
        try:
            old = self.queue.get_nowait()
        except queue.Empty:
            return
        if isinstance(old, Frame):
            self.stats.count_drop()


@contextlib.contextmanager
def _graceful_sigint(enabled: bool) -> Iterator[threading.Event]:
    """First Ctrl-C sets the event (stop cleanly); the second raises KeyboardInterrupt."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("\nstopping after the current batch (Ctrl-C again to abort)…", err=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


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
    refiner: Refiner | None = None,
    handle_sigint: bool = False,
    stop: threading.Event | None = None,
    on_nonfinite: str = "stop",
    working_size: WorkingSize | None = None,
    stabilizer: Stabilizer | None = None,
) -> StageStats:
    """Stream ``source`` through ``backend`` (and ``refiner``) into ``sink``; returns the stats.

    ``stop`` (an Event) ends the run from another thread, like Ctrl-C does with ``handle_sigint``;
    ``stats.interrupted`` tells the caller it happened. ``on_nonfinite``: see the module docstring.
    ``working_size``: translate frames at most at that size and upsample the outputs back;
    ``stabilizer``: a fresh ``FlowStabilizer`` (or any such callable), applied at the frame's size.
    """
    codec, fixed_batch = _check_run(backend, batch_size, mode, refiner, on_nonfinite)
    if working_size is not None:
        refuse_fixed_size(codec.io)
    stats = stats or StageStats()
    sink.bind_stats(stats)
    source.bind_stats(stats)
    capture = _Capture(source, mode, depth=4 * batch_size, stats=stats, max_frames=max_frames)
    step = _Step(codec, backend, refiner, sink, stats, on_frames, fixed_batch, on_nonfinite)
    step.working_size, step.stabilizer = working_size, stabilizer
    step.hold_dropped = mode == "realtime" and getattr(sink, "timed", False)
    with _graceful_sigint(handle_sigint) as sigint:
        capture.start()
        try:
            _drain(capture, step, batch_size, (sigint, stop or threading.Event()), stats)
            if not stats.interrupted:
                step.fill_to(capture.read)  # frames dropped at the end still take their slots
        finally:
            capture.stop_event.set()
            capture.join(timeout=5)
            stats.stop()
    return stats


def _check_run(
    backend: Backend, batch_size: int, mode: str, refiner: Refiner | None, on_nonfinite: str
) -> tuple[FrameCodec, int]:
    """Every combination the run cannot do, refused before a frame is read; the codec and the
    model's fixed batch (0: dynamic)."""
    if mode not in MODES:
        raise I2IError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if on_nonfinite not in ON_NONFINITE:
        raise I2IError(f"unknown --on-nonfinite {on_nonfinite!r}; valid: {', '.join(ON_NONFINITE)}")
    if batch_size < 1:
        raise I2IError("--batch must be >= 1")
    if mode == "realtime" and batch_size != 1:
        raise I2IError("--mode realtime processes the latest frame only; use --batch 1")
    io = getattr(backend, "io", None)
    if io is None:
        raise I2IError(f"{backend.name} backend has no I/O spec (card); it must derive from i2i Backend")
    codec = FrameCodec(io)
    if refiner is not None and codec.io.kind == "frame":
        raise I2IError(
            "--refine needs a tensor-I/O model; this one takes uint8 frames (--io frame), so the "
            "refinement cannot run between its layers: bake it in at export instead"
        )
    fixed_batch = backend.inputs[0].shape[0] if backend.inputs else None
    if isinstance(fixed_batch, int) and fixed_batch > 0 and fixed_batch != batch_size:
        raise I2IError(
            f"this model was exported with a fixed batch of {fixed_batch}: use --batch {fixed_batch}"
            + (" and --mode every-frame" if mode == "realtime" else "")
        )
    return codec, fixed_batch if isinstance(fixed_batch, int) and fixed_batch > 0 else 0


def _drain(
    capture: _Capture,
    step: _Step,
    batch_size: int,
    stops: tuple[threading.Event, threading.Event],
    stats: StageStats,
) -> None:
    """Take frames off the capture queue into batches of ``batch_size`` (one frame size per batch)
    until the source ends, the sink closes or a stop event (Ctrl-C, the caller's) is set."""
    pending: list[Frame] = []
    while True:
        if any(event.is_set() for event in stops):
            stats.interrupted = True
            break
        try:
            item = capture.queue.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(item, _Failure):
            raise item.error
        end = item is _END
        if not end and pending and item.image.shape != pending[0].image.shape:
            step(pending)  # frame size changed: flush
            pending = []
        if not end:
            pending.append(item)
        if pending and (end or len(pending) == batch_size):
            step(pending)
            pending = []
        if end or step.sink.closed:
            break
    if pending:  # stopped early: frames already captured still reach the output
        step(pending)


class _Step:
    """One batch through every stage, each timed under its own name."""

    def __init__(
        self,
        codec: FrameCodec,
        backend: Backend,
        refiner: Refiner | None,
        sink: Sink,
        stats: StageStats,
        on_frames: Callable[[int], None] | None,
        fixed_batch: int = 0,
        on_nonfinite: str = "stop",
    ) -> None:
        self.fixed_batch = fixed_batch  # a static-batch model: short batches are padded to it
        self.codec = codec
        self.backend = backend
        self.refiner = refiner
        self.sink = sink
        self.stats = stats
        self.on_frames = on_frames
        self.on_nonfinite = on_nonfinite
        # The before-after view shows the unrefined output left of the refined one (with no refine
        # stage, the output alone); every other view gets the input frame as its left image.
        self.view = getattr(sink, "view", "output")
        # Realtime into a video file: a dropped frame's slot repeats the output before it, so the
        # video keeps the source's timeline (its duration) instead of playing the kept frames faster.
        self.hold_dropped = False
        self._next_slot = 0
        self._last: tuple[np.ndarray, str | None, np.ndarray | None] | None = None
        self.working_size: WorkingSize | None = None
        self.stabilizer: Stabilizer | None = None

    def __call__(self, frames: list[Frame]) -> None:
        stats = self.stats
        images = [f.image for f in frames]
        if self.fixed_batch > len(images):  # the last, short batch of a static-batch model
            images += [images[-1]] * (self.fixed_batch - len(images))
        with stats.time("preprocess"):
            small = self.working_size.shrink(images) if self.working_size is not None else images
            batch, geometry = self.codec.encode(small)
        with stats.time("infer"):
            output = raw = np.asarray(self.backend(batch))
        if self.refiner is not None:
            with stats.time("refine"):
                output = self._refine(output)
        with stats.time("postprocess"):
            outputs = self._decode(frames, output, geometry)
            lefts = self._left_images(frames, images, raw, geometry)
        if self.working_size is not None and small is not images:
            with stats.time("upsample"):
                outputs = self._enlarge(outputs, small, images)
                if self.view == "before-after":
                    lefts = self._enlarge(lefts, small, images)
        if self.stabilizer is not None:
            with stats.time("stabilize"):
                outputs = [
                    None if image is None else self.stabilizer(frame.image, image)
                    for frame, image in zip(frames, outputs)
                ]
        with stats.time("write"):
            for i, (frame, image, left) in enumerate(zip(frames, outputs, lefts)):  # zip drops the padding
                if image is None:  # NaN/Inf with on_nonfinite="stop": the frames before it are written
                    self._stop_nonfinite(frame, output[i])
                if self.hold_dropped:
                    self._hold(frame.index, (image, frame.name, left))
                self.sink.write(image, frame.name, source=left)
        now = time.perf_counter()
        for frame in frames:
            stats.add(E2E, now - frame.t_capture)
        stats.count_frame(len(frames))
        if self.on_frames is not None:
            self.on_frames(len(frames))

    def _enlarge(
        self, outputs: list[np.ndarray | None], small: list[np.ndarray], images: list[np.ndarray]
    ) -> list[np.ndarray | None]:
        assert self.working_size is not None
        enlarge = self.working_size.enlarge
        return [None if out is None else enlarge(out, s, full) for out, s, full in zip(outputs, small, images)]

    def _hold(self, index: int, current: tuple[np.ndarray, str | None, np.ndarray | None]) -> None:
        """Fill the slots of the frames dropped before ``index`` (the first output fills a leading gap)."""
        held = self._last or current
        for _ in range(index - self._next_slot):
            self.sink.write(held[0], held[1], source=held[2])
            self.stats.count(REPEATED_COUNTER)
        self._next_slot = index + 1
        self._last = current

    def fill_to(self, frames_read: int) -> None:
        """At the end of a realtime run into a video file: the last output takes the remaining slots."""
        if self.hold_dropped and self._last is not None and not self.sink.closed:
            image, name, left = self._last
            for _ in range(frames_read - self._next_slot):
                self.sink.write(image, name, source=left)
                self.stats.count(REPEATED_COUNTER)
            self._next_slot = max(self._next_slot, frames_read)

    def _left_images(
        self, frames: list[Frame], images: list[np.ndarray], raw: np.ndarray, geometry: Geometry
    ) -> list[np.ndarray | None]:
        """What a two-up view shows beside each output: the input, or the output before refinement."""
        if self.view != "before-after":
            return list(images)
        if self.refiner is None:
            return [None] * len(frames)
        return self._decode(frames, raw, geometry)

    def _decode(self, frames: list[Frame], output: np.ndarray, geometry: Geometry) -> list[np.ndarray | None]:
        try:
            return list(self.codec.decode(output, geometry))
        except NonFiniteOutputError:
            return self._decode_finite(frames, output, geometry)

    def _decode_finite(self, frames: list[Frame], output: np.ndarray, geometry: Geometry) -> list[np.ndarray | None]:
        """Decode frame by frame: a frame whose output holds NaN/Inf becomes its input (``pass``) or None."""
        images: list[np.ndarray | None] = []
        for i, frame in enumerate(frames):
            if np.isfinite(output[i]).all():
                images.append(self.codec.decode(output[i : i + 1], geometry)[0])
            elif self.on_nonfinite == "pass":
                self.stats.count(NONFINITE_COUNTER)
                images.append(frame.image)
            else:
                images.append(None)
        return images

    def _stop_nonfinite(self, frame: Frame, output: np.ndarray) -> NoReturn:
        """Stop the run at a frame whose output holds NaN/Inf, saying where and what was kept."""
        bad = int(output.size - np.count_nonzero(np.isfinite(output)))
        name = f"frame {frame.index}" + (f" ({frame.name})" if frame.name else "")
        written = self.sink.frames_written
        kept = (
            f"; stopped with the {written} frames before it written to {self.sink.path}"
            if written and self.sink.path
            else ""
        )
        raise I2IError(
            f"{name}: the output of {self.backend.path} holds {bad} NaN/Inf values out of {output.size}: "
            f"the model or engine is numerically broken (an fp16 overflow? try an fp32 export or engine){kept}; "
            "--on-nonfinite pass writes such frames unchanged and goes on"
        )

    def _refine(self, output: np.ndarray) -> np.ndarray:
        assert self.refiner is not None
        batch = np.ascontiguousarray(output, dtype=np.float32)  # the refiner contract: float32 NCHW
        refined = np.asarray(self.refiner(batch))
        if refined.shape != batch.shape:
            raise I2IError(f"the refiner returned shape {refined.shape} for a batch of {batch.shape}")
        return refined
