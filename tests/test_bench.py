"""``i2i-bench``'s machine record: GPU results name the GPU, its driver and the CUDA stack (defect 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from i2i.bench import machine_info


def _fake_nvidia_smi(folder: Path) -> None:
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA H200, 580.65.06'\n")
    script.chmod(0o755)


def test_machine_info_names_the_gpu_and_its_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from i2i.machine import machine_slug

    _fake_nvidia_smi(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    info = machine_info(gpu=True)
    assert info["gpu"] == "NVIDIA H200" and info["gpu_driver"] == "580.65.06"
    for key in ("onnxruntime", "onnxruntime_providers", "tensorrt", "cpu", "cores"):
        assert key in info
    assert machine_slug(info).startswith("nvidia-h200")  # results filed under the GPU's name
    cpu_only = machine_info(gpu=False)
    assert cpu_only["gpu"] is None and "gpu_driver" not in cpu_only
    assert not machine_slug(cpu_only).startswith("nvidia")


def test_machine_info_without_a_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    info = machine_info()
    assert info["gpu"] is None and info["onnxruntime"]


def test_machine_info_records_the_cpu_simd_flags() -> None:
    from i2i.machine import _cpuinfo, cpu_flags

    cpuinfo = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile ht\n"
    assert cpu_flags(cpuinfo) == ["amx_tile", "avx", "avx2", "avx512_vnni", "avx512f", "fma", "sse4_2"]
    assert cpu_flags("processor\t: 0\n") == []
    assert machine_info(gpu=False)["cpu_flags"] == cpu_flags(_cpuinfo())


def _fake_status(monkeypatch: pytest.MonkeyPatch, missing: dict[str, str]) -> None:
    from i2i.runtime.backends import base

    real = base.backend_status
    monkeypatch.setattr(base, "backend_status", lambda name: (False, missing[name]) if name in missing else real(name))


def test_default_backends_skip_what_is_not_installed_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A runtime-only install (no torch): i2i-bench model.onnx runs ONNX Runtime and says, in one
    line, that it skipped the torch baseline and why."""
    from click.testing import CliRunner

    from i2i import bench

    _fake_status(monkeypatch, {"torch": "torch is not installed; python -m pip install 'i2i-toolkit[train]'"})
    ran: list[list[str]] = []

    def fake_run_bench(model: Path, checkpoint: Path | None, names: list[str], *args: object, **kw: object) -> dict:
        ran.append(names)
        row = {"backend": "ort", "precision": "fp32", "batch": 1, "height": 64, "width": 64, "median_ms": 1.0}
        row.update(p95_ms=1.0, fps=1000.0, speedup_vs_torch=None, psnr_vs_torch_db=None, device="cpu")
        return {"rows": [row], "skipped": {}, "machine": bench.machine_info(gpu=False)}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    result = CliRunner().invoke(bench.main, [str(model), "--size", "64"])
    assert result.exit_code == 0, result.output
    assert ran == [["ort"]]
    skipped = [ln for ln in result.stderr.splitlines() if ln.startswith("skipped:")]
    assert skipped == ["skipped: torch (torch is not installed; python -m pip install 'i2i-toolkit[train]')"]
    # The split behind it: installed names, and {name: why} for the others.
    assert bench.installed_backends(["ort", "torch"]) == (["ort"], {"torch": skipped[0][16:-1]})


def test_default_backends_none_installed_is_one_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from i2i import bench

    _fake_status(monkeypatch, {"ort": "no onnxruntime", "torch": "no torch"})
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    result = CliRunner().invoke(bench.main, [str(model)])
    assert result.exit_code == 1
    assert result.output == "Error: none of the default backends is installed: ort (no onnxruntime); torch (no torch)\n"
