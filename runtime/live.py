"""A live stats display on the terminal while frames stream: rich when installed, a plain line if not.

Off unless stderr is a terminal (a log file or a CI job gets the final table only, not a flood
of redraws). ``rich`` is not a runtime dependency: it is imported here, only when the display is
on, and a one-line ``\\r`` status replaces it when it is missing.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from i2i.runtime.stats import E2E, StageStats

REFRESH_S = 0.5


def live_supported(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def status_line(stats: StageStats, total: int | None = None) -> str:
    snap = stats.snapshot()
    done = f"{snap['frames']}/{total}" if total else f"{snap['frames']}"
    e2e = f"{snap['e2e_ms']:.0f} ms" if snap["e2e_ms"] is not None else "-"
    text = f"frames {done}  {snap['fps']:.1f} FPS  e2e {e2e}"
    if snap["dropped"]:
        text += f"  dropped {snap['dropped']}"
    return text


class LiveDisplay:
    """``with LiveDisplay(stats, total, enabled):`` redraws stats twice a second until the block ends."""

    def __init__(self, stats: StageStats, total: int | None = None, enabled: bool = True) -> None:
        self.stats = stats
        self.total = total
        self.enabled = enabled
        self._live: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __enter__(self) -> LiveDisplay:
        if not self.enabled:
            return self
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:
            self._thread = threading.Thread(target=self._plain, name="i2i-live", daemon=True)
            self._thread.start()
            return self
        self._live = Live(
            _RichView(self), console=Console(stderr=True), refresh_per_second=1 / REFRESH_S, transient=True
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2)
            sys.stderr.write("\n")
            self._thread = None

    def _plain(self) -> None:
        while not self._stop.wait(REFRESH_S):
            sys.stderr.write("\r" + status_line(self.stats, self.total).ljust(79))
            sys.stderr.flush()

    def table(self) -> Any:
        from rich.table import Table

        summary = self.stats.summary()
        table = Table(title=status_line(self.stats, self.total), title_justify="left")
        for column in ("stage", "count", "p50 ms", "p95 ms", "p99 ms"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for name, s in summary["stages"].items():
            label = "e2e (capture→sink)" if name == E2E else name
            table.add_row(label, str(s["count"]), *(f"{s[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms")))
        return table


class _RichView:
    """Rebuilt on every refresh, so the table always shows current figures."""

    def __init__(self, display: LiveDisplay) -> None:
        self.display = display

    def __rich__(self) -> Any:
        return self.display.table()
