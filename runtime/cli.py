"""``i2i-run``: stream frames through a translation model. Never imports torch
(unless ``--backend torch`` is chosen explicitly for a baseline)."""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from i2i._cli import Command, debug_option
from i2i.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, I2IError, Terminated
from i2i.runtime.backends.base import BACKEND_MODULES

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _parse_wxh(value: str | None, option: str) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"{value!r}: use WIDTHxHEIGHT, e.g. 1280x720", param_hint=option)
    return int(parts[0]), int(parts[1])


def _parse_options(values: tuple[str, ...]) -> dict[str, Any]:
    """-O key=value pairs; integers become ints, everything else stays a string for the backend."""
    opts: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE, e.g. -O threads=4", param_hint="-O")
        opts[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return opts


def _open_refiner(path: Path, kind: str) -> Any:
    """The spectral refiner, imported only when --refine is given (numpy FFT code the run may not need)."""
    if kind == "frame":
        raise I2IError(
            "--refine needs a tensor-I/O model; this one takes uint8 frames (exported with --io frame): "
            "bake the refinement in at export instead"
        )
    try:
        spectral = importlib.import_module("i2i.runtime.spectral")
    except ModuleNotFoundError as exc:
        if exc.name == "i2i.runtime.spectral":
            raise I2IError("--refine needs i2i.runtime.spectral, which this install does not have yet") from None
        raise
    return spectral.open_refiner(path)


def _viewer_options(sink: str, token: str | None, insecure_public: bool, max_clients: int) -> dict[str, Any]:
    """The browser viewer's access options, checked before anything is opened (see i2i.runtime.web).

    Given on the command line for another sink they are an error; a token from the environment is ignored.
    """
    if not sink.lower().startswith(("http://", "https://")):
        source = click.get_current_context().get_parameter_source
        named = ("token", "insecure_public", "max_clients")
        given = [f"--{n.replace('_', '-')}" for n in named if source(n) == ParameterSource.COMMANDLINE]
        if given:
            raise I2IError(f"{', '.join(given)}: only for the browser viewer (--sink http://HOST:PORT), not {sink!r}")
        return {}
    from i2i.runtime.web import check_viewer_url

    check_viewer_url(sink, token, insecure_public)
    return {"token": token, "insecure_public": insecure_public, "max_clients": max_clients}


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--source",
    "-s",
    required=True,
    help="Video file, image folder or glob, single image, camera index (0), rtsp:// or http:// stream, "
    "or pattern:WxH@FPS (synthetic test pattern).",
)
@click.option(
    "--sink",
    "-o",
    default="null",
    show_default=True,
    help="out.mp4/.avi/.mkv (video), a folder (PNG frames), 'window', http://127.0.0.1:8080 (browser viewer), "
    "or 'null'.",
)
@click.option(
    "--token",
    envvar="I2I_VIEWER_TOKEN",
    show_envvar=True,
    default=None,
    help="Browser viewer: a secret every request must carry (the printed URL has it as ?token=...); "
    "required to serve a non-loopback address.",
)
@click.option(
    "--insecure-public",
    is_flag=True,
    help="Browser viewer: serve a non-loopback address with no token (anyone who can reach it can watch).",
)
@click.option(
    "--max-clients",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Browser viewer: most browsers streaming at once; the next one gets HTTP 503.",
)
@click.option(
    "--backend",
    "backend_name",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", *BACKEND_MODULES]),
    help="Inference backend; auto = fastest available (TensorRT > ORT CUDA > OpenVINO > ORT CPU).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or cuda:N (auto: the backend's best).")
@click.option(
    "--precision",
    default="auto",
    show_default=True,
    type=click.Choice(PRECISIONS),
    help="Inference precision; auto = the model's own (OpenVINO: fp32).",
)
@click.option(
    "--backend-option",
    "-O",
    "backend_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Backend option, repeatable: threads=N; ort: provider=tensorrt, cuda_graph=true|false, io_binding=...",
)
@click.option(
    "--batch",
    "batch_size",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Frames per inference call (throughput on files; every-frame mode only).",
)
@click.option(
    "--mode",
    default=None,
    type=click.Choice(["every-frame", "realtime"]),
    help="every-frame: process all (files); realtime: latest frame wins, drops counted (cameras). "
    "[default: realtime for cameras, streams and paced patterns, every-frame otherwise]",
)
@click.option(
    "--max-frames", default=0, show_default=True, type=click.IntRange(0), help="Stop after N frames (0 = all)."
)
@click.option(
    "--fps",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Frame rate of a video sink [default: the source's].",
)
@click.option("--camera-size", default=None, metavar="WxH", help="Camera capture size, e.g. 1280x720.")
@click.option("--camera-fps", default=None, type=click.FloatRange(min=0, min_open=True), help="Camera frame rate.")
@click.option(
    "--reconnect",
    default=10,
    show_default=True,
    type=click.IntRange(0),
    help="Stream sources: reconnect attempts (with backoff) after a drop.",
)
@click.option(
    "--view",
    type=click.Choice(["output", "side-by-side"]),
    default="output",
    show_default=True,
    help="Show the output alone, or input | output.",
)
@click.option(
    "--overlay/--no-overlay",
    default=None,
    help="Draw FPS/latency on the frames [default: on for window and browser, off for files].",
)
@click.option(
    "--refine",
    "refine_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Spectral refinement (profile .npz or STIG .onnx) applied after inference.",
)
@click.option(
    "--stats",
    "stats_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Write per-stage latency stats as JSON here.",
)
@click.option(
    "--on-nonfinite",
    type=click.Choice(["stop", "pass"]),
    default="stop",
    show_default=True,
    help="A frame whose model output holds NaN/Inf: stop the run (frames before it are kept), "
    "or pass the input frame through unchanged and count it.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@click.option(
    "--live/--no-live",
    default=None,
    help="Live stats on the terminal (rich if installed) [default: on when stderr is a terminal].",
)
@debug_option
def main(
    model: Path,
    source: str,
    sink: str,
    token: str | None,
    insecure_public: bool,
    max_clients: int,
    backend_name: str,
    device: str,
    precision: str,
    backend_options: tuple[str, ...],
    batch_size: int,
    mode: str | None,
    max_frames: int,
    fps: float | None,
    camera_size: str | None,
    camera_fps: float | None,
    reconnect: int,
    view: str,
    overlay: bool | None,
    refine_path: Path | None,
    stats_path: Path | None,
    on_nonfinite: str,
    progress: bool,
    live: bool | None,
) -> None:
    """Translate every frame of SOURCE with MODEL (an i2i ONNX export) and write them to SINK.

    \b
    Examples:
      i2i-run model.onnx --source video.mp4 --sink out.mp4
      i2i-run model.onnx --source photos/ --sink translated/
      i2i-run model.onnx --source 0 --sink window --view side-by-side   # webcam, latest frame wins
      i2i-run model.onnx --source pattern:640x480@30 --sink http://127.0.0.1:8080   # browser viewer
      i2i-run model.onnx --source 0 --sink http://0.0.0.0:8080 --token "$(openssl rand -hex 16)"   # on the LAN
      i2i-run model.onnx --source rtsp://cam.local/stream --sink null --stats stats.json
      i2i-run model.onnx --source clip.mp4 --sink null --batch 4 --backend ort -O threads=2

    Frames of any size (gray, BGR, BGRA) are padded to the model's size multiple and cropped back;
    fixed-size models get frames resized to their size and back. Ctrl-C stops cleanly: the output
    written so far is a valid file.
    """
    from tqdm.auto import tqdm

    from i2i.runtime.backends import open_backend
    from i2i.runtime.backends.auto import open_auto
    from i2i.runtime.live import LiveDisplay, live_supported
    from i2i.runtime.pipeline import NONFINITE_COUNTER, run_pipeline
    from i2i.runtime.sinks import FolderSink, VideoSink, open_sink
    from i2i.runtime.sources import open_source
    from i2i.runtime.stats import StageStats

    viewer = _viewer_options(sink, token, insecure_public, max_clients)  # before any model or camera opens
    size = _parse_wxh(camera_size, "--camera-size")
    opts = _parse_options(backend_options)
    precision_arg = None if precision == "auto" else precision
    stats = StageStats()
    terminated = False  # SIGTERM (Terminated) rather than Ctrl-C: the word and the exit code follow it
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_source(source, camera_size=size, camera_fps=camera_fps, reconnect=reconnect))
        run_mode = mode or ("realtime" if src.live else "every-frame")
        if backend_name == "auto":
            backend, why = open_auto(model, device, precision_arg, opts)
        else:
            backend_device = {"trt": "cuda"}.get(backend_name, "auto") if device == "auto" else device
            backend = open_backend(backend_name, model, device=backend_device, precision=precision_arg, **opts)
            why = "chosen with --backend"
        stack.enter_context(backend)
        click.echo(f"backend: {backend.describe()} — {why}", err=True)
        refiner = None
        if refine_path is not None:
            refiner = _open_refiner(refine_path, backend.io.kind)
            if hasattr(refiner, "__exit__"):
                stack.enter_context(refiner)
        out = stack.enter_context(open_sink(sink, fps=fps or src.fps, view=view, overlay=overlay, viewer=viewer))
        stats.info = {
            "model": str(model),
            "backend": backend.describe(),
            "source": src.name,
            "sink": out.path or sink,
            "mode": run_mode,
            "batch": batch_size,
        }
        total = src.count if not max_frames else min(max_frames, src.count or max_frames)
        show_live = live_supported() if live is None else live
        bar = tqdm(total=total, desc="frames", unit="frame", disable=not progress or show_live, dynamic_ncols=True)
        try:
            with LiveDisplay(stats, total, enabled=show_live):
                run_pipeline(
                    src,
                    backend,
                    out,
                    batch_size=batch_size,
                    mode=run_mode,
                    max_frames=max_frames,
                    stats=stats,
                    on_frames=bar.update,
                    refiner=refiner,
                    handle_sigint=True,
                    on_nonfinite=on_nonfinite,
                )
        except KeyboardInterrupt as stop:  # a second Ctrl-C, or SIGTERM: stop now (the sink still closes below)
            stats.interrupted = True
            terminated = isinstance(stop, Terminated)
            stats.stop()
        finally:
            bar.close()
    # Everything is closed here: the video file is finalised before anyone is told about it.
    if stats_path is not None:
        stats.write_json(stats_path)
    if stats.interrupted:
        word = "Terminated" if terminated else "Interrupted"
        message = f"{word}: {out.frames_written} frames written to {out.path or sink}"
        if isinstance(out, (VideoSink, FolderSink)):
            message += " (the output is complete and valid)"
        click.echo(message + ".", err=True)
        sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    click.echo(stats.format_table())
    passed = stats.counters.get(NONFINITE_COUNTER, 0)
    if passed:
        click.echo(f"warning: {passed} frames had NaN/Inf model outputs and were passed through unchanged", err=True)
    if stats.dropped:
        click.echo(f"dropped frames (realtime mode): {stats.dropped}")
    if stats_path is not None:
        click.echo(f"stats: {stats_path}")
    if out.path:
        click.echo(f"output: {out.path} ({out.frames_written} frames)")
