"""The browser viewer's frames: the newest one, shared by every stream (``i2i.runtime.web``).

The pipeline only swaps in a frame; a viewer encodes it to JPEG when it is ready for one, once per frame
for all viewers, and counts what it sent and what it skipped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np


class LatestFrame:
    """The newest frame, its sequence number and its JPEG (encoded at most once, on demand)."""

    def __init__(self, quality: int) -> None:
        self.quality = quality
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] | None = None
        self._encode_lock = threading.Lock()
        self.closed = False

    def publish(self, image: np.ndarray) -> None:
        with self._cond:
            self._image = image
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def seq(self) -> int:
        return self._seq

    def wait_newer(self, seq: int, timeout: float) -> int:
        """Block until a frame newer than ``seq`` exists (or timeout/close); returns the newest seq."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or self.closed, timeout=timeout)
            return self._seq

    def jpeg(self) -> tuple[int, bytes] | None:
        """(seq, JPEG bytes) of the newest frame; cv2.imencode releases the GIL while it works."""
        with self._encode_lock:
            with self._cond:
                image, seq = self._image, self._seq
            if image is None:
                return None
            if self._jpeg is None or self._jpeg[0] != seq:
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    return None
                self._jpeg = (seq, data.tobytes())
            return self._jpeg


@dataclass(eq=False)
class StreamClient:
    """One stream viewer: the last frame it was sent, and how many it got or skipped."""

    last: int = 0
    sent: int = 0
    skipped: int = 0
