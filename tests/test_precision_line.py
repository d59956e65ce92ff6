"""i2i-run and the Python API say which precision the backend runs and why (--precision auto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke

openvino = pytest.importorskip("openvino", reason="the OpenVINO backend is what chooses a precision by hardware")


def test_run_prints_and_records_the_precision_choice(tiny_onnx: Path, tmp_path: Path) -> None:
    from i2i.runtime.cli import main

    stats = tmp_path / "stats.json"
    args = [tiny_onnx, "--backend", "openvino", "--source", "pattern:64x64@0", "--max-frames", "2"]
    result = invoke(main, [*args, "--stats", stats, "--no-progress"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("precision: "))
    assert any(name in line for name in ("fp32", "bf16", "fp16"))  # which one depends on the CPU; the line does not
    assert json.loads(stats.read_text())["info"]["precision_choice"] == line


def test_translator_exposes_the_choice(tiny_onnx: Path) -> None:
    import i2i

    with i2i.load(tiny_onnx, backend="openvino") as translator:
        assert translator.precision_choice is not None and translator.precision_choice.startswith("precision: ")
