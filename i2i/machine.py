"""What a benchmark ran on: CPU, and when a GPU ran, the GPU with its driver, CUDA, cuDNN, TensorRT and
ONNX Runtime versions. Imports nothing heavy (no click, no torch unless a GPU row asks for its CUDA
stack), so ``benchmarks/gpu_check.py`` can use it on a bare GPU box."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import numpy as np

from i2i import __version__


def _cpuinfo() -> str:
    """/proc/cpuinfo (Linux); "" where there is none."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_name(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# The instruction-set extensions that decide CPU inference speed: AVX2/FMA fp32 kernels, AVX-512,
# VNNI (int8 dot products), native bf16/fp16 and AMX. The same model name can come with or without them.
_SIMD_FLAGS = re.compile(r"^(avx\w*|fma|f16c|amx\w*|sse4_2)$")


def cpu_flags(cpuinfo: str) -> list[str]:
    """The SIMD flags in a /proc/cpuinfo text, sorted; [] where it names none."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return sorted(flag for flag in line.split(":", 1)[1].split() if _SIMD_FLAGS.match(flag))
    return []


def _nvidia_smi() -> dict[str, str]:
    """GPU name and driver from nvidia-smi (part of every NVIDIA driver); {} without one."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    first = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    name, _, driver = first.partition(",")
    return {"gpu": name.strip(), "gpu_driver": driver.strip()} if name.strip() else {}


def _torch_cuda() -> dict[str, Any]:
    """CUDA and cuDNN versions torch was built with, and its GPU, when torch is installed with CUDA."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return {}
    import torch

    info: dict[str, Any] = {"torch": torch.__version__}
    if torch.cuda.is_available():
        cudnn = torch.backends.cudnn.version()
        info.update(
            gpu=torch.cuda.get_device_name(0),
            cuda=torch.version.cuda,
            cudnn=".".join(str(cudnn // d % m) for d, m in ((10000, 100), (100, 100), (1, 100))) if cudnn else None,
            compute_capability="{}.{}".format(*torch.cuda.get_device_capability(0)),
            tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
        )
    return info


def _runtimes() -> dict[str, Any]:
    from i2i.runtime.backends.tensorrt import tensorrt_status

    info: dict[str, Any] = {"onnxruntime": None, "onnxruntime_providers": [], "tensorrt": None}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    ok, version = tensorrt_status()
    info["tensorrt"] = version if ok else None
    return info


def machine_info(gpu: bool | None = None) -> dict[str, Any]:
    """What the numbers were measured on. ``gpu=True`` (a GPU row ran) records the GPU name,
    driver, CUDA, cuDNN, TensorRT and ONNX Runtime versions, and results are then filed under the
    GPU's name; ``None`` records a GPU if one is present; ``False`` records none."""
    cpuinfo = _cpuinfo()
    info: dict[str, Any] = {
        "cpu": _cpu_name(cpuinfo),
        "cpu_flags": cpu_flags(cpuinfo),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "i2i": __version__,
        "numpy": np.__version__,
        **_runtimes(),
        "gpu": None,
    }
    if gpu is not False:
        found = {**_nvidia_smi(), **(_torch_cuda() if gpu else {})}
        if gpu and not found.get("gpu"):
            found.update(_torch_cuda())
        info.update(found)
    return info


def machine_slug(machine: dict[str, Any]) -> str:
    """The results folder of a machine: the GPU's name when a GPU ran, else the CPU's; and the cores."""
    name = re.sub(r"[^a-z0-9]+", "-", str(machine.get("gpu") or machine["cpu"]).lower()).strip("-")
    return f"{name}-{machine['cores']}c"
