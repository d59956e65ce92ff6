"""Resume: a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run;
a corrupt latest state falls back to the previous one with a warning."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from i2i.train.loop import EpochBatches, SeededSamples, TrainConfig, train
from i2i.train.methods.pix2pix import Pix2PixConfig

STEPS = 16


def _args(data: Path, out: Path) -> list[str]:
    return [
        "pix2pix",
        "--data",
        str(data),
        "--out",
        str(out),
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--num-downs",
        "5",
        "--load-size",
        "72",
        "--crop-size",
        "64",
        "--batch-size",
        "2",
        "--max-steps",
        str(STEPS),
        "--save-every",
        "2",
        "--sample-every",
        "1000",
        "--workers",
        "1",
        "--deterministic",
        "--no-progress",
    ]


def _train_cli(*args: str) -> subprocess.Popen[bytes]:
    code = "import sys; from i2i.train.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_sigkill_then_resume_is_bit_identical(demo_data: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    done = _train_cli(*_args(demo_data, reference))
    assert done.wait(timeout=600) == 0, done.stderr.read().decode() if done.stderr else ""

    killed = tmp_path / "killed"
    proc = _train_cli(*_args(demo_data, killed))
    deadline = time.monotonic() + 600
    while not (killed / "checkpoints" / "state_000006.pt").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step_at_kill = torch.load(killed / "state.pt", weights_only=True)["step"]
    assert 6 <= step_at_kill < STEPS  # really killed mid-run

    resumed = _train_cli(*_args(demo_data, killed), "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode() if resumed.stderr else ""
    a, b = _weights(reference / "model.pt"), _weights(killed / "model.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    state_a = torch.load(reference / "state.pt", weights_only=True)
    state_b = torch.load(killed / "state.pt", weights_only=True)
    for k, v in state_a["networks"]["discriminator"].items():
        assert torch.equal(v, state_b["networks"]["discriminator"][k])


def test_corrupt_latest_state_falls_back(demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainConfig(
        data=str(demo_data),
        out=str(tmp_path),
        load_size=72,
        crop_size=64,
        batch_size=2,
        max_steps=4,
        save_every=2,
        keep_last=2,
        workers=0,
        progress=False,
    )
    method_config = Pix2PixConfig(ngf=8, ndf=8, num_downs=5)
    train("pix2pix", method_config, config)
    history = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert history == ["state_000002.pt", "state_000004.pt"]
    (tmp_path / "state.pt").write_bytes(b"truncated")
    (tmp_path / "checkpoints" / "state_000004.pt").write_bytes(b"also bad")
    result = train("pix2pix", method_config, TrainConfig(**{**config.__dict__, "max_steps": 6, "resume": True}))
    err = capsys.readouterr().err
    assert "state.pt is corrupt or truncated" in err and "resuming from" in err and "state_000002.pt" in err
    assert result.steps == 6


def test_epoch_batches_resume_mid_epoch_and_cover_each_epoch() -> None:
    full = EpochBatches(10, 3, seed=1)
    seq = [b for _, b in zip(range(9), iter(full))]
    assert len(full.__dict__) and full.per_epoch == 3
    for epoch in range(3):  # each epoch: 3 batches of 3 distinct samples from that epoch (one dropped)
        keys = [k for b in seq[3 * epoch : 3 * epoch + 3] for k in b]
        assert len(set(keys)) == 9 and all(epoch * 10 <= k < epoch * 10 + 10 for k in keys)
    resumed = [b for _, b in zip(range(5), iter(EpochBatches(10, 3, seed=1, start_step=4)))]
    assert resumed == seq[4:]


def test_seeded_samples_do_not_touch_the_callers_rng() -> None:
    class Noisy(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.rand(1)

    samples = SeededSamples(Noisy(), seed=3)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = samples[5]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, samples[5]) and not torch.equal(samples[5], samples[1])  # same key, same draw


def _tiny_paired(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (root / "train" / side).mkdir(parents=True)
        for i in range(n):
            assert cv2.imwrite(str(root / "train" / side / f"im{i}.png"), rng.integers(0, 256, (36, 36, 3), np.uint8))


def test_image_damaged_mid_run_keeps_the_steps_done(tmp_path: Path) -> None:
    """An image whose header is fine but whose data is cut fails when a step first draws it: the
    steps done are saved (as on Ctrl-C), then one line names the image; also through a worker."""
    from conftest import invoke

    from i2i.train.checkpoint import load_checkpoint
    from i2i.train.cli import main

    n = 8
    _tiny_paired(tmp_path / "data", n)
    order = [batch[0] for batch in itertools.islice(iter(EpochBatches(n, 1, seed=0)), n)]
    first_bad_step = next(s for s in range(1, n) if order[s] >= 4)  # indices 0-3 make the sample grid
    bad = tmp_path / "data" / "train" / "A" / f"im{order[first_bad_step]}.png"
    bad.write_bytes(bad.read_bytes()[:100])
    out = tmp_path / "run"
    result = invoke(main, [
        "pix2pix", "--data", tmp_path / "data", "--out", out, "--ngf", "8", "--ndf", "8", "--num-downs", "5",
        "--load-size", "36", "--crop-size", "32", "--max-steps", "100", "--workers", "1", "--no-progress",
    ])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: cannot read image: {bad}; it is missing, corrupt or not an image, remove or replace it; "
        f"checkpoint and state of step {first_bad_step} saved in {out} (continue with --resume)"
    ]
    assert torch.load(out / "state.pt", weights_only=True)["step"] == first_bad_step
    assert load_checkpoint(out / "model.pt")["train_config"]["step"] == first_bad_step


def test_sample_grid_that_cannot_be_written_warns_once_and_training_goes_on(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "samples").write_text("a file where the grids' folder would go")  # every grid write fails
    config = TrainConfig(data=str(demo_data), out=str(tmp_path), load_size=36, crop_size=32, max_steps=3,
                         sample_every=1, workers=0, progress=False)  # fmt: skip
    result = train("pix2pix", Pix2PixConfig(ngf=8, ndf=8, num_downs=5), config)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"cannot write sample grid {tmp_path / 'samples' / 'step_000001.png'}" in warnings[0]
    assert result.steps == 3 and result.samples == [] and (tmp_path / "model.pt").is_file()
