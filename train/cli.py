"""``i2i-train``: train a generator, or build the offline demo dataset.

Every method is a subcommand whose options come from two frozen dataclasses: the shared
``TrainConfig`` and the method's own config (its defaults are the method's published defaults).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from i2i._cli import Group, debug_option

FIELD_HELP = {
    "data": "Dataset root (paired: train/A + train/B; unpaired: trainA + trainB).",
    "out": "Run folder for model.pt, state.pt, samples/ and log.jsonl [default: runs/METHOD].",
    "batch_size": "Images per step.",
    "load_size": "Resize images to this square size before cropping.",
    "crop_size": "Random crop size used for training.",
    "flip": "Random horizontal flips.",
    "max_steps": "Stop after this many steps; the LR schedule is compressed to fit (0 = full epoch schedule).",
    "seed": "Random seed (python, numpy, torch, data order).",
    "workers": "DataLoader worker processes.",
    "device": "auto, cpu, cuda or cuda:N.",
    "log_every": "Write a log.jsonl line every N steps.",
    "sample_every": "Write a sample grid PNG every N steps.",
    "save_every": "Write model.pt + state.pt every N steps.",
    "resume": "Continue from OUT/state.pt.",
    "progress": "Show a progress bar.",
    "keep_last": "State history kept in OUT/checkpoints/ (fallback when the latest state is corrupt).",
    "deterministic": "Deterministic algorithms (bit-identical reruns and resumes).",
    "amp": "Mixed precision: none, bf16 (CPU or GPU) or fp16 (CUDA, gradient scaling).",
    "epochs": "Epochs at the initial learning rate.",
    "epochs_decay": "Epochs of linear decay of the learning rate to zero.",
    "lr": "Adam learning rate.",
    "beta1": "Adam beta1.",
    "ngf": "Generator width (filters in the first layer).",
    "ndf": "Discriminator width.",
    "num_downs": "U-Net levels; inputs must be multiples of 2**num_downs.",
    "n_blocks": "Residual blocks in the ResNet generator.",
    "n_layers_d": "PatchGAN depth (3 = 70x70 patches).",
    "norm": "Normalisation: batch, instance or none.",
    "dropout": "Dropout in the generator.",
    "gan_mode": "Adversarial loss: lsgan, vanilla or hinge.",
    "lambda_l1": "Weight of the L1 term.",
    "lambda_a": "Weight of the A->B->A cycle loss.",
    "lambda_b": "Weight of the B->A->B cycle loss.",
    "lambda_identity": "Identity loss weight, relative to the cycle weights.",
    "pool_size": "Size of the generated-image history shown to the discriminators.",
    "teacher": "Teacher generator (model.pt) whose translations the student learns.",
    "arch": "Student architecture (a registered network, e.g. fast).",
    "lambda_gan": "Weight of the adversarial term (0 = pure regression).",
}


def _options_from(config_cls: type, skip: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn a dataclass's fields into click options (``--field-name``; bools as --x/--no-x)."""
    hints = typing.get_type_hints(config_cls)

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(dataclasses.fields(config_cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            kind = hints[f.name]
            help_text = FIELD_HELP.get(f.name, "")
            if kind is bool:
                func = click.option(
                    f"{flag}/--no-{flag[2:]}", f.name, default=f.default, show_default=True, help=help_text
                )(func)
            else:
                func = click.option(flag, f.name, type=kind, default=f.default, show_default=True, help=help_text)(func)
        return func

    return deco


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def main() -> None:
    """Train image-to-image generators and write self-describing model.pt checkpoints.

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
    from i2i.train.data import build_demo_dataset

    manifest = build_demo_dataset(
        out_dir, crop=crop, crops_per_photo=crops_per_photo, video_seconds=video_seconds, seed=seed
    )
    counts = manifest.get("counts", {})
    click.echo(f"demo dataset: {out_dir}  " + "  ".join(f"{k}={v}" for k, v in counts.items()))
    click.echo(f"demo video:   {out_dir / 'video.mp4'}")


def _method_command(name: str) -> click.Command:
    from i2i.train.loop import TrainConfig
    from i2i.train.methods import get_method

    method_cls = get_method(name)
    config_cls = method_cls.config_class

    @_options_from(config_cls)
    @_options_from(TrainConfig, skip=("data", "out"))
    @click.option("--out", "out", type=click.Path(file_okay=False), default=None, help=FIELD_HELP["out"])
    @click.option("--data", "data", type=click.Path(), required=True, help=FIELD_HELP["data"])
    @click.option(
        "--nproc",
        default=1,
        show_default=True,
        type=click.IntRange(1),
        help="Data-parallel processes (one per GPU; gloo on CPU): relaunches itself under torchrun.",
    )
    def command(nproc: int, **kwargs: Any) -> None:
        from i2i.train.loop import train

        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            _relaunch_under_torchrun(name, nproc)
        method_fields = {f.name for f in dataclasses.fields(config_cls)}
        method_config = config_cls(**{k: v for k, v in kwargs.items() if k in method_fields})
        train_kwargs = {k: v for k, v in kwargs.items() if k not in method_fields}
        train_kwargs["out"] = train_kwargs["out"] or f"runs/{name}"
        result = train(name, method_config, TrainConfig(**train_kwargs))
        if result.state is None:  # not rank 0 of a distributed run: rank 0 reports
            return
        click.echo(f"trained {name}: {result.steps} steps in {result.seconds:.1f} s")
        for path in result.checkpoints:
            click.echo(f"  checkpoint: {path}")
        click.echo(f"  state:      {result.state}")
        click.echo(f"  log:        {result.log}")
        if result.samples:
            click.echo(f"  samples:    {result.samples[-1]}")

    command.__doc__ = f"Train {name}: {method_cls.summary}."
    return click.command(name, cls=main.command_class, context_settings={"help_option_names": ["-h", "--help"]})(
        command
    )


def _relaunch_under_torchrun(method: str, nproc: int) -> None:
    """Re-run this exact command as ``torchrun --nproc-per-node N -m i2i.train METHOD ...``."""
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
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "i2i.train",
        method,
        *args,
    ]
    click.echo("launching: " + " ".join(argv[1:]), err=True)
    os.execv(sys.executable, argv)


def _register_methods() -> None:
    from i2i.train.methods import METHODS

    for name in sorted(METHODS):
        main.add_command(_method_command(name))


_register_methods()
