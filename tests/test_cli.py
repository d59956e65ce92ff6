"""Every console script has --help; bad input is one line on stderr and exit code 1, no traceback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = ["i2i", "i2i-train", "i2i-export", "i2i-run", "i2i-bench", "i2i-eval"]


def _bin(name: str) -> str:
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


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """The extra checks see ``module`` as not installed (what a runtime-only install looks like)."""
    from i2i import _entry

    real = _entry.importlib.util.find_spec
    monkeypatch.setattr(_entry.importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))


def test_i2i_help_lists_every_command_without_importing_them() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from i2i.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "heavy = ('torch', 'onnx', 'i2i.train.cli', 'i2i.export.cli')\n"
        "print(result.exit_code, sorted(m for m in heavy if m in sys.modules))\n"
        "print(result.output)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    status, _, shown = done.stdout.partition("\n")
    assert status == "0 []", status
    for name in ("train", "export", "run", "bench", "eval"):
        assert re.search(rf"^  {name}\s+\S", shown, re.MULTILINE), shown


@pytest.mark.parametrize("args", [["train", "--help"], ["train", "list"]])
def test_i2i_train_without_torch_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    from click.testing import CliRunner

    from i2i.cli import main
    from i2i.errors import install_hint

    _hide(monkeypatch, "torch")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    why = "torch is not available (i2i train trains in torch)"
    assert result.output == f"Error: {why}; install it with: {install_hint('train')}\n"


def test_i2i_train_script_without_torch_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from i2i import _entry

    _hide(monkeypatch, "torch")
    monkeypatch.setattr(sys, "argv", ["i2i-train", "--help"])
    with pytest.raises(SystemExit) as exited:
        _entry.train()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: torch is not available") and "[train]" in err


def test_export_without_onnx_names_the_export_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    import i2i
    from i2i.errors import MissingDependencyError, install_hint
    from i2i.export.cli import main

    _hide(monkeypatch, "onnx")
    with pytest.raises(MissingDependencyError, match=r"^onnx is not available .*\[export\]") as raised:
        i2i.export(tmp_path / "model.pt")
    assert raised.value.message.endswith(install_hint("export"))
    for args in ([str(tmp_path / "model.pt")], ["inspect", str(tmp_path / "m.onnx")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert result.output.startswith("Error: onnx is not available") and "[export]" in result.output


def test_export_suggests_the_closest_command(tmp_path: Path) -> None:
    result = run("i2i-export", "insepct", str(tmp_path / "x.onnx"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "No such command 'insepct'. Did you mean 'inspect'?" in result.stderr
    assert "unexpected extra argument" not in result.stderr
    # A model file whose name looks like a command is still a model to export.
    (tmp_path / "inspekt").write_bytes(b"not a checkpoint")
    exported = subprocess.run(
        [_bin("i2i-export"), "inspekt"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert exported.returncode == 1 and "Did you mean" not in exported.stderr
