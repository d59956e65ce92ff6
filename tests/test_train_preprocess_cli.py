"""--preprocess from i2i-train to the dataset, and the runs it must refuse before the run folder
gets a file: a crop the U-Net cannot take, a crop larger than the size it is cut from, a batch of
images whose sizes differ (scale_width and none keep each image's aspect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from conftest import invoke

from i2i.errors import I2IError
from i2i.train.cli import main as train_cli
from i2i.train.data import collate_same_size
from i2i.train.loop import TrainConfig, make_dataset
from i2i.train.methods import get_method

TINY = ["--ngf", "4", "--ndf", "4", "--max-steps", "1", "--workers", "0", "--no-progress", "--eval-every", "-1"]


def _paired(root: Path, sizes: list[tuple[int, int]]) -> Path:
    """train/A + train/B with one smooth image pair per (h, w) in ``sizes``."""
    rng = np.random.default_rng(0)
    for side in "AB":
        (root / "train" / side).mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
        cv2.imwrite(str(root / "train" / "A" / f"{i}.png"), image)
        cv2.imwrite(str(root / "train" / "B" / f"{i}.png"), 255 - image)
    return root


def test_the_method_builds_its_dataset_with_the_mode(tmp_path: Path) -> None:
    """The mode reaches the dataset's constructor (not a copy patched afterwards), and only the modes that
    resize to the load size before cropping need the crop to fit it."""
    data = _paired(tmp_path / "data", [(40, 60)])
    pix2pix = get_method("pix2pix")
    config = TrainConfig(
        data=str(data), out=str(tmp_path / "run"), load_size=48, crop_size=32, preprocess="scale_width"
    )
    dataset: Any = pix2pix.make_dataset(config, pix2pix.config_class(num_downs=5))
    assert dataset.transform.preprocess == "scale_width"
    assert dataset[0]["source"].shape == (3, 32, 48)  # width 48, height int(max(48·40/60, 32)) = 32
    for mode in ("crop", "none", "scale_width"):  # the load size is unused (crop, none) or a width
        config = TrainConfig(data=str(data), out="", load_size=20, crop_size=32, preprocess=mode)
        dataset = make_dataset(pix2pix, pix2pix.config_class(num_downs=5), config)
        assert dataset.transform.preprocess == mode
    for mode in ("resize_and_crop", "scale_width_and_crop"):
        config = TrainConfig(data=str(data), out="", load_size=20, crop_size=32, preprocess=mode)
        with pytest.raises(I2IError, match=f"--crop-size 32 is larger than --load-size 20, which --preprocess {mode}"):
            make_dataset(pix2pix, pix2pix.config_class(num_downs=5), config)


def test_cli_crop_mode_with_a_crop_above_the_load_size_trains(tmp_path: Path) -> None:
    data = _paired(tmp_path / "data", [(40, 40)])
    out = tmp_path / "run"
    args = ["pix2pix", "--data", data, "--out", out, "--preprocess", "crop", "--crop-size", "32", "--load-size", "8"]
    result = invoke(train_cli, [*args, "--num-downs", "5", *TINY])
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").is_file()


def test_cli_unet_crop_is_refused_before_the_run_folder_gets_a_file(tmp_path: Path) -> None:
    data = _paired(tmp_path / "data", [(128, 128)])
    out = tmp_path / "run"
    args = ["pix2pix", "--data", data, "--out", out, "--load-size", "128"]
    bad = invoke(train_cli, [*args, "--crop-size", "100", "--num-downs", "7", *TINY])
    assert bad.exit_code != 0
    assert "a 100x100 (HxW) input does not fit a U-Net of 7 levels" in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and "Traceback" not in bad.output
    assert not out.exists()
    out.mkdir()  # an empty folder given as --out stays as it was
    assert invoke(train_cli, [*args, "--crop-size", "100", "--num-downs", "7", *TINY]).exit_code != 0
    assert out.is_dir() and not any(out.iterdir())
    good = invoke(train_cli, [*args, "--crop-size", "128", "--num-downs", "7", *TINY])  # the corrected rerun
    assert good.exit_code == 0, good.output
    assert (out / "model.pt").is_file()


@pytest.mark.parametrize("mode", ["scale_width", "none"])
def test_cli_images_of_different_sizes_need_batch_size_one(tmp_path: Path, mode: str) -> None:
    """Two pairs of different aspect: a batch of both is refused in one line naming the sizes, before the
    run folder gets a file; one image a step trains into that folder (the sample grid shows the images of
    the first one's size)."""
    data = _paired(tmp_path / "data", [(64, 32), (32, 32)])  # (h, w): both sides multiples of 32 in either mode
    out = tmp_path / "run"
    common = ["pix2pix", "--data", data, "--preprocess", mode, "--load-size", "32", "--crop-size", "16"]
    common += ["--num-downs", "5", "--out", out, *TINY]
    bad = invoke(train_cli, [*common, "--batch-size", "2"])
    assert bad.exit_code != 0
    line = bad.output.strip()
    assert f"--preprocess {mode} gives source images of different sizes (0.png: 32x64, 1.png: 32x32, WxH)" in line
    assert "--batch-size 1" in line and "Traceback" not in line and len(line.splitlines()) == 1
    assert not out.exists()
    good = invoke(train_cli, [*common, "--batch-size", "1"])
    assert good.exit_code == 0, good.output
    assert (out / "model.pt").is_file()


def test_aligned_halves_and_unpaired_targets_are_sized_from_the_headers(tmp_path: Path) -> None:
    from i2i.train.data import PairedFolderDataset, UnpairedFolderDataset, check_stackable

    rng = np.random.default_rng(2)
    (tmp_path / "aligned" / "train").mkdir(parents=True)
    for i, (h, w) in enumerate([(32, 64), (32, 64)]):
        cv2.imwrite(str(tmp_path / "aligned" / "train" / f"{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    aligned = PairedFolderDataset(tmp_path / "aligned", load_size=32, crop_size=16, preprocess="none")
    assert aligned.image_sizes()["source"][0][1:] == (32, 32)  # one half of the 64-wide file
    check_stackable(aligned, 4)  # equal halves: stackable
    for side, sizes in (("A", [(32, 32), (32, 32)]), ("B", [(32, 32), (40, 32)])):
        (tmp_path / "unpaired" / f"train{side}").mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            cv2.imwrite(str(tmp_path / "unpaired" / f"train{side}" / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
    unpaired = UnpairedFolderDataset(tmp_path / "unpaired", load_size=32, crop_size=16, preprocess="none")
    with pytest.raises(I2IError, match="gives target images of different sizes"):
        check_stackable(unpaired, 2)
    check_stackable(unpaired, 1)
    cropped = UnpairedFolderDataset(tmp_path / "unpaired", load_size=32, crop_size=16, preprocess="crop")
    check_stackable(cropped, 2)  # every crop is 16x16


def test_collate_names_the_images_whose_sizes_differ() -> None:
    same = [{"source": torch.zeros(3, 8, 12), "name": n} for n in "ab"]
    assert collate_same_size(same)["source"].shape == (2, 3, 8, 12)
    mixed = [*same, {"source": torch.zeros(3, 12, 8), "name": "c"}]
    with pytest.raises(
        I2IError, match=r"source images of different sizes \(HxW\): \(8, 12\) \(a\) and \(12, 8\) \(c\)"
    ):
        collate_same_size(mixed)


def test_stig_offers_no_preprocess_option() -> None:
    result = invoke(train_cli, ["stig", "--help"])
    assert result.exit_code == 0
    assert "--preprocess" not in result.output and "--load-size" not in result.output
    assert "--preprocess" in invoke(train_cli, ["pix2pix", "--help"]).output


def test_stig_resizes_bilinear_and_refuses_a_preprocess_mode(tmp_path: Path) -> None:
    """STIG's real/fake images are resized as its official loader's transforms.Resize does by default
    (PIL bilinear); the same size comes through untouched; --preprocess is not STIG's to take."""
    from PIL import Image

    from i2i.train.methods.stig import RealFakeDataset, Stig, StigConfig

    rng = np.random.default_rng(1)
    for folder, (h, w) in (("real", (48, 40)), ("fake", (32, 32))):
        (tmp_path / folder).mkdir()
        image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
        cv2.imwrite(str(tmp_path / folder / "0.png"), image)
    sample = RealFakeDataset(tmp_path / "real", tmp_path / "fake", 32)[0]
    for key, folder in (("target", "real"), ("source", "fake")):
        pil = Image.open(tmp_path / folder / "0.png").convert("RGB")
        expected = np.asarray(pil.resize((32, 32), Image.Resampling.BILINEAR))  # 32² already: as it is
        got = ((sample[key].permute(1, 2, 0).double() + 1) * 127.5).round().numpy().astype(np.uint8)
        assert np.array_equal(got, expected), key
    config = TrainConfig(data="", out="", preprocess="crop")
    with pytest.raises(I2IError, match="stig: --preprocess does not apply"):
        Stig.make_dataset(config, StigConfig(real=str(tmp_path / "real"), fake=str(tmp_path / "fake")))


def test_cli_num_downs_below_the_unets_least_is_a_usage_error(tmp_path: Path) -> None:
    data = _paired(tmp_path / "data", [(32, 32)])
    out = tmp_path / "run"
    result = invoke(train_cli, ["pix2pix", "--data", data, "--out", out, "--num-downs", "2", *TINY])
    assert result.exit_code == 2 and "--num-downs" in result.output and "ValueError" not in result.output
    assert not out.exists()
