"""Every console script has --help; bad input is one line on stderr and exit code 1, no traceback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = ["i2i", "i2i-train", "i2i-export", "i2i-run", "i2i-bench", "i2i-eval"]


def _bin(name: str) -> str:
    import sys

    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"console script {name} is not installed"
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_bin(args[0]), *args[1:]], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str) -> None:
    result = run(script, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout and ("Example" in result.stdout or script == "i2i")


def test_train_list_names_every_method() -> None:
    result = run("i2i-train", "list")
    assert result.returncode == 0
    assert "pix2pix" in result.stdout and "cyclegan" in result.stdout


def test_export_missing_checkpoint(tmp_path: Path) -> None:
    assert_one_line_error(run("i2i-export", str(tmp_path / "model.pt")), "checkpoint not found")


def test_export_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage" * 100)
    assert_one_line_error(run("i2i-export", str(bad)), "truncated or not a torch file")
    assert not list(tmp_path.glob("*.onnx"))


def test_run_unreadable_video(tiny_onnx: Path, tmp_path: Path) -> None:
    video = tmp_path / "broken.mp4"
    video.write_text("this is not a video")
    result = run("i2i-run", str(tiny_onnx), "--source", str(video), "--sink", str(tmp_path / "out.mp4"))
    assert_one_line_error(result, "cannot open video", str(video))
    assert not (tmp_path / "out.mp4").exists()


def test_run_model_without_card(tmp_path: Path, demo_data: Path) -> None:
    model = tmp_path / "plain.onnx"
    model.write_bytes(b"not onnx")
    result = run("i2i-run", str(model), "--source", str(demo_data / "video.mp4"))
    assert_one_line_error(result, "cannot load ONNX model")


def test_train_on_folder_without_images(tmp_path: Path) -> None:
    for sub in ("train/A", "train/B"):
        (tmp_path / sub).mkdir(parents=True)
    result = run("i2i-train", "pix2pix", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--max-steps", "1")
    assert_one_line_error(result, "no images")


def test_train_wrong_layout_says_what_it_expected(demo_data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "ds"
    (empty / "trainA").mkdir(parents=True)
    result = run("i2i-train", "pix2pix", "--data", str(empty), "--max-steps", "1", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "train/A")


def test_usage_error_exit_code_2() -> None:
    result = run("i2i-run", "--no-such-option")
    assert result.returncode == 2
