"""Training images are resized, cropped and rounded as the reference loaders do.

``reference_transform`` below is a small re-implementation of pytorch-CycleGAN-and-pix2pix / CUT
``data/base_dataset.py`` (``get_params``, ``get_transform``, ``__scale_width``, ``__crop``,
``__make_power_2``, ``__flip``) on PIL images, written from the reference code rather than from
i2i's transform, so i2i's output is compared with what the reference computes.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from i2i.errors import I2IError
from i2i.train.data import (
    PREPROCESS_MODES,
    PairedFolderDataset,
    ResizeCropFlip,
    UnpairedFolderDataset,
    _resize,
    without_resize_crop,
)


def _photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random colour image (RGB uint8), so a resize has structure to interpolate."""
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)


# --------------------------------------------------------------------------- the reference, on PIL


def reference_params(preprocess: str, load: int, crop: int, size: tuple[int, int]) -> tuple[int, int]:
    """get_params' ranges: the largest crop corner (x, y) it can draw for an image of ``size`` (w, h)."""
    w, h = size
    new_w, new_h = w, h
    if preprocess == "resize_and_crop":
        new_w = new_h = load
    elif preprocess == "scale_width_and_crop":
        new_w, new_h = load, load * h // w
    return max(0, new_w - crop), max(0, new_h - crop)


def reference_transform(
    image: Image.Image, preprocess: str, load: int, crop: int, pos: tuple[int, int], flip: bool
) -> np.ndarray:
    """get_transform(opt, params) on a PIL image, up to ToTensor (CUT's: __make_power_2 always)."""
    if "resize" in preprocess:
        image = image.resize((load, load), Image.Resampling.BICUBIC)  # transforms.Resize([load, load], BICUBIC)
    elif "scale_width" in preprocess:
        ow, oh = image.size
        if not (ow == load and oh >= crop):
            image = image.resize((load, int(max(load * oh / ow, crop))), Image.Resampling.BICUBIC)
    if "crop" in preprocess:
        ow, oh = image.size
        if ow > crop or oh > crop:
            x, y = pos
            image = image.crop((x, y, x + crop, y + crop))
    ow, oh = image.size  # __make_power_2(base=4)
    h, w = int(round(oh / 4) * 4), int(round(ow / 4) * 4)
    if (h, w) != (oh, ow):
        image = image.resize((w, h), Image.Resampling.BICUBIC)
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image)


def as_uint8(tensor: torch.Tensor) -> np.ndarray:
    """i2i's (3, H, W) tensor in [-1, 1] back to the uint8 image it was made from (exact: x/127.5 - 1)."""
    return ((tensor.permute(1, 2, 0).double() + 1.0) * 127.5).round().numpy().astype(np.uint8)


# --------------------------------------------------------------------------- resizing


@pytest.mark.parametrize(("src", "dst"), [((128, 128), (143, 143)), ((64, 80), (40, 36)), ((286, 286), (256, 256))])
def test_resize_is_pils_bicubic_exactly(src: tuple[int, int], dst: tuple[int, int]) -> None:
    image = _photo(np.random.default_rng(0), *src)
    expected = np.asarray(Image.fromarray(image).resize(dst[::-1], Image.Resampling.BICUBIC))
    got = _resize(image, dst[1], dst[0])
    assert got.dtype == np.uint8 and np.array_equal(got, expected)
    bilinear = np.asarray(Image.fromarray(image).resize(dst[::-1], Image.Resampling.BILINEAR))  # STIG's loader
    assert np.array_equal(_resize(image, dst[1], dst[0], resample="bilinear"), bilinear)
    with pytest.raises(I2IError, match="resample 'area': choose bicubic or bilinear"):
        _resize(image, dst[1], dst[0], resample="area")


def test_shrinking_antialiases_as_pil_does_unlike_plain_bicubic() -> None:
    """A diagonal pattern of period 3 shrunk by 2/3 (above the new Nyquist rate): PIL widens its
    filter by the factor and all but removes it; bicubic sampled at the new pixel centres (OpenCV's
    INTER_CUBIC, i2i's resize when enlarging before) aliases it into a strong pattern."""
    pattern = ((np.indices((60, 60)).sum(0) % 3 == 0) * 255).astype(np.uint8)
    image = np.repeat(pattern[:, :, None], 3, axis=2)
    pil = _resize(image, 40, 40).astype(np.float64)
    plain = cv2.resize(image, (40, 40), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    assert pil.std() < 0.5 * plain.std()  # measured 20.6 vs 67.7 levels


def test_aligned_pair_samples_equal_the_reference_loader(tmp_path: Path) -> None:
    """An A|B file through i2i's aligned dataset and through the reference's AlignedDataset
    (split, resize_and_crop with one crop and flip for both halves): the same pixels."""
    rng = np.random.default_rng(3)
    pair = np.concatenate([_photo(rng, 48, 48), _photo(rng, 48, 48)], axis=1)
    (tmp_path / "train").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "0.png"), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR))
    dataset = PairedFolderDataset(tmp_path, load_size=56, crop_size=40)
    whole = Image.open(tmp_path / "train" / "0.png").convert("RGB")
    a, b = whole.crop((0, 0, 48, 48)), whole.crop((48, 0, 96, 48))
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        sample = dataset[0]
        torch.manual_seed(seed)  # the draws of i2i's transform: x, y, flip
        x, y = int(torch.randint(0, 17, (1,))), int(torch.randint(0, 17, (1,)))  # room 56 - 40
        flip = bool(torch.randint(0, 2, (1,)).item())
        seen.add((x, y, flip))
        for half, tensor in ((a, sample["source"]), (b, sample["target"])):
            assert np.array_equal(as_uint8(tensor), reference_transform(half, "resize_and_crop", 56, 40, (x, y), flip))
    assert len(seen) > 6  # the crops and flips did vary


# --------------------------------------------------------------------------- --preprocess modes

SIZES = [(30, 22), (64, 48), (20, 36), (57, 41)]  # (w, h): landscape, portrait, odd sides


def _expected_size(preprocess: str, load: int, crop: int, w: int, h: int) -> tuple[int, int]:
    """(h, w) the reference produces, from its formulas (before the pixels are compared)."""
    if preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        out_h = out_w = crop
    elif preprocess == "scale_width":
        out_w, out_h = load, int(max(load * h / w, crop))
    else:
        out_w, out_h = w, h
    return int(round(out_h / 4) * 4), int(round(out_w / 4) * 4)


@pytest.mark.parametrize("preprocess", PREPROCESS_MODES)
@pytest.mark.parametrize(("load", "crop"), [(32, 20), (24, 24), (28, 18)])
def test_each_mode_gives_the_reference_size_crop_and_pixels(preprocess: str, load: int, crop: int) -> None:
    rng = np.random.default_rng(7)
    for (w, h), seed in itertools.product(SIZES, range(3)):
        image = _photo(rng, h, w)
        if preprocess == "crop" and (w < crop or h < crop):
            continue  # the reference would pad with black; i2i refuses (tested below)
        transform = ResizeCropFlip(load, crop, flip=True, train=True, preprocess=preprocess)
        generator = torch.Generator().manual_seed(seed)
        (got,) = transform(image, generator=generator)
        room_x, room_y = reference_params(preprocess, load, crop, (w, h))
        generator = torch.Generator().manual_seed(seed)  # redraw i2i's x, y, flip over the reference's ranges
        x = int(torch.randint(0, room_x + 1, (1,), generator=generator))
        y = int(torch.randint(0, room_y + 1, (1,), generator=generator))
        flip = bool(torch.randint(0, 2, (1,), generator=generator).item())
        expected = reference_transform(Image.fromarray(image), preprocess, load, crop, (x, y), flip)
        assert expected.shape[:2] == _expected_size(preprocess, load, crop, w, h)
        assert np.array_equal(as_uint8(got), expected), (preprocess, w, h, x, y, flip)


@pytest.mark.parametrize("preprocess", PREPROCESS_MODES)
def test_cut_decay_epochs_use_the_crop_size_as_load_size_in_every_mode(tmp_path: Path, preprocess: str) -> None:
    """CUT's loader in the decay epochs: the same mode with load_size = crop_size."""
    rng = np.random.default_rng(5)
    for side in "AB":
        (tmp_path / f"train{side}").mkdir()
        cv2.imwrite(str(tmp_path / f"train{side}" / "0.png"), _photo(rng, 26, 34))
    early = UnpairedFolderDataset(tmp_path, load_size=30, crop_size=21, flip=False, preprocess=preprocess)
    late = without_resize_crop(early)
    assert isinstance(late.transform, ResizeCropFlip)
    assert (late.transform.load_size, late.transform.preprocess) == (21, preprocess)
    source = Image.open(tmp_path / "trainA" / "0.png").convert("RGB")
    torch.manual_seed(0)
    got = late[0]["source"]
    torch.manual_seed(0)
    torch.randint(1, (1,))  # the unpaired dataset draws the target's index first
    room_x, room_y = reference_params(preprocess, 21, 21, source.size)
    x, y = int(torch.randint(0, room_x + 1, (1,))), int(torch.randint(0, room_y + 1, (1,)))
    expected = reference_transform(source, preprocess, 21, 21, (x, y), flip=False)
    assert np.array_equal(as_uint8(got), expected)


def test_rounding_to_a_multiple_of_four_rounds_halves_to_even() -> None:
    image = _photo(np.random.default_rng(0), 22, 30)  # 22/4 = 5.5 → 24; 30/4 = 7.5 → 32
    (got,) = ResizeCropFlip(preprocess="none", flip=False)(image)
    assert got.shape == (3, 24, 32)
    image = _photo(np.random.default_rng(0), 10, 18)  # 2.5 → 2 (8); 4.5 → 4 (16): Python's round
    assert ResizeCropFlip(preprocess="none", flip=False)(image)[0].shape == (3, 8, 16)
    with pytest.raises(I2IError, match="image 1x1 \\(WxH\\) is too small"):
        ResizeCropFlip(preprocess="none")(image[:1, :1])


def test_mode_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(I2IError, match="--preprocess 'resize': choose one of resize_and_crop, crop, scale_width"):
        ResizeCropFlip(preprocess="resize")
    with pytest.raises(I2IError, match="crop_size \\(40\\) must not exceed load_size \\(30\\)"):
        ResizeCropFlip(30, 40, preprocess="scale_width_and_crop")
    ResizeCropFlip(30, 40, preprocess="crop")  # the load size plays no part there
    rng = np.random.default_rng(0)
    for side in "AB":
        (tmp_path / "train" / side).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train" / side / "x.png"), _photo(rng, 20, 40))
    dataset = PairedFolderDataset(tmp_path, load_size=32, crop_size=24, preprocess="crop")
    with pytest.raises(I2IError, match=r"x.png: a 24x24 crop at \(x \d+, y 0\) does not fit an image of 40x20") as info:
        dataset[0]
    assert "\n" not in info.value.message


def test_train_config_preprocess_reaches_the_dataset(tmp_path: Path) -> None:
    from i2i.train.loop import TrainConfig, make_dataset
    from i2i.train.methods import get_method

    rng = np.random.default_rng(0)
    for side in "AB":
        (tmp_path / "train" / side).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train" / side / "x.png"), _photo(rng, 40, 60))
    pix2pix = get_method("pix2pix")
    run = str(tmp_path / "run")
    config = TrainConfig(data=str(tmp_path), out=run, load_size=48, crop_size=32, preprocess="scale_width")
    dataset: Any = make_dataset(pix2pix, pix2pix.config_class(), config)
    assert dataset.transform.preprocess == "scale_width"
    assert dataset[0]["source"].shape == (3, 32, 48)  # width 48, height int(max(48·40/60, 32)) = 32


def test_a_dataset_that_does_not_apply_the_mode_is_refused(tmp_path: Path) -> None:
    """A method whose own dataset has no resize/crop transform cannot quietly train without the mode."""
    from i2i.train.loop import TrainConfig, make_dataset
    from i2i.train.methods.pix2pix import Pix2Pix

    class Plain(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1

    class PlainMethod(Pix2Pix):
        @classmethod
        def make_dataset(cls, config: Any, method_config: Any) -> Any:
            return Plain()

    for mode in PREPROCESS_MODES[1:]:
        config = TrainConfig(data=str(tmp_path), out="", preprocess=mode)
        with pytest.raises(I2IError, match=f"--preprocess {mode}: pix2pix's dataset does not apply it"):
            make_dataset(PlainMethod, PlainMethod.config_class(), config)
    assert isinstance(make_dataset(PlainMethod, PlainMethod.config_class(), TrainConfig(data="", out="")), Plain)
