"""Frames sampled from video files, as PNG images a distillation can label (``distill --data clip.mp4``).

``evenly``: N frames at evenly spaced positions over the whole clip (first and last included).
``scenes``: the N frames where the picture changes most from the frame before (scene cuts first,
then the largest motion), at least ``len / (2N)`` frames apart so that one cut does not give N
neighbours; the clip's first frame is always one of them. The change is the mean absolute
difference of consecutive frames at 64 px width in grey (a cut gives tens of levels, camera
noise a fraction of one).

The frames are written once per (video, size, mtime, count, mode) to a folder the caller owns, with
a manifest written last: a second run with the same clip and options reuses them (and so, the
teacher's cached translations of them, which are keyed by the images' paths and times).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from i2i._files import write_bytes, write_text
from i2i.errors import I2IError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
SAMPLINGS = ("evenly", "scenes")
_PROBE_WIDTH = 64  # frames are compared at this width (grey): cheap, and blind to noise


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def frame_changes(path: Path) -> list[float]:
    """Per frame of the clip, its change from the frame before (0 for the first): the mean absolute
    difference in grey at probe width, in 8-bit levels."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise I2IError(f"cannot open video {path} (not a video, or a codec OpenCV lacks)")
    previous: np.ndarray | None = None
    changes: list[float] = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            size = (_PROBE_WIDTH, max(1, round(h * _PROBE_WIDTH / w)))
            grey = cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
            grey = grey.astype(np.int16)
            changes.append(float(np.abs(grey - previous).mean()) if previous is not None else 0.0)
            previous = grey
    finally:
        capture.release()
    if not changes:
        raise I2IError(f"video {path} has no frames that decode")
    return changes


def choose_frames(changes: list[float], count: int, sampling: str) -> list[int]:
    """Indices (sorted) of the ``count`` frames to keep out of ``len(changes)``, by ``sampling``."""
    n = len(changes)
    if sampling not in SAMPLINGS:
        raise I2IError(f"frame sampling {sampling!r}: choose one of {', '.join(SAMPLINGS)}")
    if count >= n:
        return list(range(n))
    if sampling == "evenly":
        return sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(count)})
    gap = max(1, n // (2 * count))
    chosen = [0]
    for index in sorted(range(1, n), key=lambda i: (-changes[i], i)):
        if len(chosen) == count:
            break
        if all(abs(index - other) >= gap for other in chosen):
            chosen.append(index)
    return sorted(chosen)


def sample_video(path: Path, out: Path, count: int, sampling: str) -> list[Path]:
    """``count`` frames of the video at ``path`` as PNG files in ``out`` (reused when unchanged)."""
    if count < 1:
        raise I2IError(f"--video-frames {count}: take at least one frame per video")
    stat = path.stat()
    key = {"video": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    key |= {"count": count, "sampling": sampling}
    manifest = out / "frames.json"
    try:
        record = json.loads(manifest.read_text())
        if record.get("key") == key and all((out / name).is_file() for name in record["frames"]):
            return [out / name for name in record["frames"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    manifest.unlink(missing_ok=True)  # first: an interrupted rewrite is never taken for complete
    changes = frame_changes(path)
    wanted = choose_frames(changes, count, sampling)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    names: list[str] = []
    capture = cv2.VideoCapture(str(path))
    try:
        index, targets = 0, set(wanted)
        while targets:
            ok, frame = capture.read()
            if not ok:
                break
            if index in targets:
                targets.discard(index)
                encoded_ok, encoded = cv2.imencode(".png", frame)
                if not encoded_ok:
                    raise I2IError(f"cannot encode frame {index} of {path} as PNG")
                name = f"{path.stem}_{index:06d}.png"  # the video's name: frames of two clips never clash
                write_bytes(out / name, encoded.tobytes(), "video frame")
                names.append(name)
            index += 1
    finally:
        capture.release()
    write_text(manifest, json.dumps({"key": key, "frames": names}), "video frames manifest")
    return [out / name for name in names]
