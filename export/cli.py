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
from i2i.export.build import ENGINES
from i2i.runtime.card import TEST_NORMS
from i2i.runtime.precisions import export_precisions

DEFAULT_COMMAND = "build"


class DefaultGroup(Group):
    """A group whose first argument, when it is not a subcommand, goes to ``build``: so
    ``i2i-export model.pt --fp16`` keeps working beside ``i2i-export inspect model.onnx``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_flags = set(self.get_help_option_names(ctx))
        first = next((a for a in args if not a.startswith("-")), None)
        if args and not (set(args) & help_flags and first is None) and first not in self.commands:
            if first is not None:
                _refuse_misspelt_command(ctx, first, list(self.commands))
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


def _refuse_misspelt_command(ctx: click.Context, word: str, commands: list[str]) -> None:
    """``i2i-export insepct m.onnx``: a word close to a command name that is not a model file is a
    misspelt command, not a model to export (which would fail on "unexpected extra argument")."""
    import difflib

    if Path(word).suffix or Path(word).exists():
        return
    close = difflib.get_close_matches(word, commands, n=1, cutoff=0.6)
    if close:
        raise click.UsageError(f"No such command {word!r}. Did you mean {close[0]!r}?", ctx)


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


def _size(_ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    from i2i.common import parse_hw

    if value is None:
        return None
    try:
        return parse_hw(value, f"--{param.name}", square=False)
    except I2IError as exc:
        raise click.BadParameter(exc.message) from None


def _shape(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int, int] | None:
    from i2i.export.tensorrt import parse_shape

    if value is None:
        return None
    try:
        return parse_shape(value)
    except I2IError as exc:
        raise click.BadParameter(str(exc)) from None


def _precision(o: dict[str, Any]) -> str:
    """--precision NAME, with --fp16 and --int8 as its aliases."""
    named = [p for p, flag in (("fp16", o["fp16"]), ("int8", o["int8"])) if flag]
    if len(named) > 1:
        raise click.UsageError("--fp16 and --int8 are exclusive")
    if named and o["precision"] not in (None, named[0]):
        raise click.UsageError(f"--{named[0]} and --precision {o['precision']} disagree: give one")
    return named[0] if named else (o["precision"] or "fp32")


@main.command(DEFAULT_COMMAND, cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), help="ONNX file to write [default: MODEL with .onnx].")
@click.option(
    "--precision",
    type=click.Choice(export_precisions()),
    help="Graph precision [default: fp32]: fp16 keeps norms and reductions fp32; int8 is symmetric Q/DQ.",
)
@click.option("--fp16", is_flag=True, help="= --precision fp16.")
@click.option(
    "--int8", is_flag=True, help="= --precision int8 (calibrated on --calib-data [default: the training split])."
)
@click.option("--fp16-io", is_flag=True, help="With --fp16: fp16 graph input/output too (default fp32).")
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
    "--test-norm",
    type=click.Choice(TEST_NORMS),
    help="BatchNorm at test time: frame = each frame's own statistics (pix2pix test.py), running = the "
    "running averages (test.py --eval) [default: what the checkpoint records].",
)
@click.option(
    "--test-dropout/--no-test-dropout",
    default=None,
    help="Keep dropout active at test time (random output, pix2pix's noise) [default: the checkpoint's].",
)
@click.option(
    "--parity-data",
    type=click.Path(path_type=Path),
    help="Folder of images for the parity check [default: the training set's test split, if present].",
)
@click.option("--calib-data", type=click.Path(path_type=Path), help="int8: folder of calibration images.")
@click.option(
    "--calibrator",
    type=click.Choice(["minmax", "entropy", "percentile"]),
    default="minmax",
    show_default=True,
    help="int8: how activation ranges are chosen from the calibration images.",
)
@click.option(
    "--engine", type=click.Choice(ENGINES), help="Also build a TensorRT engine (strongly typed: the graph's precision)."
)
@click.option("--min", "min_shape", callback=_shape, help="Smallest input NxHxW of the engine profile.")
@click.option("--opt", "opt_shape", callback=_shape, help="Input NxHxW TensorRT tunes for.")
@click.option("--max", "max_shape", callback=_shape, help="Largest input NxHxW of the engine profile.")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="Timing cache file or folder.")
@click.option("--workspace", type=float, help="TensorRT workspace limit in GiB.")
@click.option("--device", type=click.IntRange(0), default=0, show_default=True, help="GPU index for the build.")
@click.option("--triton", type=click.Path(path_type=Path), help="Write a Triton model repository here.")
@click.option("--triton-name", help="Model name in the repository [default: the model file's stem].")
@click.option(
    "--triton-max-batch", type=click.IntRange(1), help="Triton max_batch_size [default: the model's own limit]."
)
@click.option("--triton-instances", type=click.IntRange(1), default=1, show_default=True)
@click.option("--triton-kind", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True)
@click.option(
    "--triton-overwrite", is_flag=True, help="Replace an existing DIR/<name>/<version> (never replaced without it)."
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@debug_option
def build(model: Path, **options: Any) -> None:
    """Export MODEL (an i2i model.pt) to ONNX; with --engine / --triton also build those. A
    MODEL.onnx from i2i-export is taken as it is (for --engine / --triton).

    The model card (arch, I/O contract, precision, size, source sha256, parity) is embedded in the
    ONNX metadata; the runtime reads it. Every export is checked against torch on random and real
    images and fails (writing nothing) below its precision's bar: fp32 max abs diff 1e-4 and PSNR
    60 dB; fp16 PSNR 40 dB; int8 PSNR 30 dB on real images; no NaN/Inf; frame I/O within one level
    of the host-side conversion. TensorRT engines are built strongly typed (TensorRT 10 and 11):
    the engine computes in the precision of the ONNX graph, so export the precision you want.

    \b
    Examples:
      i2i-export model.pt
      i2i-export model.pt --fp16 --io frame -o deploy/sketch.onnx --parity-data photos/
      i2i-export model.pt --size 512x512 --batch 1
      i2i-export model.pt --precision int8 --calib-data photos/ --engine trt --opt 1x512x512
      i2i-export model.pt --triton models/ --triton-max-batch 16
    """
    from i2i._entry import require_export

    require_export(model, "i2i-export")
    from i2i.export.build import export

    o = options
    if o["batch"] is not None and o["dynamic"]:
        raise I2IError("--batch N (static) and --dynamic (dynamic batch) exclude each other")
    keep = o["keep_fp32"]
    keep_ops = None if keep is None else tuple(k.strip() for k in keep.split(",") if k.strip() and k != "none")
    result = export(
        model,
        o["output"],
        precision=_precision(o),
        io=o["io"],
        engine=o["engine"],
        triton=o["triton"],
        engine_options=_engine_options(o),
        triton_options=_triton_options(o),
        size=o["size"],
        batch=o["batch"],
        opset=o["opset"],
        parity_data=_str(o["parity_data"]),
        calib_data=_str(o["calib_data"]),
        calibrator=o["calibrator"],
        fp16_io=o["fp16_io"],
        keep_fp32_ops=keep_ops,
        slim=o["slim"],
        refine=_str(o["refine"]),
        test_norm=o["test_norm"],
        test_dropout=o["test_dropout"],
        progress=o["progress"],
    )
    _report(result, o)


def _engine_options(o: dict[str, Any]) -> Any:
    from i2i.export.build import EngineOptions

    if not o["engine"]:
        return None
    return EngineOptions(
        min_shape=o["min_shape"],
        opt_shape=o["opt_shape"],
        max_shape=o["max_shape"],
        timing_cache=_str(o["timing_cache"]),
        workspace_gib=o["workspace"],
        device=o["device"],
    )


def _triton_options(o: dict[str, Any]) -> Any:
    from i2i.export.build import TritonOptions

    if not o["triton"]:
        return None
    return TritonOptions(
        repository=str(o["triton"]),
        name=o["triton_name"],
        max_batch_size=o["triton_max_batch"],
        instances=o["triton_instances"],
        kind=o["triton_kind"],
        overwrite=o["triton_overwrite"],
    )


def _str(value: Path | None) -> str | None:
    return None if value is None else str(value)


def _report(result: Any, o: dict[str, Any]) -> None:
    """What was written, one block per artefact."""
    if result.onnx is not None and result.parity is not None:
        _report_onnx(result.onnx, result.parity, result.parity_report)
    if result.engine is not None:
        card = result.card
        click.echo(f"engine: {result.engine} ({card.precision}, strongly typed)")
        built = result.details.get("engine")
        if built is not None:
            click.echo(f"        sidecar {built.sidecar}; timing cache {built.timing_cache}")
    if result.triton is not None:
        click.echo(f"triton: {result.triton} (serve with: tritonserver --model-repository {o['triton']})")


def _report_onnx(onnx_path: Path, p: dict[str, Any], report: Path) -> None:
    click.echo(f"onnx:   {onnx_path}")
    max_abs = "n/a" if p["max_abs"] != p["max_abs"] else f"{p['max_abs']:.2e}"
    click.echo(
        f"parity: {p['precision']} max abs diff {max_abs}, min PSNR {p['min_psnr_db']:.1f} dB over "
        f"{len(p['cases'])} inputs ({'pass' if p['passed'] else 'FAIL'}) -> {report}"
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
    if "dropout" in p:  # --test-dropout: parity above ran with every unit kept; this checks the draw
        d = p["dropout"]
        click.echo(
            f"dropout: mean |change| between runs {d['exported_mean_abs_change']:.4f} exported vs "
            f"{d['torch_mean_abs_change']:.4f} torch over {d['pairs']} pairs, gap {d['gap']:.4f} "
            f"(bound {d['bound']:.4f}, {'pass' if d['passed'] else 'FAIL'})"
        )


@main.command("inspect", cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@debug_option
def inspect(model: Path, as_json: bool) -> None:
    """Describe MODEL.pt, MODEL.onnx or MODEL.engine: card, I/O, precision, size, op histogram, parity.

    \b
    Examples:
      i2i-export inspect runs/pix2pix/model.onnx
      i2i-export inspect model.engine --json
    """
    from i2i.export.inspect import describe, format_text

    needs = {".onnx": (("onnx",), "reads ONNX with onnx"), ".pt": (("torch",), "reads model.pt with torch")}
    if model.suffix.lower() in needs:  # an engine is read through TensorRT (its own message)
        from i2i._entry import require

        modules, why = needs[model.suffix.lower()]
        require("export", modules, f"i2i-export inspect {why}")
    info = describe(model)
    click.echo(json.dumps(info, indent=2, default=str) if as_json else format_text(info))
