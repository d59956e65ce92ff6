"""What i2i-run says at start and end: one short backend line (GPU install hints only where a GPU is
present, or when asked), and one line when nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import invoke
from test_backends import make_model

from i2i.runtime.backends import auto
from i2i.runtime.backends.auto import Candidate, open_auto_choice
from i2i.runtime.cli import main


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "invert.onnx")


def _choice(model: Path) -> auto.AutoChoice:
    candidates = [
        Candidate("TensorRT (ONNX Runtime's TensorRT provider)", "ort", "cuda", skip="no TRT (run `pip install x`)"),
        Candidate("ORT CUDA", "ort", "cuda", skip="onnxruntime has no CUDAExecutionProvider (run `pip install y`)"),
        Candidate("ORT CPU", "ort", "cpu"),
    ]
    return open_auto_choice(model, candidates=candidates)


def test_the_brief_reason_names_what_was_skipped_and_hints_only_with_a_gpu(model: Path) -> None:
    choice = _choice(model)
    with choice.backend:
        brief = choice.brief(gpu_present=False)
        assert brief == (
            "auto: ORT CPU is the fastest that runs here; skipped TensorRT, ORT CUDA "
            "(no NVIDIA GPU here; --verbose or --list-backends says why)"
        )
        assert choice.brief(gpu_present=True) == choice.why  # a GPU to use: the reasons and their fixes
        assert "pip install x" in choice.why and "pip install y" in choice.why


def test_a_run_starts_with_one_short_backend_line(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "nvidia_gpu_present", lambda: False)
    args = [model, "-s", "pattern:48x64@0", "--max-frames", 1, "--no-progress"]
    result = invoke(main, args)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("backend: ")]
    assert "pip" not in line and "install" not in line and "--verbose" in line
    assert "output: nothing written: the sink is null (the default)" in result.stdout
    verbose = invoke(main, [*args, "--verbose"])
    (line,) = [line for line in verbose.stderr.splitlines() if line.startswith("backend: ")]
    assert "fastest available here" in line  # the full account, every skipped tier with its reason


def test_list_backends_shows_every_reason_without_a_model() -> None:
    result = invoke(main, ["--list-backends"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "backends:" and any(line.split()[0] == "ort" for line in lines[1:])
    assert any(line.startswith("--backend auto for an .onnx model, fastest first") for line in lines)
    assert any("ORT CPU" in line and line.rstrip().endswith("tried") for line in lines)
