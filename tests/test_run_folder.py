"""A second training run never mixes itself into the first.

Without --out each run gets a fresh numbered folder (runs/pix2pix, runs/pix2pix2, ...); an --out
that holds a run is refused without --resume or --overwrite, and --overwrite clears that run's
files only. Neither log.jsonl nor checkpoints/ ever holds two runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke

from i2i.errors import I2IError
from i2i.train.cli import main as train_cli
from i2i.train.loop import TrainConfig, train
from i2i.train.methods.pix2pix import Pix2PixConfig
from i2i.train.run_folder import next_run_folder, run_files

NET = Pix2PixConfig(ngf=4, ndf=4, num_downs=5)


def _args(data: Path, steps: int) -> list[object]:
    args: list[object] = ["pix2pix", "--data", data, "--ngf", 4, "--ndf", 4, "--num-downs", 5, "--load-size", 72]
    args += ["--crop-size", 64, "--max-steps", steps, "--workers", 0, "--no-progress", "--eval-every", -1]
    return [*args, "--log-every", 1, "--save-every", 1, "--keep-last", 10]


def _steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]


def _states(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").glob("state_*.pt"))


def test_default_folder_is_numbered_fresh_per_run(demo_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for steps in (3, 2):
        result = invoke(train_cli, _args(demo_data, steps))
        assert result.exit_code == 0, result.output
    first, second = tmp_path / "runs" / "pix2pix", tmp_path / "runs" / "pix2pix2"
    assert (_steps(first), _states(first)) == ([1, 2, 3], ["state_000001.pt", "state_000002.pt", "state_000003.pt"])
    assert (_steps(second), _states(second)) == ([1, 2], ["state_000001.pt", "state_000002.pt"])
    assert "run folder: runs/pix2pix2" in result.output
    # --resume without --out continues the newest run (here: to step 4).
    result = invoke(train_cli, [*_args(demo_data, 4), "--resume"])
    assert result.exit_code == 0, result.output
    assert _steps(second) == [1, 2, 3, 4] and _steps(first) == [1, 2, 3]


def test_used_out_is_refused_without_resume_or_overwrite(demo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    (out).mkdir()
    (out / "notes.txt").write_text("mine")  # a file of the user's, not the run's
    assert invoke(train_cli, [*_args(demo_data, 3), "--out", out]).exit_code == 0
    refused = invoke(train_cli, [*_args(demo_data, 2), "--out", out])
    assert refused.exit_code != 0
    assert "already holds a run" in refused.output and "--resume" in refused.output and "--overwrite" in refused.output
    assert _steps(out) == [1, 2, 3]  # untouched
    both = invoke(train_cli, [*_args(demo_data, 2), "--out", out, "--resume", "--overwrite"])
    assert both.exit_code != 0 and "give one of them" in both.output

    result = invoke(train_cli, [*_args(demo_data, 2), "--out", out, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert _steps(out) == [1, 2]  # one run in the log, not two
    assert _states(out) == ["state_000001.pt", "state_000002.pt"]  # no stale state_000003.pt
    assert len(list((out / "samples").iterdir())) == 1  # the first run's grids are gone
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files were cleared


def test_python_api_refuses_a_used_folder_too(demo_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(data=str(demo_data), out=str(tmp_path), load_size=72, crop_size=64, max_steps=1,
                         workers=0, progress=False, eval_every=-1)  # fmt: skip
    train("pix2pix", NET, config)
    with pytest.raises(I2IError, match="already holds a run"):
        train("pix2pix", NET, config)


def test_resume_from_an_earlier_state_forgets_the_later_steps(demo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert invoke(train_cli, [*_args(demo_data, 3), "--out", out]).exit_code == 0
    (out / "state.pt").write_bytes(b"damaged")  # the latest state is unreadable: resume falls back
    (out / "checkpoints" / "state_000003.pt").write_bytes(b"damaged")
    result = invoke(train_cli, [*_args(demo_data, 4), "--out", out, "--resume"])
    assert result.exit_code == 0, result.output
    assert _steps(out) == [1, 2, 3, 4]  # step 3 logged once: the redone step replaces the old line
    assert _states(out) == ["state_000001.pt", "state_000002.pt", "state_000003.pt", "state_000004.pt"]


def test_next_run_folder_numbering(tmp_path: Path) -> None:
    base = tmp_path / "runs" / "cut"
    assert next_run_folder(base) == base
    base.mkdir(parents=True)
    assert next_run_folder(base) == base  # an empty folder holds no run
    (base / "log.jsonl").write_text("")
    assert next_run_folder(base) == tmp_path / "runs" / "cut2"
    (tmp_path / "runs" / "cut2").mkdir()
    (tmp_path / "runs" / "cut2" / "model.pt").write_bytes(b"")
    (tmp_path / "runs" / "cut10").mkdir()
    (tmp_path / "runs" / "cut10" / "state.pt").write_bytes(b"")
    assert next_run_folder(base) == tmp_path / "runs" / "cut3"
    assert next_run_folder(base, resume=True) == tmp_path / "runs" / "cut10"  # the highest number
    assert [p.name for p in run_files(tmp_path / "runs" / "cut2")] == ["model.pt"]
    with pytest.raises(I2IError, match="no run in"):
        next_run_folder(tmp_path / "runs" / "style", resume=True)


def test_distill_refuses_a_used_folder_before_its_teacher_pass(tiny_run: Path, demo_data: Path, tmp_path: Path) -> None:
    from i2i.train.methods.distill import DistillConfig

    assert invoke(train_cli, [*_args(demo_data, 1), "--out", tmp_path]).exit_code == 0
    config = TrainConfig(data=str(demo_data), out=str(tmp_path), load_size=32, crop_size=32, max_steps=1,
                         workers=0, progress=False, eval_every=-1)  # fmt: skip
    with pytest.raises(I2IError, match="already holds a run"):
        train("distill", DistillConfig(teacher=str(tiny_run / "model.pt"), ngf=4, n_blocks=1), config)
    assert not (tmp_path / "teacher").exists()  # refused before the teacher translated anything
