"""SIGINT and SIGTERM leave valid files: training saves its checkpoint, export writes no half model,
i2i-run closes its video. SIGTERM is handled like Ctrl-C and exits 143 (Ctrl-C: 130).

The end-to-end tests signal the real console scripts once they are provably mid-work (a state file
exists, the export printed its trace step, the progress bar counted a written frame); timeouts are
only hang guards. Each child gets its own TMPDIR, so a temp file left anywhere would be seen.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import cv2
import onnx
import pytest
import torch
from conftest import invoke

from i2i import _cli, _files
from i2i._files import scratch_dir, write_text
from i2i.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, I2IError, Interrupted, Terminated
from i2i.export.tensorrt import atomic_write as trt_atomic_write
from i2i.runtime.stats import StageStats
from i2i.train.checkpoint import atomic_file, atomic_save, build_generator, load_checkpoint, make_checkpoint
from i2i.train.nets import build_net

# The tests that signal a real console script are slow (seconds each): in make test, not in the edit loop.
HANG_GUARD_S = 300
SIGNALS = [
    pytest.param(signal.SIGTERM, EXIT_TERMINATED, "Terminated", id="SIGTERM"),
    pytest.param(signal.SIGINT, EXIT_INTERRUPTED, "Interrupted", id="SIGINT"),
]


# -- helpers ------------------------------------------------------------------------------------
def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"console script {name} is not installed"
    return found


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """A shell that starts pytest in the background ignores SIGINT, and children inherit that; a
    Python handler here instead is reset to the default by exec, so the child gets KeyboardInterrupt."""
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class Child:
    """A console script with stdout/stderr in files (no pipe to fill) and a private TMPDIR.

    The TMPDIR is a short folder in the system temp folder, not under ``tmp_path``: DataLoader
    workers listen on Unix sockets inside it, whose paths may not exceed 107 bytes, and pytest's
    per-test folders (longer still under xdist workers) come close to that."""

    def __init__(self, tmp_path: Path, script: str, *args: str | Path) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="i2i-child-"))
        _CHILD_TMPDIRS.append(self.tmpdir)
        self.out_file, self.err_file = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        env = {**os.environ, "TMPDIR": str(self.tmpdir), "PYTHONUNBUFFERED": "1"}
        with open(self.out_file, "wb") as out, open(self.err_file, "wb") as err, _sigint_not_ignored():
            self.process = subprocess.Popen([_bin(script), *map(str, args)], stdout=out, stderr=err, env=env)

    @property
    def stderr(self) -> str:
        return self.err_file.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + HANG_GUARD_S
        while not ready():
            assert self.process.poll() is None, f"ended (exit {self.process.returncode}) before {what}: {self.stderr}"
            assert time.monotonic() < deadline, f"hang guard: no {what} after {HANG_GUARD_S} s"
            time.sleep(0.05)

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=HANG_GUARD_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def assert_no_temp_files(self, *folders: Path) -> None:
        leftovers = [p for folder in (self.tmpdir, *folders) for p in folder.rglob("*") if _is_temp(p, self.tmpdir)]
        assert not leftovers, leftovers


_CHILD_TMPDIRS: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_child_tmpdirs() -> Iterator[None]:
    yield
    while _CHILD_TMPDIRS:
        shutil.rmtree(_CHILD_TMPDIRS.pop(), ignore_errors=True)


def _is_temp(path: Path, tmpdir: Path) -> bool:
    """Anything in the child's TMPDIR that i2i made, and hidden or partial files elsewhere."""
    if path.is_relative_to(tmpdir):
        return "i2i" in path.name
    return path.name.startswith(".") or ".tmp" in path.name or ".partial" in path.name


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny generator: export and running only need a valid model.pt."""
    kwargs = {"ngf": 8, "num_downs": 5}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return atomic_save(make_checkpoint(build_net("unet", **kwargs), arch="unet", arch_kwargs=kwargs, method="x"), path)


def _one_line(stderr: str, word: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if word in line]
    assert len(lines) == 1, stderr
    return lines[0]


# -- training -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "word"), SIGNALS)
def test_training_saves_and_exits_on_signal(demo_data: Path, tmp_path: Path, signum: int, code: int, word: str) -> None:
    out = tmp_path / "run"
    child = Child(
        tmp_path,
        "i2i-train",
        "pix2pix",
        "--data", demo_data, "--out", out,
        "--ngf", "8", "--ndf", "8", "--num-downs", "5", "--load-size", "72", "--crop-size", "64",
        "--batch-size", "2", "--max-steps", "100000", "--save-every", "1", "--sample-every", "100000",
        "--workers", "1", "--no-progress",
    )  # fmt: skip
    child.wait_for(lambda: (out / "state.pt").exists(), "first saved state")
    assert child.stop(signum) == code, child.stderr

    line = _one_line(child.stderr, word)
    assert line.startswith(f"{word}: checkpoint and state of step ") and "continue with --resume" in line, line
    step = int(line.split("of step ")[1].split()[0])
    ckpt = load_checkpoint(out / "model.pt")  # the project's loader: format, keys, weights_only
    build_generator(ckpt)  # the weights fit the architecture
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    assert step >= 1 and state["step"] == ckpt["train_config"]["step"] == step  # one save, both files
    assert (out / "checkpoints" / f"state_{step:06d}.pt").is_file()
    child.assert_no_temp_files(out)


@pytest.mark.slow
def test_distributed_training_saves_and_exits_143_on_sigterm(demo_data: Path, tmp_path: Path) -> None:
    """``--nproc 2``: torch's launcher runs in i2i-train and forwards SIGTERM to the ranks; rank 0
    saves and says so in one line, the launcher adds no SignalException traceback and exits 143."""
    out = tmp_path / "run"
    child = Child(
        tmp_path,
        "i2i-train",
        "pix2pix", "--nproc", "2", "--device", "cpu",
        "--data", demo_data, "--out", out,
        "--ngf", "8", "--ndf", "8", "--num-downs", "5", "--load-size", "72", "--crop-size", "64",
        "--batch-size", "2", "--max-steps", "100000", "--save-every", "1", "--sample-every", "100000",
        "--workers", "1", "--no-progress",
    )  # fmt: skip
    child.wait_for(lambda: (out / "state.pt").exists(), "first saved state")
    assert child.stop(signal.SIGTERM) == EXIT_TERMINATED, child.stderr

    line = _one_line(child.stderr, "Terminated")  # rank 0's; rank 1 and the launcher stay quiet
    assert line.startswith("Terminated: checkpoint and state of step ") and "continue with --resume" in line, line
    assert "SignalException" not in child.stderr and "killed by signal" not in child.stderr, child.stderr
    step = int(line.split("of step ")[1].split()[0])
    ckpt = load_checkpoint(out / "model.pt")
    assert torch.load(out / "state.pt", map_location="cpu", weights_only=True)["step"] == step
    assert ckpt["train_config"]["step"] == step and ckpt["train_config"]["train"]["out"] == str(out)
    child.assert_no_temp_files(out)


# -- export -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "word"), SIGNALS)
def test_export_leaves_no_partial_model_on_signal(
    model_pt: Path, tmp_path: Path, signum: int, code: int, word: str
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(model_pt, folder / "model.pt")
    target = folder / "model.onnx"
    child = Child(tmp_path, "i2i-export", folder / "model.pt", "-o", target)
    # The progress bar names each step: "trace" is printed as tracing starts, the longest step.
    child.wait_for(lambda: "trace (opset" in child.stderr, "trace step")
    returncode = child.stop(signum)

    if returncode == 0:  # the export finished before the signal landed: then its model is complete
        warnings.warn("export finished before the signal; checked the complete model instead", stacklevel=1)
        onnx.checker.check_model(onnx.load(str(target)), full_check=True)
        assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.parity.json", "model.pt"]
    else:  # interrupted: nothing of the export remains
        assert returncode == code, child.stderr
        assert _one_line(child.stderr, word) == f"{word}."
        assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
    child.assert_no_temp_files(folder)


# -- running ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_sigterm_leaves_a_playable_video(model_pt: Path, tmp_path: Path) -> None:
    video = tmp_path / "out.avi"
    partial = tmp_path / ".out.partial.avi"
    child = Child(
        tmp_path,
        "i2i-run",
        model_pt,
        "--backend", "torch", "--source", "pattern:160x120@30", "--mode", "every-frame", "--sink", video,
    )  # fmt: skip
    # The progress bar counts frames once they are in the sink (the partial file exists from before
    # the first frame is written, so it alone would not say that one is).
    child.wait_for(lambda: re.search(r"frames: *[1-9]\d*frame", child.stderr) is not None, "first frame written")
    assert child.stop(signal.SIGTERM) == EXIT_TERMINATED, child.stderr
    line = _one_line(child.stderr, "frames written")  # said once, as Terminated (not Interrupted)
    reported = re.fullmatch(rf"Terminated: (\d+) frames written to {re.escape(str(video))} \(.*\)\.", line)
    assert reported is not None and "Interrupted" not in child.stderr, child.stderr

    assert video.is_file() and not partial.exists()
    capture = cv2.VideoCapture(str(video))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == int(reported.group(1)) > 0  # playable, and every frame it reported is in it
    child.assert_no_temp_files(tmp_path)


# -- the plumbing, in-process -------------------------------------------------------------------
def _command(body: Callable[[], None]) -> click.Command:
    return click.command("cmd", cls=_cli.Command)(body)


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "Interrupted.\n"),
        (Terminated(), EXIT_TERMINATED, "Terminated.\n"),
        (Interrupted("saved", cause=KeyboardInterrupt()), EXIT_INTERRUPTED, "Interrupted: saved\n"),
        (Interrupted("saved", cause=Terminated()), EXIT_TERMINATED, "Terminated: saved\n"),
    ],
    ids=["ctrl-c", "sigterm", "interrupted-after-ctrl-c", "interrupted-after-sigterm"],
)
def test_interruptions_map_to_one_line_and_exit_code(raised: BaseException, code: int, message: str) -> None:
    def body() -> None:
        raise raised

    result = invoke(_command(body), [])
    assert result.exit_code == code and result.stderr == message and result.stdout == ""


def _send_sigterm_to_self() -> None:
    if signal.getsignal(signal.SIGTERM) is not _cli._on_sigterm:  # never kill the test run itself
        raise AssertionError(f"the command did not install its SIGTERM handler: {signal.getsignal(signal.SIGTERM)}")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(HANG_GUARD_S)  # the handler raises Terminated out of this sleep


def test_real_sigterm_in_a_command_of_a_group_exits_143_and_restores_the_default() -> None:
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("this test process has its own SIGTERM handler, which commands leave alone")
    cleaned: list[str] = []

    @click.group(cls=_cli.Group)
    def group() -> None:
        pass

    @group.command("work")
    def work() -> None:
        try:
            _send_sigterm_to_self()
        except KeyboardInterrupt:  # the cleanup written for Ctrl-C runs for SIGTERM too
            cleaned.append("saved")
            os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM does not abort the cleanup
            cleaned.append("still saved")
            raise

    result = invoke(group, ["work"])
    assert result.exit_code == EXIT_TERMINATED and result.stderr == "Terminated.\n"
    assert cleaned == ["saved", "still saved"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_command_that_exits_130_itself_exits_143_after_sigterm() -> None:
    """i2i-run reports its own interruption and exits 130; after SIGTERM the code is 143."""
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("this test process has its own SIGTERM handler, which commands leave alone")

    def body() -> None:
        try:
            _send_sigterm_to_self()
        except KeyboardInterrupt:
            click.echo("Interrupted: 3 frames written.", err=True)
            sys.exit(EXIT_INTERRUPTED)

    result = invoke(_command(body), [])
    assert result.exit_code == EXIT_TERMINATED and result.stderr == "Interrupted: 3 frames written.\n"


def test_handler_is_installed_only_in_the_main_thread() -> None:
    seen: list[object] = []
    command = _command(lambda: seen.append(signal.getsignal(signal.SIGTERM)))
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=lambda: invoke(command, []))
    thread.start()
    thread.join(timeout=HANG_GUARD_S)
    assert seen == [before]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_dies_of_sigterm_as_without_the_handler() -> None:
    """DataLoader workers are forked with the handler; in them SIGTERM keeps its default action."""
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("this test process has its own SIGTERM handler, which commands leave alone")
    status: list[int] = []

    def body() -> None:
        pid = os.fork()
        if pid == 0:  # the child: must die of the signal, not raise Terminated and exit normally
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(HANG_GUARD_S)
            finally:
                os._exit(3)
        status.append(os.waitpid(pid, 0)[1])

    assert invoke(_command(body), []).exit_code == 0
    assert os.WIFSIGNALED(status[0]) and os.WTERMSIG(status[0]) == signal.SIGTERM


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Terminated, OSError])
@pytest.mark.parametrize(
    "writer", ["atomic_file", "atomic_save", "tensorrt.atomic_write", "write_text", "StageStats.write_json"]
)
def test_atomic_writers_remove_their_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str, raised: type[BaseException]
) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")

    class Boom:  # torch.save pickles this, and pickling raises half-way through the file
        def __reduce__(self) -> tuple[object, ...]:
            raise raised()

    def fsync(fd: int) -> None:  # the last step before the rename: the temp file is complete, and must still go
        raise raised()

    # All of them are one primitive (i2i._files.atomic_file); the text writers report OSError as I2IError.
    reports = writer in ("write_text", "StageStats.write_json") and raised is OSError
    with pytest.raises(I2IError if reports else raised):
        if writer == "atomic_file":
            with atomic_file(target) as f:
                f.write(b"half")
                raise raised()
        elif writer == "atomic_save":
            atomic_save({"weights": torch.zeros(4), "boom": Boom()}, target)
        else:
            monkeypatch.setattr(os, "fsync", fsync)
            if writer == "tensorrt.atomic_write":
                trt_atomic_write(target, b"new")
            elif writer == "write_text":
                write_text(target, "new")
            else:
                StageStats().write_json(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
    assert target.read_bytes() == b"old"


@pytest.mark.parametrize("body_raises", [None, Terminated, OSError])
def test_scratch_dir_is_removed_when_an_interrupt_lands_in_its_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body_raises: type[BaseException] | None
) -> None:
    """The removal itself is interrupted (the signal arrives as the step ends): the folder still goes."""
    real_rmtree, calls = shutil.rmtree, []

    def interrupted_rmtree(path: Path, ignore_errors: bool = False) -> None:
        calls.append(path)
        if len(calls) == 1:  # half way: the folder's file is gone, the folder is not
            (Path(path) / "traced.onnx").unlink()
            raise KeyboardInterrupt
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(_files.shutil, "rmtree", interrupted_rmtree)
    # Without a body error the interrupt is what the command stops with; with one, that error is.
    with pytest.raises(body_raises or KeyboardInterrupt):
        with scratch_dir(".i2i-trace-", tmp_path) as work:
            assert work.parent == tmp_path and work.name.startswith(".i2i-trace-")
            (work / "traced.onnx").write_bytes(b"graph")
            if body_raises is not None:
                raise body_raises()
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []
