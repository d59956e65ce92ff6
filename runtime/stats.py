"""Per-stage timing for the pipeline: count, mean and tail latencies, plus overall FPS.

Stages are named by what they time: ``read`` (capture thread), ``preprocess``, ``infer``,
``refine`` (optional), ``postprocess``, ``upsample`` (``--infer-size``), ``stabilize``
(``--stabilize``), ``write`` (sink), and ``e2e``: per frame, from the moment
it was captured to the moment the sink had it (capture → display), which is what a viewer feels.

Tail latencies (p95/p99) matter more than the mean for real-time video: a stage that is fast
on average but stalls every few seconds drops frames. Samples are kept in a bounded deque so
a run of hours uses constant memory; count, mean and max cover the whole run, percentiles the
most recent ``max_samples`` samples.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from i2i._files import write_text

E2E = "e2e"  # end-to-end latency: capture -> sink, per frame


class _StageSamples:
    """Durations of one stage: the recent window plus whole-run aggregates."""

    def __init__(self, max_samples: int) -> None:
        self.recent: deque[float] = deque(maxlen=max_samples)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.recent.append(seconds)
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def summary(self) -> dict[str, float | int]:
        p50, p95, p99 = np.percentile(np.fromiter(self.recent, dtype=np.float64), [50, 95, 99]) * 1e3
        return {
            "count": self.count,
            "mean_ms": self.total / self.count * 1e3,
            "p50_ms": float(p50),
            "p95_ms": float(p95),
            "p99_ms": float(p99),
            "max_ms": self.max * 1e3,
        }


class StageStats:
    """Records stage durations (seconds) and frame counts; the wall clock starts at construction.

    Safe to share between the capture thread and the main loop: updates take a lock.
    """

    def __init__(self, max_samples: int = 100_000) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        self.max_samples = max_samples
        self.frames = 0
        self.dropped = 0  # frames the capture thread discarded (realtime mode)
        self.interrupted = False  # the run was stopped by Ctrl-C (outputs are still valid)
        self.info: dict[str, Any] = {}  # what ran: backend, source, sink, mode (for the JSON and viewers)
        self.counters: dict[str, int] = {}  # other events: stream reconnects, viewer-side drops
        self._done: deque[float] = deque(maxlen=256)  # completion times of recent frames (live FPS)
        self._stages: dict[str, _StageSamples] = {}  # insertion order = first-recorded order
        self._lock = threading.Lock()
        self._t_start = time.perf_counter()
        self._t_stop: float | None = None

    def start(self) -> None:
        """(Re)start the wall clock, e.g. after model warm-up."""
        self._t_start = time.perf_counter()
        self._t_stop = None

    def stop(self) -> None:
        """Freeze the wall clock at the end of the run."""
        self._t_stop = time.perf_counter()

    @property
    def wall_s(self) -> float:
        end = self._t_stop if self._t_stop is not None else time.perf_counter()
        return end - self._t_start

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            samples = self._stages.get(stage)
            if samples is None:
                samples = self._stages[stage] = _StageSamples(self.max_samples)
            samples.add(seconds)

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """``with stats.time("infer"): ...`` records the block's elapsed time (also if it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def count_frame(self, n: int = 1) -> None:
        now = time.perf_counter()
        with self._lock:
            self.frames += n
            self._done.extend([now] * n)

    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self.counters[counter] = self.counters.get(counter, 0) + n

    def count_drop(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def summary(self) -> dict[str, Any]:
        wall = self.wall_s
        with self._lock:
            stages = {name: samples.summary() for name, samples in self._stages.items()}
            frames = self.frames
            dropped = self.dropped
            counters = dict(self.counters)
        if E2E in stages:  # printed and stored last: it spans all the stages above it
            stages[E2E] = stages.pop(E2E)
        return {
            "frames": frames,
            "wall_s": wall,
            "fps": frames / wall if wall > 0 else 0.0,
            "dropped": dropped,
            "interrupted": self.interrupted,
            "stages": stages,
            "counters": counters,
            "info": dict(self.info),
        }

    def snapshot(self, window_s: float = 2.0) -> dict[str, Any]:
        """Cheap figures for overlays and live displays (no percentiles over the whole run).

        ``fps`` counts frames finished in the last ``window_s`` seconds, so it falls to zero when
        the pipeline stalls instead of showing a stale average.
        """
        now = time.perf_counter()
        with self._lock:
            recent = [t for t in self._done if now - t <= window_s]
            e2e = self._stages.get(E2E)
            last = list(itertools.islice(reversed(e2e.recent), 30)) if e2e is not None else []
            frames, dropped = self.frames, self.dropped
        span = min(window_s, max(now - self._t_start, 1e-9))
        return {
            "frames": frames,
            "dropped": dropped,
            "fps": len(recent) / span,
            "e2e_ms": float(np.mean(last)) * 1e3 if last else None,
            "wall_s": self.wall_s,
        }

    def format_table(self) -> str:
        summary = self.summary()
        stages = summary["stages"]
        width = max([len("stage"), *map(len, stages)])
        columns = ("count", "mean", "p50", "p95", "p99", "max")
        lines = [f"{'stage':<{width}}  " + "  ".join(f"{c:>8}" for c in columns) + "  (ms)"]
        for name, s in stages.items():
            if name == E2E and len(stages) > 1:
                lines.append("-" * len(lines[0]))
            values = [s["mean_ms"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"]]
            lines.append(f"{name:<{width}}  {s['count']:>8}  " + "  ".join(f"{v:>8.2f}" for v in values))
        totals = f"frames {summary['frames']}  wall {summary['wall_s']:.2f} s  {summary['fps']:.1f} FPS"
        if summary["dropped"]:
            totals += f"  dropped {summary['dropped']}"
        for name, value in summary["counters"].items():
            totals += f"  {name} {value}"
        lines.append(totals)
        return "\n".join(lines)

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write ``summary()`` as JSON, atomically (creating the parent folder); a failure is one
        I2IError naming the file."""
        write_text(path, json.dumps(self.summary(), indent=2) + "\n", "stats")
