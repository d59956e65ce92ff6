"""Distillation: the teacher's translations are cached once, the student trains on them, exports and runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2i.errors import I2IError
from i2i.train.loop import TrainConfig, train
from i2i.train.methods.distill import DistillConfig


def _config(data: Path, out: Path, steps: int = 6) -> TrainConfig:
    return TrainConfig(
        data=str(data),
        out=str(out),
        load_size=72,
        crop_size=64,
        batch_size=2,
        max_steps=steps,
        workers=0,
        progress=False,
        log_every=1,
    )


def test_distill_trains_student_on_cached_teacher_outputs(tiny_run: Path, demo_data: Path, tmp_path: Path) -> None:
    method_config = DistillConfig(teacher=str(tiny_run / "model.pt"), ngf=8, n_blocks=1)
    result = train("distill", method_config, _config(demo_data, tmp_path))
    cache = tmp_path / "teacher" / "train"
    sources = sorted((demo_data / "train" / "A").iterdir())
    assert len(list((cache / "A").iterdir())) == len(list((cache / "B").iterdir())) == len(sources)
    ckpt_path = result.checkpoints[0]
    import torch

    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["arch"] == "fast" and ckpt["method"] == "distill" and ckpt["direction"] == "AtoB"
    losses = [json.loads(line)["l1"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and min(losses[-2:]) < losses[0]  # the student moves toward the teacher

    stamp = (cache / "B" / f"{sources[0].stem}.png").stat().st_mtime_ns
    train("distill", method_config, _config(demo_data, tmp_path / "again", steps=1))  # other out: new cache
    train("distill", method_config, _config(demo_data, tmp_path, steps=1))  # same out: cache reused
    assert (cache / "B" / f"{sources[0].stem}.png").stat().st_mtime_ns == stamp

    from i2i.export.onnx import ExportConfig, export_checkpoint

    exported = export_checkpoint(
        ExportConfig(checkpoint=str(ckpt_path), output=str(tmp_path / "student.onnx"), progress=False)
    )
    assert exported.parity["passed"]


def test_distill_needs_a_teacher(demo_data: Path, tmp_path: Path) -> None:
    with pytest.raises(I2IError, match="distill needs --teacher"):
        train("distill", DistillConfig(ngf=8, n_blocks=1), _config(demo_data, tmp_path))
    with pytest.raises(I2IError, match="checkpoint not found"):
        train("distill", DistillConfig(teacher=str(tmp_path / "nope.pt")), _config(demo_data, tmp_path))


def test_distill_perceptual_term_needs_vgg_weights_and_trains_with_them(
    tiny_run: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from i2i.train.nets.vgg import VGG16Features, vgg16_layers

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))  # no cached VGG to fall back on
    teacher = str(tiny_run / "model.pt")
    with pytest.raises(I2IError, match=r"needs ImageNet VGG16 weights: pass --vgg-weights .*vgg16-397923af\.pth"):
        train("distill", DistillConfig(teacher=teacher, lambda_perceptual=1.0), _config(demo_data, tmp_path / "a"))
    assert not (tmp_path / "a" / "teacher").exists()  # refused before the teacher pass

    torch.manual_seed(0)
    weights = tmp_path / "vgg16-397923af.pth"  # a local (random) file in torchvision's key layout
    depth = len(vgg16_layers())  # the whole feature stack: the loader refuses partial files
    torch.save(VGG16Features(depth=depth, taps=(depth - 2,)).state_dict(), weights)
    method_config = DistillConfig(teacher=teacher, ngf=8, n_blocks=1, lambda_perceptual=1.0, vgg_weights=str(weights))
    train("distill", method_config, _config(demo_data, tmp_path / "b", steps=4))
    logged = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 4 and all(entry["perceptual"] > 0 for entry in logged)


def test_teacher_cache_manifest_is_written_last_and_whole(
    tiny_run: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import torch

    from i2i.train.methods.distill import cache_teacher_outputs

    images = sorted((demo_data / "train" / "A").iterdir())[:2]
    teacher, cache = tiny_run / "model.pt", tmp_path / "teacher"

    def interrupted(fd: int) -> None:  # Ctrl-C or SIGTERM as the manifest is written
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache_teacher_outputs(teacher, images, cache, 64, torch.device("cpu"), progress=False)
    assert sorted(p.name for p in cache.iterdir()) == ["train"]  # no manifest, no temp file: redone next time
    monkeypatch.undo()

    (cache / "manifest.json").write_text('{"key": ')  # damaged by hand: rebuilt, not a crash
    cache_teacher_outputs(teacher, images, cache, 64, torch.device("cpu"), progress=False)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["count"] == 2 and len(list((cache / "train" / "B").iterdir())) == 2


def test_distill_command_defaults_to_running_statistics(tiny_run: Path, demo_data: Path, tmp_path: Path) -> None:
    import torch
    from conftest import invoke

    from i2i.train.cli import main as train_cli

    args = ["distill", "--data", demo_data, "--teacher", tiny_run / "model.pt", "--ngf", 4, "--n-blocks", 1]
    args += ["--load-size", 32, "--crop-size", 32, "--batch-size", 2, "--max-steps", 1, "--workers", 0]
    args += ["--no-progress", "--eval-every", -1]
    recorded = {}
    for given in ([], ["--test-norm", "frame"]):
        out = tmp_path / ("given" if given else "default")
        result = invoke(train_cli, [*args, "--out", out, *given])
        assert result.exit_code == 0, result.output
        recorded[bool(given)] = torch.load(out / "model.pt", weights_only=True)["test_norm"]
    assert recorded == {False: "running", True: "frame"}  # the student's default; the user's choice wins
    # The Python API fills in the same default (TrainConfig's None), and keeps an explicit choice.
    for given_norm, expected in ((None, "running"), ("frame", "frame")):
        out = tmp_path / f"api-{given_norm}"
        run = TrainConfig(data=str(demo_data), out=str(out), load_size=32, crop_size=32, batch_size=2, max_steps=1,
                          workers=0, progress=False, eval_every=-1, test_norm=given_norm)  # fmt: skip
        result = train("distill", DistillConfig(teacher=str(tiny_run / "model.pt"), ngf=4, n_blocks=1), run)
        assert torch.load(result.out / "model.pt", weights_only=True)["test_norm"] == expected
    for method, default in (("distill", "running"), ("pix2pix", "frame")):
        shown = invoke(train_cli, [method, "--help"]).output
        test_norm_help = " ".join(shown.split("--test-norm [")[1].split("--test-dropout")[0].split())
        assert test_norm_help.endswith(f"[default: {default}]"), test_norm_help
