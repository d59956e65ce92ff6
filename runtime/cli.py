"""``i2i-run``: stream frames through a translation model. Never imports torch
(unless ``--backend torch`` is chosen explicitly for a baseline)."""

from __future__ import annotations

from pathlib import Path

import click

from i2i._cli import Command, debug_option
from i2i.errors import EXIT_INTERRUPTED


def _pick_backend(name: str, model: Path) -> tuple[str, str]:
    if name != "auto":
        return name, "chosen with --backend"
    if model.suffix == ".pt":
        return "torch", "a .pt checkpoint runs on the torch baseline"
    return "ort", "ONNX Runtime CPU (the only accelerator-free backend installed)"


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--source",
    "-s",
    required=True,
    help="Video file, image folder or glob, single image, camera index (0) or stream URL.",
)
@click.option(
    "--sink",
    "-o",
    default="null",
    show_default=True,
    help="out.mp4/.avi (video), a folder (PNG frames), 'window', or 'null'.",
)
@click.option(
    "--backend",
    "backend_name",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "ort", "torch"]),
    help="Inference backend.",
)
@click.option("--device", default="cpu", show_default=True, help="Device for the backend.")
@click.option(
    "--batch",
    "batch_size",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Frames per inference call (throughput on files).",
)
@click.option(
    "--mode",
    default=None,
    type=click.Choice(["every-frame", "realtime"]),
    help="every-frame: process all (files); realtime: latest frame wins, drops counted (cameras). "
    "[default: realtime for cameras/streams, every-frame otherwise]",
)
@click.option("--max-frames", default=0, show_default=True, help="Stop after N frames (0 = all).")
@click.option("--fps", default=None, type=float, help="Frame rate of a video sink [default: the source's].")
@click.option(
    "--stats",
    "stats_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Write per-stage latency stats as JSON here.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@debug_option
def main(
    model: Path,
    source: str,
    sink: str,
    backend_name: str,
    device: str,
    batch_size: int,
    mode: str | None,
    max_frames: int,
    fps: float | None,
    stats_path: Path | None,
    progress: bool,
) -> None:
    """Translate every frame of SOURCE with MODEL (an i2i ONNX export) and write them to SINK.

    \b
    Examples:
      i2i-run model.onnx --source video.mp4 --sink out.mp4
      i2i-run model.onnx --source photos/ --sink translated/
      i2i-run model.onnx --source 0 --sink window          # webcam, latest frame wins
      i2i-run model.onnx --source clip.mp4 --sink null --stats stats.json

    Frames of any size are padded to the model's size multiple and cropped back.
    """
    from tqdm.auto import tqdm

    from i2i.runtime.backends import open_backend
    from i2i.runtime.pipeline import run_pipeline
    from i2i.runtime.sinks import open_sink
    from i2i.runtime.sources import CameraSource, open_source

    name, why = _pick_backend(backend_name, model)
    with open_source(source) as src:
        live = isinstance(src, CameraSource) or "://" in source
        run_mode = mode or ("realtime" if live else "every-frame")
        with open_backend(name, model, device=device) as backend:
            click.echo(f"backend: {backend.describe()} — {why}", err=True)
            total = src.count if not max_frames else min(max_frames, src.count or max_frames)
            bar = tqdm(total=total, desc="frames", unit="frame", disable=not progress, dynamic_ncols=True)
            out = open_sink(sink, fps=fps or src.fps)
            interrupted = False
            try:
                with out:
                    stats = run_pipeline(
                        src,
                        backend,
                        out,
                        batch_size=batch_size,
                        mode=run_mode,
                        max_frames=max_frames,
                        on_frames=bar.update,
                    )
            except KeyboardInterrupt:
                interrupted = True
            finally:
                bar.close()
    if interrupted:
        click.echo(f"Interrupted: {out.frames_written} frames written to {out.path or sink} (file is valid).", err=True)
        raise SystemExit(EXIT_INTERRUPTED)
    click.echo(stats.format_table())
    if getattr(stats, "dropped", 0):
        click.echo(f"dropped frames (realtime mode): {stats.dropped}")  # type: ignore[attr-defined]
    if stats_path is not None:
        stats.write_json(stats_path)
        click.echo(f"stats: {stats_path}")
    if out.path:
        click.echo(f"output: {out.path} ({out.frames_written} frames)")
