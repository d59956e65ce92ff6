"""Image folders → training tensors, and the offline demo dataset.

Two dataset layouts, the ones pytorch-CycleGAN-and-pix2pix made common:

  paired (pix2pix)      root/train/A/x.png  ↔  root/train/B/x.jpg   (matched by file stem)
  unpaired (CycleGAN)   root/trainA/*.png       root/trainB/*.png    (no correspondence)

Both apply ``resize_and_crop`` (resize to ``load_size`` square, random ``crop_size`` crop, random
horizontal flip) and return RGB float tensors in [-1, 1], the range a tanh generator produces.

Randomness comes only from torch's global RNG (``torch.randint``), never from a generator stored on
the dataset: DataLoader seeds torch in every worker from its own ``generator`` (base seed +
worker id), so ``torch.manual_seed`` plus ``DataLoader(generator=...)`` reproduces a run, while a
generator copied into each worker would repeat the same crops in every worker.

``build_demo_dataset`` makes a small dataset and clip with no download: crops of scikit-image's
bundled photos (domain A), their OpenCV colour pencil sketch (domain B), and a short camera-motion
video over held-out photos, so ``make demo`` can train, export and run end to end offline.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from i2i._files import write_text
from i2i.errors import I2IError, MissingDependencyError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class Sample(TypedDict):
    """One training example; DataLoader's default collate batches it into (B, 3, H, W) tensors."""

    source: torch.Tensor  # (3, crop, crop) float32 in [-1, 1], RGB
    target: torch.Tensor  # (3, crop, crop) float32 in [-1, 1], RGB
    name: str  # file stem of the source image


# --------------------------------------------------------------------------- image files


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files such as macOS ``._x.jpg`` skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise I2IError(f"dataset folder not found: {folder}; check the path or create it")
    images = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not images:
        raise I2IError(f"no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)}); add some images there")
    for path in images:
        # The file's signature only (a few bytes): an empty or non-image file fails here, before
        # training starts, rather than at the step that first draws it. A file damaged further in
        # fails when it is decoded, with the same message (load_image_rgb).
        if not cv2.haveImageReader(str(path)):
            raise I2IError(f"cannot read image: {path}; it is empty, corrupt or not an image, remove or replace it")
    return images


def load_image_rgb(path: str | Path) -> np.ndarray:
    """Read any common image as (H, W, 3) uint8 RGB, whatever its channels or bit depth.

    Read UNCHANGED and convert ourselves, so 16-bit files are rounded (not truncated) to 8 bits and
    alpha is dropped rather than composited over an arbitrary background.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise I2IError(f"cannot read image: {path}; it is missing, corrupt or not an image, remove or replace it")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(x / 257)
    elif image.dtype != np.uint8:
        raise I2IError(f"unsupported pixel type {image.dtype} in {path}; convert it to 8- or 16-bit")
    if image.ndim == 3 and image.shape[2] in (1, 2):  # gray or gray + alpha
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with INTER_AREA when shrinking (no aliasing) and INTER_CUBIC when enlarging (sharper)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrinking = width <= w and height <= h
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32 in [-1, 1] (x / 127.5 - 1)."""
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    return torch.from_numpy(chw).float().div_(127.5).sub_(1.0)


# --------------------------------------------------------------------------- transform


@dataclass(frozen=True)
class ResizeCropFlip:
    """pix2pix's ``resize_and_crop`` + flip; one call applies ONE crop/flip to all images given.

    Passing A and B of a pair in one call keeps them aligned; the unpaired dataset calls it once per
    image so the two domains get independent crops. ``train=False`` means a centre crop and no flip.
    """

    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    train: bool = True

    def __post_init__(self) -> None:
        if self.crop_size < 1 or self.load_size < 1:
            raise I2IError(f"load_size ({self.load_size}) and crop_size ({self.crop_size}) must be positive")
        if self.crop_size > self.load_size:
            raise I2IError(
                f"crop_size ({self.crop_size}) must not exceed load_size ({self.load_size}); "
                "raise load_size or lower crop_size"
            )

    def __call__(self, *images: np.ndarray, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        room = self.load_size - self.crop_size
        if self.train:
            top, left = (int(v) for v in torch.randint(0, room + 1, (2,), generator=generator))
            flipped = self.flip and bool(torch.randint(0, 2, (1,), generator=generator).item())
        else:
            top = left = room // 2
            flipped = False
        out = []
        for image in images:
            image = _resize(image, self.load_size, self.load_size)
            image = image[top : top + self.crop_size, left : left + self.crop_size]
            out.append(to_tensor(image[:, ::-1] if flipped else image))
        return out


# --------------------------------------------------------------------------- datasets


def _subfolders(root: Path, limit: int = 8) -> str:
    """Folders in ``root`` and one level below, e.g. ``trainA, train/A``, for layout errors."""
    found: list[str] = []
    for top in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found.append(top.name)
        found += [f"{top.name}/{p.name}" for p in sorted(top.iterdir()) if p.is_dir()]
    if not found:
        return "no subfolders"
    more = f" (+{len(found) - limit} more)" if len(found) > limit else ""
    return ", ".join(found[:limit]) + more


def _require_layout(root: Path, phase: str, paired: bool) -> tuple[Path, Path]:
    """The A and B folders of ``root``, or an error saying what was expected and what is there."""
    if not root.is_dir():
        raise I2IError(f"dataset folder not found: {root}; check the path or create it")
    paired_dirs = (root / phase / "A", root / phase / "B")
    unpaired_dirs = (root / f"{phase}A", root / f"{phase}B")
    wanted, other = (paired_dirs, unpaired_dirs) if paired else (unpaired_dirs, paired_dirs)
    if all(d.is_dir() for d in wanted):
        return wanted
    names = " and ".join(d.relative_to(root).as_posix() for d in wanted)
    if all(d.is_dir() for d in other):
        kind, need = ("unpaired (CycleGAN)", "an unpaired") if paired else ("paired (pix2pix)", "a paired")
        hint = f"; this is the {kind} layout: choose {need} method or rearrange the images"
    else:
        hint = "; put the images there"
    layout = "paired" if paired else "unpaired"
    raise I2IError(f"{root} is not a {layout} dataset: expected subfolders {names}, found {_subfolders(root)}{hint}")


def _by_stem(paths: list[Path]) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise I2IError(f"two images share the name {p.stem!r}: {stems[p.stem]} and {p}; rename or remove one")
        stems[p.stem] = p
    return stems


def _examples(stems: list[str]) -> str:
    return ", ".join(stems[:3]) + (", ..." if len(stems) > 3 else "")


class PairedFolderDataset(Dataset[Sample]):
    """pix2pix layout ``root/<phase>/A`` ↔ ``root/<phase>/B``, pairs matched by file stem."""

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
    ) -> None:
        self.root = Path(root)
        folder_a, folder_b = _require_layout(self.root, phase, paired=True)
        images_a, images_b = _by_stem(list_images(folder_a)), _by_stem(list_images(folder_b))
        only_a = sorted(images_a.keys() - images_b.keys())
        only_b = sorted(images_b.keys() - images_a.keys())
        if only_a or only_b:
            parts = [f"{len(only_a)} in A have no B ({_examples(only_a)})"] if only_a else []
            parts += [f"{len(only_b)} in B have no A ({_examples(only_b)})"] if only_b else []
            raise I2IError(
                f"{folder_a} and {folder_b} do not match: {'; '.join(parts)}; "
                "every image needs a partner with the same file name (extension may differ)"
            )
        self.names = sorted(images_a)
        self.source_paths = [images_a[n] for n in self.names]
        self.target_paths = [images_b[n] for n in self.names]
        self.transform = ResizeCropFlip(load_size, crop_size, flip, train)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        source = load_image_rgb(self.source_paths[index])
        target = load_image_rgb(self.target_paths[index])
        source_t, target_t = self.transform(source, target)  # one crop/flip for both: stays aligned
        return {"source": source_t, "target": target_t, "name": self.names[index]}


class UnpairedFolderDataset(Dataset[Sample]):
    """CycleGAN layout ``root/<phase>A``, ``root/<phase>B``; each source gets a random target.

    An epoch visits every A image once (length = the larger domain, A wrapping round), and the B
    partner is drawn from torch's RNG so no fixed A↔B pairing is ever learned.
    """

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
    ) -> None:
        self.root = Path(root)
        folder_a, folder_b = _require_layout(self.root, phase, paired=False)
        self.source_paths = list_images(folder_a)
        self.target_paths = list_images(folder_b)
        self.transform = ResizeCropFlip(load_size, crop_size, flip, train)

    def __len__(self) -> int:
        return max(len(self.source_paths), len(self.target_paths))

    def __getitem__(self, index: int) -> Sample:
        source_path = self.source_paths[index % len(self.source_paths)]
        target_path = self.target_paths[int(torch.randint(len(self.target_paths), (1,)).item())]
        (source,) = self.transform(load_image_rgb(source_path))  # independent crop/flip per domain
        (target,) = self.transform(load_image_rgb(target_path))
        return {"source": source, "target": target, "name": source_path.stem}


# --------------------------------------------------------------------------- demo dataset

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
            f"cannot load scikit-image sample photos ({exc}); reinstall it with: pip install 'i2i[train]'"
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
    (out / _DEMO_MARKER).write_text("written by i2i.train.data.build_demo_dataset; safe to delete with it\n")
    for name in ours:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for name in (*_PAIRED_DIRS, *_UNPAIRED_DIRS):
        (out / name).mkdir(parents=True)


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
    width, height = (int(v) for v in video_size)
    if min(crop, crops_per_photo, test_crops_per_photo, width, height) < 1 or video_seconds <= 0 or fps <= 0:
        raise I2IError("demo dataset sizes, counts, video_seconds and fps must all be positive")
    params: dict[str, Any] = {
        "format": _DEMO_FORMAT,
        "crop": int(crop),
        "crops_per_photo": int(crops_per_photo),
        "test_crops_per_photo": int(test_crops_per_photo),
        "video_seconds": float(video_seconds),
        "video_size": [width, height],
        "fps": float(fps),
        "seed": int(seed),
    }
    existing = _reusable(out, params)
    if existing is not None:
        return existing

    started = time.perf_counter()
    photos, skimage_version = _load_demo_photos()
    _prepare_output(out)
    train_rng, test_rng, video_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    n_frames = max(1, round(video_seconds * fps))
    total = len(DEMO_TRAIN_PHOTOS) * crops_per_photo + len(DEMO_TEST_PHOTOS) * test_crops_per_photo + n_frames
    with tqdm(total=total, desc="demo dataset", unit="img", disable=not progress) as bar:
        _write_split(out, "train", [photos[n] for n in DEMO_TRAIN_PHOTOS], crops_per_photo, crop, train_rng, bar)
        _write_split(out, "test", [photos[n] for n in DEMO_TEST_PHOTOS], test_crops_per_photo, crop, test_rng, bar)
        bar.set_description("demo video")
        video = [photos[n] for n in DEMO_TEST_PHOTOS]
        n_frames = _write_video(out / _VIDEO_NAME, video, video_seconds, (width, height), fps, video_rng, bar)

    manifest: dict[str, Any] = {
        "parameters": params,
        "photos": {
            "source": "skimage.data",
            "train": list(DEMO_TRAIN_PHOTOS),
            "test": list(DEMO_TEST_PHOTOS),
        },
        "effect": {"name": "cv2.pencilSketch", "output": "colour", **DEMO_EFFECT_PARAMS},
        "counts": {d: len(list((out / d).glob("*.jpg"))) for d in (*_PAIRED_DIRS, *_UNPAIRED_DIRS)},
        "video": {
            "file": _VIDEO_NAME,
            "fourcc": "mp4v",
            "frames": n_frames,
            "width": width,
            "height": height,
            "fps": float(fps),
        },
        "scikit_image_version": skimage_version,
        "opencv_version": cv2.__version__,
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    write_text(out / _MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n", "demo manifest")  # last, atomically
    return manifest
