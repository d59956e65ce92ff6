"""``i2i-run``: stream frames through a translation model. Never imports torch
(unless ``--backend torch`` is chosen explicitly for a baseline)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from i2i._cli import Command, debug_option, hw_option
from i2i.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, I2IError, Terminated
from i2i.runtime.backends.base import BACKEND_MODULES
from i2i.runtime.precisions import runtime_precisions
from i2i.runtime.sizes import written_width_first


def _height_first_check(option: str) -> Any:
    """--camera-size and --infer-size are HxW like every size in i2i; a well-known camera mode written
    W×H (1280x720) is refused with the value it most likely meant, never silently swapped
    (i2i.runtime.sizes)."""

    def check(size: tuple[int, int]) -> None:
        if written_width_first(size):
            height, width = size[1], size[0]
            raise I2IError(f"{option} is HxW (height first): did you mean {height}x{width}?")

    return check


@dataclass(frozen=True)
class RunConfig:
    """One ``i2i-run``, parsed and checked: the command line as data (see ``main`` for each option)."""

    model: Path
    source: str
    sink: str = "null"
    backend: str = "auto"
    device: str = "auto"
    precision: str | None = None  # None: the model's own
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    mode: str | None = None  # None: realtime for live sources, every-frame otherwise
    max_frames: int = 0
    fps: float | None = None
    camera_size: tuple[int, int] | None = None  # (H, W)
    camera_fps: float | None = None
    reconnect: int = 10
    max_pixels: int = 4320 * 7680  # i2i.runtime.images.DEFAULT_MAX_PIXELS (8K UHD), without importing cv2 here
    aligned: bool = False
    direction: str = "AtoB"
    view: str = "output"
    overlay: bool | None = None
    refine: Path | None = None
    infer_size: tuple[int, int] | None = None  # (H, W): the working size for inference (None: the frame's)
    upsample: str = "bilinear"
    stabilize: float | None = None  # flow-guided stabilisation strength (None or 0: off)
    stats_path: Path | None = None
    on_nonfinite: str = "stop"
    progress: bool = True
    verbose: bool = False
    live: bool | None = None
    viewer: Mapping[str, Any] = field(default_factory=dict)  # the browser viewer's access options


def _parse_options(values: tuple[str, ...]) -> dict[str, Any]:
    """-O key=value pairs; integers become ints, everything else stays a string for the backend."""
    opts: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE, e.g. -O threads=4", param_hint="-O")
        opts[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return opts


def open_model(config: RunConfig) -> Any:
    """The model with its refiner, opened by ``i2i.load`` exactly as the Python API opens it
    (``--backend``/``--device``/``--precision``/``-O``/``--refine``): an ``i2i.Translator``."""
    from i2i.api import load

    precision = config.precision or "auto"
    return load(
        config.model,
        config.backend,
        config.device,
        precision,
        config.refine,
        infer_size=config.infer_size,
        upsample=config.upsample,
        stabilize=config.stabilize,
        **config.backend_options,
    )


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


def _list_backends(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from i2i.runtime.backends.auto import backends_report

    click.echo(backends_report())
    ctx.exit(0)


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--source",
    "-s",
    required=True,
    help="Video file, image folder or glob, single image, camera index (0), rtsp:// or http:// stream, "
    "or pattern:HxW@FPS (synthetic test pattern, height first like every size in i2i).",
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
    "required to serve a non-loopback address. Prefer the I2I_VIEWER_TOKEN environment variable (ps does "
    "not show it) or 'auto' (one is generated and shown once on the terminal); a token set by hand needs "
    "at least 16 random characters.",
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
    type=click.Choice(runtime_precisions()),
    help="Inference precision; auto = the fastest this CPU runs natively whose parity for the model clears "
    "its bar (OpenVINO: bf16 on AVX-512 BF16/AMX, else fp32; an int8 export as int8).",
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
@hw_option(
    "--camera-size",
    square=False,
    check=_height_first_check("--camera-size"),
    default=None,
    help="Camera capture size, HxW (height first, as every size in i2i), e.g. 720x1280.",
)
@click.option("--camera-fps", default=None, type=click.FloatRange(min=0, min_open=True), help="Camera frame rate.")
@click.option(
    "--reconnect",
    default=10,
    show_default=True,
    type=click.IntRange(0),
    help="Stream sources: reconnect attempts (with backoff) after a drop.",
)
@click.option(
    "--max-pixels",
    default=4320 * 7680,
    show_default=True,
    type=click.IntRange(1),
    help="Largest frame a source may decode, in pixels (H*W; default 8K UHD, 4320x7680). Image headers and "
    "video containers are checked before decoding; a folder skips a larger image with a warning.",
)
@click.option(
    "--aligned",
    is_flag=True,
    help="SOURCE is a reference test folder of A|B pair images: translate the input half; with a folder "
    "sink, also write index.html there (input | output | target per image, with its PSNR and SSIM).",
)
@click.option(
    "--direction",
    type=click.Choice(["AtoB", "BtoA"]),
    default="AtoB",
    show_default=True,
    help="With --aligned: AtoB translates the left half (A) towards the right (B); BtoA the other way.",
)
@click.option(
    "--view",
    type=click.Choice(["output", "side-by-side", "before-after"]),
    default="output",
    show_default=True,
    help="Show the output alone, input | output, or (with --refine) unrefined | refined output.",
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
@hw_option(
    "--infer-size",
    square=False,
    check=_height_first_check("--infer-size"),
    default=None,
    help="Working size for inference, HxW: larger frames are translated at about this size (their aspect "
    "kept, sides rounded to the nearest multiple of the model's size multiple) and upsampled back to the frame's size "
    "(its own stage, 'upsample'). Faster on large frames; e.g. 360x640 for 720p.",
)
@click.option(
    "--upsample",
    type=click.Choice(["bilinear", "guided"]),
    default="bilinear",
    show_default=True,
    help="With --infer-size: how outputs come back to the frame's size: bilinear (under 1 ms at 720p) or "
    "guided (edge-aware: follows the frame's own edges; a little sharper, about 7 ms at 720p).",
)
@click.option(
    "--stabilize",
    default=None,
    type=click.FloatRange(0.0, 1.0, max_open=True),
    metavar="STRENGTH",
    help="Flow-guided temporal stabilisation, 0..1 (below 1): each output is blended with the previous one "
    "carried along the input's motion where the flow is trusted (its own stage, 'stabilize'); less "
    "flicker, more lag at higher strengths. Restarts at scene cuts; 0.5 is a good start.",
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
    "--verbose", "-v", is_flag=True, help="Say why --backend auto skipped each faster backend, with install hints."
)
@click.option(
    "--list-backends",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_list_backends,
    help="List the backends installed here and the order --backend auto tries them (with why), then exit.",
)
@click.option(
    "--live/--no-live",
    default=None,
    help="Live stats on the terminal (rich if installed) [default: on when stderr is a terminal].",
)
@debug_option
def main(**options: Any) -> None:
    """Translate every frame of SOURCE with MODEL (an i2i ONNX export) and write them to SINK.

    \b
    Examples:
      i2i-run model.onnx --source video.mp4 --sink out.mp4
      i2i-run model.onnx --source photos/ --sink translated/
      i2i-run model.onnx --source 0 --sink window --view side-by-side   # webcam, latest frame wins
      i2i-run model.onnx --source pattern:480x640@30 --sink http://127.0.0.1:8080   # browser viewer
      export I2I_VIEWER_TOKEN="$(openssl rand -hex 16)"; i2i-run model.onnx --source 0 --sink http://0.0.0.0:8080
      i2i-run model.onnx --source 0 --sink http://0.0.0.0:8080 --token auto   # on the LAN, token shown once
      i2i-run model.onnx --source 0 --sink window --infer-size 360x640 --stabilize 0.5   # 720p webcam
      i2i-run model.onnx --source rtsp://cam.local/stream --sink null --stats stats.json
      i2i-run model.onnx --source clip.mp4 --sink null --batch 4 --backend ort -O threads=2
      i2i-run model.onnx --source clip.mp4 --sink compare.mp4 --refine profile.npz --view before-after

    Frames of any size (gray, BGR, BGRA) are padded to the model's size multiple and cropped back;
    fixed-size models get frames resized to their size and back. Ctrl-C stops cleanly: the output
    written so far is a valid file.
    """
    run(_run_config(**options))


def _run_config(
    token: str | None, insecure_public: bool, max_clients: int, backend_name: str, precision: str, **options: Any
) -> RunConfig:
    """The command line as a RunConfig; the viewer's access options are checked first, before any
    model or camera opens."""
    viewer = _viewer_options(options["sink"], token, insecure_public, max_clients)
    return RunConfig(
        backend=backend_name,
        precision=None if precision == "auto" else precision,
        backend_options=_parse_options(options.pop("backend_options")),
        refine=options.pop("refine_path"),
        viewer=viewer,
        **options,
    )


def run(config: RunConfig) -> None:
    """Open source, sink and model (+ refiner), in that order, so that every input and output is
    checked before the model loads; stream, then report; exits 130/143 when interrupted."""
    from i2i.runtime.redact import display_name
    from i2i.runtime.sinks import open_sink, refuse_replacing_inputs
    from i2i.runtime.sources import open_source
    from i2i.runtime.stats import StageStats

    if config.view == "before-after" and config.refine is None:
        raise I2IError("--view before-after shows the output before and after --refine: give --refine too")
    stats = StageStats()
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(
            open_source(
                config.source,
                camera_size=config.camera_size,
                camera_fps=config.camera_fps,
                reconnect=config.reconnect,
                max_pixels=config.max_pixels,
                aligned=config.direction if config.aligned else None,
            )
        )
        refuse_replacing_inputs(config.sink, src.input_files())
        if config.stats_path is not None:
            refuse_replacing_inputs(str(config.stats_path), src.input_files(), what="--stats")
        # The sink opens before the model loads: an address that cannot be bound, a folder that
        # cannot be made, fail in a second instead of after a model load of minutes (a TensorRT engine).
        viewer = dict(config.viewer)
        out = stack.enter_context(
            open_sink(config.sink, fps=config.fps or src.fps, view=config.view, overlay=config.overlay, viewer=viewer)
        )
        translator = stack.enter_context(open_model(config))  # closes the backend and the refiner
        backend, refiner = translator.backend, translator.refiner
        why = (translator.why if config.verbose else translator.brief) or "chosen with --backend"
        click.echo(f"backend: {backend.describe()} — {why}", err=True)
        if translator.precision_choice:
            click.echo(translator.precision_choice, err=True)
        if hasattr(refiner, "describe"):  # the pipeline takes any callable refiner
            click.echo(f"refine: {refiner.describe()}", err=True)
        mode = config.mode or ("realtime" if src.live else "every-frame")
        stats.info = {
            "model": str(config.model),
            "backend": backend.describe(),
            "source": src.display,  # never a URL's credentials: see i2i.runtime.redact
            "sink": display_name(out.path or config.sink),
            "mode": mode,
            "batch": config.batch_size,
        }
        if translator.precision_choice:
            stats.info["precision_choice"] = translator.precision_choice
        if translator.working_size is not None:
            click.echo(f"infer size: {translator.working_size.describe()}", err=True)
            stats.info["infer_size"] = "x".join(map(str, translator.working_size.size))
        if config.stabilize:
            stats.info["stabilize"] = config.stabilize
        terminated = _stream(config, mode, src, translator, out, stats)
    # Everything is closed here: the video file is finalised before anyone is told about it.
    _report(config, stats, out, terminated, src.input_files())


def _stream(config: RunConfig, mode: str, src: Any, translator: Any, out: Any, stats: Any) -> bool:
    """Run the pipeline with a progress bar or the live display; True if SIGTERM stopped it."""
    from tqdm.auto import tqdm

    from i2i.runtime.live import LiveDisplay, live_supported
    from i2i.runtime.pipeline import run_pipeline

    stabilizer = None
    if config.stabilize:  # one stabiliser for the run's one source
        from i2i.runtime.stabilize import FlowStabilizer

        stabilizer = FlowStabilizer(strength=config.stabilize)

    total = src.count if not config.max_frames else min(config.max_frames, src.count or config.max_frames)
    show_live = live_supported() if config.live is None else config.live
    disable = not config.progress or show_live
    bar = tqdm(total=total, desc="frames", unit="frame", disable=disable, dynamic_ncols=True)
    try:
        with LiveDisplay(stats, total, enabled=show_live):
            run_pipeline(
                src,
                translator.backend,
                out,
                batch_size=config.batch_size,
                mode=mode,
                max_frames=config.max_frames,
                stats=stats,
                on_frames=bar.update,
                refiner=translator.refiner,
                handle_sigint=True,
                on_nonfinite=config.on_nonfinite,
                working_size=translator.working_size,
                stabilizer=stabilizer,
            )
    except KeyboardInterrupt as stop:  # a second Ctrl-C, or SIGTERM: stop now (the sink still closes after)
        stats.interrupted = True
        stats.stop()
        return isinstance(stop, Terminated)
    finally:
        bar.close()
    return False


def _write_gallery(config: RunConfig, out: Any, inputs: list[Path]) -> None:
    """The results page of an --aligned run into a folder, and its numbers in one line."""
    from i2i.runtime.gallery import aligned_gallery

    result = aligned_gallery(inputs, Path(out.path), config.direction, config.max_pixels)
    click.echo(
        f"results page: {result['page']} ({result['pairs']} images: mean PSNR {result['psnr_db_mean']:.2f} dB, "
        f"mean SSIM {result['ssim_mean']:.4f} against the target halves)"
    )


def _report(config: RunConfig, stats: Any, out: Any, terminated: bool, inputs: list[Path]) -> None:
    """Stats file, then the table and what was written; an interrupted run says so and exits 130/143."""
    from i2i.runtime.pipeline import NONFINITE_COUNTER
    from i2i.runtime.redact import display_name
    from i2i.runtime.sinks import FolderSink, NullSink, VideoSink

    if config.stats_path is not None:
        stats.write_json(config.stats_path)
    if stats.interrupted:
        word = "Terminated" if terminated else "Interrupted"
        message = f"{word}: {out.frames_written} frames written to {display_name(out.path or config.sink)}"
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
    if config.stats_path is not None:
        click.echo(f"stats: {config.stats_path}")
    if config.aligned and isinstance(out, FolderSink) and out.frames_written:
        _write_gallery(config, out, inputs)
    if out.path:
        click.echo(f"output: {out.path} ({out.frames_written} frames)")
    elif isinstance(out, NullSink):
        click.echo(
            "output: nothing written: the sink is null (the default); give --sink out.mp4 or a folder to keep it"
        )
