"""``make gpu-check`` is known to work before a GPU box runs it: its dry run on the CPU."""

from __future__ import annotations

import ctypes
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(ROOT / "benchmarks"))
check = importlib.import_module("trt_cuda_check")  # benchmarks/ is a folder of scripts, not a package


def test_the_tensorrt_backends_cuda_path_dry_run(tmp_path: Path) -> None:
    """What ``make gpu-check`` runs first on a GPU, here with the cuda-python double and a host kernel:
    real engine files and sidecars opened by the TensorRT backend, frames checked bit for bit."""
    with check.cuda_double() as double:
        rows = check.run_check(tmp_path, check.HostKernel(double), calls=6, dry=True)
    assert [r.get("failed") for r in rows] == [None] * 5, rows
    assert all(r["bit_exact"] for r in rows)
    by_case = {r["what"].split(":")[0]: r for r in rows[:3]}
    assert "CUDA graph" in by_case["frame-static"]["what"] and "CUDA graph" in by_case["tensor-static"]["what"]
    assert "CUDA graph" not in by_case["frame-dynamic"]["what"] and by_case["frame-dynamic"]["buffer_sets"] == 3
    assert double.launched > 0 and not double.memory  # graphs replayed; every buffer freed
    assert "two threads" in rows[3]["what"] and "worker thread" in rows[4]["what"]
    bindings = getattr(sys.modules.get("cuda"), "bindings", None)
    assert getattr(bindings, "runtime", None) is not double  # the double is gone after the check


class _Ignores:
    """Computes the right function, but at once instead of on the backend's stream."""

    def __init__(self, cuda: Any) -> None:
        self.cuda, self.kernel = cuda, check.HostKernel(cuda)

    def __call__(self, src: int, dst: int, shape: tuple[int, ...], dtype: Any, stream: int, device: int) -> None:
        recording = self.cuda.capturing.pop(stream, None)
        self.kernel(src, dst, shape, dtype, stream, device)
        if recording is not None:
            self.cuda.capturing[stream] = recording

    def forget(self) -> None:
        pass


class _Wrong(_Ignores):
    """On the stream, but one byte wrong."""

    def __call__(self, src: int, dst: int, shape: tuple[int, ...], dtype: Any, stream: int, device: int) -> None:
        self.kernel(src, dst, shape, dtype, stream, device)
        self.cuda.enqueue(stream, lambda: ctypes.memmove(dst, b"\x07", 1))


def test_the_cuda_path_check_catches_wrong_frames(tmp_path: Path) -> None:
    with check.cuda_double() as double:
        rows = check.run_check(tmp_path, _Wrong(double), calls=2, dry=True)
    assert all("values wrong" in r["failed"] for r in rows), rows
    with check.cuda_double() as double:
        rows = check.run_check(tmp_path, _Ignores(double), calls=4, dry=True)
    failed = {r["what"].split(":")[0] for r in rows[:3] if "failed" in r}
    assert failed == {"frame-static", "tensor-static"}  # a kernel left out of the captured graph


@pytest.mark.slow  # the whole check, end to end (on the CPU)
def test_gpu_check_dry_run(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (json_path,) = tmp_path.glob("*/gpu-check.json")
    result = json.loads(json_path.read_text())
    assert result["dry_run"] is True and result["device"] == "cpu" and result["machine"]["gpu"] is None
    assert not json_path.parent.name.startswith("nvidia")  # CPU figures are never filed as a GPU's
    assert "DRY RUN" in result["note"] and "Random-init" in result["note"]
    rows = result["rows"]
    cuda_path = [r for r in rows if r["model"] == "trt-cuda-path"]
    assert rows[: len(cuda_path)] == cuda_path and len(cuda_path) == 5  # the TensorRT backend's CUDA path first
    assert all(r["bit_exact"] and r["frames_checked"] > 0 for r in cuda_path)
    measured = [r for r in rows if "skipped" not in r and r["model"] != "trt-cuda-path"]
    torch_rows = {
        (m, f"torch {v}", p)
        for m in ("resnet9", "student")
        for v in ("eager", "channels_last")
        for p in ("fp32", "bf16")
    }
    ort_rows = {(m, "ort cpu", "fp32") for m in ("resnet9", "student")}  # exported by i2i, run by the backend
    assert {(r["model"], r["engine"], r["precision"]) for r in measured} == torch_rows | ort_rows
    for r in measured:
        assert r["median_ms"] > 0 and r["fps"] > 0
        psnr = r["psnr_vs_fp32_db"]
        if r["engine"] == "torch eager" and r["precision"] == "fp32":
            assert psnr == "inf"  # the reference itself (JSON has no infinity)
        else:
            assert psnr is not None and psnr > 40  # compared with fp32 eager on the same input
    skipped = {r["engine"]: r["skipped"] for r in rows if "skipped" in r}
    assert skipped["torch cuda_graph"] == "CUDA graphs need a CUDA device"
    assert "torch.compile" in skipped["torch compile"] and "tensorrt" in skipped
    report = (json_path.parent / "gpu-check.md").read_text()
    assert "| resnet9 | 32x48 | fp32 | torch eager (NCHW) |" in report
    static = "trt backend (frame-static: trt (cuda:0, fp32, CUDA graph); one thread)"
    assert f"| trt-cuda-path | 16x24 | uint8 | {static} |" in report


def test_gpu_check_refuses_a_cpu_run_that_would_look_like_a_gpu_one(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "--device cpu needs --dry-run" in run.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_gpu_check_runs_from_a_bare_working_tree(tmp_path: Path) -> None:
    """The GPU box gets the working tree, not an install: the script maps i2i.* onto its folders.
    Run a copy of the tree with ``python -S`` (no .pth files, so no editable install of i2i) and
    only the site-packages folder on the path (numpy, torch)."""
    import shutil
    import site

    tree = tmp_path / "tree"
    for folder in ("i2i", "train", "export", "runtime", "benchmarks"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__", "results", ".work"))
    (tree / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "cuda_double.py", tree / "tests")  # the dry run's GPU
    code = (
        "import sys, runpy\n"
        f"sys.path.extend({site.getsitepackages()!r})\n"
        f"sys.argv = ['gpu_check.py', '--dry-run', '--out', {str(tmp_path / 'out')!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(tree / 'benchmarks' / 'gpu_check.py')!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "import i2i.runtime\n"
        "print(i2i.runtime.__file__)\n"
    )
    run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == str(tree / "runtime" / "__init__.py")
    assert list((tmp_path / "out").glob("*/gpu-check.json"))
