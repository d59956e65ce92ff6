"""Ctrl-C and SIGTERM during a TensorRT build, delivered as real signals to a process that builds
through the TensorRT double (tests/tensorrt_double.py). The double builds as TensorRT does: it
calls the progress callbacks from C, so a signal's Python handler runs only inside a callback's
trampoline, which prints and swallows whatever it raises. Before the fix, Ctrl-C there cancelled
the build and was reported as "TensorRT failed to build the engine" (exit 1), or was lost."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_export_tensorrt import card, carded_onnx

TESTS = Path(__file__).resolve().parent

BUILD = """
import sys
sys.path.insert(0, {tests!r})
from tensorrt_double import make_module

trt, record = make_module("11")
trt.Builder.build_steps, trt.Builder.step_seconds = 600, 0.05  # 30 s unless interrupted
trt.Builder.callbacks_on_worker = {worker!r}
trt.Builder.on_build = lambda: print("BUILDING", flush=True)
sys.modules["tensorrt"] = trt

import i2i.export.tensorrt as builder
from i2i.runtime.backends.cuda import GpuIdentity

builder.select_gpu = lambda index: GpuIdentity("NVIDIA H100 80GB HBM3", "9.0")
from i2i.export.cli import main

try:
    main([{onnx!r}, "--engine", "trt", "--timing-cache", {cache!r}])
finally:
    print("BUILDS", [b["cancelled"] for b in record.builds], "SWALLOWED", record.swallowed, file=sys.stderr)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated")]
)
@pytest.mark.parametrize("worker", [False, True], ids=["callbacks-on-the-caller", "callbacks-on-a-tensorrt-thread"])
def test_a_real_signal_during_a_build_cancels_it_and_exits_as_interrupted(
    tmp_path: Path, sig: signal.Signals, code: int, word: str, worker: bool
) -> None:
    """On the caller's thread the handler runs in a callback; on TensorRT's own threads (the caller
    waiting in C) no handler runs until the build returns, and only the wakeup fd tells."""
    onnx_path = carded_onnx(tmp_path / "model.onnx", card())
    cache = str(tmp_path / "timing.cache")
    script = BUILD.format(tests=str(TESTS), onnx=str(onnx_path), cache=cache, worker=worker)
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 120)
        assert ready and process.stdout.readline().strip() == "BUILDING", process.stderr
        time.sleep(0.3)  # a few steps into the build
        os.kill(process.pid, sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, stderr
    assert f"{word}." in stderr and "TensorRT failed" not in stderr
    assert "BUILDS [True] SWALLOWED []" in stderr  # cancelled by step_complete's False, nothing swallowed
    assert not (tmp_path / "model.engine").exists() and not (tmp_path / "model.engine.json").exists()
    assert not (tmp_path / "timing.cache").exists() and not list(tmp_path.glob(".*tmp"))
