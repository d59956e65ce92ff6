"""``pip install .`` (not only -e) maps train/, export/, runtime/ to i2i.train / i2i.export / i2i.runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# -- ONNX Runtime extras (defect 3): one runtime distribution per environment ------------------------
@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The i2i wheel as pip would build it (its METADATA is what pip reads for extras)."""
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    return next(out.glob("i2i-*.whl"))


def _requirements(wheel: Path, extras: tuple[str, ...]) -> set[str]:
    """The distribution names pip installs for ``i2i[extras]``, from the wheel's own metadata."""
    import zipfile

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(meta).decode().splitlines()
    names = set()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        contexts = [{"extra": e} for e in extras] or [{"extra": ""}]
        if req.marker is None or any(req.marker.evaluate(c) for c in contexts):
            names.add(req.name)
    return names


def test_gpu_and_cpu_extras_never_install_both_onnxruntimes(wheel: Path) -> None:
    ort = {"onnxruntime", "onnxruntime-gpu"}
    assert _requirements(wheel, ("gpu",)) & ort == {"onnxruntime-gpu"}
    assert _requirements(wheel, ("cpu",)) & ort == {"onnxruntime"}
    assert _requirements(wheel, ("gpu", "train", "export")) & ort == {"onnxruntime-gpu"}
    assert _requirements(wheel, ()) & ort == set()  # a base dependency on either would clash with the other
    assert "cuda-python" in _requirements(wheel, ("trt",))


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def _pip(python: Path, *args: str) -> None:
    run = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]


PROBE = (
    "import importlib.metadata as m, json\n"
    "from i2i.runtime.backends import backend_status\n"
    "from i2i.runtime.backends.onnxruntime import gpu_fix_command\n"
    "out = {'ort': backend_status('ort'), 'fix': gpu_fix_command()}\n"
    "try:\n"
    "    import onnxruntime\n"
    "    owner = [d.metadata['Name'] for d in m.distributions()\n"
    "             if any(str(f) == 'onnxruntime/__init__.py' for f in (d.files or []))]\n"
    "    out.update(providers=onnxruntime.get_available_providers(), owner=owner)\n"
    "except ImportError:\n"
    "    pass\n"
    "print(json.dumps(out))\n"
)


def _probe(python: Path, tmp_path: Path) -> Any:
    import json

    run = subprocess.run([str(python), "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # ~1 min: a venv and the 256 MB onnxruntime-gpu wheel from the package index
def test_fresh_venv_plain_then_gpu_extra(wheel: Path, tmp_path: Path) -> None:
    """In a fresh venv: plain i2i names the command that adds a runtime; the gpu extra's
    onnxruntime-gpu is then the only distribution providing the onnxruntime module, with CUDA.

    The i2i wheel goes in with --no-deps and the gpu extra's ONNX Runtime requirement with its
    own small dependencies (not the CUDA/cuDNN wheels, ~1 GB, which only a GPU would use)."""
    python = _venv(tmp_path)
    _pip(python, "--no-deps", str(wheel))
    _pip(python, "numpy", "click", "tqdm")
    plain = _probe(python, tmp_path)
    ok, why = plain["ort"]
    assert not ok and "-m pip install 'i2i[cpu]'" in why
    assert plain["fix"].endswith("pip install 'i2i[gpu]'")
    gpu = sorted(_requirements(wheel, ("gpu",)) & {"onnxruntime-gpu"})
    _pip(python, "--no-deps", *gpu)
    _pip(python, "flatbuffers", "packaging", "protobuf", "coloredlogs", "sympy")
    installed = _probe(python, tmp_path)
    assert installed["owner"] == ["onnxruntime-gpu"]
    assert "CUDAExecutionProvider" in installed["providers"]
    assert installed["ort"][0] is True
