"""``pip install .`` (not only -e) maps train/, export/, runtime/ to i2i.train / i2i.export / i2i.runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_regular_install_imports_from_another_directory(tmp_path: Path) -> None:
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    code = (
        "import i2i, i2i.train.nets, i2i.train.methods, i2i.export.onnx\n"
        "import i2i.runtime.pipeline, i2i.runtime.backends.base\n"
        "import i2i.runtime, i2i.train, i2i.export\n"
        "print(i2i.runtime.__file__); print(i2i.train.__file__); print(i2i.export.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    files = run.stdout.split()
    assert len(files) == 3 and all(f.startswith(str(target)) for f in files), files
    assert (target / "i2i" / "runtime" / "py.typed").exists()
    scripts = {
        line.split("=")[0].strip()
        for line in next(target.glob("i2i-*.dist-info")).joinpath("entry_points.txt").read_text().splitlines()
        if "=" in line
    }
    assert {"i2i", "i2i-train", "i2i-export", "i2i-run", "i2i-bench", "i2i-eval"} <= scripts


def test_editable_install_imports_from_another_directory(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", "import i2i.runtime, i2i.train, i2i.export; print(i2i.train.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(ROOT / "train"))
