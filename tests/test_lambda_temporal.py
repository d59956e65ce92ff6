"""``--lambda-temporal``: the single-frame temporal loss (i2i.train.losses.temporal) in every image
method's generator objective, logged as g_temporal; off (and absent from the log) at 0; STIG refuses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import invoke

from i2i.errors import I2IError
from i2i.train.loop import TrainConfig
from i2i.train.methods import get_method
from i2i.train.methods.stig import Stig, StigConfig

CUT_TINY = dict(ngf=8, ndf=8, n_blocks=5, num_patches=16, nce_channels=16)
# Tiny configs per method for one direct train_step on random 32 px images.
TINY: dict[str, dict[str, Any]] = {
    "pix2pix": dict(ngf=4, ndf=4, num_downs=5),
    "cyclegan": dict(ngf=4, ndf=4, n_blocks=1),
    "cut": CUT_TINY,
    "fastcut": CUT_TINY,
    "sndcr": dict(CUT_TINY, n_blocks=3, allow_random_vgg=True),
}


def _pix2pix_args(demo_data: Path, out: Path) -> list[Any]:
    args: list[Any] = ["pix2pix", "--data", demo_data, "--ngf", 4, "--ndf", 4, "--num-downs", 5]
    args += ["--load-size", 72, "--crop-size", 64, "--batch-size", 2, "--max-steps", 2, "--log-every", 1]
    return [*args, "--workers", 0, "--no-progress", "--eval-every", -1, "--out", out]


def _log(out: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_pix2pix_cli_logs_the_temporal_term_only_when_weighted(demo_data: Path, tmp_path: Path) -> None:
    from i2i.train.cli import main

    result = invoke(main, [*_pix2pix_args(demo_data, tmp_path / "on"), "--lambda-temporal", 10])
    assert result.exit_code == 0, result.output
    lines = _log(tmp_path / "on")
    assert len(lines) == 2 and all(line["g_temporal"] > 0 for line in lines)
    assert json.loads((tmp_path / "on" / "config.json").read_text())["method_config"]["lambda_temporal"] == 10

    result = invoke(main, [*_pix2pix_args(demo_data, tmp_path / "off"), "--lambda-temporal", 0])
    assert result.exit_code == 0, result.output
    assert all("g_temporal" not in line and "g_l1" in line for line in _log(tmp_path / "off"))


def test_negative_weight_is_a_usage_error(demo_data: Path, tmp_path: Path) -> None:
    from i2i.train.cli import main

    result = invoke(main, [*_pix2pix_args(demo_data, tmp_path / "run"), "--lambda-temporal", -1])
    assert result.exit_code == 2 and "--lambda-temporal" in result.output


def test_help_shows_the_option() -> None:
    from i2i.train.cli import main

    result = invoke(main, ["pix2pix", "--help"])
    assert result.exit_code == 0
    shown = " ".join(result.output.split())
    assert "--lambda-temporal" in shown and "Eilertsen et al. 2019" in shown


@pytest.mark.parametrize("name", sorted(TINY))
def test_each_image_method_adds_the_term_to_its_generator_step(name: str) -> None:
    torch.manual_seed(0)
    method_cls = get_method(name)
    batch = {"source": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.rand(2, 3, 32, 32) * 2 - 1}
    off = method_cls(method_cls.config_class(**TINY[name]), torch.device("cpu"))
    assert "g_temporal" not in off.train_step(batch)
    on = method_cls(method_cls.config_class(**TINY[name], lambda_temporal=10.0), torch.device("cpu"))
    assert on.train_step(batch)["g_temporal"] > 0


def test_style_adds_the_term(demo_data: Path) -> None:
    from i2i.train.data import list_images
    from i2i.train.methods.style import StyleConfig

    style_image = str(list_images(demo_data / "train" / "B")[0])
    config = StyleConfig(style_image=style_image, allow_random_vgg=True, ngf=4, n_blocks=1, lambda_temporal=10.0)
    method = get_method("style")(config, torch.device("cpu"))
    assert method.train_step({"source": torch.rand(2, 3, 32, 32) * 2 - 1})["g_temporal"] > 0


def test_distill_adds_the_term_for_the_student(tiny_run: Path) -> None:
    from i2i.train.methods.distill import DistillConfig

    config = DistillConfig(teacher=str(tiny_run / "model.pt"), ngf=4, n_blocks=1, lambda_temporal=10.0)
    method = get_method("distill")(config, torch.device("cpu"))
    batch = {"source": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.rand(2, 3, 32, 32) * 2 - 1}
    assert method.train_step(batch)["g_temporal"] > 0


def test_stig_refuses_a_temporal_weight(tmp_path: Path) -> None:
    config = TrainConfig(data="", out=str(tmp_path))
    method_config = StigConfig(real=str(tmp_path), fake=str(tmp_path), lambda_temporal=1.0)
    with pytest.raises(I2IError, match="stig: --lambda-temporal does not apply"):
        Stig.make_dataset(config, method_config)
