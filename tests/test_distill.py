"""Distillation: the teacher's translations are cached once, the student trains on them, exports and runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
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
    again = dataclasses.replace(_config(demo_data, tmp_path, steps=1), overwrite=True)
    train("distill", method_config, again)  # same out, the run cleared: the teacher cache is reused
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


def test_student_test_norm_follows_its_batch_size(tiny_run: Path, demo_data: Path, tmp_path: Path) -> None:
    import torch
    from conftest import invoke

    from i2i.train.cli import main as train_cli

    args = ["distill", "--data", demo_data, "--teacher", tiny_run / "model.pt", "--ngf", 4, "--n-blocks", 1]
    args += ["--load-size", 32, "--crop-size", 32, "--max-steps", 1, "--workers", 0]
    args += ["--no-progress", "--eval-every", -1]
    recorded = {}
    for batch, given in ((2, []), (1, []), (2, ["--test-norm", "frame"])):
        out = tmp_path / f"b{batch}{'-given' if given else ''}"
        result = invoke(train_cli, [*args, "--batch-size", batch, "--out", out, *given])
        assert result.exit_code == 0, result.output
        recorded[(batch, bool(given))] = torch.load(out / "model.pt", weights_only=True)["test_norm"]
    assert recorded == {(2, False): "running", (1, False): "frame", (2, True): "frame"}  # the user's choice wins


def _teacher_output(teacher: Path, source: Path, test_norm: str) -> np.ndarray:
    """What the teacher gives for one cached source image in ``test_norm`` (uint8 RGB)."""
    import cv2
    import torch

    from i2i.train.checkpoint import load_generator

    net, _ = load_generator(teacher, test_norm=test_norm)
    rgb = cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    with torch.no_grad():
        y = net(x)[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    return y


def test_student_is_measured_against_the_teacher_mode_it_learned_from(
    tiny_run: Path, demo_data: Path, tmp_path: Path
) -> None:
    """The teacher's held-out translations are cached in the same recorded mode as its training
    targets; the run's evaluation scores the student against them; the card names the mode."""
    import cv2
    import torch

    import i2i
    from i2i.train.metrics import psnr

    teacher = tiny_run / "model.pt"
    assert torch.load(teacher, weights_only=True)["test_norm"] == "running"  # tiny_run trains at batch size 2
    method_config = DistillConfig(teacher=str(teacher), ngf=8, n_blocks=1, teacher_test_norm="frame")
    result = train("distill", method_config, _config(demo_data, tmp_path, steps=2))
    heldout = tmp_path / "teacher" / "heldout" / "test"
    names = sorted(p.name for p in (heldout / "A").iterdir())
    assert names == sorted(p.stem + ".png" for p in (demo_data / "test" / "A").iterdir())  # DATA's test split
    for cache in (heldout, tmp_path / "teacher" / "train"):  # both in the chosen mode, not the recorded one
        first = cache / "A" / sorted(p.name for p in (cache / "A").iterdir())[0]
        cached = cv2.cvtColor(cv2.imread(str(cache / "B" / first.name)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(cached, _teacher_output(teacher, first, "frame"))
        assert not np.array_equal(cached, _teacher_output(teacher, first, "running"))

    ckpt = torch.load(result.checkpoints[0], weights_only=True)
    assert ckpt["teacher"]["test_norm"] == "frame" and ckpt["teacher"]["test_dropout"] is False
    card = i2i.load(result.checkpoints[0]).card
    assert card.teacher is not None and (card.teacher.name, card.teacher.test_norm) == ("model.pt", "frame")
    # The held-out PSNR is the student's (in its own recorded mode) against those cached translations.
    metrics = ckpt["metrics"]
    student = i2i.load(result.checkpoints[0])
    values = []
    for name in names:
        source = cv2.cvtColor(cv2.imread(str(heldout / "A" / name)), cv2.COLOR_BGR2RGB)
        target = cv2.cvtColor(cv2.imread(str(heldout / "B" / name)), cv2.COLOR_BGR2RGB)
        got = student(source)
        values.append(float(psnr(torch.from_numpy(got).float()[None], torch.from_numpy(target).float()[None])))
    # float32 convolutions in two code paths (batched torch in training, the runtime's own) can round an
    # output pixel to the neighbouring 8-bit level; a few such pixels move PSNR by far less than 0.5 dB.
    assert metrics["images"] == len(names) and abs(metrics["psnr_db"] - np.mean(values)) < 0.5
    assert 0 < metrics["ssim"] <= 1
    lines = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert lines[-1]["psnr_db"] == metrics["psnr_db"]


def test_distill_eval_data_is_a_folder_of_held_out_images(tiny_run: Path, demo_data: Path, tmp_path: Path) -> None:
    method_config = DistillConfig(teacher=str(tiny_run / "model.pt"), ngf=4, n_blocks=1)
    run = dataclasses.replace(_config(demo_data, tmp_path / "a", steps=1), eval_data=str(demo_data / "testB"))
    result = train("distill", method_config, run)
    assert result.metrics["model.pt"]["images"] == len(list((demo_data / "testB").iterdir()))
    with pytest.raises(I2IError, match="--eval-data .*: no held-out images"):
        empty = tmp_path / "empty"
        empty.mkdir()
        train("distill", method_config, dataclasses.replace(run, out=str(tmp_path / "b"), eval_data=str(empty)))
    # Without a test split (DATA a bare folder of images) there is no held-out set, and no earlier one stays.
    bare = dataclasses.replace(run, data=str(demo_data / "train" / "A"), eval_data="", overwrite=True)
    assert train("distill", method_config, bare).metrics == {}
    assert not (tmp_path / "a" / "teacher" / "heldout").exists()
