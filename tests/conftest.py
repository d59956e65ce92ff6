"""Shared fixtures: one tiny demo dataset and one tiny trained + exported model per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

# Under pytest-xdist every worker is one process per core: each (and every command it starts) computes
# on one thread, instead of each spinning up a thread per core and fighting the other workers for them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def invoke(command, args, **kwargs):
    """Run a click command in-process; return the result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False, **kwargs)


def run_script(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run python code in a fresh interpreter (for sys.modules checks and console behaviour)."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from i2i.train.demo import build_demo_dataset

    root = tmp_path_factory.mktemp("demo") / "data"
    build_demo_dataset(
        root,
        crop=128,
        crops_per_photo=3,
        test_crops_per_photo=1,
        video_seconds=1.0,
        video_size=(96, 72),
        fps=10.0,
        progress=False,
    )
    return root


@pytest.fixture(scope="session")
def tiny_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pix2pix run of a few steps on the demo data: run folder with model.pt and state.pt."""
    from i2i.train.loop import TrainConfig, train
    from i2i.train.methods.pix2pix import Pix2PixConfig

    out = tmp_path_factory.mktemp("run")
    train(
        "pix2pix",
        Pix2PixConfig(ngf=8, ndf=8, num_downs=5),
        TrainConfig(
            data=str(demo_data),
            out=str(out),
            load_size=72,
            crop_size=64,
            batch_size=2,
            max_steps=4,
            workers=0,
            sample_every=2,
            progress=False,
        ),
    )
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run: Path) -> Path:
    from i2i.export.onnx import ExportConfig, export_checkpoint

    result = export_checkpoint(ExportConfig(checkpoint=str(tiny_run / "model.pt"), progress=False))
    return result.onnx
