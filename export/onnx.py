"""Checkpoint → ONNX: precision, I/O kind, static or dynamic shapes, model card, parity.

The export is a pipeline; each stage is one function, and the config decides which run:

    1. core      the generator rebuilt from model.pt, with an optional refinement module
                 composed after it (``--refine``, a hook for i2i.export.spectral)
    2. trace     opset ≥ 18: the dynamo exporter (``torch.export``) with derived dims
                 H = m·h, W = m·w (m = size multiple); opset 17: the TorchScript exporter, which is
                 deprecated but the only one that lowers Pad to opset 17. Static batch / size
                 trace at exactly that shape. Traced graphs are cached in-process by checkpoint
                 sha256 + trace options, so exporting several variants of one model traces once.
    3. slim      graph cleanup with onnxslim (constant folding, dead code, shape-op fusion)
    4. precision fp16: weights/activations fp16, fragile ops fp32 (see export/precision.py)
    5. parity    the tensor graph against torch fp32, with the precision's bar
    6. frame     ``--io frame``: uint8 NHWC BGR wrapper (export/frame.py), then its own parity
                 check against the tensor graph + host-side pre/post-processing
    7. card      JSON card in metadata_props["i2i"], checker, shape inference, atomic rename

Unsupported option combinations are errors (``check_config``), never silently rewritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import logging
import platform
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from tqdm.auto import tqdm

from i2i import __version__
from i2i._files import scratch_dir, write_bytes, write_text
from i2i.common import file_sha256, round_up
from i2i.errors import I2IError, MissingDependencyError
from i2i.export.dropout import dropout_statistics, keep_every_unit, statistics_input, torch_keep_every_unit
from i2i.export.frame import wrap_frame_io
from i2i.export.parity import json_safe
from i2i.export.parity_run import frame_parity, run_parity, runner, tensor_parity
from i2i.export.precision import Conversion, convert, fp32_ops_of
from i2i.runtime.card import CARD_KEY, TEST_NORMS, ModelCard, ModelIO
from i2i.runtime.precisions import get_precision
from i2i.train.checkpoint import build_generator, load_checkpoint, resolve_test_mode

INPUT_NAME = "image"
OUTPUT_NAME = "output"
IO_KINDS = ("tensor", "frame")
MAX_SIDE = 4096  # largest H or W a dynamic export accepts


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str
    output: str | None = None  # default: the checkpoint's path with .onnx
    opset: int = 18
    parity_data: str | None = None  # folder of images for the parity check
    progress: bool = True
    precision: str = "fp32"  # an exportable row of i2i.runtime.precisions: fp32 | fp16 | int8
    fp16_io: bool = False  # fp16 graph input/output (tensor I/O only); default keeps them fp32
    io: str = "tensor"  # "tensor": float NCHW RGB [-1, 1]; "frame": uint8 NHWC BGR
    size: tuple[int, int] | None = None  # static (H, W); None = dynamic
    batch: int | None = None  # static batch; None = dynamic
    keep_fp32_ops: tuple[str, ...] | None = None  # fp16 only; None = the precision's default list
    slim: bool = True  # onnxslim graph cleanup
    refine: str | None = None  # refinement file composed after the generator (needs a static size)
    calib_data: str | None = None  # int8: calibration images [default: the training split]
    calibrator: str = "minmax"  # int8: minmax | entropy | percentile
    test_norm: str | None = None  # BatchNorm at test time: "frame" | "running"; None = the checkpoint's
    test_dropout: bool | None = None  # dropout active at test time; None = the checkpoint's


@dataclass
class ExportResult:
    onnx: Path
    parity_report: Path
    parity: dict[str, Any]
    card: ModelCard


# -- validation ---------------------------------------------------------------------------------
def check_config(config: ExportConfig, size_multiple: int | None = None) -> None:
    """Reject unsupported combinations with one line each. ``size_multiple`` is checked when known."""
    precision = get_precision(config.precision)
    if not precision.exportable:
        raise I2IError(f"--precision {config.precision} is a run-time precision; export fp32 and run it as bf16")
    if config.io not in IO_KINDS:
        raise I2IError(f"unknown --io {config.io!r}; valid: {', '.join(IO_KINDS)}")
    if config.opset < 17:
        raise I2IError(f"--opset {config.opset}: i2i exports opset 17 or newer")
    if config.fp16_io and "float16" not in precision.tensor_io_dtypes:
        raise I2IError(f"--fp16-io needs --fp16 (a {config.precision} graph has fp32 I/O)")
    if config.fp16_io and config.io == "frame":
        raise I2IError("--fp16-io does not apply to --io frame: frame models take and return uint8")
    if config.test_norm is not None and config.test_norm not in TEST_NORMS:
        raise I2IError(f"--test-norm {config.test_norm!r}: valid: {', '.join(TEST_NORMS)}")
    if config.keep_fp32_ops is not None and config.precision != "fp16":
        raise I2IError("keep_fp32_ops / --keep-fp32 applies to fp16 exports only")
    if config.batch is not None and config.batch < 1:
        raise I2IError(f"--batch must be >= 1, got {config.batch}")
    if config.size is not None:
        h, w = config.size
        if h < 1 or w < 1 or h > MAX_SIDE or w > MAX_SIDE:
            raise I2IError(f"--size {h}x{w}: each side must be 1..{MAX_SIDE}")
        if size_multiple and (h % size_multiple or w % size_multiple):
            raise I2IError(
                f"--size {h}x{w}: H and W must be multiples of {size_multiple}, this generator's size multiple"
            )
    if config.refine is not None:
        if config.size is None:
            raise I2IError("--refine needs --size HxW: the refinement is built for one frame size")
        if not Path(config.refine).is_file():
            raise I2IError(f"--refine: file not found: {config.refine}")


# -- stage 1: the torch module to trace ---------------------------------------------------------
def refine_module(generator: torch.nn.Module, path: Path, size: tuple[int, int]) -> torch.nn.Module:
    """The ``--refine`` hook: generator → in-graph spectral refinement for one (H, W), built by
    ``i2i.export.spectral.bake_refinement(generator, profile_file, (H, W))``."""
    try:
        spectral = importlib.import_module("i2i.export.spectral")
    except ImportError as exc:
        raise I2IError(f"--refine needs i2i.export.spectral, which does not import here ({exc})") from None
    bake = getattr(spectral, "bake_refinement", None)
    if bake is None:
        raise I2IError("--refine: this version of i2i.export.spectral has no bake_refinement")
    module = bake(generator, path, size)
    if not isinstance(module, torch.nn.Module):
        raise I2IError(f"--refine: bake_refinement returned {type(module).__name__}, not a torch module")
    return module.eval()


# -- stage 2: trace -----------------------------------------------------------------------------
def _example_input(size_multiple: int, batch: int | None, shape: tuple[int, int] | None) -> torch.Tensor:
    # Dynamic axes get batch 2 and 2-3 blocks per side: an example size of 1 would be specialised.
    m = size_multiple
    h, w = shape if shape is not None else (2 * m, 3 * m)
    return torch.randn(batch if batch is not None else 2, 3, h, w)


# Loggers whose records reach stderr past ``redirect_stderr`` (torch's handler holds the stream it
# was given at import): the exporter's registry logs "torchvision is not installed. Skipping
# torchvision::nms" and three more lines on the first export in a process; i2i has no such ops.
_QUIET_LOGGERS = ("torch.onnx._internal.exporter._registration",)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Exporter chatter (prints, warnings, the loggers above) kept out of the terminal; prints and
    warnings go to the returned buffer, whose last line a failure quotes."""
    log = io.StringIO()
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield log
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _export_graph(
    module: torch.nn.Module,
    size_multiple: int,
    path: Path,
    opset: int,
    batch: int | None = None,
    shape: tuple[int, int] | None = None,
) -> None:
    example = _example_input(size_multiple, batch, shape)
    with _quiet() as log:
        if opset >= 18:
            dims: dict[int, Any] = {}
            if batch is None:
                dims[0] = torch.export.Dim("batch", min=1, max=1024)
            if shape is None:
                dims[2] = size_multiple * torch.export.Dim("h_blocks", min=1, max=MAX_SIDE // size_multiple)
                dims[3] = size_multiple * torch.export.Dim("w_blocks", min=1, max=MAX_SIDE // size_multiple)
            try:
                torch.onnx.export(
                    module,
                    (example,),
                    str(path),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=(dims,) if dims else None,
                    external_data=False,
                    verbose=False,
                )
            except OSError:  # writing the graph failed (disk full, file size limit): the caller names the file
                raise
            except Exception as exc:
                lines = log.getvalue().strip().splitlines()
                raise I2IError(
                    f"ONNX export failed: {' '.join(str(exc).split())[:300]}"
                    + (f" | {lines[-1][:200]}" if lines else "")
                ) from None
        else:
            axes = ({0: "batch"} if batch is None else {}) | ({2: "height", 3: "width"} if shape is None else {})
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if axes else None,
            )


_TRACE_CACHE: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_TRACE_CACHE_SIZE = 8


def trace(
    module: torch.nn.Module,
    key: tuple[Any, ...],
    size_multiple: int,
    opset: int,
    batch: int | None,
    shape: Any,
    workdir: Path | None = None,
) -> onnx.ModelProto:
    """Trace ``module`` to an fp32 tensor graph, or return the cached graph for the same ``key``.

    The exporter writes the graph to a file: a hidden temp folder in ``workdir`` (the output's
    folder, so a full disk there is the one reported; default: the system temp folder), removed
    on any exception, Ctrl-C and SIGTERM included. A failed write is the OSError itself.
    """
    if key not in _TRACE_CACHE:
        with scratch_dir(".i2i-trace-", workdir) as tmp:
            path = tmp / "traced.onnx"
            _export_graph(module, size_multiple, path, opset, batch, shape)
            _TRACE_CACHE[key] = path.read_bytes()
        while len(_TRACE_CACHE) > _TRACE_CACHE_SIZE:
            _TRACE_CACHE.popitem(last=False)
    _TRACE_CACHE.move_to_end(key)
    return onnx.load_from_string(_TRACE_CACHE[key])


# -- stage 3: cleanup ---------------------------------------------------------------------------
def slim(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim: fold constants and shape arithmetic, drop dead nodes. I/O names are kept."""
    try:
        import onnxslim
    except ImportError as exc:
        raise MissingDependencyError("onnxslim", "export", f"{exc}; or export with --no-slim") from None
    with _quiet():
        slimmed = onnxslim.slim(model)
    if not isinstance(slimmed, onnx.ModelProto):  # pragma: no cover - defensive, slim returns a model
        raise I2IError("onnxslim returned no model; export with --no-slim")
    return slimmed


# -- stage 5/6: parity (the runs themselves: i2i.export.parity_run) ------------------------------
def _dataset_images(ckpt: dict[str, Any], splits: tuple[str, ...], scratch: Path) -> Path | None:
    """Input-side images of the first of ``splits`` that the training dataset has (any layout:
    ``<split>/A``, ``<split>A`` or aligned A|B files, whose input halves go to ``scratch``)."""
    from i2i.train.data import source_images_dir

    data = ckpt.get("train_config", {}).get("train", {}).get("data")
    if not data or not Path(data).is_dir():
        return None
    direction = ckpt.get("direction") or "AtoB"
    for split in splits:
        found = source_images_dir(data, split, direction, scratch)
        if found is not None:
            return found
    return None


def default_calibration_dir(ckpt: dict[str, Any], scratch: Path) -> Path | None:
    """Calibration images for int8: the training split of the dataset the model was trained on."""
    return _dataset_images(ckpt, ("train",), scratch)


def default_parity_dir(ckpt: dict[str, Any], scratch: Path) -> Path | None:
    """Real images for parity: the test (or val) split of the dataset the model was trained on, if present."""
    return _dataset_images(ckpt, ("test", "val"), scratch)


# -- stage 7: card + finalise -------------------------------------------------------------------
def count_flops(generator: torch.nn.Module, height: int, width: int) -> int:
    """FLOPs of one (height, width) frame, 2 per multiply-add, counted by ``torch.utils.flop_counter``
    (convolutions and matmuls; norms and activations are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generator(torch.zeros(1, 3, height, width))
    return int(counter.get_total_flops())


def flops_entry(generator: torch.nn.Module, multiple: int, shape: tuple[int, int] | None) -> dict[str, Any]:
    """The card's ``flops``: counted at the static size, else at 256² rounded up to the size multiple.
    Fully convolutional generators scale with the pixel count, so ``per_pixel`` carries to other sizes."""
    h, w = shape or (round_up(256, multiple),) * 2
    flops = count_flops(generator, h, w)
    return {"height": h, "width": w, "per_frame": flops, "per_pixel": flops / (h * w)}


def make_card(job: _Job, parity: dict[str, Any], flops: dict[str, Any]) -> ModelCard:
    """The card of the exported graph: typed I/O, precision and provenance (``ModelCard``)."""
    config, ckpt = job.config, job.ckpt
    frame = config.io == "frame"
    io = ModelIO(
        kind=config.io,
        dtype="uint8" if frame else ("float16" if config.fp16_io else "float32"),
        size_multiple=job.multiple,
        static_size=config.size,
    )
    summary = {k: parity[k] for k in ("precision", "passed", "max_abs", "min_psnr_db")}
    if "frame" in parity:
        summary["frame_max_level_diff"] = parity["frame"]["max_level_diff"]
    base = ModelCard.from_checkpoint(ckpt, where=str(job.checkpoint))
    return base.replace(
        io=io,
        precision=config.precision,
        static_batch=config.batch,
        test_norm=job.test_norm,
        test_norm_reason=(
            f"i2i-export --test-norm {config.test_norm} given explicitly"
            if config.test_norm is not None
            else base.test_norm_reason
        ),
        test_dropout=job.test_dropout,
        fp32_ops=fp32_ops_of(config.precision, config.keep_fp32_ops),
        opset=config.opset,
        baked_refine=job.refine_info,
        source={"name": job.checkpoint.name, "sha256": job.checkpoint_sha},
        exporter=_versions(),
        export=_config_json(config),
        parity=summary,
        flops=flops,
    )


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "i2i": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": version("onnxruntime"),
        "onnxslim": version("onnxslim"),
        "python": platform.python_version(),
    }


def _config_json(config: ExportConfig) -> dict[str, Any]:
    """The export options, without local paths that mean nothing on another machine."""
    out = dataclasses.asdict(config)
    for key in ("checkpoint", "output", "parity_data", "refine"):
        out[key] = Path(out[key]).name if out[key] else None
    out.pop("progress")
    return out


def _finalise(card: ModelCard, out_path: Path, model: onnx.ModelProto) -> None:
    """Embed the card, run the checker and shape inference, then write atomically (``write_bytes``)."""
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()
    model.producer_name, model.producer_version = "i2i", __version__
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    write_bytes(out_path, model.SerializeToString(), "ONNX model")  # what onnx.save writes, whole or not at all


def _fail(parity: dict[str, Any], report_path: Path) -> I2IError:
    bar = parity["bar"]
    limits = ", ".join(f"{k.replace('_db', '')} {'≤' if k == 'max_abs' else '≥'} {v}" for k, v in bar.items() if v)
    if not parity["passed"] and not all(c["finite"] for c in parity["cases"]):
        reason = f"{parity['precision']} output holds NaN/Inf"
    elif not parity.get("tensor_passed", parity["passed"]):
        allowed = parity.get("max_abs_allowed")
        scaled = f"; max_abs allowed {allowed:.3g} at this value range" if allowed and allowed != bar["max_abs"] else ""
        reason = (
            f"{parity['precision']} max abs diff {parity['max_abs']:.3g}, min PSNR {parity['min_psnr_db']:.1f} dB "
            f"(bar: {limits}{scaled})"
        )
    elif not parity.get("dropout", {}).get("passed", True):
        stats = parity["dropout"]
        reason = (
            f"test-time dropout changes the output by {stats['exported_mean_abs_change']:.4g} (mean |Δ| between "
            f"two runs) against torch's {stats['torch_mean_abs_change']:.4g} (allowed gap {stats['bound']:.2g})"
        )
    else:
        frame = parity["frame"]
        reason = f"frame I/O differs from host pre/post by up to {frame['max_level_diff']} levels (bar: 1)"
    return I2IError(f"parity check failed: {reason}; no model written, see {report_path}")


# -- the entry point ----------------------------------------------------------------------------
@dataclass
class _Job:
    """What the export stages share: the validated config, the checkpoint and the torch module."""

    config: ExportConfig
    checkpoint: Path
    checkpoint_sha: str
    out_path: Path
    ckpt: dict[str, Any]
    multiple: int
    module: torch.nn.Module
    test_norm: str
    test_dropout: bool
    refine_info: dict[str, Any] | None
    image_dir: Path | None
    scratch: Path  # a temporary folder for derived images, removed when the export ends
    steps: Any = None

    @property
    def report_path(self) -> Path:
        return self.out_path.with_suffix(".parity.json")

    def step(self, label: str) -> None:
        self.steps.set_postfix_str(label)


def _prepare(config: ExportConfig, scratch: Path) -> _Job:
    """Validate the options, load the checkpoint and build the module to trace (stage 1)."""
    checkpoint = Path(config.checkpoint)
    check_config(config)
    out_path = Path(config.output) if config.output else checkpoint.with_suffix(".onnx")
    if out_path.suffix != ".onnx":
        raise I2IError(f"output must end in .onnx: {out_path}")
    if config.parity_data and not Path(config.parity_data).is_dir():
        raise I2IError(f"--parity-data: not a folder: {config.parity_data}")
    ckpt = load_checkpoint(checkpoint)
    multiple = int(ckpt["io"]["size_multiple"])
    check_config(config, multiple)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    test_norm, test_dropout = _test_mode(config, ckpt)
    module = build_generator(ckpt, test_norm=test_norm, test_dropout=test_dropout)
    refine_info = None
    if config.refine is not None:
        assert config.size is not None  # check_config: --refine needs --size
        refine_path = Path(config.refine)
        module = refine_module(module, refine_path, config.size)
        refine_info = {"name": refine_path.name, "sha256": file_sha256(refine_path)}
    image_dir = Path(config.parity_data) if config.parity_data else default_parity_dir(ckpt, scratch)
    return _Job(
        config,
        checkpoint,
        file_sha256(checkpoint),
        out_path,
        ckpt,
        multiple,
        module,
        test_norm,
        test_dropout,
        refine_info,
        image_dir,
        scratch,
    )


def _test_mode(config: ExportConfig, ckpt: dict[str, Any]) -> tuple[str, bool]:
    """Test-time BatchNorm statistics and dropout: the export's options, else the checkpoint's."""
    return resolve_test_mode(ckpt, config.test_norm, config.test_dropout)


def _trace_step(job: _Job) -> onnx.ModelProto:
    """Stages 2-4: trace (cached), slim, convert to the precision."""
    config = job.config
    job.step(f"trace (opset {config.opset})")
    key = (
        job.checkpoint_sha,
        job.refine_info["sha256"] if job.refine_info else None,
        job.test_norm,
        job.test_dropout,
        config.opset,
        config.batch,
        config.size,
        torch.__version__,
    )
    try:
        model = trace(job.module, key, job.multiple, config.opset, config.batch, config.size, job.out_path.parent)
    except OSError as exc:
        raise I2IError(f"cannot write {job.out_path}: {exc.strerror or exc} (while tracing the graph)") from None
    job.steps.update(1)
    if config.slim:
        job.step("slim")
        model = slim(model)
    job.steps.update(1)
    if config.precision != "fp32":
        job.step(config.precision)
        if config.precision == "int8" and job.image_dir is None:
            raise I2IError("int8 parity needs real images: --parity-data DIR (ideally not the calibration images)")
        calib = Path(config.calib_data) if config.calib_data else default_calibration_dir(job.ckpt, job.scratch)
        conversion = Conversion(job.multiple, config.keep_fp32_ops, config.fp16_io, calib, config.calibrator)
        model = convert(model, config.precision, conversion)
        job.steps.update(1)
    return model


def _parity_step(job: _Job, model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Stages 5-6: tensor parity against torch, then the frame wrapper and its own parity.

    With test-time dropout the graph draws a mask per run: parity compares both sides with every
    unit kept, and the draw is checked statistically (``i2i.export.dropout``)."""
    config = job.config
    job.step("parity vs torch")
    kept_model, drawn = keep_every_unit(model) if job.test_dropout else (model, 0)
    kept_module = torch_keep_every_unit(job.module)[0] if drawn else job.module
    parity = tensor_parity(
        kept_module, kept_model, job.multiple, job.image_dir, config.precision, batch=config.batch, shape=config.size
    )
    parity["tensor_passed"] = parity["passed"]  # the tensor bar alone; "passed" adds dropout and frame I/O
    if drawn:
        x = statistics_input(job.multiple, config.batch, config.size)
        run, kept_run = runner(model, config.precision), runner(kept_model, config.precision)
        stats = dropout_statistics(job.module, run, kept_run, x)
        parity["dropout"] = {"random_ops": drawn, **stats}
        parity["passed"] = parity["passed"] and stats["passed"]
    parity["kind"] = config.io
    parity["image_dir"] = str(job.image_dir) if job.image_dir else None
    job.steps.update(1)
    if config.io == "frame":
        job.step("frame I/O")
        framed = wrap_frame_io(model, size_multiple=job.multiple, static_size=config.size, batch=config.batch)
        kept_framed = keep_every_unit(framed)[0] if drawn else framed
        parity["frame"] = frame_parity(
            kept_model, kept_framed, job.multiple, job.image_dir, batch=config.batch, size=config.size
        )
        parity["passed"] = parity["passed"] and parity["frame"]["passed"]
        model = framed
        job.steps.update(1)
    return model, parity


def export_checkpoint(config: ExportConfig) -> ExportResult:
    """model.pt -> model.onnx with its card and parity report; an I2IError (nothing written) below the bar."""
    # Scratch space for images the export derives (the input halves of an aligned dataset), removed at the end.
    with scratch_dir("i2i-export-") as scratch:
        return _export(_prepare(config, scratch))


def _export(job: _Job) -> ExportResult:
    config = job.config
    n_steps = 4 + (config.precision != "fp32") + (config.io == "frame")
    job.steps = tqdm(total=n_steps, desc="export", unit="step", disable=not config.progress, dynamic_ncols=True)
    # Nothing is written under the final names before the end: the trace goes to a temp folder that
    # any exception (Ctrl-C and SIGTERM included) removes, the report and model to atomic writes.
    try:
        model, parity = _parity_step(job, _trace_step(job))
        report = json.dumps(json_safe(parity), indent=2)
        if not parity["passed"]:
            write_text(job.report_path, report, "parity report")
            raise _fail(parity, job.report_path)
        job.step("card + checker")
        card = make_card(job, parity, flops_entry(job.module, job.multiple, config.size))
        _finalise(card, job.out_path, model)  # the model first: a report never describes a model not written
        write_text(job.report_path, report, "parity report")
        job.steps.update(1)
    finally:
        job.steps.close()
    return ExportResult(onnx=job.out_path, parity_report=job.report_path, parity=parity, card=card)


def read_card(path: str | Path) -> ModelCard:
    """The card of an exported model (``ModelCard.from_onnx``)."""
    return ModelCard.from_onnx(path)


__all__ = ["ExportConfig", "ExportResult", "check_config", "export_checkpoint", "make_card", "read_card", "run_parity"]
