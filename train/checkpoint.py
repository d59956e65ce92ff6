"""The ``model.pt`` contract: one self-describing generator per file.

A checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads without running any
pickled code::

    format        "i2i-checkpoint/1"
    arch          registry name of the generator ("resnet", "unet", ...)
    arch_kwargs   keyword arguments that rebuild it with ``build_net(arch, **arch_kwargs)``
    state_dict    the generator's tensors
    io            {"channels", "range": [-1, 1], "color": "RGB", "layout": "NCHW", "size_multiple"}
    method        training method ("pix2pix", "cyclegan", ...)
    direction     "AtoB" / "BtoA"
    train_config  the run's configuration (JSON-compatible)
    metrics       evaluation figures, may be empty
    i2i_version   version of i2i that wrote it

Training state (optimisers, discriminators, step, RNG) lives in a separate ``state.pt``.
Files are written atomically through ``i2i._files.atomic_file``: temp file in the same folder,
fsync, rename.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from i2i import __version__
from i2i._files import atomic_file  # the one atomic-write primitive; imported from here too
from i2i.errors import I2IError
from i2i.train.nets import build_net

FORMAT = "i2i-checkpoint/1"
REQUIRED_KEYS = ("format", "arch", "arch_kwargs", "state_dict", "io")
# torch words it two ways: "Unsupported global: GLOBAL exec was not an allowed global ..." and
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
_UNSUPPORTED_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.]+)", re.IGNORECASE)


class CheckpointError(I2IError):
    pass


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save through ``atomic_file``: never a half-written file."""
    with atomic_file(path) as f:
        torch.save(obj, f)
    return Path(path)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Bytes (or UTF-8 text) through ``atomic_file``: never a half-written file. A write failure is
    the OSError itself (naming ``path``), for callers that tell "disk full" from other errors."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def make_checkpoint(
    generator: nn.Module,
    *,
    arch: str,
    arch_kwargs: dict[str, Any],
    method: str,
    direction: str = "AtoB",
    train_config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    return {
        "format": FORMAT,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs),
        "state_dict": state,
        "io": {
            "channels": int(arch_kwargs.get("input_nc", 3)),
            "out_channels": int(arch_kwargs.get("output_nc", 3)),
            "range": [-1.0, 1.0],
            "color": "RGB",
            "layout": "NCHW",
            "size_multiple": int(getattr(generator, "size_multiple", 1)),
        },
        "method": method,
        "direction": direction,
        "train_config": dict(train_config or {}),
        "metrics": dict(metrics or {}),
        "i2i_version": __version__,
    }


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``model.pt``; every failure is one clear line."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the model.pt file inside it")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no directory
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or not a torch file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses pickles that carry code or unknown classes: they are never executed.
        # Only the global's name is kept: torch's advice that follows it (add_safe_globals, or
        # weights_only=False) would tell the user to allow-list exactly what we refuse.
        found = _UNSUPPORTED_GLOBAL.search(str(exc))
        detail = f"unsupported global {found.group(1)}" if found else "unsupported pickle content"
        raise CheckpointError(f"refusing to load {path}: it holds objects other than tensors ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = " ".join(str(exc).split())[:160] or exc.__class__.__name__
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or not a torch file ({reason})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        hint = (
            " (a bare state_dict? import reference weights with `i2i-train import`)" if isinstance(ckpt, dict) else ""
        )
        raise CheckpointError(f"{path} is not an i2i checkpoint: format={found!r}, expected {FORMAT!r}{hint}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return ckpt


def build_generator(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the generator a checkpoint describes, load its weights, switch to eval mode."""
    net = build_net(ckpt["arch"], **ckpt["arch_kwargs"])
    try:
        net.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"weights do not fit arch {ckpt['arch']!r} {ckpt['arch_kwargs']}: {detail}") from None
    return net.eval()


def load_generator(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    ckpt = load_checkpoint(path)
    return build_generator(ckpt), ckpt


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
