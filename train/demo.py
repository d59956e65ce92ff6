"""The offline demo dataset: ``i2i-train data demo DIR`` and ``make demo``, with no download.

Crops of scikit-image's bundled photos (domain A), their OpenCV colour pencil sketch (domain B),
and a short camera-motion video over held-out photos, so ``make demo`` can train, export and run
end to end offline. The folder holds both the paired (``train/A``...) and the unpaired
(``trainA``...) layouts, and a manifest written last, so a half-built folder is rebuilt.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from i2i._files import write_text
from i2i.errors import I2IError, MissingDependencyError, install_hint
from i2i.train.data import _resize

# Held-out photos feed the test splits and the video, so the demo shows unseen content.
DEMO_TRAIN_PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left")
DEMO_TEST_PHOTOS = ("rocket", "motorcycle_right")
DEMO_EFFECT_PARAMS = {"sigma_s": 60.0, "sigma_r": 0.07, "shade_factor": 0.05}
_DEMO_FORMAT = 1  # bump when the builder's output changes, so old demo folders are rebuilt
_DEMO_MARKER = ".i2i-demo"  # written first: proves a folder is ours to clear and rebuild
_PAIRED_DIRS = ("train/A", "train/B", "test/A", "test/B")
_UNPAIRED_DIRS = ("trainA", "trainB", "testA", "testB")
_VIDEO_NAME = "video.mp4"
_MANIFEST_NAME = "manifest.json"


def pencil_sketch(image_rgb: np.ndarray) -> np.ndarray:
    """The demo's target domain: OpenCV's colour pencil sketch, a deterministic function of the image."""
    p = DEMO_EFFECT_PARAMS
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    _, colour = cv2.pencilSketch(bgr, sigma_s=p["sigma_s"], sigma_r=p["sigma_r"], shade_factor=p["shade_factor"])
    return cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)


def _load_demo_photos() -> tuple[dict[str, np.ndarray], str]:
    """scikit-image's bundled sample photos (RGB uint8) and its version; no network needed."""
    try:
        from skimage import data
    except ImportError as exc:
        raise MissingDependencyError("scikit-image", "train", "the demo dataset uses its sample photos") from exc
    try:
        left, right, _disparity = data.stereo_motorcycle()
        photos = {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")}
    except Exception as exc:  # a stripped install may try to download the files and fail
        raise I2IError(
            f"cannot load scikit-image sample photos ({exc}); reinstall it with: {install_hint('train')}"
        ) from exc
    photos.update(motorcycle_left=left, motorcycle_right=right)
    return {k: np.ascontiguousarray(v[:, :, :3]) for k, v in photos.items()}, importlib.metadata.version("scikit-image")


def _random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A square crop of 0.5–1× the shorter side at a random place, resized to ``size``."""
    h, w = photo.shape[:2]
    side = round(rng.uniform(0.5, 1.0) * min(h, w))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return _resize(photo[top : top + side, left : left + side], size, size)


def _write_jpeg(path: Path, image_rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise I2IError(f"cannot write {path}; check the folder is writable and the disk not full")


def _write_split(
    out: Path,
    phase: str,
    photos: list[np.ndarray],
    per_photo: int,
    size: int,
    rng: np.random.Generator,
    bar: tqdm,
) -> None:
    """Paired ``<phase>/A|B`` plus unpaired ``<phase>A`` (even crops) and ``<phase>B`` (odd crops' sketches)."""
    index = 0
    for photo in photos:
        for _ in range(per_photo):
            source = _random_crop(photo, size, rng)
            target = pencil_sketch(source)
            _write_jpeg(out / phase / "A" / f"{index:04d}.jpg", source)
            _write_jpeg(out / phase / "B" / f"{index:04d}.jpg", target)
            # Unpaired sets take disjoint crops, so no A image has its own sketch in B.
            if index % 2 == 0:
                _write_jpeg(out / f"{phase}A" / f"{index // 2:04d}.jpg", source)
            else:
                _write_jpeg(out / f"{phase}B" / f"{index // 2:04d}.jpg", target)
            index += 1
            bar.update()


@dataclass(frozen=True)
class _Shot:
    """One camera move over a photo: the window slides and zooms along an eased path."""

    photo: np.ndarray  # (H, W, 3) RGB, scaled so the largest window is 1.25× the video frame
    zoom: tuple[float, float]  # window size at start / end, as a fraction of the largest that fits
    pan: tuple[tuple[float, float], tuple[float, float]]  # (x, y) at start / end, 0..1 of the free room

    def render(self, u: float, width: int, height: int) -> np.ndarray:
        """Frame at progress ``u`` in [0, 1]."""
        e = 0.5 * u + 0.5 * u * u * (3 - 2 * u)  # half linear, half smoothstep: eased but never at rest
        ph, pw = self.photo.shape[:2]
        scale = min(pw / width, ph / height) * (self.zoom[0] + (self.zoom[1] - self.zoom[0]) * e)
        (x0, y0), (x1, y1) = self.pan
        left = (x0 + (x1 - x0) * e) * (pw - width * scale)
        top = (y0 + (y1 - y0) * e) * (ph - height * scale)
        # dst pixel centre (x + 0.5) maps to src left + scale * (x + 0.5) - 0.5 (sub-pixel, so motion is smooth)
        m = np.array([[scale, 0, left + 0.5 * scale - 0.5], [0, scale, top + 0.5 * scale - 0.5]])
        return cv2.warpAffine(
            self.photo,
            m,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )


def _make_shot(photo: np.ndarray, width: int, height: int, seconds: float, rng: np.random.Generator) -> _Shot:
    h, w = photo.shape[:2]
    factor = 1.25 / min(w / width, h / height)
    photo = _resize(photo, max(width, round(w * factor)), max(height, round(h * factor)))
    # Gentle moves: over a 3 s shot ~15% zoom and half the free room of pan, in a random direction.
    # Shorter shots move proportionally less, so the camera speed never exceeds that.
    reach = min(1.0, seconds / 3.0)
    wide, close = float(rng.uniform(0.95, 1.0)), float(rng.uniform(0.8, 0.85))
    zoom = (wide, wide + (close - wide) * reach)
    x0, x1 = float(rng.uniform(0.15, 0.3)), float(rng.uniform(0.7, 0.85))
    y0, y1 = (float(v) for v in rng.uniform(0.3, 0.7, 2))
    x1, y1 = x0 + (x1 - x0) * reach, y0 + (y1 - y0) * reach
    if rng.random() < 0.5:  # zoom out instead of in
        zoom = zoom[::-1]
    if rng.random() < 0.5:  # pan right to left
        x0, x1 = 1.0 - x0, 1.0 - x1
    return _Shot(photo, zoom, ((x0, y0), (x1, y1)))


def _write_video(
    path: Path,
    photos: list[np.ndarray],
    seconds: float,
    size: tuple[int, int],
    fps: float,
    rng: np.random.Generator,
    bar: tqdm,
) -> int:
    """Pan-and-zoom shots over ``photos`` with linear cross-fades; returns the frame count.

    Shot k spans [k·L − F/2, (k+1)·L + F/2]; its weight ramps 0→1 and 1→0 over F at the inner
    boundaries, so neighbouring weights sum to 1 and the camera keeps moving during a fade.
    """
    width, height = size
    n_frames = max(1, round(seconds * fps))
    shot_len = seconds / len(photos)
    shots = [_make_shot(p, width, height, shot_len, rng) for p in photos]
    fade = min(0.6, shot_len / 2)
    partial = path.with_name("video.partial.mp4")  # OpenCV picks the container from the extension
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        writer.release()
        partial.unlink(missing_ok=True)
        raise I2IError(f"cannot write video {partial}: OpenCV has no 'mp4v' encoder; reinstall opencv-python")
    try:  # the partial video goes on any exception, Ctrl-C and SIGTERM included
        for f in range(n_frames):
            t = f / fps
            frame = np.zeros((height, width, 3), np.float32)
            for k, shot in enumerate(shots):
                start, end = k * shot_len - fade / 2, (k + 1) * shot_len + fade / 2
                fade_in = 1.0 if k == 0 else np.clip((t - start) / fade, 0.0, 1.0)
                fade_out = 1.0 if k == len(shots) - 1 else np.clip((end - t) / fade, 0.0, 1.0)
                weight = float(fade_in * fade_out)
                if weight > 0:
                    u = float(np.clip((t - start) / (end - start), 0.0, 1.0))
                    frame += weight * shot.render(u, width, height)
            writer.write(cv2.cvtColor(np.clip(frame + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
            bar.update()
        writer.release()
        os.replace(partial, path)
    except BaseException:
        writer.release()
        partial.unlink(missing_ok=True)
        raise
    return n_frames


def _reusable(out: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The existing manifest if it was built with ``params`` and its files are all still there."""
    try:
        manifest = json.loads((out / _MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("parameters") != params:
        return None
    for folder, count in manifest.get("counts", {}).items():
        if not (out / folder).is_dir() or len(list((out / folder).glob("*.jpg"))) != count:
            return None
    return manifest if (out / _VIDEO_NAME).is_file() else None


def _prepare_output(out: Path) -> None:
    """Clear a previous (possibly half-built) demo in ``out``; refuse to touch a folder that is not one."""
    ours = [*_PAIRED_DIRS, *_UNPAIRED_DIRS, _VIDEO_NAME]
    if not (out / _DEMO_MARKER).exists():
        clash = next((out / p for p in ours if (out / p).exists()), None)
        if clash is not None:
            raise I2IError(
                f"{out} already holds data not made by the demo builder ({clash}); choose an empty or new folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / _MANIFEST_NAME).unlink(missing_ok=True)  # first, so an interrupted rebuild is never "reused"
    (out / _DEMO_MARKER).write_text("written by i2i.train.demo.build_demo_dataset; safe to delete with it\n")
    for name in ours:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for name in (*_PAIRED_DIRS, *_UNPAIRED_DIRS):
        (out / name).mkdir(parents=True)


def _demo_parameters(
    crop: int,
    crops_per_photo: int,
    test_crops_per_photo: int,
    video_seconds: float,
    size: tuple[int, int],
    fps: float,
    seed: int,
) -> dict[str, Any]:
    """The builder's parameters as the manifest records them (a folder with the same ones is reused)."""
    width, height = (int(v) for v in size)
    if min(crop, crops_per_photo, test_crops_per_photo, width, height) < 1 or video_seconds <= 0 or fps <= 0:
        raise I2IError("demo dataset sizes, counts, video_seconds and fps must all be positive")
    return {
        "format": _DEMO_FORMAT,
        "crop": int(crop),
        "crops_per_photo": int(crops_per_photo),
        "test_crops_per_photo": int(test_crops_per_photo),
        "video_seconds": float(video_seconds),
        "video_size": [width, height],
        "fps": float(fps),
        "seed": int(seed),
    }


def _write_demo(out: Path, photos: dict[str, np.ndarray], params: dict[str, Any], progress: bool) -> int:
    """Both splits and the video, deterministic from the seed; returns the video's frame count."""
    crop, per_train, per_test = params["crop"], params["crops_per_photo"], params["test_crops_per_photo"]
    seconds, (width, height), fps = params["video_seconds"], params["video_size"], params["fps"]
    train_rng, test_rng, video_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(params["seed"]).spawn(3))
    n_frames = max(1, round(seconds * fps))
    total = len(DEMO_TRAIN_PHOTOS) * per_train + len(DEMO_TEST_PHOTOS) * per_test + n_frames
    with tqdm(total=total, desc="demo dataset", unit="img", disable=not progress) as bar:
        _write_split(out, "train", [photos[n] for n in DEMO_TRAIN_PHOTOS], per_train, crop, train_rng, bar)
        _write_split(out, "test", [photos[n] for n in DEMO_TEST_PHOTOS], per_test, crop, test_rng, bar)
        bar.set_description("demo video")
        video = [photos[n] for n in DEMO_TEST_PHOTOS]
        return _write_video(out / _VIDEO_NAME, video, seconds, (width, height), fps, video_rng, bar)


def _manifest(out: Path, params: dict[str, Any], n_frames: int, skimage_version: str, seconds: float) -> dict[str, Any]:
    width, height = params["video_size"]
    return {
        "parameters": params,
        "photos": {"source": "skimage.data", "train": list(DEMO_TRAIN_PHOTOS), "test": list(DEMO_TEST_PHOTOS)},
        "effect": {"name": "cv2.pencilSketch", "output": "colour", **DEMO_EFFECT_PARAMS},
        "counts": {d: len(list((out / d).glob("*.jpg"))) for d in (*_PAIRED_DIRS, *_UNPAIRED_DIRS)},
        "video": {
            "file": _VIDEO_NAME,
            "fourcc": "mp4v",
            "frames": n_frames,
            "width": width,
            "height": height,
            "fps": params["fps"],
        },
        "scikit_image_version": skimage_version,
        "opencv_version": cv2.__version__,
        "build_seconds": round(seconds, 2),
    }


def build_demo_dataset(
    out_dir: str | Path,
    *,
    crop: int = 256,
    crops_per_photo: int = 24,
    test_crops_per_photo: int = 6,
    video_seconds: float = 6.0,
    video_size: tuple[int, int] = (320, 240),
    fps: float = 15.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Build (or reuse) the offline demo dataset in ``out_dir`` and return its manifest.

    A = random crops of scikit-image photos, B = ``pencil_sketch(A)``; written in both the paired
    (``train/A``...) and unpaired (``trainA``...) layouts, plus ``video.mp4`` over the held-out
    photos. Everything is deterministic from ``seed``; a folder whose manifest records the same
    parameters is returned as is, and the manifest is written last so a half-built folder is redone.
    """
    out = Path(out_dir)
    params = _demo_parameters(crop, crops_per_photo, test_crops_per_photo, video_seconds, video_size, fps, seed)
    existing = _reusable(out, params)
    if existing is not None:
        return existing
    started = time.perf_counter()
    photos, skimage_version = _load_demo_photos()
    _prepare_output(out)
    n_frames = _write_demo(out, photos, params, progress)
    manifest = _manifest(out, params, n_frames, skimage_version, time.perf_counter() - started)
    write_text(out / _MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n", "demo manifest")  # last, atomically
    return manifest
