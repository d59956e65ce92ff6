"""``make gpu-check`` is known to work before a GPU box runs it: its dry run on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


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
    measured = [r for r in rows if "skipped" not in r]
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
    assert "| resnet9 | 32x48 | fp32 | torch eager (NCHW) |" in (json_path.parent / "gpu-check.md").read_text()


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
