"""``i2i-export``: model.pt → model.onnx with a model card and a parity report."""

from __future__ import annotations

from pathlib import Path

import click

from i2i._cli import Command, debug_option


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the ONNX model [default: CHECKPOINT with .onnx].",
)
@click.option(
    "--opset",
    default=18,
    show_default=True,
    type=click.IntRange(17, 23),
    help="ONNX opset (18+: dynamo exporter; 17: TorchScript exporter).",
)
@click.option(
    "--parity-data",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of images for the parity check [default: the training set's test split, if present].",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@debug_option
def main(checkpoint: Path, output: Path | None, opset: int, parity_data: Path | None, progress: bool) -> None:
    """Export CHECKPOINT (an i2i model.pt) to ONNX with dynamic batch, height and width.

    The model card (arch, I/O contract, size multiple, source sha256, parity) is embedded in the
    ONNX metadata; the runtime reads it. Every export is checked against torch on random and real
    images, and fails (writing nothing) if fp32 parity is worse than max abs diff 1e-4 / 60 dB PSNR.

    \b
    Examples:
      i2i-export runs/pix2pix/model.pt
      i2i-export model.pt -o deploy/sketch.onnx --parity-data photos/
    """
    from i2i.export.onnx import ExportConfig, export_checkpoint

    result = export_checkpoint(
        ExportConfig(
            checkpoint=str(checkpoint),
            output=str(output) if output else None,
            opset=opset,
            parity_data=str(parity_data) if parity_data else None,
            progress=progress,
        )
    )
    p = result.parity
    click.echo(f"onnx:   {result.onnx}")
    click.echo(
        f"parity: max abs diff {p['max_abs']:.2e}, min PSNR {p['min_psnr_db']:.1f} dB over "
        f"{len(p['cases'])} inputs ({'pass' if p['passed'] else 'FAIL'}) -> {result.parity_report}"
    )
    for case in p["cases"]:
        click.echo(
            f"  {case['input']:32s} max abs {case['max_abs']:.2e}  PSNR {case['psnr_db']:.1f} dB  "
            f"uint8 off>1: {case['pct_pixels_off_by_gt1']:.3f}%"
        )
