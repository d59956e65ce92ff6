"""Bad input never crashes an i2i command or loses data (issue 10, item 1).

One table of cases over every CLI (i2i-train, i2i-export, i2i-run, i2i-bench, i2i-eval); one test
runs each case and checks the contract every command keeps:

* the documented exit code: 1 for a bad input file or an output that cannot be written, 2 for a
  bad option value (click's usage error), 0 where odd input is still valid (1x1, 33x17 and 4K
  frames; gray, RGBA, 16-bit and mixed-size images; a video that dies mid-stream);
* stderr: a failure prints exactly one ``Error: ...`` line, and it is the last line. The other
  lines allowed are i2i's own ``warning: ...`` lines, i2i-run's ``backend: ...`` line and, for a
  usage error only, click's ``Usage:``/``Try ...`` header. "Traceback" appears nowhere;
* the error line names the offending file or option;
* nothing half-written: the output folder lists the same entries after a failed command as before
  (no partial video, ONNX model, checkpoint, report or temp file), and a pickle carrying code never
  runs (its payload would create a marker file).

Commands run in-process (click's CliRunner, exit codes honoured); the camera and an unreadable
video also run as real processes, where OpenCV's and FFmpeg's own logging would reach the terminal.
Write failures are produced three ways: a read-only folder (skipped as root, who ignores
permissions), ``/dev/full`` (every write fails with ENOSPC), and a file-size limit (RLIMIT_FSIZE:
a write past it fails with EFBIG, like a disk that fills up in the middle of a file).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import json
import os
import pickle
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from conftest import invoke
from onnx import TensorProto, helper

resource = pytest.importorskip("resource")  # RLIMIT_FSIZE: POSIX only

COMMANDS = {
    "i2i-train": "i2i.train.cli:main",
    "i2i-export": "i2i.export.cli:main",
    "i2i-run": "i2i.runtime.cli:main",
    "i2i-bench": "i2i.bench:main",
    "i2i-eval": "i2i.eval:main",
}
ALLOWED_LINES = ("warning: ", "backend: ", "precision: ")  # besides the one "Error:" line
USAGE_LINES = ("Usage: ", "Try '")  # click's header of a usage error (exit 2)
RUN = "--backend ort -O threads=1 --no-progress"  # i2i-run options of every case that runs frames
TRAIN = (
    "--max-steps 2 --batch-size 2 --load-size 32 --crop-size 32 --ngf 8 --ndf 8 --num-downs 5 "
    "--workers 0 --sample-every 100 --eval-every -1 --no-progress"
)


def _permissions_enforced() -> bool:
    """False for root (or anyone with CAP_DAC_OVERRIDE), who writes into read-only folders anyway."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ro"
        folder.mkdir(mode=0o500)
        try:
            (folder / "probe").touch()
        except PermissionError:
            return True
        finally:
            folder.chmod(0o700)
    return False


PERMISSIONS_ENFORCED = _permissions_enforced()


@dataclass(frozen=True)
class Case:
    """One command line and what it must do. ``args`` is a template: ``{name}`` is an asset path
    (see ``assets``), ``{out}`` the case's (empty) output folder, ``{ro}`` a read-only one in it."""

    cli: str
    args: str
    code: int
    match: str = ""  # regex the error line must match
    names: tuple[str, ...] = ()  # templates the error line must contain: the offending file or option
    check: Callable[[Path, Result, dict[str, str]], None] | None = None  # what a run that works wrote
    may_remain: tuple[str, ...] = ()  # glob patterns of whole files a failure may leave in {out}
    process: bool = False  # run the console script in a real process
    file_limit: int = 0  # RLIMIT_FSIZE in bytes while the command runs (0: none)
    readonly: bool = False  # {ro} exists and is read-only


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


# -- the checks a working run must pass --------------------------------------------------------
def video_frames(path: Path) -> tuple[int, tuple[int, ...]]:
    """(frames decoded, frame shape) of a video file; (0, ()) if it does not open."""
    capture = cv2.VideoCapture(str(path))
    count, shape = 0, ()
    while True:
        ok, image = capture.read()
        if not ok:
            break
        count, shape = count + 1, image.shape
    capture.release()
    return count, shape


def same_size_png(source: str) -> Callable[[Path, Result, dict[str, str]], None]:
    """The output folder holds one 8-bit BGR PNG of the source image's height and width."""

    def check(out: Path, result: Result, values: dict[str, str]) -> None:
        (image_path,) = Path(values[source]).iterdir()
        h, w = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED).shape[:2]
        written = cv2.imread(str(out / "frames" / f"{image_path.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert written is not None and written.shape == (h, w, 3) and written.dtype == np.uint8

    return check


def trained(out: Path, result: Result, values: dict[str, str]) -> None:
    assert (out / "run" / "model.pt").is_file() and (out / "run" / "state.pt").is_file()
    steps = [json.loads(line)["step"] for line in (out / "run" / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 2


def psnr_json(out: Path, result: Result, values: dict[str, str]) -> None:
    assert json.loads((out / "psnr.json").read_text())["pairs"] == 2


def ended_early(out: Path, result: Result, values: dict[str, str]) -> None:
    """A video cut short: the frames before the damage are processed and the file plays."""
    (warning,) = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: ")]
    decoded, total = map(int, re.search(r"ended after (\d+) of (\d+) frames", warning).groups())
    assert values["video_dies"] in warning and 0 < decoded < total
    assert video_frames(out / "out.mp4") == (decoded, (48, 64, 3))
    assert f"({decoded} frames)" in result.stdout


def stopped_at_nan(out: Path, result: Result, values: dict[str, str]) -> None:
    assert video_frames(out / "out.mp4")[0] == 3  # the frames before the broken one, playable
    assert sorted(p.name for p in out.iterdir()) == ["out.mp4"]


def passed_nan(out: Path, result: Result, values: dict[str, str]) -> None:
    """--on-nonfinite pass: every frame written; the broken one is the input, unchanged; counted."""
    source = Path(values["frames_nan"])
    for name in (p.name for p in source.iterdir()):
        written = cv2.imread(str(out / "frames" / name))
        assert np.array_equal(written, cv2.imread(str(source / name))), name  # the model is exact elsewhere
    assert json.loads((out / "stats.json").read_text())["counters"] == {"nonfinite_passed": 1}
    assert "warning: 1 frames had NaN/Inf model outputs and were passed through unchanged" in result.stderr


def played(frames: int) -> Callable[[Path, Result, dict[str, str]], None]:
    def check(out: Path, result: Result, values: dict[str, str]) -> None:
        assert video_frames(out / "out.mp4")[0] == frames

    return check


# -- the table ------------------------------------------------------------------------------------
CASES: dict[str, Case] = {}


def slot(name: str) -> str:
    """``{name}``: the template slot of an asset."""
    return "{" + name + "}"


def train_case(dataset: str, code: int = 0, match: str = "", names: tuple[str, ...] = (), **kw: Any) -> Case:
    """Two tiny pix2pix steps on an asset dataset (``out``: the run folder, default {out}/run)."""
    out = kw.pop("out", "{out}/run")
    return Case("i2i-train", f"pix2pix --data {slot(dataset)} --out {out} {TRAIN}", code, match, names, **kw)


def run_case(
    source: str, sink: str = "{out}/out.mp4", code: int = 0, match: str = "", names: tuple = (), **kw: Any
) -> Case:
    """i2i-run of ``model`` (default: the tiny exported generator) on ONNX Runtime, one thread."""
    model, options = kw.pop("model", "{onnx}"), kw.pop("options", "")
    return Case("i2i-run", f"{model} --source {source} --sink {sink} {options} {RUN}", code, match, names, **kw)


# model.pt: every command that reads one, with each way a file can be bad.
BAD_CHECKPOINTS = {
    "missing": r"not found",
    "empty": r"empty \(0 bytes\)|truncated or not a torch file",
    "truncated": r"truncated or not a torch file",
    "random-bytes": r"truncated or not a torch file",
    "pickle-with-code": r"refusing to load .*: it holds objects other than tensors",
    "legacy-pickle-with-code": r"refusing to load|truncated or not a torch file",
    "not-i2i": r"is not an i2i checkpoint|not a pytorch-CycleGAN-and-pix2pix"
    r"|not a generator state dict i2i can import|not an Inception-v3 weight file",
}
CHECKPOINT_READERS = {
    "i2i-export": ("i2i-export", "{pt} -o {out}/model.onnx --no-progress"),
    "i2i-run": ("i2i-run", "{pt} --backend torch --source pattern:64x64@0 --max-frames 1 --sink {out}/out.mp4"),
    "i2i-run-auto": ("i2i-run", "{pt} --source pattern:64x64@0 --max-frames 1 --sink {out}/out.mp4 --no-progress"),
    "i2i-bench": ("i2i-bench", "{onnx} --checkpoint {pt} --backends torch --iters 1 --warmup 0 --json {out}/b.json"),
    "i2i-train-distill": ("i2i-train", "distill --teacher {pt} --data {data} --out {out}/run --max-steps 1"),
    "i2i-train-import": ("i2i-train", "import {pt} -o {out}/imported.pt"),
    "i2i-eval-fid": ("i2i-eval", "fid {data}/test/A {data}/test/B --inception-weights {pt} --json {out}/fid.json"),
}
for bad, message in BAD_CHECKPOINTS.items():
    key = slot("pt_" + bad.replace("-", "_"))
    for reader, (cli, args) in CHECKPOINT_READERS.items():
        CASES[f"model.pt/{bad}/{reader}"] = Case(cli, args.replace("{pt}", key), 1, message, (key,))

# ONNX: the wrong I/O for the runtime contract, no card, a truncated file, random bytes.
BAD_ONNX = {
    "one-channel-input": r"has shape .* not NCHW with 3 channels",
    "rank-3-input": r"expected 4-D NCHW",
    "no-card": r"has no i2i model card",
    "truncated": r"not an ONNX file",
    "random-bytes": r"not an ONNX file",
}
ONNX_READERS = {
    "i2i-run": ("i2i-run", "{model} --source pattern:64x64@0 --max-frames 1 --sink {out}/out.mp4 --no-progress"),
    "i2i-bench": ("i2i-bench", "{model} --backends ort --iters 1 --warmup 0 --size 32 --json {out}/b.json"),
    "i2i-export-triton": ("i2i-export", "{model} --triton {out}/repository"),
}
for bad, message in BAD_ONNX.items():
    key = slot("onnx_" + bad.replace("-", "_"))
    for reader, (cli, args) in ONNX_READERS.items():
        CASES[f"onnx/{bad}/{reader}"] = Case(cli, args.replace("{model}", key), 1, message, (key,))
for bad in ("truncated", "random-bytes"):
    key = slot("onnx_" + bad.replace("-", "_"))
    CASES[f"onnx/{bad}/i2i-export-inspect"] = Case("i2i-export", f"inspect {key}", 1, r"cannot read ONNX model", (key,))
    CASES[f"onnx/{bad}/i2i-eval-refine"] = Case(
        "i2i-eval", f"spectrum {{data}}/test/A {{data}}/test/B --refine {key} --out {{out}}/s", 1, "cannot load", (key,)
    )
CASES["onnx/renamed-io/i2i-run"] = run_case(  # names are not the contract: layout, dtype and channels are
    "pattern:64x64@0 --max-frames 2", model="{onnx_renamed_io}", check=played(2)
)

# A TensorRT engine whose sidecar names another GPU and TensorRT version. Without TensorRT (as in
# CI) the command must say so, naming the extra; with it, the sidecar check refuses the engine.
# The hint as i2i.errors.install_hint writes it, for whichever interpreter runs the command.
TRT = r"-m pip install (-e )?\S*\[trt\]|engine was built for NVIDIA A100-SXM4-80GB"
CASES.update(
    {
        "engine/other-gpu/i2i-run": Case(
            "i2i-run", "{engine} --source pattern:64x64@0 --sink {out}/o.mp4", 1, TRT, ("{engine}",)
        ),
        "engine/other-gpu/i2i-run-trt": Case(
            "i2i-run", "{engine} --backend trt --source pattern:64x64@0", 1, TRT, ("{engine}",)
        ),
        "engine/other-gpu/i2i-bench": Case(
            "i2i-bench", "{engine} --backends trt --json {out}/b.json", 1, TRT, ("{engine}",)
        ),
        "engine/other-gpu/i2i-export": Case(
            "i2i-export", "{engine} -o {out}/m.onnx", 1, "cannot be re-exported", ("{engine}",)
        ),
    }
)


# Datasets: training stops before it starts, naming the folder or file; odd images train.
CASES.update(
    {
        "dataset/missing/i2i-train": train_case("ds_missing", 1, "not found", ("{ds_missing}",)),
        "dataset/no-images/i2i-train": train_case("ds_empty", 1, "no images in", ("{ds_empty}/train/A",)),
        "dataset/corrupt-image/i2i-train": train_case(
            "ds_corrupt", 1, "cannot read image", ("{ds_corrupt}/train/A/b.png",)
        ),
        "dataset/empty-image/i2i-train": train_case("ds_zero", 1, "cannot read image", ("{ds_zero}/train/A/b.png",)),
        "dataset/truncated-image/i2i-train": train_case(
            "ds_truncated", 1, "cannot read image", ("{ds_truncated}/train/A/b.png",)
        ),
        "dataset/unmatched-pairs/i2i-train": train_case("ds_unmatched", 1, "do not match", ("{ds_unmatched}/train/A",)),
        "dataset/wrong-layout/i2i-train": train_case(
            "ds_layout", 1, "expected subfolders train/A and train/B", ("{ds_layout}",)
        ),
        "dataset/mixed-sizes/i2i-train": train_case("ds_mixed", check=trained),
        "dataset/gray/i2i-train": train_case("ds_gray", check=trained),
        "dataset/rgba/i2i-train": train_case("ds_rgba", check=trained),
        "dataset/16-bit/i2i-train": train_case("ds_16bit", check=trained),
        "dataset/aligned/i2i-train": train_case("ds_aligned", check=trained),
        "dataset/aligned-single-images/i2i-train": train_case(
            "ds_singles", 1, r"is 40x40 \(WxH\), not an A\|B pair", ("{ds_singles}/train/a.png",)
        ),
        "dataset/aligned-odd-width/i2i-train": train_case("ds_odd", 1, "width is odd", ("{ds_odd}/train/a.png",)),
        "dataset/missing/i2i-eval": Case(
            "i2i-eval", "psnr {ds_missing} {eval_ref}", 1, "not a folder", ("{ds_missing}",)
        ),
        "dataset/no-images/i2i-eval": Case(
            "i2i-eval", "psnr {eval_ref} {ds_empty}/train/A", 1, "no images in", ("{ds_empty}/train/A",)
        ),
        "dataset/corrupt-image/i2i-eval": Case(
            "i2i-eval",
            "psnr {eval_ref} {eval_corrupt} --json {out}/psnr.json",
            1,
            "cannot read image",
            ("{eval_corrupt}/b.png",),
        ),
        "dataset/gray-16-bit-mixed-sizes/i2i-eval": Case(
            "i2i-eval", "psnr {eval_ref} {eval_odd} --json {out}/psnr.json", 0, check=psnr_json
        ),
        "dataset/mixed-sizes/i2i-eval-spectrum": Case(
            "i2i-eval", "spectrum {eval_ref} {eval_odd} --no-plots", 1, "--size", ("{eval_odd}",)
        ),
    }
)

# Videos and cameras: one that cannot be opened fails before the model loads; one cut short is
# processed up to the damage, with a warning, into a playable video.
CASES.update(
    {
        "video/missing/i2i-run": run_case("{video_missing}", code=1, match="no such file", names=("{video_missing}",)),
        "video/random-bytes/i2i-run": run_case(
            "{video_random}", code=1, match="cannot open video", names=("{video_random}",)
        ),
        "video/random-bytes/process": run_case(
            "{video_random}", code=1, match="cannot open video", names=("{video_random}",), process=True
        ),
        "video/truncated-mp4/i2i-run": run_case(
            "{video_no_index}", code=1, match="cannot open video", names=("{video_no_index}",)
        ),
        "video/dies-mid-stream/i2i-run": run_case("{video_dies}", check=ended_early),
        "camera/no-such-index/process": Case(
            "i2i-run", "{onnx} --source 99 --sink {out}/out.mp4", 1, "cannot open camera 99", process=True
        ),
    }
)

# Frame sizes and pixel formats: the output has the input's size, as 8-bit BGR.
for size in ("1x1", "33x17", "3840x2160", "gray", "rgba", "16-bit"):
    key = "frame_" + size.replace("-", "_")
    CASES[f"frames/{size}/i2i-run"] = run_case(slot(key), "{out}/frames", check=same_size_png(key))
CASES["frames/1x1-to-video/i2i-run"] = run_case(
    "{frame_1x1}", code=1, match="cannot encode 1x1 frames as video", names=("{out}/out.mp4",)
)

# NaN/Inf from the model: stop (default) keeps the frames before; pass writes the input instead.
CASES.update(
    {
        "nonfinite/stop/i2i-run": run_case(
            "{frames_nan}",
            model="{onnx_nan}",
            code=1,
            match=r"frame 3 \(f3\).*NaN/Inf.*--on-nonfinite pass",
            names=("{onnx_nan}", "{out}/out.mp4"),
            check=stopped_at_nan,
        ),
        "nonfinite/stop-all-inf/i2i-run": run_case(
            "{frames_nan}", model="{onnx_inf}", code=1, match=r"frame 0 \(f0\).*NaN/Inf", names=("{onnx_inf}",)
        ),
        "nonfinite/pass/i2i-run": run_case(
            "{frames_nan}",
            "{out}/frames",
            model="{onnx_nan}",
            options="--on-nonfinite pass --stats {out}/stats.json",
            check=passed_nan,
        ),
        "nonfinite/pass-batch-4/i2i-run": run_case(
            "{frames_nan}",
            "{out}/frames",
            model="{onnx_nan}",
            options="--on-nonfinite pass --batch 4 --stats {out}/stats.json",
            check=passed_nan,
        ),
    }
)

# Outputs that cannot be written: a read-only folder, /dev/full (ENOSPC), a file-size limit (EFBIG).
PATTERN = "pattern:64x64@0 --max-frames 2"
BENCH = "{onnx} --backends ort --iters 1 --warmup 0 --size 32"
CASES.update(
    {
        "read-only/run-folder/i2i-train": train_case(
            "ds_gray", 1, "Permission denied", ("{ro}/run",), out="{ro}/run", readonly=True
        ),
        "read-only/onnx/i2i-export": Case(
            "i2i-export",
            "{pt} -o {ro}/model.onnx --no-progress",
            1,
            "Permission denied",
            ("{ro}/model.onnx",),
            readonly=True,
        ),
        "read-only/video/i2i-run": run_case(
            PATTERN, "{ro}/out.mp4", code=1, match="writable", names=("{ro}/out.mp4",), readonly=True
        ),
        "read-only/frames/i2i-run": run_case(
            PATTERN, "{ro}/frames", code=1, match="Permission denied", names=("{ro}/frames",), readonly=True
        ),
        "read-only/json/i2i-bench": Case(
            "i2i-bench", BENCH + " --json {ro}/b.json", 1, "Permission denied", ("{ro}/b.json",), readonly=True
        ),
        "read-only/json/i2i-eval": Case(
            "i2i-eval",
            "psnr {eval_ref} {eval_ref} --json {ro}/psnr.json",
            1,
            "Permission denied",
            ("{ro}/psnr.json",),
            readonly=True,
        ),
        "disk-full/stats/i2i-run": run_case(
            PATTERN, "null", code=1, match="No space left", names=("/dev/full",), options="--stats /dev/full"
        ),
        "disk-full/json/i2i-bench": Case("i2i-bench", BENCH + " --json /dev/full", 1, "No space left", ("/dev/full",)),
        "disk-full/json/i2i-eval": Case(
            "i2i-eval", "psnr {eval_ref} {eval_ref} --json /dev/full", 1, "No space left", ("/dev/full",)
        ),
        "disk-full/run-folder/i2i-train": train_case("ds_gray", 1, "not a folder", ("/dev/full",), out="/dev/full"),
        "disk-full/frames/i2i-run": run_case(PATTERN, "/dev/full", code=1, match="not a folder", names=("/dev/full",)),
        "file-limit/checkpoint/i2i-train": train_case(
            "ds_gray",
            1,
            "File too large",
            ("{out}/run",),
            may_remain=("run", "run/config.json", "run/log.jsonl", "run/samples", "run/samples/*.png"),
            file_limit=16 << 10,
        ),
        "file-limit/onnx/i2i-export": Case(
            "i2i-export",
            "{pt} -o {out}/model.onnx --no-progress",
            1,
            "File too large",
            ("{out}/model.onnx",),
            file_limit=64 << 10,
        ),
        "file-limit/video/i2i-run": run_case(
            "pattern:256x256@0 --max-frames 20",
            code=1,
            match="cannot finish video",
            names=("{out}/out.mp4",),
            file_limit=1 << 10,
        ),
        "file-limit/frames/i2i-run": run_case(
            "pattern:256x256@0 --max-frames 2",
            "{out}/frames",
            code=1,
            match="File too large",
            names=("{out}/frames/frame_000000.png",),
            file_limit=2 << 10,
        ),
    }
)


# Bad option values: click's usage error, exit 2, naming the option; nothing is opened.
BAD_OPTIONS = {
    "i2i-run": [
        "--batch 0",
        "--batch -1",
        "--backend nosuch",
        "--camera-size -5x10",
        "--max-frames -1",
        "--fps -5",
        "--mode fast",
        "--on-nonfinite skip",
        "-O threads",
    ],
    "i2i-export": ["--size -5x5", "--size 0x64", "--batch 0", "--opset 5", "--io rgb"],
    "i2i-train": ["--batch-size 0", "--crop-size -3", "--load-size 0", "--lr 0", "--max-steps -1", "--ngf 0"],
    "i2i-bench": ["--size -3", "--iters 0", "--batch 0", "--backends nosuch"],
    "i2i-eval": ["--size -1x5"],
}
BASE_ARGS = {
    "i2i-run": "{onnx} --source pattern:64x64@0 --sink {out}/out.mp4 %s",
    "i2i-export": "{pt} -o {out}/model.onnx %s",
    "i2i-train": "pix2pix --data {data} --out {out}/run %s",
    "i2i-bench": "{onnx} --json {out}/b.json %s",
    "i2i-eval": "spectrum {eval_ref} {eval_ref} --out {out}/s %s",
}
for cli, options in BAD_OPTIONS.items():
    for option in options:
        CASES[f"option/{option}/{cli}"] = Case(cli, BASE_ARGS[cli] % option, 2, "Invalid value", (option.split()[0],))
# Sizes are HxW everywhere: a camera mode written width first is refused, naming the order it meant.
CASES["option/--camera-size 1280x720/i2i-run"] = Case(
    "i2i-run",
    BASE_ARGS["i2i-run"] % "--camera-size 1280x720",
    2,
    r"--camera-size is HxW \(height first\): did you mean 720x1280\?",
    ("--camera-size",),
)
CASES["option/--subset-size 1/i2i-eval"] = Case(
    "i2i-eval", "kid {eval_ref} {eval_ref} --subset-size 1", 2, "Invalid value", ("--subset-size",)
)


# -- assets ---------------------------------------------------------------------------------------
class _Payload:
    """Pickles as a call to exec(): loading it with pickle would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _write_onnx(path: Path, nodes: list[Any], io: tuple[Any, Any], card: dict[str, Any] | None, inits=()) -> str:
    graph = helper.make_graph(nodes, path.stem, [io[0]], [io[1]], initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if card is not None:
        helper.set_model_props(model, {"i2i": json.dumps(card)})
    onnx.save(model, str(path))
    return str(path)


def _tensor(name: str, shape: list[Any]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _onnx_assets(d: Path, card: dict[str, Any], exported: Path) -> dict[str, str]:
    nchw = ["N", 3, "H", "W"]
    scalar = [
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    data = exported.read_bytes()
    (d / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (d / "random.onnx").write_bytes(np.random.default_rng(1).bytes(4096))
    identity = [helper.make_node("Identity", ["x"], ["y"])]
    return {
        "onnx_one_channel_input": _write_onnx(
            d / "gray.onnx", identity, (_tensor("x", ["N", 1, "H", "W"]), _tensor("y", ["N", 1, "H", "W"])), card
        ),
        "onnx_rank_3_input": _write_onnx(
            d / "rank3.onnx", identity, (_tensor("x", [3, "H", "W"]), _tensor("y", [3, "H", "W"])), card
        ),
        "onnx_no_card": _write_onnx(d / "nocard.onnx", identity, (_tensor("x", nchw), _tensor("y", nchw)), None),
        "onnx_renamed_io": _write_onnx(d / "renamed.onnx", identity, (_tensor("x", nchw), _tensor("y", nchw)), card),
        "onnx_truncated": str(d / "truncated.onnx"),
        "onnx_random_bytes": str(d / "random.onnx"),
        # output = x + 0 * log(mean(x) + 0.5): exactly x, except NaN where a frame's mean is below -0.5
        "onnx_nan": _write_onnx(
            d / "nan.onnx",
            [
                helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
                helper.make_node("Add", ["mean", "half"], ["shifted"]),
                helper.make_node("Log", ["shifted"], ["log"]),
                helper.make_node("Mul", ["log", "zero"], ["nothing"]),
                helper.make_node("Add", ["image", "nothing"], ["output"]),
            ],
            (_tensor("image", nchw), _tensor("output", nchw)),
            card,
            scalar,
        ),
        "onnx_inf": _write_onnx(
            d / "inf.onnx",
            [helper.make_node("Div", ["image", "zero"], ["output"])],
            (_tensor("image", nchw), _tensor("output", nchw)),
            card,
            scalar[1:],
        ),
    }


def _checkpoint_assets(d: Path, good: Path, marker: Path) -> dict[str, str]:
    import torch

    data = good.read_bytes()
    (d / "empty.pt").write_bytes(b"")
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"format": "i2i-checkpoint/1", "state_dict": _Payload(marker)}, d / "code.pt")
    (d / "legacy_code.pt").write_bytes(pickle.dumps(_Payload(marker)))
    torch.save({"weight": torch.zeros(3)}, d / "state_dict.pt")
    names = ("missing", "empty", "truncated", "random", "code", "legacy_code", "state_dict")
    keys = ("missing", "empty", "truncated", "random_bytes", "pickle_with_code", "legacy_pickle_with_code", "not_i2i")
    return {f"pt_{key}": str(d / f"{name}.pt") for key, name in zip(keys, names)}


def _engine_asset(d: Path, card: Any, exported: Path) -> str:
    from i2i.export.tensorrt import Built, EngineConfig, Profile, graph_io, make_sidecar, write_engine
    from i2i.runtime.backends.tensorrt import GpuIdentity
    from i2i.runtime.card import ModelCard

    engine, engine_bytes = d / "model.engine", b"an engine built elsewhere"
    sidecar = make_sidecar(
        card=card if isinstance(card, ModelCard) else ModelCard.from_dict(card),
        engine=engine,
        engine_bytes=engine_bytes,
        onnx_path=exported,
        tensors=graph_io(exported),
        profile=Profile("image", (1, 3, 64, 64), (1, 3, 256, 256), (1, 3, 512, 512)),
        config=EngineConfig(onnx=str(exported)),
        built=Built("8.6.1", GpuIdentity("NVIDIA A100-SXM4-80GB", "8.0"), tf32=True, network_flags=0),
    )
    write_engine(engine, engine_bytes, sidecar)
    return str(engine)


def _image(rng: np.random.Generator, h: int, w: int, channels: int = 3, depth: type = np.uint8) -> np.ndarray:
    top = np.iinfo(depth).max
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, top, shape, dtype=np.int64, endpoint=True).astype(depth)


def _png(path: Path, image: np.ndarray | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
    else:
        assert cv2.imwrite(str(path), image), path


def _dataset(root: Path, pairs: dict[str, tuple[Any, Any]], layout: tuple[str, str] = ("train/A", "train/B")) -> str:
    for sub in layout:
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, (a, b) in pairs.items():
        _png(root / layout[0] / name, a)
        _png(root / layout[1] / name, b)
    return str(root)


def _dataset_assets(d: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    ok = _image(rng, 40, 40)
    good = {"a.png": (ok, ok)}
    truncated_png = cv2.imencode(".png", _image(rng, 40, 40))[1].tobytes()[:300]
    return {
        "ds_missing": str(d / "no-such-dataset"),
        "ds_empty": _dataset(d / "empty", {}),
        "ds_corrupt": _dataset(d / "corrupt", {**good, "b.png": (b"\x89PNG\r\n\x1a\n" + rng.bytes(200), ok)}),
        "ds_zero": _dataset(d / "zero", {**good, "b.png": (b"", ok)}),
        "ds_truncated": _dataset(d / "truncated", {**good, "b.png": (truncated_png, ok)}),
        "ds_unmatched": _unmatched(d / "unmatched", ok),
        "ds_layout": _dataset(d / "layout", good, ("trainA", "trainB")),
        # The reference's aligned layout (A|B side by side in train/), and two folders that are not.
        "ds_aligned": _aligned(d / "aligned", {"a.png": _image(rng, 40, 80), "b.png": _image(rng, 36, 72)}),
        "ds_singles": _aligned(d / "singles", {"a.png": ok, "b.png": ok}),
        "ds_odd": _aligned(d / "odd", {"a.png": _image(rng, 40, 81)}),
        "ds_mixed": _dataset(
            d / "mixed", {"a.png": (_image(rng, 40, 60), _image(rng, 50, 30)), "b.png": (_image(rng, 17, 33),) * 2}
        ),
        "ds_gray": _dataset(
            d / "gray", {"a.png": (_image(rng, 40, 40, 1),) * 2, "b.png": (_image(rng, 36, 36, 1),) * 2}
        ),
        "ds_rgba": _dataset(
            d / "rgba", {"a.png": (_image(rng, 40, 40, 4),) * 2, "b.png": (_image(rng, 36, 36, 4),) * 2}
        ),
        "ds_16bit": _dataset(
            d / "16bit",
            {"a.png": (_image(rng, 40, 40, 3, np.uint16),) * 2, "b.png": (_image(rng, 36, 36, 1, np.uint16),) * 2},
        ),
        "eval_ref": _folder(d / "eval/ref", {"a.png": ok, "b.png": ok}),
        "eval_corrupt": _folder(d / "eval/corrupt", {"a.png": ok, "b.png": rng.bytes(300)}),
        "eval_odd": _folder(
            d / "eval/odd", {"a.png": _image(rng, 40, 40, 1), "b.png": _image(rng, 20, 30, 3, np.uint16)}
        ),
    }


def _unmatched(root: Path, image: np.ndarray) -> str:
    _png(root / "train/A/a.png", image)
    _png(root / "train/B/z.png", image)
    return str(root)


def _aligned(root: Path, images: dict[str, np.ndarray | bytes]) -> str:
    _folder(root / "train", images)
    return str(root)


def _folder(root: Path, images: dict[str, np.ndarray | bytes]) -> str:
    for name, image in images.items():
        _png(root / name, image)
    return str(root)


def _video_assets(d: Path) -> dict[str, str]:
    """A clip written by OpenCV, cut short: MJPG .avi decodes up to the cut; .mp4 loses its index."""
    paths = {}
    for suffix, fourcc in ((".avi", "MJPG"), (".mp4", "mp4v")):
        clip = d / f"clip{suffix}"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*fourcc), 10.0, (64, 48))
        for i in range(20):
            frame = np.full((48, 64, 3), i * 12, np.uint8)
            cv2.putText(frame, str(i), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
            writer.write(frame)
        writer.release()
        data = clip.read_bytes()
        paths[suffix] = d / f"cut{suffix}"
        paths[suffix].write_bytes(data[: len(data) * 6 // 10])
    (d / "random.mp4").write_bytes(np.random.default_rng(2).bytes(3000))
    return {
        "video_missing": str(d / "no-such-video.mp4"),
        "video_random": str(d / "random.mp4"),
        "video_no_index": str(paths[".mp4"]),
        "video_dies": str(paths[".avi"]),
    }


def _frame_assets(d: Path) -> dict[str, str]:
    rng = np.random.default_rng(3)
    sources = {
        "1x1": _image(rng, 1, 1),
        "33x17": _image(rng, 17, 33),
        "3840x2160": np.ascontiguousarray(np.broadcast_to(_image(rng, 1, 3840), (2160, 3840, 3))),
        "gray": _image(rng, 24, 40, 1),
        "rgba": _image(rng, 24, 40, 4),
        "16-bit": _image(rng, 24, 40, 3, np.uint16),
    }
    paths = {
        "frame_" + name.replace("-", "_"): _folder(d / name, {f"{name}.png": image}) for name, image in sources.items()
    }
    # Bright frames pass through the NaN model exactly; the dark one (f3) makes it output NaN.
    nan_frames = {f"f{i}.png": np.full((64, 64, 3), 0 if i == 3 else 200, np.uint8) for i in range(6)}
    paths["frames_nan"] = _folder(d / "nan", nan_frames)
    return paths


@pytest.fixture(scope="module")
def assets(
    tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, tiny_onnx: Path, demo_data: Path
) -> dict[str, str]:
    from i2i.runtime.card import ModelCard

    d = tmp_path_factory.mktemp("bad")
    card = ModelCard.from_onnx(tiny_onnx).to_dict()
    values = {
        "pt": str(tiny_run / "model.pt"),
        "onnx": str(tiny_onnx),
        "data": str(demo_data),
        "marker": str(d / "PAYLOAD-RAN"),
    }
    for sub, make in (
        ("pt", lambda p: _checkpoint_assets(p, tiny_run / "model.pt", Path(values["marker"]))),
        ("onnx", lambda p: _onnx_assets(p, card, tiny_onnx)),
        ("engine", lambda p: {"engine": _engine_asset(p, card, tiny_onnx)}),
        ("datasets", _dataset_assets),
        ("videos", _video_assets),
        ("frames", _frame_assets),
    ):
        (d / sub).mkdir()
        values.update(make(d / sub))
    return values


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: one intra-op thread is several times faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- running a case -------------------------------------------------------------------------------
@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE for this process: a write past ``limit`` bytes fails with EFBIG (Python ignores SIGXFSZ)."""
    if not limit:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def run_cli(case: Case, argv: list[str], cwd: Path) -> Result:
    if case.process:
        script = Path(sys.executable).parent / case.cli
        env = {k: v for k, v in os.environ.items() if k != "I2I_DEBUG"}
        proc = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
        return Result(proc.returncode, proc.stdout, proc.stderr)
    module, attr = COMMANDS[case.cli].split(":")
    command = getattr(importlib.import_module(module), attr)
    with file_size_limit(case.file_limit):
        result = invoke(command, argv)
    return Result(result.exit_code, result.stdout, result.stderr)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def check_streams(result: Result, code: int) -> str:
    """The stderr contract; returns the error line ("" for a run that works)."""
    assert "Traceback" not in result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    allowed = ALLOWED_LINES + (USAGE_LINES if code == 2 else ())
    assert all(ln.startswith(allowed) for ln in lines if not ln.startswith("Error:")), result.stderr
    if code == 0:
        assert not errors, result.stderr
        return ""
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def _params() -> Iterator[Any]:
    for case_id, case in CASES.items():
        marks = []
        if case.readonly:
            marks.append(
                pytest.mark.skipif(
                    not PERMISSIONS_ENFORCED,
                    reason="running as root, who ignores permissions; the disk-full and file-limit cases cover it",
                )
            )
        if "/dev/full" in case.args:
            marks.append(pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here"))
        yield pytest.param(case, id=case_id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(case: Case, assets: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("I2I_DEBUG", raising=False)
    out = tmp_path / "out"
    out.mkdir()
    values = {**assets, "out": str(out)}
    if case.readonly:
        values["ro"] = str(out / "ro")
        (out / "ro").mkdir(mode=0o500)
    argv = shlex.split(case.args.format(**values))
    before = listing(out)
    try:
        result = run_cli(case, argv, tmp_path)
    finally:
        if case.readonly:
            (out / "ro").chmod(0o700)
    assert result.code == case.code, (result.code, result.stdout, result.stderr)
    message = check_streams(result, case.code)
    assert re.search(case.match, message), message
    for name in case.names:
        assert name.format(**values) in message, message
    assert not Path(assets["marker"]).exists(), "the pickled payload ran"
    assert not [p for p in listing(out) if re.search(r"\.tmp|\.partial", p)], listing(out)
    if case.check is not None:
        case.check(out, result, values)
    elif case.code != 0:
        remaining = [p for p in listing(out) if p not in before]
        allowed = [p for p in remaining if any(Path(p).match(pattern) or p == pattern for pattern in case.may_remain)]
        assert remaining == allowed, remaining


def test_engine_sidecar_naming_another_gpu_and_tensorrt_is_refused(assets: dict[str, str]) -> None:
    """The sidecar check itself (TensorRT is not needed for it): both differences, and the fix, in one line."""
    from i2i.errors import I2IError
    from i2i.runtime.backends.tensorrt import GpuIdentity, check_compatible, read_sidecar

    sidecar = read_sidecar(assets["engine"])
    with pytest.raises(I2IError) as info:
        check_compatible(sidecar, "10.13.0.35", GpuIdentity("NVIDIA H100 80GB HBM3", "9.0"))
    message = str(info.value)
    assert "TensorRT 8.6.1 (this machine has 10.13.0.35)" in message
    assert "NVIDIA A100-SXM4-80GB (sm 8.0; this machine has NVIDIA H100 80GB HBM3, sm 9.0)" in message
    assert "rebuild it here with `i2i-export" in message and "\n" not in message


def test_data_workers_refuse_a_temp_folder_too_long_for_their_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX adds 32 bytes to the temp folder; past the socket path
    limit (107 bytes on Linux: a 75-character folder is the longest that works) the DataLoader
    workers' tensor hand-over fails in a thread and training would wait forever."""
    import tempfile

    from i2i.errors import I2IError
    from i2i.train.loop import check_worker_tmpdir, socket_path_max

    limit = socket_path_max()
    if sys.platform == "linux":
        assert limit == 107
    longest_folder = (limit or 107) - 32
    monkeypatch.setattr(tempfile, "tempdir", "/" + "a" * (longest_folder - 1))  # the longest that works
    check_worker_tmpdir(1)
    monkeypatch.setattr(tempfile, "tempdir", "/" + "a" * longest_folder)
    check_worker_tmpdir(0)  # no workers, no sockets
    if limit is None:  # Windows: the workers use no Unix sockets, so no folder is too long
        check_worker_tmpdir(2)
        return
    too_long = rf"--workers 2: the temp folder /a+ is too long .* \({limit + 1} > {limit} bytes\)"
    with pytest.raises(I2IError, match=too_long):
        check_worker_tmpdir(2)
