"""One export orchestration for ``i2i.export(...)``, ``i2i-export`` and the bench suites.

The chain follows the format table (``i2i.runtime.formats``): from the artefact given (a
``model.pt`` or an i2i ``model.onnx``) each requested format is built from the one before it by the
builder its row names (``build_onnx``, ``build_engine``, ``build_triton`` below): checkpoint -> ONNX
-> TensorRT engine -> Triton repository (of the engine if one was built, else of the ONNX model).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2i.errors import I2IError
from i2i.runtime.card import ModelCard
from i2i.runtime.formats import FORMATS, format_of

ENGINES = ("trt",)  # --engine values: TensorRT is the one engine format today
# A format's builder: (the artefact it is made from, the job, the result so far) -> what it wrote.
Builder = Callable[[Path, "ExportJob", "ExportResult"], Path]


@dataclass(frozen=True)
class EngineOptions:
    """TensorRT build options (the engine's precision is the ONNX graph's: strongly typed)."""

    output: str | None = None  # the engine file [default: the ONNX path with .engine]
    min_shape: tuple[int, int, int] | None = None  # (N, H, W) of the optimisation profile
    opt_shape: tuple[int, int, int] | None = None
    max_shape: tuple[int, int, int] | None = None
    timing_cache: str | None = None
    workspace_gib: float | None = None
    device: int = 0


@dataclass(frozen=True)
class TritonOptions:
    repository: str
    name: str | None = None  # default: the model file's stem
    max_batch_size: int | None = None  # None: the model's own limit (engine profile, static batch)
    instances: int = 1
    kind: str = "gpu"
    overwrite: bool = False  # replace an existing <repository>/<name>/<version> (never without it)


@dataclass(frozen=True)
class ExportJob:
    """Everything ``export`` was asked for; each builder reads its part."""

    source: Path
    output: Path | None = None
    precision: str = "fp32"
    io: str = "tensor"
    size: tuple[int, int] | None = None
    batch: int | None = None
    opset: int = 18
    parity_data: str | None = None
    calib_data: str | None = None
    calibrator: str = "minmax"
    fp16_io: bool = False
    keep_fp32_ops: tuple[str, ...] | None = None
    slim: bool = True
    refine: str | None = None
    test_norm: str | None = None
    test_dropout: bool | None = None
    engine: EngineOptions | None = None
    triton: TritonOptions | None = None
    progress: bool = True


@dataclass
class ExportResult:
    """What an export wrote. ``card`` is the card of the last artefact built."""

    card: ModelCard
    onnx: Path | None = None
    engine: Path | None = None
    triton: Path | None = None  # the config.pbtxt written
    parity: dict[str, Any] | None = None
    parity_report: Path | None = None
    details: dict[str, Any] = field(default_factory=dict, repr=False)  # per-format extras (engine sidecar ...)


def export(
    checkpoint: str | Path,
    output: str | Path | None = None,
    *,
    precision: str = "fp32",
    io: str = "tensor",
    engine: str | None = None,
    triton: str | Path | None = None,
    engine_options: EngineOptions | None = None,
    triton_options: TritonOptions | None = None,
    **options: Any,
) -> ExportResult:
    """Export ``checkpoint`` (a ``model.pt``, or an i2i ``model.onnx`` for ``engine``/``triton``).

    ``precision``: a row of the precision table that exports (fp32, fp16, int8). ``io``: ``tensor``
    (float NCHW RGB in [-1, 1]) or ``frame`` (uint8 NHWC BGR, pre/post-processing in the graph).
    ``engine="trt"`` also builds a TensorRT engine; ``triton=DIR`` writes a Triton model repository.
    Other ``options`` are ``ExportJob`` fields (size, batch, opset, parity_data, calib_data, fp16_io,
    keep_fp32_ops, slim, refine, test_norm, test_dropout, progress). Raises ``I2IError`` (writing no
    model) when the export falls below its precision's parity bar.
    """
    if engine is not None and engine not in ENGINES:
        raise I2IError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    unknown = sorted(set(options) - {f for f in ExportJob.__dataclass_fields__} - {"source"})
    if unknown:
        raise I2IError(f"export has no option {', '.join(unknown)}")
    if triton is not None:
        triton_options = triton_options or TritonOptions(repository=str(triton))
    if engine is not None:
        engine_options = engine_options or EngineOptions()
    job = ExportJob(
        Path(checkpoint),
        Path(output) if output is not None else None,
        precision=precision,
        io=io,
        engine=engine_options,
        triton=triton_options,
        **options,
    )
    return run(job)


def plan(job: ExportJob) -> list[str]:
    """The formats to build, in table order, after the source's own."""
    start = format_of(job.source).name
    wanted = {"onnx"} | ({"engine"} if job.engine else set()) | ({"triton"} if job.triton else set())
    names = list(FORMATS)
    todo = [name for name in names[names.index(start) + 1 :] if name in wanted]
    if start == "triton" or (start == "engine" and (not todo or job.engine is not None)):
        kind = "a Triton repository" if start == "triton" else "a TensorRT engine"
        raise I2IError(
            f"{job.source} is {kind}, which cannot be re-exported; give the model.pt or model.onnx it came "
            "from" + (" (or --triton DIR to serve the engine)" if start == "engine" and job.triton is None else "")
        )
    if start == "onnx" and not todo:
        raise I2IError(f"{job.source.name} is already ONNX: give --engine trt and/or --triton DIR")
    return todo


def run(job: ExportJob) -> ExportResult:
    """Build every format ``plan`` names, each from the artefact before it."""
    todo = plan(job)
    if not job.source.exists():
        what = "checkpoint" if format_of(job.source).name == "checkpoint" else "model"
        raise I2IError(f"{what} not found: {job.source}")
    result = ExportResult(card=_source_card(job))
    if "engine" in todo:  # fail before a long export, not after it
        from i2i.runtime.backends.tensorrt import require_tensorrt

        require_tensorrt()
    current = job.source
    for name in todo:
        module_name, function = str(FORMATS[name].builder).split(":")
        builder: Callable[[Path, ExportJob, ExportResult], Path] = getattr(
            importlib.import_module(module_name), function
        )
        current = builder(current, job, result)
    return result


def _source_card(job: ExportJob) -> ModelCard:
    """The card of the source artefact; an ONNX model must also be one the runtime runs."""
    fmt = format_of(job.source)
    if fmt.name == "onnx":
        if job.output is not None or _onnx_options_given(job):
            raise I2IError(f"{job.source.name} is used as it is: ONNX export options apply to model.pt")
        from i2i.runtime.backends.base import open_backend

        with open_backend("ort", job.source, device="cpu"):  # the same card and graph checks as i2i-run
            pass
        return ModelCard.from_onnx(job.source)
    return fmt.read_card(job.source) if fmt.name != "checkpoint" else ModelCard()


def _onnx_options_given(job: ExportJob) -> bool:
    defaults = ExportJob(job.source)
    fields = ("precision", "io", "size", "batch", "opset", "fp16_io", "keep_fp32_ops", "slim", "refine")
    return any(getattr(job, f) != getattr(defaults, f) for f in fields) or job.test_norm is not None


# -- the builders the format table names --------------------------------------------------------
def build_onnx(checkpoint: Path, job: ExportJob, result: ExportResult) -> Path:
    from i2i.export.onnx import ExportConfig, export_checkpoint

    target = job.output or checkpoint.with_suffix(".onnx")
    report = target.with_suffix(".parity.json")
    report_existed = report.exists()
    # The job's ONNX options are ExportConfig's fields of the same names.
    shared = {f.name for f in dataclasses.fields(ExportConfig)} & {f.name for f in dataclasses.fields(ExportJob)}
    options = {name: getattr(job, name) for name in shared - {"output"}}
    config = ExportConfig(**{**options, "checkpoint": str(checkpoint), "output": str(target)})
    try:
        exported = export_checkpoint(config)
    except OSError as exc:  # a full disk or a read-only folder: the exporter has removed its temp files
        if not report_existed:  # a parity report for a model that was never written would mislead
            report.unlink(missing_ok=True)
        raise I2IError(f"cannot write {target}: {exc.strerror or exc}") from None
    result.onnx, result.card = exported.onnx, exported.card
    result.parity, result.parity_report = exported.parity, exported.parity_report
    record_runtime_parity(result)
    return exported.onnx


def record_runtime_parity(result: ExportResult) -> None:
    """Measure the run-time precisions this CPU computes natively (bf16 on AVX-512 BF16 / AMX) with
    OpenVINO on the card's parity inputs and store them in the card's parity record
    (``card.parity["runtime"]``, read by ``--precision auto``) and the parity report. Nothing is
    recorded for a graph that is not fp32, or where OpenVINO is not installed."""
    if result.onnx is None or result.card.precision != "fp32":
        return
    try:
        from i2i.runtime import precision_auto

        capabilities = precision_auto.cpu_capabilities()
    except ImportError:
        return
    image_dir = (result.parity or {}).get("image_dir")
    records = {
        name: precision_auto.measure(result.onnx, result.card, name, image_dir)
        for name, _hint, capability in precision_auto.RUNTIME_CANDIDATES
        if capability in capabilities
    }
    if not records:
        return
    import json

    import onnx

    from i2i._files import write_bytes, write_text
    from i2i.export.parity import json_safe
    from i2i.runtime.card import CARD_KEY

    card = result.card.replace(parity={**(result.card.parity or {}), "runtime": records})
    model = onnx.load(str(result.onnx))
    for entry in model.metadata_props:
        if entry.key == CARD_KEY:
            entry.value = card.to_json()
    write_bytes(result.onnx, model.SerializeToString(), "ONNX model")
    result.card = card
    if result.parity is not None:
        result.parity["runtime"] = records
        if result.parity_report is not None:
            write_text(result.parity_report, json.dumps(json_safe(result.parity), indent=2), "parity report")


def build_engine(onnx_path: Path, job: ExportJob, result: ExportResult) -> Path:
    from i2i.export.tensorrt import EngineConfig
    from i2i.export.tensorrt import build_engine as build

    options = job.engine or EngineOptions()
    built = build(EngineConfig(onnx=str(onnx_path), progress=job.progress, **dataclasses.asdict(options)))
    result.engine = built.engine
    result.details["engine"] = built
    result.card = FORMATS["engine"].read_card(built.engine)
    return built.engine


def build_triton(model_file: Path, job: ExportJob, result: ExportResult) -> Path:
    from i2i.export.triton import TritonConfig, write_repository

    assert job.triton is not None  # plan: triton is built only when asked for
    options = job.triton
    config = TritonConfig(
        repository=options.repository,
        name=options.name,
        instances=options.instances,
        kind=options.kind,
        max_batch_size=options.max_batch_size,
        overwrite=options.overwrite,
    )
    card = FORMATS["engine" if model_file.suffix in FORMATS["engine"].suffixes else "onnx"].read_card(model_file)
    result.triton = write_repository(model_file, card, config)
    return result.triton
