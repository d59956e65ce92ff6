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
