"""``i2i``: one entry point for every command (``i2i train``, ``i2i run`` ...), loaded lazily so
``i2i run`` imports no torch."""

from __future__ import annotations

import click

from i2i import __version__
from i2i._cli import Group, debug_option
from i2i._entry import require_train

SUMMARIES = {
    "train": "train a generator (pix2pix, cyclegan) and write model.pt",
    "export": "model.pt -> model.onnx (dynamic shapes, model card, parity report)",
    "run": "stream a video / folder / camera through the model",
    "bench": "latency and throughput per backend, with a torch baseline",
    "eval": "image-quality metrics between folders",
}


@click.group(
    cls=Group,
    lazy={
        "train": "i2i.train.cli:main",
        "export": "i2i.export.cli:main",
        "run": "i2i.runtime.cli:main",
        "bench": "i2i.bench:main",
        "eval": "i2i.eval:main",
    },
    summaries=SUMMARIES,
    checks={"train": lambda: require_train("i2i train")},
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="i2i")
@debug_option
def main() -> None:
    """i2i: image-to-image translation from training to real-time deployment.

    Each command is also its own program: i2i-train, i2i-export, i2i-run, i2i-bench, i2i-eval.
    """
