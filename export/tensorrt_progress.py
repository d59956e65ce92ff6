"""TensorRT build progress and interrupts, TensorRT-free: tqdm bars for the build phases that
TensorRT's progress monitor reports, and Ctrl-C / SIGTERM during ``build_serialized_network``
turned into a cancelled build and an interrupt raised after it (``i2i.export.tensorrt`` builds)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from i2i.errors import Terminated


class PhaseBars:
    """tqdm bars for TensorRT's nested build phases."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}
        self.depth: dict[str, int] = {}

    def start(self, phase: str, parent: str | None, steps: int) -> None:
        from tqdm.auto import tqdm

        depth = self.depth.get(parent, -1) + 1 if parent else 0
        self.depth[phase] = depth
        self.bars[phase] = tqdm(
            total=steps, desc=("  " * depth) + phase, position=depth, leave=depth == 0, disable=not self.enabled
        )

    def step(self, phase: str, step: int) -> None:
        bar = self.bars.get(phase)
        if bar is not None:
            bar.n = step + 1
            bar.refresh()

    def finish(self, phase: str) -> None:
        bar = self.bars.pop(phase, None)
        self.depth.pop(phase, None)
        if bar is not None:
            bar.close()

    def close(self) -> None:
        for phase in list(self.bars):
            self.finish(phase)


class BuildMonitor:
    """What TensorRT's progress monitor callbacks do, TensorRT-free.

    The build runs in C++ without the GIL; Python runs a signal handler only when it next executes
    bytecode, which during ``build_serialized_network`` is inside one of these callbacks, where the
    bindings' trampoline prints and swallows any exception (and NvInfer.h allows the callbacks on
    TensorRT's own threads, where Python never runs a handler at all). So while the build runs,
    ``interrupts_as_flag`` replaces the SIGINT and SIGTERM handlers with ones that only record the
    interrupt here; ``step_complete`` returns False once one is recorded (TensorRT cancels the
    build), and ``reraise`` raises it after the build has returned. On TensorRT's own threads the
    handler has not run yet while the main thread is in C++: there each callback first reads the
    signal numbers that Python's C-level handler writes to the wakeup fd at delivery
    (``signal.set_wakeup_fd``, ``signals``). A KeyboardInterrupt raised in a callback anyway (a
    handler installed by someone else) is recorded the same way.
    """

    def __init__(self, bars: PhaseBars) -> None:
        self.bars = bars
        self.interrupt: KeyboardInterrupt | None = None
        self.signals: int | None = None  # the read end of the wakeup fd, while a build runs

    def record(self, interrupt: KeyboardInterrupt) -> None:
        if self.interrupt is None:
            self.interrupt = interrupt

    def poll(self) -> None:
        """Record a SIGINT or SIGTERM delivered since the last look (any thread may call it)."""
        if self.signals is None or self.interrupt is not None:
            return
        try:
            delivered = os.read(self.signals, 64)
        except (BlockingIOError, OSError):
            return
        for number in delivered:
            if number == signal.SIGTERM:
                self.record(Terminated())
            elif number == signal.SIGINT:
                self.record(KeyboardInterrupt())

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None:
        self.poll()
        try:
            if self.interrupt is None:
                self.bars.start(phase, parent or None, steps)
        except KeyboardInterrupt as exc:
            self.record(exc)

    def step_complete(self, phase: str, step: int) -> bool:
        self.poll()
        try:
            if self.interrupt is None:
                self.bars.step(phase, step)
        except KeyboardInterrupt as exc:
            self.record(exc)
        return self.interrupt is None

    def phase_finish(self, phase: str) -> None:
        try:
            self.bars.finish(phase)
        except KeyboardInterrupt as exc:
            self.record(exc)

    def reraise(self) -> None:
        if self.interrupt is not None:
            raise self.interrupt


@contextmanager
def interrupts_as_flag(monitor: BuildMonitor) -> Iterator[None]:
    """For the duration of the block, Ctrl-C and SIGTERM only record a KeyboardInterrupt (or
    Terminated) in ``monitor``; the handlers before are restored after. Signal handlers belong to
    the main thread: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        monitor.record(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    wakeup = _wakeup_pipe(monitor)
    try:
        yield
    finally:
        if wakeup is not None:
            signal.set_wakeup_fd(wakeup[2])
            monitor.signals = None
            os.close(wakeup[0])
            os.close(wakeup[1])
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _wakeup_pipe(monitor: BuildMonitor) -> tuple[int, int, int] | None:
    """(read end, write end, the wakeup fd before): signal numbers written at delivery, readable
    from any thread. POSIX pipes (Windows takes only a socket there: no wakeup fd, the handler alone)."""
    if os.name != "posix":
        return None
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    before = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    monitor.signals = read
    return read, write, before
