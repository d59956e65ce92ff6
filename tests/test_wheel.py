"""i2i as users install it: the wheel, installed NON-editable into two fresh venvs, every entry point run there.

``runtime`` venv: ``i2i-toolkit[cpu]`` only (no torch, no onnx). ``full`` venv: ``[cpu,train,export]``.
In the full venv a tiny pix2pix is trained on ``i2i-train data demo`` data, exported, run on a folder
and scored; the runtime venv runs that ONNX model, scores folders, benchmarks it, and every command
that needs torch or onnx stops with one line naming the extra (never a traceback). Both use the
Python API (``i2i.load(path)(frame)``).

Nothing here sees the checkout: commands run from a folder outside it, in venvs made with plain
``python -m venv`` (no --system-site-packages, which would hide a missing dependency), and the
packages come from the wheel's own metadata. torch is installed first, as the Makefile pins it
(``I2I_TEST_TORCH`` overrides), so pip takes the same build as the development venv.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from wheel_build import ROOT, build_wheel

pytestmark = pytest.mark.slow

SCRIPTS = ("i2i", "i2i-train", "i2i-export", "i2i-run", "i2i-bench", "i2i-eval")


def _torch_requirement() -> list[str]:
    """The torch the Makefile installs (``TORCH ?= ...``), or I2I_TEST_TORCH: pip arguments."""
    if os.environ.get("I2I_TEST_TORCH"):
        return shlex.split(os.environ["I2I_TEST_TORCH"])
    match = re.search(r"^TORCH\s*\?=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile no longer pins TORCH"
    return shlex.split(match.group(1))


@dataclass(frozen=True)
class Venv:
    root: Path
    work: Path  # the folder commands run in: outside the checkout, so nothing imports from it

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def run(self, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A console script of this venv (``args[0]``) with its arguments."""
        command = [str(self.root / "bin" / str(args[0])), *map(str, args[1:])]
        return subprocess.run(command, cwd=self.work, env=self.env(), capture_output=True, text=True, timeout=timeout)

    def python_code(self, code: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [str(self.python), "-c", code, *map(str, args)]
        return subprocess.run(command, cwd=self.work, env=self.env(), capture_output=True, text=True, timeout=300)

    def pip_install(self, *args: str | Path) -> None:
        # --no-compile: no .pyc for all of torch up front (a third of the install's time); imports compile lazily.
        pip = [str(self.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        command = [*pip, *map(str, args)]
        done = subprocess.run(command, cwd=self.work, env=self.env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]


def _make_venv(root: Path) -> Venv:
    created = subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, created.stderr[-2000:]
    work = root.parent / f"{root.name}-work"
    work.mkdir()
    return Venv(root, work)


@pytest.fixture(scope="session")
def short_tmp() -> Iterator[Path]:
    """A short folder under the system temp dir (venv scripts carry their interpreter's path in
    their #! line, which the kernel truncates past 255 bytes); removed at the end, by ``rm -rf`` in
    the background: the two venvs hold ~2 GB of small files, and the suite need not wait for them."""
    root = Path(tempfile.mkdtemp(prefix="i2i-w-"))
    yield root
    rm = shutil.which("rm")
    if rm is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        subprocess.Popen([rm, "-rf", str(root)], start_new_session=True, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def wheel(short_tmp: Path) -> Path:
    return build_wheel(short_tmp / "build")


@pytest.fixture(scope="session")
def runtime(wheel: Path, short_tmp: Path) -> Venv:
    venv = _make_venv(short_tmp / "rt")
    venv.pip_install(f"{wheel}[cpu]")
    return venv


@pytest.fixture(scope="session")
def full(wheel: Path, short_tmp: Path) -> Venv:
    venv = _make_venv(short_tmp / "full")
    venv.pip_install(*_torch_requirement())
    venv.pip_install(f"{wheel}[cpu,train,export]")
    return venv


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.args, result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single ``Error:`` line of a failed command (and nothing that looks like a traceback)."""
    assert result.returncode == code, (result.args, result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    if code == 1:
        assert lines == errors, result.stderr  # nothing but the one line
    return errors[0]


def _hint(venv: Venv, extra: str) -> str:
    """What install_hint says in a venv that has the wheel (not a checkout): that venv's python."""
    return f"{venv.python} -m pip install 'i2i-toolkit[{extra}]'"


# -- the full venv: train -> export -> run -> eval -> bench -----------------------------------------
@dataclass(frozen=True)
class Made:
    data: Path
    run: Path
    onnx: Path
    translated: Path


@pytest.fixture(scope="session")
def made(full: Venv) -> Made:
    data, run, out = full.work / "data", full.work / "run", full.work / "translated"
    ok(full.run("i2i-train", "data", "demo", data, "--crops-per-photo", "2", "--crop", "64", "--video-seconds", "1"))
    train = ("--num-downs", "5", "--ngf", "8", "--ndf", "8", "--load-size", "72", "--crop-size", "64")
    steps = ("--batch-size", "2", "--max-steps", "3", "--workers", "0", "--sample-every", "3", "--save-every", "3")
    ok(full.run("i2i-train", "pix2pix", "--data", data, "--out", run, *train, *steps, "--no-progress"))
    assert (run / "model.pt").is_file()
    ok(full.run("i2i-export", run / "model.pt", "--no-progress"))
    onnx = run / "model.onnx"
    assert onnx.is_file()
    ok(full.run("i2i-run", onnx, "-s", data / "test" / "A", "-o", f"{out}/", "--no-progress"))
    return Made(data, run, onnx, out)


def test_full_install_is_the_wheel_not_the_checkout(full: Venv) -> None:
    code = "import i2i, i2i.analysis, i2i.train, i2i.export, i2i.runtime; print(i2i.__file__)"
    assert ok(full.python_code(code)).strip().startswith(str(full.root))
    assert ok(full.python_code("from i2i.errors import install_hint; print(install_hint('gpu'))")).strip() == _hint(
        full, "gpu"
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_full_every_entry_point_has_help(full: Venv, script: str) -> None:
    assert "Usage:" in ok(full.run(script, "--help"))


def test_full_trains_exports_runs_and_scores(full: Venv, made: Made) -> None:
    inputs = sorted(p.stem for p in (made.data / "test" / "A").iterdir())
    assert inputs and sorted(p.stem for p in made.translated.iterdir()) == inputs
    scored = ok(full.run("i2i-eval", "psnr", made.data / "test" / "B", made.translated))
    assert re.match(rf"{len(inputs)} pairs: mean PSNR [0-9.]+ dB", scored), scored
    assert "pix2pix" in ok(full.run("i2i-export", "inspect", made.onnx))
    assert "pix2pix" in ok(full.run("i2i", "train", "list"))


def test_full_bench_has_the_torch_baseline(full: Venv, made: Made) -> None:
    result = full.run("i2i-bench", made.onnx, "--size", "64", "--iters", "2", "--warmup", "0")
    table = ok(result)
    assert "| ort |" in table and "| torch |" in table
    assert "skipped" not in result.stderr


API = (
    "import sys, numpy as np, i2i\n"
    "translator = i2i.load(sys.argv[1])\n"
    "frame = np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)\n"
    "out = translator(frame)\n"
    "print(out.shape, out.dtype, 'torch' in sys.modules)\n"
)


def test_full_python_api_translates_a_frame(full: Venv, made: Made) -> None:
    assert ok(full.python_code(API, made.onnx)).split() == ["(72,", "96,", "3)", "uint8", "False"]


# -- the runtime-only venv ----------------------------------------------------------------------------
def test_runtime_install_has_no_torch_or_onnx(runtime: Venv) -> None:
    code = "import importlib.util as u; print([m for m in ('torch', 'onnx', 'onnxruntime') if u.find_spec(m)])"
    assert ok(runtime.python_code(code)).strip() == "['onnxruntime']"


@pytest.mark.parametrize("script", ["i2i", "i2i-run", "i2i-bench", "i2i-eval", "i2i-export"])
def test_runtime_help_works_without_torch(runtime: Venv, script: str) -> None:
    shown = ok(runtime.run(script, "--help"))
    assert "Usage:" in shown
    if script == "i2i":  # the commands are listed without importing them
        assert all(name in shown for name in ("train", "export", "run", "bench", "eval"))


@pytest.mark.parametrize("args", [("i2i-train", "--help"), ("i2i", "train", "--help"), ("i2i-train", "list")])
def test_runtime_training_commands_name_the_train_extra(runtime: Venv, args: tuple[str, ...]) -> None:
    line = one_line_error(runtime.run(*args))
    assert line.startswith("Error: torch is not available") and line.endswith(_hint(runtime, "train")), line


def test_runtime_export_commands_name_the_export_extra(runtime: Venv, made: Made) -> None:
    for args in [(made.run / "model.pt",), ("inspect", made.onnx), (made.onnx, "--engine", "trt")]:
        line = one_line_error(runtime.run("i2i-export", *args))
        assert line.endswith(_hint(runtime, "export")), line
    assert "torch" in one_line_error(runtime.run("i2i-export", made.run / "model.pt"))
    misspelt = one_line_error(runtime.run("i2i-export", "insepct", made.onnx), code=2)
    assert "Did you mean 'inspect'?" in misspelt
    code = (
        "import sys, i2i\n"
        "try:\n"
        "    i2i.export(sys.argv[1])\n"
        "except i2i.I2IError as exc:\n"
        "    print(type(exc).__name__, exc.message)\n"
    )
    said = ok(runtime.python_code(code, made.run / "model.pt")).strip()
    assert said.startswith("MissingDependencyError ") and said.endswith(_hint(runtime, "export")), said


def test_runtime_checkpoint_and_torch_metrics_name_the_train_extra(runtime: Venv, made: Made) -> None:
    ran = runtime.run("i2i-run", made.run / "model.pt", "-s", made.data / "test" / "A", "--no-progress")
    assert one_line_error(ran).endswith(_hint(runtime, "train"))
    ssim = runtime.run("i2i-eval", "ssim", made.data / "test" / "B", made.translated)
    assert one_line_error(ssim).endswith(_hint(runtime, "train"))


def test_runtime_runs_the_exported_model_and_scores_folders(runtime: Venv, made: Made) -> None:
    out = runtime.work / "translated"
    ok(runtime.run("i2i-run", made.onnx, "-s", made.data / "test" / "A", "-o", f"{out}/", "--no-progress"))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in made.translated.iterdir())
    scored = ok(runtime.run("i2i-eval", "psnr", made.translated, out))
    # The same model, inputs and ONNX Runtime build as the full venv's run: at most one uint8 level
    # apart anywhere (float rounding near a .5 boundary), i.e. PSNR >= 20*log10(255/1) = 48.13 dB.
    match = re.search(r"mean PSNR (\S+) dB", scored)
    assert match and float(match.group(1)) >= 48.13, scored


def test_runtime_bench_runs_what_is_installed_and_says_what_it_skipped(runtime: Venv, made: Made) -> None:
    result = runtime.run("i2i-bench", made.onnx, "--size", "64", "--iters", "2", "--warmup", "0")
    table = ok(result)
    assert "| ort |" in table and "| torch |" not in table
    notes = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(notes) == 1 and notes[0].startswith("skipped: torch (torch is not installed"), result.stderr
    assert notes[0].endswith(f"{_hint(runtime, 'train')})")


def test_runtime_python_api_translates_without_torch(runtime: Venv, made: Made) -> None:
    assert ok(runtime.python_code(API, made.onnx)).split() == ["(72,", "96,", "3)", "uint8", "False"]
