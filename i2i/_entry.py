"""What each command needs beyond the runtime, checked before anything heavy is imported.

A runtime-only install (``i2i-toolkit[cpu]``) has no torch and no onnx. The commands that need them
(``i2i-train``, ``i2i train``, an export, ``i2i.export()``) stop with one line naming the extra
that adds them, instead of a ``ModuleNotFoundError`` traceback from deep inside an import. The checks
use ``importlib.util.find_spec``, which imports nothing, so this module stays torch-free.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from i2i.errors import MissingDependencyError

# The modules an export needs, by the file it starts from: a checkpoint is traced in torch and
# written with onnx (onnxscript: the dynamo exporter; onnxslim: the graph cleanup); an i2i ONNX model
# (for --engine / --triton) is read with onnx. All four come with the `export` extra.
EXPORT_FROM_CHECKPOINT = ("torch", "onnx", "onnxscript", "onnxslim")
EXPORT_FROM_ONNX = ("onnx",)


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The top-level modules of ``modules`` that are not installed (nothing is imported)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(extra: str, modules: Iterable[str], why: str) -> None:
    """Raise MissingDependencyError naming ``extra`` when any of ``modules`` is not installed."""
    absent = missing_modules(modules)
    if absent:
        raise MissingDependencyError(absent, extra, why)


def require_train(command: str = "i2i-train") -> None:
    require("train", ("torch",), f"{command} trains in torch")


def require_export(source: str | Path, command: str = "the export") -> None:
    """The modules an export from ``source`` (model.pt or model.onnx) needs."""
    from_onnx = Path(source).suffix.lower() == ".onnx"
    modules = EXPORT_FROM_ONNX if from_onnx else EXPORT_FROM_CHECKPOINT
    require("export", modules, f"{command} {'reads ONNX with onnx' if from_onnx else 'traces the model in torch'}")


def train() -> None:
    """The ``i2i-train`` console script: the check, then the torch CLI."""
    try:
        require_train()
    except MissingDependencyError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    from i2i.train.cli import main

    main()
