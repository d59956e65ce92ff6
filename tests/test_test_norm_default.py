"""The test-time BatchNorm default follows how the model trained, and model.pt and the card say why.

Batch size 1 (and imported reference weights, whose test.py runs at batch size 1): per-frame
statistics, what each BatchNorm saw in training. Batch size > 1: running statistics (per-frame
statistics of one frame are not what a batch-trained BatchNorm learned with). --test-norm wins.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import invoke

from i2i.train.checkpoint import REFERENCE_TEST_NORM_REASON
from i2i.train.loop import TrainConfig, train
from i2i.train.methods.pix2pix import Pix2PixConfig

# A BatchNorm U-Net of 5 levels (64 px crops), a few steps: tiny and quick on one core.
NET = Pix2PixConfig(ngf=4, ndf=4, num_downs=5, norm="batch")


def _train(data: Path, out: Path, batch_size: int, test_norm: str | None = None) -> dict:
    config = TrainConfig(data=str(data), out=str(out), load_size=72, crop_size=64, batch_size=batch_size,
                         max_steps=2, workers=0, progress=False, eval_every=-1, test_norm=test_norm)  # fmt: skip
    train("pix2pix", NET, config)
    return torch.load(out / "model.pt", weights_only=True)


@pytest.mark.parametrize(("batch_size", "expected"), [(4, "running"), (1, "frame")])
def test_default_follows_the_training_batch_size(
    demo_data: Path, tmp_path: Path, batch_size: int, expected: str
) -> None:
    import i2i

    ckpt = _train(demo_data, tmp_path / "run", batch_size)
    assert ckpt["test_norm"] == expected
    assert ckpt["test_norm_reason"].startswith(f"trained at batch size {batch_size}:")
    card = i2i.load(tmp_path / "run" / "model.pt").card  # what the Python API shows
    assert (card.test_norm, card.test_norm_reason) == (expected, ckpt["test_norm_reason"])
    # The run's own samples and evaluation ran in that mode too: config.json records the filled-in value.
    assert f'"test_norm": "{expected}"' in (tmp_path / "run" / "config.json").read_text()


def test_explicit_test_norm_wins_and_says_so(demo_data: Path, tmp_path: Path) -> None:
    ckpt = _train(demo_data, tmp_path / "run", 4, test_norm="frame")
    assert ckpt["test_norm"] == "frame"
    assert ckpt["test_norm_reason"] == "--test-norm frame given explicitly (trained at batch size 4)"


def test_command_line_default_and_help(demo_data: Path, tmp_path: Path) -> None:
    from i2i.train.cli import main as train_cli

    args = ["pix2pix", "--data", demo_data, "--ngf", 4, "--ndf", 4, "--num-downs", 5, "--load-size", 72]
    args += ["--crop-size", 64, "--max-steps", 1, "--workers", 0, "--no-progress", "--eval-every", -1]
    result = invoke(train_cli, [*args, "--batch-size", 4, "--out", tmp_path / "b4"])
    assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "b4" / "model.pt", weights_only=True)["test_norm"] == "running"
    shown = " ".join(invoke(train_cli, ["pix2pix", "--help"]).output.split())
    assert "frame at --batch-size 1, running above" in shown


def test_imported_reference_weights_run_per_frame(tmp_path: Path) -> None:
    from i2i.runtime.formats import read_card
    from i2i.train.nets import build_net
    from i2i.train.reference import import_reference

    torch.save(build_net("unet", num_downs=7, ngf=4, norm="batch").state_dict(), tmp_path / "latest_net_G.pth")
    import_reference(tmp_path / "latest_net_G.pth", tmp_path / "model.pt")
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert (ckpt["test_norm"], ckpt["test_norm_reason"]) == ("frame", REFERENCE_TEST_NORM_REASON)
    assert read_card(tmp_path / "model.pt").test_norm_reason == REFERENCE_TEST_NORM_REASON


def test_inspect_shows_the_mode_and_its_reason(demo_data: Path, tmp_path: Path) -> None:
    from i2i.export.inspect import describe, format_text
    from i2i.export.onnx import ExportConfig, export_checkpoint

    ckpt = _train(demo_data, tmp_path / "run", 4)
    onnx_path = export_checkpoint(ExportConfig(checkpoint=str(tmp_path / "run" / "model.pt"), progress=False)).onnx
    text = format_text(describe(onnx_path))
    assert "test-time BatchNorm running statistics" in text
    assert f"why: {ckpt['test_norm_reason']}" in text
    # An export that overrides the mode records its own reason, not the checkpoint's stale one.
    config = ExportConfig(checkpoint=str(tmp_path / "run" / "model.pt"), output=str(tmp_path / "f.onnx"),
                          test_norm="frame", progress=False)  # fmt: skip
    text = format_text(describe(export_checkpoint(config).onnx))
    assert "test-time BatchNorm frame statistics" in text
    assert "why: i2i-export --test-norm frame given explicitly" in text


def test_inspect_reads_a_checkpoint_too(demo_data: Path, tmp_path: Path) -> None:
    from i2i.export.cli import main as export_cli

    ckpt = _train(demo_data, tmp_path / "run", 1)
    result = invoke(export_cli, ["inspect", tmp_path / "run" / "model.pt"])
    assert result.exit_code == 0, result.output
    assert "(checkpoint)" in result.output and "test-time BatchNorm frame statistics" in result.output
    assert f"why: {ckpt['test_norm_reason']}" in result.output
