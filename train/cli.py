"""``i2i-train``: train a generator, or build the offline demo dataset.

Every method is a subcommand whose options come from two frozen dataclasses: the shared
``TrainConfig`` and the method's own config (its defaults are the method's published defaults).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import sys
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from i2i._cli import Group, debug_option
from i2i.errors import I2IError
from i2i.train.options import field_metadata
from i2i.train.run_folder import next_run_folder


def _option_type(name: str, kind: Any, meta: dict[str, Any]) -> Any:
    """The click type of a config field: its choices or range (field metadata); loss weights
    (``lambda_*``, ``*_weight``) are >= 0, since 0 switches a term off and below 0 is a mistake."""
    if meta.get("choices"):
        return click.Choice(meta["choices"])
    if kind is int and "minimum" in meta:
        return click.IntRange(min=int(meta["minimum"]))
    if kind is float and "above" in meta:
        return click.FloatRange(min=meta["above"], min_open=True)
    if kind is float and "minimum" in meta:
        return click.FloatRange(min=meta["minimum"])
    if kind is float and (name.startswith("lambda_") or name.endswith("_weight")):
        return click.FloatRange(min=0)
    return kind


def _options_from(
    config_cls: type, skip: tuple[str, ...] = (), defaults: Mapping[str, Any] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn a dataclass's fields into click options (``--field-name``; bools as --x/--no-x), with
    the help, range and choices each field's metadata gives (``i2i.train.options.option``);
    ``defaults`` replaces some fields' defaults (a method's ``train_defaults``)."""
    hints = typing.get_type_hints(config_cls)
    defaults = defaults or {}

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(dataclasses.fields(config_cls)):
            if f.name in skip:
                continue
            flag, kind = "--" + f.name.replace("_", "-"), hints[f.name]
            meta = field_metadata(config_cls, f.name)
            help_text, default = meta.get("help", ""), defaults.get(f.name, f.default)
            if kind is bool:
                decl: tuple[str, ...] = (f"{flag}/--no-{flag[2:]}", f.name)
                func = click.option(*decl, default=default, show_default=True, help=help_text)(func)
            else:
                option_type = _option_type(f.name, kind, meta)
                func = click.option(flag, f.name, type=option_type, default=default, show_default=True, help=help_text)(
                    func
                )
        return func

    return deco


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def main() -> None:
    """Train image-to-image generators and write self-describing model.pt checkpoints.

    Each run has its own folder: without --out a fresh runs/METHOD, runs/METHOD2, ... (--resume
    continues the newest); an --out that holds another run is refused unless --resume continues
    it or --overwrite clears its files.

    \b
    Examples:
      i2i-train data demo data/demo              # build the offline demo dataset
      i2i-train pix2pix --data data/demo --max-steps 2000 --crop-size 128 --load-size 143
      i2i-train cyclegan --data data/horse2zebra --out runs/h2z
      i2i-train list                              # methods and what they do
    """


@main.command("list")
def list_methods() -> None:
    """List the training methods."""
    from i2i.train.methods import METHODS

    for name, cls in sorted(METHODS.items()):
        click.echo(f"{name:10s} [{cls.layout}]  {cls.summary}")


@main.group("data", cls=Group)
def data_group() -> None:
    """Datasets: build the offline demo set."""


@data_group.command("demo")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--crops-per-photo", default=24, show_default=True, help="Training crops cut from each photo.")
@click.option("--crop", default=256, show_default=True, help="Crop size in pixels.")
@click.option("--video-seconds", default=6.0, show_default=True, help="Length of the demo video.")
@click.option("--seed", default=0, show_default=True)
def data_demo(out_dir: Path, crops_per_photo: int, crop: int, video_seconds: float, seed: int) -> None:
    """Build the demo dataset from photographs bundled with scikit-image (no download).

    Writes paired (train/A, train/B, test/A, test/B) and unpaired (trainA, trainB, testA, testB)
    layouts, where B is a colour pencil sketch of A, plus video.mp4 (camera-like motion over
    held-out photos). A second call with the same options reuses what exists.
    """
    from i2i.train.demo import build_demo_dataset

    manifest = build_demo_dataset(
        out_dir, crop=crop, crops_per_photo=crops_per_photo, video_seconds=video_seconds, seed=seed
    )
    counts = manifest.get("counts", {})
    click.echo(f"demo dataset: {out_dir}  " + "  ".join(f"{k}={v}" for k, v in counts.items()))
    click.echo(f"demo video:   {out_dir / 'video.mp4'}")


@main.command("import")
@click.argument("weights", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--arch",
    default=None,
    help="resnet_9blocks, resnet_6blocks, unet_256, unet_128, cut_resnet, sn_resnet, fast_neural_style or stig "
    "[default: from the shapes].",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="model.pt to write.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True)
@click.option(
    "--spectrum-size",
    type=click.IntRange(1),
    default=None,
    help="STIG files: the square spectrum side the refiner was trained at (its --size, a multiple of 16) "
    "[default: 256].",
)
def import_weights(
    weights: Path, arch: str | None, output: Path | None, direction: str, spectrum_size: int | None
) -> None:
    """Convert a released generator to model.pt: *_net_G.pth of pytorch-CycleGAN-and-pix2pix, CUT or
    SN-DCR, a pytorch/examples fast-neural-style .pth/.model, or an official STIG checkpoint.

    \b
    Examples:
      i2i-train import latest_net_G.pth -o horse2zebra.pt
      i2i-train import facades_label2photo.pth --arch unet_256 -o facades.pt
      i2i-train import parameters_10_epoch.pt --spectrum-size 512 -o refiner.pt
    """
    from i2i.train.reference import REFERENCE_ARCHS, import_reference

    if arch is not None and arch not in REFERENCE_ARCHS:
        raise click.BadParameter(f"{arch!r}; valid: {', '.join(REFERENCE_ARCHS)}", param_hint="--arch")
    try:
        result = import_reference(weights, output, arch=arch, direction=direction, spectrum_size=spectrum_size)
    except I2IError as exc:  # say which file, also where the check that failed only saw its tensors
        if str(weights) not in exc.message:
            raise I2IError(f"{weights}: {exc.message}") from None
        raise
    click.echo(f"imported {weights.name} as {result.reference} → {result.arch} {result.arch_kwargs}")
    if result.dropped:
        click.echo(f"  dropped {len(result.dropped)} legacy InstanceNorm statistics")
    for note in result.notes:  # the layout's value mappings (folded ranges and biases)
        click.echo(f"  mapped: {note}")
    click.echo(f"  checkpoint: {result.output}")


def _report(name: str, result: Any) -> None:
    """What a finished run wrote, and its latest metrics."""
    click.echo(f"trained {name}: {result.steps} steps in {result.seconds:.1f} s")
    for path in result.checkpoints:
        click.echo(f"  checkpoint: {path}")
    click.echo(f"  state:      {result.state}")
    click.echo(f"  log:        {result.log}")
    if result.samples:
        click.echo(f"  samples:    {result.samples[-1]}")
    click.echo(f"  config:     {result.out / 'config.json'}")
    if result.eval_log is not None:
        click.echo(f"  eval log:   {result.eval_log}")
    for generator, values in result.metrics.items():
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if k in ("psnr_db", "ssim", "fid", "kid"))
        click.echo(f"  metrics:    {generator} at step {values['step']}: {shown}")
    if (result.out / "tensorboard").is_dir():
        click.echo(f"  tensorboard: {result.out / 'tensorboard'}")


def _method_command(name: str) -> click.Command:
    from i2i.train.loop import TrainConfig
    from i2i.train.methods import get_method

    method_cls = get_method(name)
    config_cls = method_cls.config_class
    # A method may read its own folders instead of --data (stig: --real and --fake).
    data_option: Callable[[Callable[..., Any]], Callable[..., Any]] = (
        click.option(
            "--data",
            "data",
            type=click.Path(),
            required=True,
            help=method_cls.data_help or field_metadata(TrainConfig, "data")["help"],
        )
        if method_cls.needs_data
        else lambda func: func
    )

    @_options_from(config_cls)
    @_options_from(
        TrainConfig, skip=("data", "out", *method_cls.unused_train_options), defaults=method_cls.train_defaults
    )
    @click.option(
        "--out", "out", type=click.Path(file_okay=False), default=None, help=field_metadata(TrainConfig, "out")["help"]
    )
    @data_option
    @click.option(
        "--nproc",
        default=1,
        show_default=True,
        type=click.IntRange(1),
        help="Data-parallel processes (one per GPU; gloo on CPU), launched as torchrun does.",
    )
    def command(nproc: int, **kwargs: Any) -> None:
        from i2i.train.loop import train

        if kwargs["out"] is None:
            if "WORLD_SIZE" in os.environ:  # each rank would number its own folder
                raise I2IError("a distributed run launched by torchrun needs --out (one folder for all ranks)")
            kwargs["out"] = str(next_run_folder(Path("runs") / name, resume=kwargs.get("resume", False)))
            click.get_current_context().params["out"] = kwargs["out"]  # the ranks of --nproc get it too
            click.echo(f"run folder: {kwargs['out']}", err=True)
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            _run_ranks(name, nproc)
            return
        method_fields = {f.name for f in dataclasses.fields(config_cls)}
        method_config = config_cls(**{k: v for k, v in kwargs.items() if k in method_fields})
        train_kwargs = {k: v for k, v in kwargs.items() if k not in method_fields}
        train_kwargs.setdefault("data", "")  # methods without --data
        with _run_folder(Path(train_kwargs["out"])):
            result = train(name, method_config, TrainConfig(**train_kwargs))
        if result.state is None:  # not rank 0 of a distributed run: rank 0 reports
            return
        _report(name, result)

    command.__doc__ = f"Train {name}: {method_cls.summary}."
    return click.command(name, cls=main.command_class, context_settings={"help_option_names": ["-h", "--help"]})(
        command
    )


# errno values that mean "this folder cannot take the run's files" (and not a bad input file).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def _run_folder(out: Path) -> Iterator[None]:
    """A failed run leaves no empty run folder behind, and a write error is one line naming the folder.

    Checkpoints are written atomically (``atomic_save``), so what a failure leaves in ``out`` is
    whole: the config and the log of the steps done, never a partial model.pt.
    """
    if out.exists() and not out.is_dir():
        raise I2IError(f"--out {out} exists and is not a folder; give a folder for the run")
    created = not out.exists()
    try:
        yield
    except OSError as exc:
        where = Path(exc.filename).resolve() if isinstance(exc.filename, str) else None
        if where is not None and out.resolve() not in (where, *where.parents):
            raise I2IError(f"cannot access {exc.filename}: {exc.strerror or exc}") from None
        if exc.errno in _WRITE_ERRNOS:
            raise I2IError(f"cannot write the run folder {out}: {exc.strerror or exc}") from None
        raise
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _rank_args() -> list[str]:
    """This command's options as a command line, without --nproc (what each rank runs)."""
    ctx = click.get_current_context()
    args: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name == "nproc" or param.name not in ctx.params:
            continue
        value = ctx.params[param.name]
        if param.is_flag and param.secondary_opts:
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif value is not None:
            args += [param.opts[0], str(value)]
    return args


# The launcher's own lines about a signal it forwards ("Received 15 death signal, shutting down
# workers", "Sending process 123 closing signal SIGTERM") and a rank that failed ("failed
# (exitcode: 1) local_rank: 0 ..."): the ranks say what they saved or why they failed.
_LAUNCHER_LOGGERS = ("torch.distributed.elastic.agent.server.api", "torch.distributed.elastic.multiprocessing.api")
_LAUNCHER_LINES_DROPPED = ("death signal, shutting down workers", "closing signal", "failed (exitcode: ")
_LAUNCHER_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")  # torch's agent installs handlers for these


class _DropLauncherLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in _LAUNCHER_LINES_DROPPED)


def _run_ranks(method: str, nproc: int) -> None:
    """Run this exact command as ``torchrun --standalone --nproc-per-node N -m i2i.train METHOD ...``,
    with torchrun's launcher (torch.distributed.run) in this process rather than exec'd.

    On SIGTERM or Ctrl-C the launcher forwards the signal to the ranks, which save and report as a
    single process does; it then raises SignalException, which ends this command with 143 or 130
    and no traceback. A rank that fails has said why on stderr: its exit code is this command's.
    """
    import signal

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    argv = ["--standalone", f"--nproc-per-node={nproc}", "-m", "i2i.train", method, *_rank_args()]
    click.echo("launching: torchrun " + " ".join(argv), err=True)
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in _LAUNCHER_SIGNALS if hasattr(signal, name)}
    quiet = _DropLauncherLines()
    loggers = [logging.getLogger(name) for name in _LAUNCHER_LOGGERS]
    for logger in loggers:  # a logger's filters see the records logged through it
        logger.addFilter(quiet)
    try:
        run(parse_args(argv))
    except SignalException as exc:
        # The ranks have saved and rank 0 has said so; raising Terminated or KeyboardInterrupt here
        # would add a second line ("Terminated."). 143 for SIGTERM, 130 for Ctrl-C, as a shell says.
        sys.exit(128 + int(exc.sigval))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode > 0:
            sys.exit(failure.exitcode)  # the rank printed its one-line error
        raise I2IError(f"rank {rank} of {nproc} died ({failure.signal_name()}); see its output above") from None
    finally:
        for name, handler in handlers.items():  # the agent's handlers would outlive the run
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(getattr(signal, name), handler)
        for logger in loggers:
            logger.removeFilter(quiet)


def _register_methods() -> None:
    from i2i.train.methods import METHODS

    for name in sorted(METHODS):
        main.add_command(_method_command(name))


_register_methods()
