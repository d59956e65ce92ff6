"""Image folders → training tensors.

Three dataset layouts, the ones pytorch-CycleGAN-and-pix2pix made common:

  paired (pix2pix)      root/train/A/x.png  ↔  root/train/B/x.jpg   (matched by file stem)
  aligned (pix2pix)     root/train/x.jpg = A|B side by side, 2W×H   (the reference's datasets as distributed)
  unpaired (CycleGAN)   root/trainA/*.png       root/trainB/*.png    (no correspondence)

``direction="BtoA"`` swaps the roles of A and B in every layout: B becomes the input (``source``).
An aligned file must have an even width larger than its height (two halves side by side); a
square or portrait image is a single image, not a pair, and is refused with its name.

All apply one of the reference's ``--preprocess`` modes (:class:`ResizeCropFlip`; default
``resize_and_crop``: resize to ``load_size`` square, random ``crop_size`` crop), round the size to a
multiple of 4, flip at random and return RGB float tensors in [-1, 1], the range a tanh generator
produces. Resizing is PIL's (bicubic, antialiased when shrinking), what the reference's
``transforms.Resize(..., BICUBIC)`` calls, so the same file gives the same pixels as there.

Randomness comes only from torch's global RNG (``torch.randint``), never from a generator stored on
the dataset: DataLoader seeds torch in every worker from its own ``generator`` (base seed +
worker id), so ``torch.manual_seed`` plus ``DataLoader(generator=...)`` reproduces a run, while a
generator copied into each worker would repeat the same crops in every worker.

The offline demo dataset is built by :mod:`i2i.train.demo`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict, TypeVar

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from i2i._files import write_bytes
from i2i.common import IMAGE_EXTENSIONS
from i2i.common import list_images as image_files
from i2i.errors import I2IError

DIRECTIONS = ("AtoB", "BtoA")
# The reference's --preprocess modes (pytorch-CycleGAN-and-pix2pix and CUT data/base_dataset.py).
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
SIZE_BASE = 4  # every output side is rounded to a multiple of this (the reference's __make_power_2(base=4))
RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}

_T_co = TypeVar("_T_co", covariant=True)


class SizedDataset(Protocol[_T_co]):
    """A map-style dataset with a length, what the training loop takes (torch's ``Dataset``
    declares no ``__len__``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> _T_co: ...


class Sample(TypedDict):
    """One training example; DataLoader's default collate batches it into (B, 3, H, W) tensors."""

    source: torch.Tensor  # (3, crop, crop) float32 in [-1, 1], RGB
    target: torch.Tensor  # (3, crop, crop) float32 in [-1, 1], RGB
    name: str  # file stem of the source image


# --------------------------------------------------------------------------- image files


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (``i2i.common.list_images``), each checked to be readable;
    a missing folder, no images or an unreadable file is one error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise I2IError(f"dataset folder not found: {folder}; check the path or create it")
    images = image_files(folder)
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


def _resize(image: np.ndarray, width: int, height: int, resample: str = "bicubic") -> np.ndarray:
    """(H, W, 3) uint8 → (height, width, 3) by PIL's ``Image.resize``, what the reference's
    ``transforms.Resize`` calls on its PIL images: bicubic by default (pix2pix, CycleGAN, CUT),
    ``"bilinear"`` is torchvision's default (STIG's loader). PIL widens the filter by the scale
    factor when it shrinks, so shrinking antialiases; the same size comes back unchanged."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if resample not in RESAMPLING:
        raise I2IError(f"resample {resample!r}: choose {' or '.join(RESAMPLING)}")
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), RESAMPLING[resample])
    return np.asarray(resized)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32 in [-1, 1] (x / 127.5 - 1)."""
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    return torch.from_numpy(chw).float().div_(127.5).sub_(1.0)


# --------------------------------------------------------------------------- transform


def round_to_base(image: np.ndarray, base: int = SIZE_BASE) -> np.ndarray:
    """The reference's ``__make_power_2``: each side to the nearest multiple of ``base`` (Python's
    ``round``, so halves go to the even multiple: 6 → 8, 10 → 8), resized bicubic if it moved."""
    h, w = image.shape[:2]
    new_h, new_w = int(round(h / base) * base), int(round(w / base) * base)
    if new_h < base or new_w < base:
        raise I2IError(f"image {w}x{h} (WxH) is too small: each side must round to at least {base} pixels")
    return _resize(image, new_w, new_h)


@dataclass(frozen=True)
class ResizeCropFlip:
    """The reference's ``get_transform``: one ``--preprocess`` mode, the rounding to a multiple of
    4, a horizontal flip; one call applies ONE crop/flip to all images given.

    Modes (the reference's names and sizes; W×H is the image, L the load size, C the crop size):

    ========================  =====================================================  ===========
    ``resize_and_crop``       resize to L×L, random C×C crop (the default)            C×C
    ``crop``                  random C×C crop of the image as it is                   C×C
    ``scale_width``           width to L, height int(max(L·H/W, C)) (aspect kept)    L×~L·H/W
    ``scale_width_and_crop``  scale_width, then a random C×C crop                     C×C
    ``none``                  nothing but the rounding                                ~W×H
    ========================  =====================================================  ===========

    The crop's room comes from the first image's size, as the reference's ``get_params``; for
    ``scale_width_and_crop`` the vertical room is L·H//W − C (not the scaled height, which the
    ``max(…, C)`` may have raised: such a crop starts at the top, as there). Every result is then
    rounded to a multiple of 4 (:func:`round_to_base`): CUT's loader always does,
    pytorch-CycleGAN-and-pix2pix's only in ``none``, which differs only where a crop size or a
    scaled height is not a multiple of 4 (nets of 2 or more stride-2 levels refuse those anyway).

    Passing A and B of a pair in one call keeps them aligned; the unpaired dataset calls it once per
    image so the two domains get independent crops. ``train=False`` means a centre crop and no flip.
    Where the reference would pad a crop with black (an image smaller than the crop), this refuses.
    """

    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    train: bool = True
    preprocess: str = "resize_and_crop"

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise I2IError(f"--preprocess {self.preprocess!r}: choose one of {', '.join(PREPROCESS_MODES)}")
        if self.crop_size < 1 or self.load_size < 1:
            raise I2IError(f"load_size ({self.load_size}) and crop_size ({self.crop_size}) must be positive")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.crop_size > self.load_size:
            raise I2IError(
                f"crop_size ({self.crop_size}) must not exceed load_size ({self.load_size}); "
                "raise load_size or lower crop_size"
            )

    @property
    def crops(self) -> bool:
        return "crop" in self.preprocess

    def room(self, width: int, height: int) -> tuple[int, int]:
        """(horizontal, vertical) room for the crop's corner: the reference's ``get_params``."""
        if self.preprocess == "resize_and_crop":
            new_w = new_h = self.load_size
        elif self.preprocess == "scale_width_and_crop":
            new_w, new_h = self.load_size, self.load_size * height // width
        else:
            new_w, new_h = width, height
        return max(0, new_w - self.crop_size), max(0, new_h - self.crop_size)

    def resize(self, image: np.ndarray) -> np.ndarray:
        """The mode's resize step (before the crop)."""
        if self.preprocess == "resize_and_crop":
            return _resize(image, self.load_size, self.load_size)
        if self.preprocess.startswith("scale_width"):  # the reference's __scale_width
            h, w = image.shape[:2]
            if w == self.load_size and h >= self.crop_size:
                return image
            return _resize(image, self.load_size, int(max(self.load_size * h / w, self.crop_size)))
        return image

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of what this transform makes of a width×height image, without reading it."""
        if self.crops:
            width = height = self.crop_size
        elif self.preprocess == "scale_width":
            width, height = self.load_size, int(max(self.load_size * height / width, self.crop_size))
        return int(round(width / SIZE_BASE) * SIZE_BASE), int(round(height / SIZE_BASE) * SIZE_BASE)

    def _crop(self, image: np.ndarray, top: int, left: int) -> np.ndarray:
        h, w = image.shape[:2]
        c = self.crop_size
        if top + c > h or left + c > w:
            raise I2IError(
                f"a {c}x{c} crop at (x {left}, y {top}) does not fit an image of {w}x{h} (WxH) after "
                f"--preprocess {self.preprocess}; lower --crop-size or choose another --preprocess"
            )
        return image[top : top + c, left : left + c]

    def __call__(self, *images: np.ndarray, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        h, w = images[0].shape[:2]
        room_x, room_y = self.room(w, h)
        if self.train:
            left = int(torch.randint(0, room_x + 1, (1,), generator=generator))
            top = int(torch.randint(0, room_y + 1, (1,), generator=generator))
            flipped = self.flip and bool(torch.randint(0, 2, (1,), generator=generator).item())
        else:
            top, left = room_y // 2, room_x // 2
            flipped = False
        out = []
        for image in images:
            image = self.resize(image)
            if self.crops:
                image = self._crop(image, top, left)
            image = round_to_base(image)
            out.append(to_tensor(image[:, ::-1] if flipped else image))
        return out


# --------------------------------------------------------------------------- datasets


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header (PIL reads no pixels); None when PIL cannot tell."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def check_stackable(dataset: Any, batch_size: int) -> None:
    """Refuse, before any work, a batch size above 1 when ``--preprocess scale_width`` or ``none``
    (which keep each image's aspect) would give a batch images of different sizes: torch cannot
    stack them. Sizes come from the files' headers (``dataset.image_sizes()``: per stacked key,
    the (path, width, height) of each input); the loop's collate checks every batch all the same."""
    transform = getattr(dataset, "transform", None)
    image_sizes = getattr(dataset, "image_sizes", None)
    if batch_size < 2 or not isinstance(transform, ResizeCropFlip) or transform.crops or image_sizes is None:
        return
    for key, sizes in image_sizes().items():
        first: dict[tuple[int, int], Path] = {}
        for path, width, height in sizes:
            first.setdefault(transform.output_size(width, height), path)
            if len(first) > 1:
                (size_a, path_a), (size_b, path_b) = first.items()
                raise I2IError(
                    f"--preprocess {transform.preprocess} gives {key} images of different sizes ({path_a.name}: "
                    f"{size_a[0]}x{size_a[1]}, {path_b.name}: {size_b[0]}x{size_b[1]}, WxH), which a batch of "
                    f"{batch_size} cannot stack; train with --batch-size 1 or a cropping --preprocess "
                    "(resize_and_crop, crop, scale_width_and_crop)"
                )


def _header_sizes(paths: list[Path], halves: bool = False) -> list[tuple[Path, int, int]]:
    """(path, width, height) of each file PIL can size from its header; ``halves``: of an A|B file's half."""
    found = []
    for path in paths:
        size = header_size(path)
        if size is not None:
            found.append((path, size[0] // 2 if halves else size[0], size[1]))
    return found


def check_direction(direction: str) -> str:
    """``direction`` if it is AtoB or BtoA, else one error naming the option."""
    if direction not in DIRECTIONS:
        raise I2IError(f"--direction {direction!r}: choose AtoB or BtoA")
    return direction


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


def _is_aligned(root: Path, phase: str) -> bool:
    """``root/<phase>`` holds images itself (the aligned A|B layout) and no A/B subfolders."""
    folder = root / phase
    return folder.is_dir() and not (folder / "A").is_dir() and bool(image_files(folder))


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
    if all(d.is_dir() for d in other) or (not paired and _is_aligned(root, phase)):
        kind, need = ("unpaired (CycleGAN)", "an unpaired") if paired else ("paired (pix2pix)", "a paired")
        hint = f"; this is the {kind} layout: choose {need} method or rearrange the images"
    else:
        hint = f"; put the images there{f', or A|B pairs side by side in {phase}/' if paired else ''}"
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


def _matched_pairs(folder_a: Path, folder_b: Path) -> tuple[list[str], list[Path], list[Path]]:
    """(names, A paths, B paths) of two folders whose images pair up by file stem."""
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
    names = sorted(images_a)
    return names, [images_a[n] for n in names], [images_b[n] for n in names]


def split_aligned(image: np.ndarray, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) halves of an aligned pair image (A left, B right), as the reference's AlignedDataset.

    The rule: an even width larger than the height. The reference's datasets (facades, maps,
    edges2shoes, cityscapes, ...) are twice as wide as tall; a square or portrait file is a single
    image that was put where pairs belong, and an odd width has no middle to split at.
    """
    h, w = image.shape[:2]
    if w % 2 or w <= h:
        why = "its width is odd" if w % 2 else "it is not wider than tall"
        raise I2IError(
            f"{path} is {w}x{h} (WxH), not an A|B pair side by side ({why}); an aligned dataset needs each "
            "image twice as wide as one half, else put single images in train/A and train/B"
        )
    return image[:, : w // 2], image[:, w // 2 :]


def load_aligned(path: str | Path, direction: str = "AtoB") -> tuple[np.ndarray, np.ndarray]:
    """(source, target) halves of an aligned pair file, the input half first for ``direction``."""
    a, b = split_aligned(load_image_rgb(path), path)
    return (a, b) if direction == "AtoB" else (b, a)


def _apply(transform: ResizeCropFlip, path: Path, *images: np.ndarray) -> list[torch.Tensor]:
    """``transform(*images)``, its errors naming the file they came from."""
    try:
        return transform(*images)
    except I2IError as exc:
        raise I2IError(f"{path}: {exc}") from None


class PairedFolderDataset(Dataset[Sample]):
    """pix2pix layouts: ``root/<phase>/A`` ↔ ``root/<phase>/B`` matched by file stem, or aligned
    A|B images in ``root/<phase>``; ``direction="BtoA"`` makes B the source."""

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
        direction: str = "AtoB",
        preprocess: str = "resize_and_crop",
    ) -> None:
        self.root = Path(root)
        self.direction = check_direction(direction)
        self.aligned = self.root.is_dir() and _is_aligned(self.root, phase)
        if self.aligned:
            self.pair_paths = list(_by_stem(list_images(self.root / phase)).values())
            split_aligned(load_image_rgb(self.pair_paths[0]), self.pair_paths[0])  # a folder of singles: now
            self.names = [p.stem for p in self.pair_paths]
            self.source_paths = self.target_paths = self.pair_paths
        else:
            folder_a, folder_b = _require_layout(self.root, phase, paired=True)
            self.names, paths_a, paths_b = _matched_pairs(folder_a, folder_b)
            swap = self.direction == "BtoA"
            self.source_paths, self.target_paths = (paths_b, paths_a) if swap else (paths_a, paths_b)
        self.transform = ResizeCropFlip(load_size, crop_size, flip, train, preprocess)

    def __len__(self) -> int:
        return len(self.names)

    def image_sizes(self) -> dict[str, list[tuple[Path, int, int]]]:
        """The inputs' (path, width, height) per stacked key, from the headers (``check_stackable``)."""
        if self.aligned:
            halves = _header_sizes(self.pair_paths, halves=True)
            return {"source": halves, "target": halves}
        return {"source": _header_sizes(self.source_paths), "target": _header_sizes(self.target_paths)}

    def __getitem__(self, index: int) -> Sample:
        if self.aligned:
            source, target = load_aligned(self.pair_paths[index], self.direction)
        else:
            source = load_image_rgb(self.source_paths[index])
            target = load_image_rgb(self.target_paths[index])
        path = self.pair_paths[index] if self.aligned else self.source_paths[index]
        source_t, target_t = _apply(self.transform, path, source, target)  # one crop/flip for both: aligned
        return {"source": source_t, "target": target_t, "name": self.names[index]}


class UnpairedFolderDataset(Dataset[Sample]):
    """CycleGAN layout ``root/<phase>A``, ``root/<phase>B``; each source gets a random target.

    An epoch visits every source image once (length = the larger domain, the source wrapping
    round), and the target partner is drawn from torch's RNG so no fixed pairing is ever learned.
    ``direction="BtoA"`` swaps the domains: ``<phase>B`` is the source.
    """

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
        direction: str = "AtoB",
        preprocess: str = "resize_and_crop",
    ) -> None:
        self.root = Path(root)
        self.direction = check_direction(direction)
        folder_a, folder_b = _require_layout(self.root, phase, paired=False)
        if self.direction == "BtoA":
            folder_a, folder_b = folder_b, folder_a
        self.source_paths = list_images(folder_a)
        self.target_paths = list_images(folder_b)
        self.transform = ResizeCropFlip(load_size, crop_size, flip, train, preprocess)

    def __len__(self) -> int:
        return max(len(self.source_paths), len(self.target_paths))

    def image_sizes(self) -> dict[str, list[tuple[Path, int, int]]]:
        """The inputs' (path, width, height) per stacked key, from the headers (``check_stackable``)."""
        return {"source": _header_sizes(self.source_paths), "target": _header_sizes(self.target_paths)}

    def __getitem__(self, index: int) -> Sample:
        source_path = self.source_paths[index % len(self.source_paths)]
        target_path = self.target_paths[int(torch.randint(len(self.target_paths), (1,)).item())]
        (source,) = _apply(self.transform, source_path, load_image_rgb(source_path))  # independent crop/flip
        (target,) = _apply(self.transform, target_path, load_image_rgb(target_path))
        return {"source": source, "target": target, "name": source_path.stem}


def collate_same_size(samples: list[dict[str, Any]]) -> Any:
    """DataLoader's default collate, after checking that the batch's images can be stacked: with
    ``--preprocess scale_width`` or ``none`` each image keeps its own aspect, and torch's "stack
    expects each tensor to be equal size" would otherwise end the run with a traceback."""
    first = samples[0]
    for sample in samples[1:]:
        for key, value in sample.items():
            if isinstance(value, torch.Tensor) and value.shape != first[key].shape:
                sizes = [f"{tuple(s[key].shape[-2:])} ({s.get('name', '?')})" for s in (first, sample)]
                raise I2IError(
                    f"a batch of {len(samples)} holds {key} images of different sizes (HxW): {' and '.join(sizes)}, "
                    "which cannot be stacked; train with --batch-size 1 or a cropping --preprocess "
                    "(resize_and_crop, crop, scale_width_and_crop)"
                )
    return default_collate(samples)


def collate_first_size(samples: list[dict[str, Any]]) -> Any:
    """The sample grids' batch: the samples with the first one's shapes (with scale_width or none the
    images may differ in size, and the grid stacks them), collated."""
    first = samples[0]
    same = [
        s for s in samples if all(not isinstance(v, torch.Tensor) or v.shape == first[k].shape for k, v in s.items())
    ]
    return default_collate(same)


def _with_transform(dataset: SizedDataset[Sample], what: str, **changes: Any) -> SizedDataset[Sample]:
    """A shallow copy of a folder dataset whose :class:`ResizeCropFlip` has ``changes``."""
    late = copy.copy(dataset)
    if not hasattr(late, "transform") or not isinstance(late.transform, ResizeCropFlip):
        raise I2IError(f"{what}: the {type(dataset).__name__} has no resize/crop transform")
    late.transform = dataclasses.replace(late.transform, **changes)
    return late


def without_resize_crop(dataset: SizedDataset[Sample]) -> SizedDataset[Sample]:
    """A shallow copy of a folder dataset whose load size is its crop size: the reference loaders'
    ``load_size = crop_size`` of CUT's decay epochs. With ``resize_and_crop`` that is a plain resize
    to the crop size (no random crop; flips as before); the other modes change as they do there."""
    crop_size = getattr(getattr(dataset, "transform", None), "crop_size", 0)
    return _with_transform(dataset, "crop-free decay epochs", load_size=crop_size)


# --------------------------------------------------------------------------- exporter's test images


def source_images_dir(
    data_root: str | Path, split: str, direction: str, scratch: str | Path, limit: int = 64
) -> Path | None:
    """The folder of ``split``'s input images for a model trained on ``data_root`` in ``direction``
    (what export's parity check and int8 calibration read), or None when the split is not there.

    Separate layouts give their folder as is (``<split>/A`` or ``<split>A``, ``B`` for BtoA). For
    the aligned layout the input halves of the first ``limit`` files (0: all) are written as PNG to
    ``scratch/<split><side>`` (a folder the caller owns, e.g. beside the export's output) and that
    folder is returned: the dataset itself is never written to.
    """
    root, side = Path(data_root), "A" if check_direction(direction) == "AtoB" else "B"
    for candidate in (root / split / side, root / f"{split}{side}"):
        if candidate.is_dir():
            return candidate
    if not _is_aligned(root, split):
        return None
    out = Path(scratch) / f"{split}{side}"
    out.mkdir(parents=True, exist_ok=True)
    for path in list_images(root / split)[: limit or None]:
        source, _ = load_aligned(path, direction)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(source, cv2.COLOR_RGB2BGR))
        if not ok:
            raise I2IError(f"cannot encode the input half of {path} as PNG")
        write_bytes(out / f"{path.stem}.png", encoded.tobytes(), "input half")
    return out
