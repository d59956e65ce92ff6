"""The format table: one row per artefact i2i makes, read by ``i2i-export build``/``inspect``, the
Triton writer, ``--backend auto`` and ``i2i.load``.

A row says what the artefact is, its suffixes, how its model card is read (``read_card``), and what
builds it (``builder``: a ``module:function`` in ``i2i.export`` taking the artefact it is made from,
resolved only by the exporter so this module stays torch-free). A new format is a row here plus its
builder.

    checkpoint  model.pt       i2i-train                card from the checkpoint's own fields (torch)
    onnx        model.onnx     checkpoint -> ONNX       card in metadata_props["i2i"]
    engine      model.engine   ONNX -> TensorRT engine  card in the model.engine.json sidecar
    triton      a folder       ONNX/engine -> Triton    card of the model file inside the repository
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from i2i.errors import I2IError
from i2i.runtime.card import ModelCard


def _checkpoint_card(path: Path) -> ModelCard:
    from i2i.errors import MissingDependencyError

    try:
        from i2i.train.checkpoint import load_checkpoint
    except ImportError as exc:
        raise MissingDependencyError("torch", "train", f"{exc}; reading {path.name} needs torch") from None
    return ModelCard.from_checkpoint(load_checkpoint(path), where=str(path))


def _engine_card(path: Path) -> ModelCard:
    from i2i.runtime.backends.tensorrt import read_sidecar, sidecar_path

    return ModelCard.from_dict(read_sidecar(path)["card"], where=str(sidecar_path(path)))


def triton_model_file(path: Path) -> Path:
    """The model file of a Triton repository folder (a repository, or one model folder in it)."""
    candidates = sorted(path.glob("*/model.*")) + sorted(path.glob("*/*/model.*"))
    models = [c for c in candidates if c.suffix in (".onnx", ".plan")]
    if not models:
        raise I2IError(f"{path}: no Triton model (model.onnx or model.plan in a version folder) found")
    if len({m.parent.parent for m in models}) > 1:
        raise I2IError(f"{path} holds several Triton models; give one model folder")
    return max(models, key=lambda m: int(m.parent.name) if m.parent.name.isdigit() else -1)


def _triton_card(path: Path) -> ModelCard:
    model = triton_model_file(path)
    if model.suffix == ".onnx":
        return ModelCard.from_onnx(model)
    # Triton names engines model.plan; the writer keeps the sidecar beside it as model.plan.json.
    return _engine_card(model)


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    suffixes: tuple[str, ...]  # empty for a folder
    read_card: Callable[[Path], ModelCard]
    builder: str | None  # "module:function" that makes it; None for checkpoints (i2i-train makes those)
    made_from: str | None  # the format its builder starts from


FORMATS: dict[str, Format] = {
    "checkpoint": Format("checkpoint", "i2i training checkpoint (model.pt)", (".pt",), _checkpoint_card, None, None),
    "onnx": Format(
        "onnx",
        "ONNX model with the i2i card",
        (".onnx",),
        ModelCard.from_onnx,
        "i2i.export.build:build_onnx",
        "checkpoint",
    ),
    "engine": Format(
        "engine",
        "TensorRT engine + .json sidecar (one GPU model and TensorRT version)",
        (".engine", ".plan"),
        _engine_card,
        "i2i.export.build:build_engine",
        "onnx",
    ),
    "triton": Format(
        "triton",
        "Triton Inference Server model repository",
        (),
        _triton_card,
        "i2i.export.build:build_triton",
        "onnx",
    ),
}


def format_of(path: str | Path) -> Format:
    """The format of an artefact by its suffix (a folder is a Triton repository)."""
    path = Path(path)
    if path.is_dir():
        return FORMATS["triton"]
    suffix = path.suffix.lower()
    for row in FORMATS.values():
        if suffix in row.suffixes:
            return row
    known = ", ".join(s for row in FORMATS.values() for s in row.suffixes)
    raise I2IError(
        f"{path.name}: unknown model format {suffix or '(no suffix)'!r}; i2i reads {known} and Triton folders"
    )


def read_card(path: str | Path) -> ModelCard:
    """The model card of any i2i artefact; one clear error when the file is missing or has none."""
    path = Path(path)
    if not path.exists():
        raise I2IError(f"model not found: {path}")
    return format_of(path).read_card(path)
