"""Benchmark suites: a TOML file names models and a matrix of backend × precision × batch × size.

``i2i-bench benchmarks/cpu.toml`` prepares each model (a checkpoint; one trained once by the
``i2i-train`` arguments its ``train`` names; or a generator built from its registry name with seeded
random weights — speed does not depend on the weights, and parity is measured against the same
weights, but int8 calibration needs trained ones), exports it, then for every matrix cell:

* model mode: warm-up, then ``iters`` individually timed calls; median/p95/p99 ms, FPS and
  images/s, achieved GFLOP/s from the FLOPs counted once per frame size with torch's flop
  counter, and PSNR of the output against torch fp32 on the same input, so a fast-but-wrong
  row is visible beside its speed;
* pipeline mode: ``frames`` synthetic frames through the full runtime pipeline (capture thread,
  pre/post-processing, null sink); FPS end to end and its ratio to model-only FPS.

A cell a backend cannot run (library missing, precision unsupported on this CPU) is recorded as
skipped with the reason, never silently dropped. Results: JSON + Markdown + PNG chart in
``benchmarks/results/<machine>/``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from i2i._files import write_bytes, write_text
from i2i.common import parse_hw, psnr_db, round_up
from i2i.errors import I2IError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    checkpoint: str | None = None
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    calib_data: str | None = None  # int8 calibration images [default: the demo photos' training crops]
    parity_data: str | None = None  # real images for export parity [default: the demo photos' test crops]
    # i2i-train arguments that make the checkpoint (trained weights for an arch the demo does not
    # ship): run once into <work>/<name>/run (--out and --overwrite added), again when they change.
    train: list[str] | None = None


@dataclass(frozen=True)
class MatrixSpec:
    models: list[str]
    backends: list[str]
    precisions: list[str]
    batch: list[int]
    sizes: list[str]
    mode: str = "model"  # "model" | "pipeline" | "soak"
    iters: int = 10
    warmup: int = 2
    frames: int = 100  # pipeline and soak modes
    window: int = 1000  # soak mode: frames per latency/RSS window
    refine: bool = False  # pipeline mode: add the spectral-profile refine stage (profile from the demo photos)
    device: str = "cpu"  # "cuda" for the GPU suite
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per backend, e.g. {ort = {cuda_graph = true}}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    models: list[ModelSpec]
    matrix: list[MatrixSpec]


def parse_size(text: str) -> tuple[int, int]:
    """A suite's ``sizes`` entry: ``N`` (square) or ``HxW``."""
    return parse_hw(text, "size")


def fitted_size(size: str, multiple: int) -> tuple[int, int]:
    """``size`` rounded up to the model's size multiple: the shape a cell actually runs."""
    h, w = parse_size(size)
    return round_up(h, multiple), round_up(w, multiple)


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise I2IError(f"suite not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise I2IError(f"{path}: not valid TOML ({exc})") from None
    try:
        models = [ModelSpec(**m) for m in raw["models"]]
        matrix = [MatrixSpec(**m) for m in raw["matrix"]]
    except (KeyError, TypeError) as exc:
        raise I2IError(f"{path}: bad suite ({exc}); see benchmarks/cpu.toml for the format") from None
    names = {m.name for m in models}
    for cell in matrix:
        unknown = set(cell.models) - names
        if unknown:
            raise I2IError(f"{path}: matrix names unknown models {sorted(unknown)}; defined: {sorted(names)}")
        if cell.mode not in MEASURES:
            raise I2IError(f"{path}: mode must be one of {', '.join(map(repr, MEASURES))}, got {cell.mode!r}")
        for size in cell.sizes:
            parse_size(size)
        if not re.fullmatch(r"cpu|cuda(:\d+)?", cell.device):
            raise I2IError(f"{path}: device must be 'cpu', 'cuda' or 'cuda:N', got {cell.device!r}")
        stray = set(cell.options) - set(cell.backends)
        if stray:
            raise I2IError(f"{path}: options for backends the cell does not run: {sorted(stray)}")
    return Suite(raw.get("name", path.stem), raw.get("description", ""), models, matrix)


def _demo_images(work: Path) -> Path:
    """Real photographs (scikit-image's, cut into crops) for int8 calibration and parity."""
    from i2i.train.demo import build_demo_dataset

    root = work / "_photos"
    build_demo_dataset(root, crop=256, crops_per_photo=8, test_crops_per_photo=2, video_seconds=1.0, progress=False)
    return root


def demo_profile(work: Path) -> Path:
    """A spectral profile estimated from the demo photos (sketch targets vs photos): a real profile
    of realistic shape, for timing the refine stage."""
    import cv2

    from i2i.analysis import SpectrumStats, estimate_profile

    path = work / "_photos" / "profile.npz"
    if path.exists():
        return path
    photos = _demo_images(work)
    stats = {}
    for side in ("A", "B"):
        acc = SpectrumStats()
        for file in sorted((photos / "test" / side).iterdir()):
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise I2IError(f"cannot read image {file}")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            acc.add(rgb.transpose(2, 0, 1).astype(np.float64) / 255.0)
        stats[side] = acc
    estimate_profile(stats["B"], stats["A"], provenance={"source": "i2i-bench demo photos"}).save(path)
    return path


def prepare_model(spec: ModelSpec, work: Path) -> Path:
    """The model's checkpoint: the given one, or seeded random weights written once."""
    import torch

    from i2i.train.checkpoint import atomic_save, make_checkpoint
    from i2i.train.nets import build_net

    if spec.checkpoint:
        return Path(spec.checkpoint)
    if spec.train:
        return trained_checkpoint(spec, work)
    if not spec.arch:
        raise I2IError(f"model {spec.name!r}: give a checkpoint or an arch")
    checkpoint = work / spec.name / "model.pt"
    if not checkpoint.exists():
        torch.manual_seed(0)
        # PyTorch's default (Kaiming-uniform) init, not the N(0, 0.02) training init: with BatchNorm in
        # eval mode the latter shrinks activations towards zero (denormals, constant outputs), which
        # would make both the timings and the parity figures unrepresentative of a trained model.
        net = build_net(spec.arch, **spec.arch_kwargs).eval()
        atomic_save(make_checkpoint(net, arch=spec.arch, arch_kwargs=spec.arch_kwargs, method="bench"), checkpoint)
    return checkpoint


def trained_checkpoint(spec: ModelSpec, work: Path) -> Path:
    """``<work>/<name>/run/model.pt`` from ``i2i-train`` with the spec's arguments, trained once;
    the arguments are kept beside it (``train.json``), and a different list trains again."""
    assert spec.train is not None
    out = work / spec.name / "run"
    checkpoint, record = out / "model.pt", work / spec.name / "train.json"
    try:
        done = json.loads(record.read_text()) == spec.train and checkpoint.exists()
    except (OSError, ValueError):
        done = False
    if not done:
        record.unlink(missing_ok=True)
        run_training([*spec.train, "--out", str(out), "--overwrite"], spec.name)
        if not checkpoint.exists():
            raise I2IError(f"model {spec.name!r}: i2i-train {' '.join(spec.train)} wrote no {checkpoint}")
        write_text(record, json.dumps(spec.train), "training record")
    return checkpoint


def run_training(args: list[str], name: str) -> None:
    """``i2i-train ARGS`` in a child process (its own torch threads and memory); one line on failure."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "from i2i._entry import train; train()", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise I2IError(f"model {name!r}: i2i-train {' '.join(args)} failed: {last}")


def artefact_for(
    spec: ModelSpec, checkpoint: Path, backend: str, precision: str, batch: int, size: str, work: Path
) -> Path:
    """The file ``backend`` runs for one cell, made once through ``i2i.export``: the checkpoint for
    backends that take one, else the ONNX export at the precision's graph (an fp32 graph for
    run-time precisions such as bf16), and for engine backends a static engine (min = opt = max =
    the cell's shape, the fastest deployment of a fixed stream) built beside it."""
    from i2i.runtime.backends.base import get_backend
    from i2i.runtime.formats import FORMATS
    from i2i.runtime.precisions import get_precision

    suffixes = get_backend(backend).suffixes
    if FORMATS["checkpoint"].suffixes[0] in suffixes:
        return checkpoint
    row = get_precision(precision)
    onnx_path = _onnx_export(spec, checkpoint, row.name if row.exportable else "fp32", work)
    if FORMATS["onnx"].suffixes[0] in suffixes:
        return onnx_path
    return _static_engine(onnx_path, batch, size)


def _stale(target: Path, source: Path) -> bool:
    return not target.exists() or target.stat().st_mtime < source.stat().st_mtime


def _onnx_export(spec: ModelSpec, checkpoint: Path, graph: str, work: Path) -> Path:
    from i2i.export.build import export

    out = work / spec.name / ("model.onnx" if graph == "fp32" else f"model.{graph}.onnx")
    if _stale(out, checkpoint):
        photos = None if (spec.calib_data and spec.parity_data) else _demo_images(work)
        parity = spec.parity_data or (str(photos / "test" / "A") if photos else None)
        calib = spec.calib_data or (str(photos / "train" / "A") if photos else None)
        export(checkpoint, out, precision=graph, parity_data=parity, calib_data=calib, progress=False)
    return out


def _static_engine(onnx_path: Path, batch: int, size: str) -> Path:
    """Without TensorRT this raises the trt extra's install hint (the cell is then skipped)."""
    from i2i.export.build import EngineOptions, export
    from i2i.runtime.card import ModelCard

    h, w = fitted_size(size, ModelCard.from_onnx(onnx_path).size_multiple)
    shape = (batch, h, w)
    engine = onnx_path.with_name(f"{onnx_path.stem}.b{batch}.{h}x{w}.engine")
    if _stale(engine, onnx_path):
        options = EngineOptions(min_shape=shape, opt_shape=shape, max_shape=shape, output=str(engine))
        export(onnx_path, engine="trt", engine_options=options, progress=False)
    return engine


def count_flops(checkpoint: Path, height: int, width: int) -> float:
    """FLOPs of one frame (2 per multiply-add), counted by torch's flop counter (as stored in the card)."""
    from i2i.export.onnx import count_flops as count
    from i2i.train.checkpoint import load_generator

    generator, _ = load_generator(checkpoint)
    return float(count(generator, height, width))


def _time_calls(backend: Any, batch: np.ndarray, warmup: int, iters: int) -> tuple[np.ndarray, np.ndarray]:
    out = None
    for _ in range(warmup):
        out = backend(batch)
    samples = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        out = backend(batch)
        samples[i] = time.perf_counter() - t0
    return samples * 1e3, np.asarray(out)


def rss_mb() -> float:
    """Current resident set size of this process (Linux /proc; elsewhere the peak, which only grows)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _soak(backend: Any, height: int, width: int, frames: int, window: int) -> dict[str, Any]:
    """Many frames through the pipeline: RSS per window and the spread of frame times per window."""
    done: list[float] = []
    memory: list[float] = []

    def on_frames(n: int) -> None:
        now = time.perf_counter()
        before = len(done)
        done.extend([now] * n)
        if len(done) // window > before // window:
            memory.append(rss_mb())

    fps = float(_pipeline(backend, height, width, frames, 1, on_frames=on_frames)["fps"])
    intervals = np.diff(np.asarray(done)) * 1e3  # ms between consecutive finished frames
    windows = [intervals[i : i + window] for i in range(0, len(intervals), window) if len(intervals[i : i + window])]
    p99 = [float(np.percentile(w, 99)) for w in windows]
    p50 = [float(np.percentile(w, 50)) for w in windows]
    start, end = (memory[0], memory[-1]) if memory else (math.nan, math.nan)
    return {
        "fps": fps,
        "frames": len(done),
        "window": window,
        "rss_first_window_mb": start,
        "rss_end_mb": end,
        "rss_growth_mb": end - start,
        "p50_ms_per_window": p50,
        "p99_ms_per_window": p99,
        "p99_drift": p99[-1] / p99[0] if p99 and p99[0] > 0 else None,
        "median_ms": float(np.median(intervals)) if len(intervals) else None,
        "p99_ms": float(np.percentile(intervals, 99)) if len(intervals) else None,
    }


def _pipeline(
    backend: Any, height: int, width: int, frames: int, batch: int, on_frames: Any = None, refiner: Any = None
) -> dict[str, Any]:
    from i2i.runtime.pipeline import run_pipeline
    from i2i.runtime.sinks import NullSink
    from i2i.runtime.sources import Source

    class _Synthetic(Source):
        """Pre-rendered moving gradient frames: no decode cost, so the pipeline itself is measured."""

        def __init__(self) -> None:
            super().__init__()
            base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
            self._frames = [
                np.ascontiguousarray(np.broadcast_to((base + 7 * k) % 256, (height, width, 3)).astype(np.uint8))
                for k in range(8)
            ]
            self._i = 0
            self.name, self.count, self.fps = "synthetic", frames, None

        def _read(self) -> tuple[np.ndarray, str | None] | None:
            if self._i >= frames:
                return None
            self._i += 1
            return self._frames[self._i % 8], None

    with _Synthetic() as source, NullSink() as sink:
        stats = run_pipeline(
            source, backend, sink, batch_size=batch, mode="every-frame", on_frames=on_frames, refiner=refiner
        )
    return stats.summary()


@dataclass(frozen=True)
class Cell:
    """One measured row: a model on a backend at a precision, batch and size, in the matrix's mode."""

    spec: MatrixSpec
    model: str
    backend: str
    precision: str
    batch: int
    size: str

    def row(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "batch": self.batch,
            "size": self.size,
            "mode": self.spec.mode,
        }


def cells_of(suite: Suite) -> list[Cell]:
    return [
        Cell(spec, model, backend, precision, batch, size)
        for spec in suite.matrix
        for model in spec.models
        for backend in spec.backends
        for precision in spec.precisions
        for batch in spec.batch
        for size in spec.sizes
    ]


class _Run:
    """State shared by the cells of one suite run: prepared checkpoints (a model whose preparation
    fails, such as its training run, skips its cells with the reason), artefacts that failed to
    build (a failed export fails again: said once, not retried), torch references and FLOP counts."""

    def __init__(self, suite: Suite, work: Path) -> None:
        self.work = work
        self.specs = {m.name: m for m in suite.models}
        self._checkpoints: dict[str, Path | str] = {}
        self.failed: dict[tuple[str, str, str], str] = {}
        self.references: dict[tuple[str, int, str, str], np.ndarray] = {}
        self.flops: dict[tuple[str, str], float] = {}

    def open(self, cell: Cell) -> Any:
        """The cell's backend, opened on the artefact it runs (made on first use)."""
        from i2i.runtime.backends.base import get_backend, open_backend

        key = (cell.model, ",".join(get_backend(cell.backend).suffixes), cell.precision)
        if key in self.failed:
            raise I2IError(self.failed[key])
        checkpoint = self.checkpoint(cell.model)
        try:
            path = artefact_for(
                self.specs[cell.model],
                checkpoint,
                cell.backend,
                cell.precision,
                cell.batch,
                cell.size,
                self.work,
            )
        except I2IError as exc:
            self.failed[key] = exc.format_message()
            raise
        options = cell.spec.options.get(cell.backend, {})
        return open_backend(cell.backend, path, device=cell.spec.device, precision=cell.precision, **options)

    def checkpoint(self, model: str) -> Path:
        """The model's checkpoint, prepared on first use; a failure is kept and raised again."""
        if model not in self._checkpoints:
            try:
                self._checkpoints[model] = prepare_model(self.specs[model], self.work)
            except I2IError as exc:
                self._checkpoints[model] = exc.format_message()
        found = self._checkpoints[model]
        if isinstance(found, str):
            raise I2IError(found)
        return found

    def reference(self, cell: Cell, inputs: np.ndarray, hw: str) -> np.ndarray:
        """torch fp32 eager on the checkpoint: what every row's PSNR is measured against."""
        from i2i.runtime.backends.base import BASELINE, open_backend

        key = (cell.model, cell.batch, hw, cell.spec.device)
        if key not in self.references:
            with open_backend(BASELINE, self.checkpoint(cell.model), device=cell.spec.device) as torch_backend:
                self.references[key] = np.asarray(torch_backend(inputs))
        return self.references[key]

    def gflop(self, model: str, h: int, w: int) -> float:
        if (model, f"{h}x{w}") not in self.flops:
            self.flops[(model, f"{h}x{w}")] = count_flops(self.checkpoint(model), h, w)
        return self.flops[(model, f"{h}x{w}")] / 1e9


def run_suite(suite: Suite, work: Path, progress: bool = True) -> dict[str, Any]:
    from i2i.machine import machine_info

    run = _Run(suite, work)
    rows: list[dict[str, Any]] = []
    bar = tqdm(cells_of(suite), desc=f"bench {suite.name}", unit="cell", disable=not progress, dynamic_ncols=True)
    for cell in bar:
        bar.set_postfix_str(f"{cell.model} {cell.backend} {cell.precision} b{cell.batch} {cell.size}")
        row = cell.row()
        rows.append(row)
        try:
            backend = run.open(cell)
        except I2IError as exc:
            row["skipped"] = exc.format_message()
            continue
        with backend:
            h, w = fitted_size(cell.size, backend.size_multiple)
            row.update(height=h, width=w)
            MEASURES[cell.spec.mode](run, cell, backend, row)
    _relate(rows)
    return {
        "suite": suite.name,
        "description": suite.description,
        "machine": machine_info(gpu=any(c.device.startswith("cuda") for c in suite.matrix)),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }


def _measure_model(run: _Run, cell: Cell, backend: Any, row: dict[str, Any]) -> None:
    """Warm-up, then ``iters`` individually timed calls on seeded random inputs."""
    h, w = row["height"], row["width"]
    inputs = np.random.default_rng(0).uniform(-1, 1, (cell.batch, 3, h, w)).astype(np.float32)
    reference = run.reference(cell, inputs, f"{h}x{w}")
    try:
        ms, out = _time_calls(backend, inputs, cell.spec.warmup, cell.spec.iters)
    except I2IError as exc:  # e.g. torch.compile without a working compiler
        row["skipped"] = exc.format_message()
        return
    median = float(np.median(ms))
    gflop = run.gflop(cell.model, h, w)
    row.update(
        iters=cell.spec.iters,
        median_ms=median,
        p95_ms=float(np.percentile(ms, 95)),
        p99_ms=float(np.percentile(ms, 99)),
        fps=cell.batch * 1e3 / median,
        gflop_per_frame=gflop,
        gflops_achieved=gflop * cell.batch * 1e3 / median,
        psnr_vs_torch_fp32_db=psnr_db(reference, out.astype(np.float32), data_range=2.0),
    )


def _measure_pipeline(run: _Run, cell: Cell, backend: Any, row: dict[str, Any]) -> None:
    """Synthetic frames through the whole runtime pipeline (and the refine stage if asked)."""
    refiner = None
    if cell.spec.refine:
        from i2i.runtime.spectral import open_refiner

        refiner = open_refiner(demo_profile(run.work))
        row["refine"] = "profile"
    summary = _pipeline(backend, row["height"], row["width"], cell.spec.frames, cell.batch, refiner=refiner)
    row["fps"] = float(summary["fps"])
    stages = summary["stages"]
    row["infer_p50_ms"] = stages["infer"]["p50_ms"]
    if "refine" in stages:
        row["refine_p50_ms"] = stages["refine"]["p50_ms"]
        row["refine_vs_infer"] = row["refine_p50_ms"] / row["infer_p50_ms"]


def _measure_soak(run: _Run, cell: Cell, backend: Any, row: dict[str, Any]) -> None:
    row.update(_soak(backend, row["height"], row["width"], cell.spec.frames, cell.spec.window))


# mode -> how a cell of that mode is measured
MEASURES = {"model": _measure_model, "pipeline": _measure_pipeline, "soak": _measure_soak}


def _relate(rows: list[dict[str, Any]]) -> None:
    """Speed-up vs torch fp32 eager and pipeline/model-only ratio, for rows measured in the same run."""

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["model"], r["batch"], r.get("height"), r.get("width"))

    from i2i.runtime.backends.base import BASELINE

    eager = [r for r in rows if r["backend"] == BASELINE and "median_ms" in r]
    eager_ms = {(key(r), r["precision"]): r["median_ms"] for r in eager}
    model_fps = {(key(r), r["backend"], r["precision"]): r["fps"] for r in rows if r["mode"] == "model" and "fps" in r}
    for r in rows:
        if "median_ms" in r and (key(r), "fp32") in eager_ms:
            r["speedup_vs_torch_fp32"] = eager_ms[(key(r), "fp32")] / r["median_ms"]
        if "median_ms" in r and r["precision"] != "fp32" and (key(r), r["precision"]) in eager_ms:
            # the fair peer for a reduced-precision engine: torch eager at that precision (autocast)
            r["speedup_vs_torch_same_precision"] = eager_ms[(key(r), r["precision"])] / r["median_ms"]
        if r["mode"] == "pipeline" and "fps" in r and not r.get("refine"):
            base = model_fps.get((key(r), r["backend"], r["precision"]))
            if base:
                r["pipeline_vs_model"] = r["fps"] / base


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "identical" if value > 0 else "NaN/Inf"
    return f"{value:{spec}}{suffix}"


def format_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# i2i-bench suite `{result['suite']}`",
        "",
        result["description"],
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores"
        + (f" ({' '.join(m['cpu_flags'])})" if m.get("cpu_flags") else "")
        + f"; {m.get('os', '')}; "
        f"onnxruntime {m.get('onnxruntime')}, i2i {m.get('i2i')}; {result['date']}",
        "",
        *_rows_table(result["rows"]),
        *_refine_table([r for r in result["rows"] if r.get("refine") and "refine_p50_ms" in r]),
        *_soak_table([r for r in result["rows"] if r["mode"] == "soak" and "frames" in r]),
    ]
    return "\n".join(lines) + "\n"


def _rows_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | mode | backend | precision | batch | size | median ms | p95 ms | FPS | GFLOP/s "
        "| × torch fp32 | × torch same prec. | PSNR vs torch fp32 | pipeline/model |",
        "|" + "---|" * 14,
    ]
    for r in rows:
        head = f"| {r['model']} | {r['mode']} | {r['backend']} | {r['precision']} | {r['batch']} | "
        if "skipped" in r:
            lines.append(f"{head}{r['size']} | skipped: {r['skipped']} ||||||||")
            continue
        lines.append(
            f"{head}{r['height']}x{r['width']} | {_fmt(r.get('median_ms'), '.1f')} | {_fmt(r.get('p95_ms'), '.1f')} | "
            f"{_fmt(r.get('fps'), '.1f')} | {_fmt(r.get('gflops_achieved'), '.0f')} | "
            f"{_fmt(r.get('speedup_vs_torch_fp32'), '.2f', 'x')} | "
            f"{_fmt(r.get('speedup_vs_torch_same_precision'), '.2f', 'x')} | "
            f"{_fmt(r.get('psnr_vs_torch_fp32_db'), '.1f', ' dB')} | "
            f"{_fmt(r.get('pipeline_vs_model'), '.2f')} |"
        )
    return lines


def _refine_table(refined: list[dict[str, Any]]) -> list[str]:
    if not refined:
        return []
    lines = [
        "",
        "Refine stage (spectral profile) against the model stage, pipeline p50:",
        "",
        "| model | backend | size | infer p50 ms | refine p50 ms | refine / infer |",
        "|" + "---|" * 6,
    ]
    for r in refined:
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['height']}x{r['width']} | {r['infer_p50_ms']:.2f} | "
            f"{r['refine_p50_ms']:.2f} | {100 * r['refine_vs_infer']:.1f} % |"
        )
    return lines


def _soak_table(soaks: list[dict[str, Any]]) -> list[str]:
    if not soaks:
        return []
    lines = [
        "",
        "Soak (frames through the whole pipeline; RSS from the end of the first window to the end):",
        "",
        "| model | backend | size | frames | FPS | RSS first window MB | RSS end MB | growth MB "
        "| p99 ms first window | p99 ms last window |",
        "|" + "---|" * 10,
    ]
    for r in soaks:
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['height']}x{r['width']} | {r['frames']} | {r['fps']:.1f} | "
            f"{r['rss_first_window_mb']:.1f} | {r['rss_end_mb']:.1f} | {r['rss_growth_mb']:+.1f} | "
            f"{r['p99_ms_per_window'][0]:.2f} | {r['p99_ms_per_window'][-1]:.2f} |"
        )
    return lines


def draw_chart(result: dict[str, Any], path: Path) -> Path:
    """A horizontal bar chart of FPS per measured row (OpenCV: no plotting dependency)."""
    import cv2

    rows = [r for r in result["rows"] if "fps" in r]
    if not rows:
        raise I2IError("nothing measured: no chart")
    label_w, bar_w, row_h = 460, 520, 26
    image = np.full((row_h * len(rows) + 50, label_w + bar_w + 90, 3), 255, np.uint8)
    cv2.putText(
        image,
        f"i2i-bench {result['suite']}: frames per second ({result['machine']['cpu']})",
        (10, 24),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.55,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    top = max(r["fps"] for r in rows)
    colours = _backend_colours()
    for i, r in enumerate(rows):
        y = 40 + i * row_h
        label = f"{r['model']} {r['mode'][:4]} {r['backend']} {r['precision']} b{r['batch']} {r['height']}x{r['width']}"
        cv2.putText(image, label, (10, y + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        length = max(1, int(bar_w * r["fps"] / top))
        cv2.rectangle(
            image, (label_w, y + 4), (label_w + length, y + row_h - 4), colours.get(r["backend"], (120, 120, 120)), -1
        )
        cv2.putText(
            image,
            f"{r['fps']:.1f}",
            (label_w + length + 6, y + 17),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise I2IError(f"cannot encode the chart {path}")
    write_bytes(path, png.tobytes(), "chart")
    return path


# Bar colours (BGR), one per registered backend in registry order.
_PALETTE = [(60, 60, 200), (60, 120, 220), (180, 120, 40), (60, 160, 60), (40, 160, 200), (150, 80, 150)]


def _backend_colours() -> dict[str, tuple[int, int, int]]:
    from i2i.runtime.backends.base import backend_names

    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(backend_names())}


def write_results(result: dict[str, Any], root: Path) -> list[Path]:
    from i2i.machine import machine_slug

    folder = root / machine_slug(result["machine"])
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / result["suite"]
    from i2i.export.parity import json_safe

    json_path = write_text(stem.with_suffix(".json"), json.dumps(json_safe(result), indent=2, default=str), "results")
    md_path = write_text(stem.with_suffix(".md"), format_markdown(result), "results")
    return [json_path, md_path, draw_chart(result, stem.with_suffix(".png"))]
