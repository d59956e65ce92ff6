"""``i2i-export``: model.pt → model.onnx (→ model.engine, → Triton repository), and ``inspect``.

``i2i-export MODEL [options]`` runs the default ``build`` command; ``i2i-export inspect MODEL``
describes an exported model. The group is what the ``i2i-export`` console script and
``i2i export`` load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from i2i._cli import Command, Group, debug_option
from i2i.errors import I2IError

DEFAULT_COMMAND = "build"


class DefaultGroup(Group):
    """A group whose first argument, when it is not a subcommand, goes to ``build``: so
    ``i2i-export model.pt --fp16`` keeps working beside ``i2i-export inspect model.onnx``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_flags = set(self.get_help_option_names(ctx))
        first = next((a for a in args if not a.startswith("-")), None)
        if args and not (set(args) & help_flags and first is None) and first not in self.commands:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def main() -> None:
    """Export a checkpoint to ONNX (and TensorRT / Triton), or inspect an exported model.

    \b
    i2i-export MODEL.pt [options]      = i2i-export build ...: see `i2i-export build --help`
    i2i-export inspect MODEL.onnx|MODEL.engine

    \b
    Examples:
      i2i-export runs/pix2pix/model.pt
      i2i-export model.pt --fp16 --io frame
      i2i-export model.pt --fp16 --engine trt --opt 1x720x1280 --max 1x1088x1920
      i2i-export model.onnx --triton models/
      i2i-export inspect model.onnx
    """


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"{value!r}: expected HxW, e.g. 256x256")
    return int(parts[0]), int(parts[1])


def _shape(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int, int] | None:
    from i2i.export.tensorrt import parse_shape

    if value is None:
        return None
    try:
        return parse_shape(value)
    except I2IError as exc:
        raise click.BadParameter(str(exc)) from None


# Options that shape the ONNX graph: meaningful only when exporting from a checkpoint.
ONNX_OPTIONS = ("fp16", "int8", "fp16_io", "io", "size", "batch", "dynamic", "opset", "keep_fp32", "slim", "refine")


@main.command(DEFAULT_COMMAND, cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), help="ONNX file to write [default: MODEL with .onnx].")
@click.option("--fp16", is_flag=True, help="fp16 weights/activations; InstanceNorm and reductions stay fp32.")
@click.option("--fp16-io", is_flag=True, help="With --fp16: fp16 graph input/output too (default fp32).")
@click.option(
    "--int8", is_flag=True, help="Post-training int8 (QDQ) calibrated on --calib-data [default: the training split]."
)
@click.option(
    "--io",
    "io",
    type=click.Choice(["tensor", "frame"]),
    default="tensor",
    show_default=True,
    help="tensor: float NCHW RGB [-1,1]; frame: uint8 NHWC BGR (OpenCV frames), pre/post in the graph.",
)
@click.option("--size", callback=_size, help="Static HxW export (multiples of the size multiple).")
@click.option("--batch", type=click.IntRange(1, 1024), help="Static batch size [default: dynamic].")
@click.option("--dynamic", is_flag=True, help="Dynamic batch axis (the default; conflicts with --batch).")
@click.option(
    "--opset",
    default=18,
    show_default=True,
    type=click.IntRange(17, 23),
    help="ONNX opset (18+: dynamo exporter; 17: TorchScript exporter).",
)
@click.option("--keep-fp32", help="With --fp16: comma-separated op types kept fp32 ('none' for none).")
@click.option("--slim/--no-slim", default=True, show_default=True, help="Graph cleanup with onnxslim.")
@click.option(
    "--refine",
    type=click.Path(path_type=Path),
    help="Spectral profile (.npz) baked into the graph after the generator (needs --size).",
)
@click.option(
    "--parity-data",
    type=click.Path(path_type=Path),
    help="Folder of images for the parity check [default: the training set's test split, if present].",
)
@click.option("--engine", type=click.Choice(["trt"]), help="Also build a TensorRT engine from the ONNX model.")
@click.option(
    "--engine-precision",
    type=click.Choice(["fp32", "fp16", "bf16", "int8"]),
    help="Engine precision [default: the ONNX model's].",
)
@click.option("--min", "min_shape", callback=_shape, help="Smallest input NxHxW of the engine profile.")
@click.option("--opt", "opt_shape", callback=_shape, help="Input NxHxW TensorRT tunes for.")
@click.option("--max", "max_shape", callback=_shape, help="Largest input NxHxW of the engine profile.")
@click.option("--norm-fp32/--no-norm-fp32", default=True, show_default=True, help="Pin norm layers to fp32.")
@click.option("--calib-data", type=click.Path(path_type=Path), help="int8: folder of calibration images.")
@click.option("--calibrator", type=click.Choice(["entropy", "minmax"]), default="entropy", show_default=True)
@click.option("--calib-batches", type=click.IntRange(1), default=32, show_default=True)
@click.option("--calib-cache", type=click.Path(path_type=Path), help="int8 calibration cache file.")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="Timing cache file or folder.")
@click.option("--workspace", type=float, help="TensorRT workspace limit in GiB.")
@click.option("--device", type=click.IntRange(0), default=0, show_default=True, help="GPU index for the build.")
@click.option("--triton", type=click.Path(path_type=Path), help="Write a Triton model repository here.")
@click.option("--triton-name", help="Model name in the repository [default: the model file's stem].")
@click.option("--triton-max-batch", type=click.IntRange(1), default=8, show_default=True)
@click.option("--triton-instances", type=click.IntRange(1), default=1, show_default=True)
@click.option("--triton-kind", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@debug_option
def build(model: Path, **options: Any) -> None:
    """Export MODEL (an i2i model.pt) to ONNX; with --engine / --triton also build those. A
    MODEL.onnx from i2i-export is taken as it is (for --engine / --triton).

    The model card (arch, I/O contract, precision, size, source sha256, parity) is embedded in the
    ONNX metadata; the runtime reads it. Every export is checked against torch on random and real
    images and fails (writing nothing) below the bar: fp32 max abs diff 1e-4 and PSNR 60 dB;
    fp16 PSNR 40 dB and no NaN/Inf; frame I/O within one level of the host-side conversion.

    \b
    Examples:
      i2i-export model.pt
      i2i-export model.pt --fp16 --io frame -o deploy/sketch.onnx --parity-data photos/
      i2i-export model.pt --size 512x512 --batch 1
      i2i-export model.onnx --engine trt --engine-precision int8 --calib-data photos/ --opt 1x512x512
      i2i-export model.pt --triton models/ --triton-max-batch 16
    """
    o = options
    if o["batch"] is not None and o["dynamic"]:
        raise I2IError("--batch N (static) and --dynamic (dynamic batch) exclude each other")
    if model.suffix == ".engine":
        raise I2IError(
            f"{model} is a TensorRT engine, which cannot be re-exported; give the model.pt or model.onnx it came from"
        )
    if model.suffix == ".onnx":
        given = [f"--{k.replace('_', '-')}" for k in ONNX_OPTIONS if _changed(k, o[k])]
        if given:
            raise I2IError(
                f"{', '.join(given)} shape the ONNX export and apply to model.pt; {model.name} is used as is"
            )
        if not (o["engine"] or o["triton"]):
            raise I2IError(f"{model.name} is already ONNX: give --engine trt and/or --triton DIR")
        if not model.is_file():
            raise I2IError(f"ONNX model not found: {model}")
        _check_runtime_contract(model)
        onnx_path = model
    else:
        if o["engine"]:  # fail before a long export, not after it
            from i2i.runtime.backends.tensorrt import require_tensorrt

            require_tensorrt()
        target = Path(o["output"] or model.with_suffix(".onnx"))
        report = target.with_suffix(".parity.json")
        report_existed = report.exists()
        try:
            onnx_path = _export_onnx(model, o)
        except OSError as exc:  # a full disk or a read-only folder: the exporter has removed its temp files
            if not report_existed:  # a parity report for a model that was never written would mislead
                report.unlink(missing_ok=True)
            raise I2IError(f"cannot write {target}: {exc.strerror or exc}") from None

    engine_path = None
    if o["engine"]:
        engine_path = _build_engine(onnx_path, o)
    if o["triton"]:
        _write_triton(engine_path or onnx_path, o)


def _check_runtime_contract(onnx_path: Path) -> None:
    """A model.onnx taken as it is must be one the runtime runs: the same card and graph checks as
    ``i2i-run`` (ONNX Runtime on the CPU), before an engine or a Triton repository is built from it."""
    from i2i.runtime.backends import open_backend

    with open_backend("ort", onnx_path, device="cpu"):
        pass


def _changed(key: str, value: Any) -> bool:
    defaults: dict[str, Any] = {"io": "tensor", "opset": 18, "slim": True}
    return value != defaults.get(key, None) and value is not False


def _onnx_precision(o: dict[str, Any]) -> str:
    if o["fp16"] and o["int8"]:
        raise click.UsageError("--fp16 and --int8 are exclusive")
    return "fp16" if o["fp16"] else "int8" if o["int8"] else "fp32"


def _export_onnx(checkpoint: Path, o: dict[str, Any]) -> Path:
    from i2i.export.onnx import ExportConfig, export_checkpoint

    keep = o["keep_fp32"]
    keep_ops = None if keep is None else tuple(k.strip() for k in keep.split(",") if k.strip() and k != "none")
    result = export_checkpoint(
        ExportConfig(
            checkpoint=str(checkpoint),
            output=str(o["output"]) if o["output"] else None,
            opset=o["opset"],
            parity_data=str(o["parity_data"]) if o["parity_data"] else None,
            progress=o["progress"],
            precision=_onnx_precision(o),
            calib_data=str(o["calib_data"]) if o["calib_data"] else None,
            calibrator="entropy" if o["calibrator"] == "entropy" else "minmax",
            fp16_io=o["fp16_io"],
            io=o["io"],
            size=o["size"],
            batch=o["batch"],
            keep_fp32_ops=keep_ops,
            slim=o["slim"],
            refine=str(o["refine"]) if o["refine"] else None,
        )
    )
    p = result.parity
    click.echo(f"onnx:   {result.onnx}")
    max_abs = "n/a" if p["max_abs"] != p["max_abs"] else f"{p['max_abs']:.2e}"
    click.echo(
        f"parity: {p['precision']} max abs diff {max_abs}, min PSNR {p['min_psnr_db']:.1f} dB over "
        f"{len(p['cases'])} inputs ({'pass' if p['passed'] else 'FAIL'}) -> {result.parity_report}"
    )
    for case in p["cases"]:
        click.echo(
            f"  {case['input']:32s} max abs {case['max_abs']:.2e}  PSNR {case['psnr_db']:.1f} dB  "
            f"uint8 off>1: {case['pct_pixels_off_by_gt1']:.3f}%"
        )
    if "frame" in p:
        frame = p["frame"]
        click.echo(
            f"frame:  uint8 I/O vs host pre/post: max {frame['max_level_diff']} level(s), "
            f"min PSNR {frame['min_psnr_db']:.1f} dB over {len(frame['cases'])} frame batches"
        )
    return result.onnx


def _build_engine(onnx_path: Path, o: dict[str, Any]) -> Path:
    from i2i.export.tensorrt import EngineConfig, build_engine

    result = build_engine(
        EngineConfig(
            onnx=str(onnx_path),
            precision=o["engine_precision"],
            min_shape=o["min_shape"],
            opt_shape=o["opt_shape"],
            max_shape=o["max_shape"],
            norm_fp32=o["norm_fp32"],
            calibration_data=str(o["calib_data"]) if o["calib_data"] else None,
            calibrator=o["calibrator"],
            calibration_batches=o["calib_batches"],
            calibration_cache=str(o["calib_cache"]) if o["calib_cache"] else None,
            timing_cache=str(o["timing_cache"]) if o["timing_cache"] else None,
            workspace_gib=o["workspace"],
            device=o["device"],
            progress=o["progress"],
        )
    )
    side = result.sidecar_data
    click.echo(f"engine: {result.engine} ({side['precision']}, TensorRT {side['tensorrt']}, {side['gpu']['name']})")
    click.echo(f"        sidecar {result.sidecar}; timing cache {result.timing_cache}")
    return result.engine


def _write_triton(model_file: Path, o: dict[str, Any]) -> None:
    from i2i.export.triton import TritonConfig, write_repository

    if model_file.suffix == ".engine":
        from i2i.runtime.backends.tensorrt import read_sidecar

        card = read_sidecar(model_file)["card"]
    else:
        from i2i.export.onnx import read_card

        card = read_card(model_file)
    config_path = write_repository(
        model_file,
        card,
        TritonConfig(
            repository=str(o["triton"]),
            name=o["triton_name"],
            max_batch_size=o["triton_max_batch"],
            instances=o["triton_instances"],
            kind=o["triton_kind"],
        ),
    )
    click.echo(f"triton: {config_path} (serve with: tritonserver --model-repository {o['triton']})")


@main.command("inspect", cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@debug_option
def inspect(model: Path, as_json: bool) -> None:
    """Describe MODEL.onnx or MODEL.engine: card, I/O, precision, size, op histogram, parity.

    \b
    Examples:
      i2i-export inspect runs/pix2pix/model.onnx
      i2i-export inspect model.engine --json
    """
    from i2i.export.inspect import describe, format_text

    info = describe(model)
    click.echo(json.dumps(info, indent=2, default=str) if as_json else format_text(info))
