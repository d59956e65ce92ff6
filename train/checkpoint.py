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
    test_norm     "frame" / "running": which statistics BatchNorm uses at test time (optional, "frame")
    test_norm_reason  why that mode (optional): how the model trained, an explicit option, or import
    test_dropout  whether dropout stays active at test time (optional, False)
    teacher       a distilled student's teacher (optional): name, sha256 and the test_norm /
                  test_dropout its translations were made in, the mode any comparison runs it in
    i2i_version   version of i2i that wrote it

Training state (optimisers, discriminators, step, RNG) lives in a separate ``state.pt``.
Files are written atomically through ``i2i._files.atomic_file``: temp file in the same folder,
fsync, rename.
"""

from __future__ import annotations

import copy
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from i2i import __version__
from i2i._files import atomic_file  # the one atomic-write primitive; imported from here too
from i2i.common import file_sha256 as file_sha256  # re-exported: export and reference import hash files through here
from i2i.errors import I2IError
from i2i.train.nets import build_net

FORMAT = "i2i-checkpoint/1"
REQUIRED_KEYS = ("format", "arch", "arch_kwargs", "state_dict", "io")
# "frame": BatchNorm normalises each frame with its own statistics (the reference test.py without
# --eval, batch size 1); "running": the running statistics of training (the reference --eval).
TEST_NORMS = ("frame", "running")
DEFAULT_TEST_NORM = "frame"
DEFAULT_TEST_DROPOUT = False
# Why imported reference weights run with per-frame statistics.
REFERENCE_TEST_NORM_REASON = (
    "imported reference weights: their test.py runs the generator in train mode at batch size 1, "
    "so BatchNorm normalises each frame by its own statistics"
)
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
    test_norm: str = DEFAULT_TEST_NORM,
    test_dropout: bool = DEFAULT_TEST_DROPOUT,
    test_norm_reason: str | None = None,
    teacher: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of ``generator``. ``test_norm_reason`` says why ``test_norm`` (unset: the
    reference's reason for weights ``train_config`` marks as imported, else that the caller chose it);
    ``teacher``: a distilled student's teacher record (``teacher_record``)."""
    test_norm, test_dropout = check_test_mode(test_norm, test_dropout, where="make_checkpoint")
    if test_norm_reason is None:
        imported = "imported" in (train_config or {})
        test_norm_reason = REFERENCE_TEST_NORM_REASON if imported else f"test_norm {test_norm!r} set by the writer"
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
        "test_norm": test_norm,
        "test_norm_reason": test_norm_reason,
        "test_dropout": test_dropout,
        **({"teacher": dict(teacher)} if teacher is not None else {}),
        "i2i_version": __version__,
    }


def test_norm_for_batch(batch_size: int) -> tuple[str, str]:
    """The test-time BatchNorm mode that matches how a model trained, and why: per-frame statistics
    at batch size 1 (each BatchNorm saw one image: its statistics were that image's, as in the
    reference test.py), running statistics above (BatchNorm saw batches; one frame's statistics are
    not what it learned with, and on real footage they turn dark regions into noise)."""
    if batch_size <= 1:
        return "frame", (
            "trained at batch size 1: each BatchNorm normalised one image by its own statistics, "
            "as per-frame statistics do"
        )
    return "running", (
        f"trained at batch size {batch_size}: BatchNorm saw batch statistics, which its running statistics "
        "estimate (one frame's own statistics are not what it learned with)"
    )


def teacher_record(path: str | Path, ckpt: dict[str, Any], test_norm: str, test_dropout: bool) -> dict[str, Any]:
    """What a student's model.pt records of its teacher: the file, its hash, and the test-time mode
    the teacher ran in for the student's targets (the mode any student-teacher comparison uses)."""
    return {
        "name": Path(path).name,
        "sha256": file_sha256(path),
        "arch": ckpt.get("arch"),
        "test_norm": test_norm,
        "test_dropout": test_dropout,
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
        fmt = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        hint = (
            " (a bare state_dict? import reference weights with `i2i-train import`)" if isinstance(ckpt, dict) else ""
        )
        raise CheckpointError(f"{path} is not an i2i checkpoint: format={fmt!r}, expected {FORMAT!r}{hint}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return ckpt


def check_test_mode(test_norm: Any, test_dropout: Any, *, where: str) -> tuple[str, bool]:
    """Validate a (test_norm, test_dropout) pair; ``where`` names the option or file in the error."""
    if test_norm not in TEST_NORMS:
        raise CheckpointError(f"{where}: test_norm {test_norm!r} is not one of {', '.join(TEST_NORMS)}")
    if not isinstance(test_dropout, bool):
        raise CheckpointError(f"{where}: test_dropout must be true or false, got {test_dropout!r}")
    return test_norm, test_dropout


def resolve_test_mode(
    ckpt: dict[str, Any], test_norm: str | None = None, test_dropout: bool | None = None
) -> tuple[str, bool]:
    """The test-time mode to run ``ckpt`` with: explicit arguments win, else what the checkpoint
    records, else per-frame statistics without dropout (files written before these keys existed)."""
    recorded = test_norm is None and test_dropout is None
    if test_norm is None:
        test_norm = ckpt.get("test_norm", DEFAULT_TEST_NORM)
    if test_dropout is None:
        test_dropout = ckpt.get("test_dropout", DEFAULT_TEST_DROPOUT)
    return check_test_mode(test_norm, test_dropout, where="checkpoint" if recorded else "test-time mode")


class FrameBatchNorm(nn.Module):
    """BatchNorm at test time with the statistics of each frame, as the reference test.py runs it.

    The reference leaves the generator in train mode with batch size 1, so every BatchNorm
    normalises one frame by its own per-channel mean and (biased) variance over H×W, then applies
    BatchNorm's affine weight and bias: instance normalisation with BatchNorm's parameters.
    ``F.instance_norm`` computes exactly that per sample, so a batch of N frames gives each frame
    the result it gets alone, and it exports as one ONNX InstanceNormalization. The running
    statistics are kept as buffers (never updated) so the state dict keeps BatchNorm's keys.
    """

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.num_features = bn.num_features
        self.eps = bn.eps
        self.weight = bn.weight  # shared Parameters (or None when affine=False)
        self.bias = bn.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            buffer = getattr(bn, name, None)
            self.register_buffer(name, buffer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, statistics=per-frame"


class ActiveDropout(nn.Module):
    """Dropout that stays on in eval mode (the reference test.py's generator runs in train mode).

    The mask comes from ``torch.rand_like``, which ONNX expresses as RandomUniformLike, so an
    exported model keeps drawing a fresh mask per frame; ``nn.Dropout`` would vanish from an
    eval-mode export."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * keep * (1.0 / (1.0 - self.p) if self.p < 1.0 else 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}, active at test time"


def _swap_modules(net: nn.Module, test_norm: str, test_dropout: bool) -> None:
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if test_norm == "frame" and isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, FrameBatchNorm(child))
            elif test_dropout and isinstance(child, nn.Dropout) and child.p > 0:
                setattr(parent, name, ActiveDropout(child.p))


def prepare_for_test(
    net: nn.Module,
    *,
    test_norm: str = DEFAULT_TEST_NORM,
    test_dropout: bool = DEFAULT_TEST_DROPOUT,
    inplace: bool = False,
) -> nn.Module:
    """A generator set up for inference in the given test-time mode, in eval mode.

    ``test_norm="frame"`` swaps every ``nn.BatchNorm2d`` for :class:`FrameBatchNorm`;
    ``"running"`` keeps BatchNorm and its running statistics (``eval()``). ``test_dropout=True``
    swaps every ``nn.Dropout`` for :class:`ActiveDropout`. Networks without BatchNorm or dropout come
    back unchanged. Unless ``inplace``, ``net`` itself is left alone (a training loop keeps
    training it) and a deep copy is returned."""
    test_norm, test_dropout = check_test_mode(test_norm, test_dropout, where="prepare_for_test")
    net = net if inplace else copy.deepcopy(net)
    _swap_modules(net, test_norm, test_dropout)
    return net.eval()


def build_generator(
    ckpt: dict[str, Any], *, test_norm: str | None = None, test_dropout: bool | None = None
) -> nn.Module:
    """Rebuild the generator a checkpoint describes, load its weights and set it up for inference
    in the test-time mode of :func:`resolve_test_mode` (arguments, else the checkpoint's record)."""
    test_norm, test_dropout = resolve_test_mode(ckpt, test_norm, test_dropout)
    net = build_net(ckpt["arch"], **ckpt["arch_kwargs"])
    try:
        net.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"weights do not fit arch {ckpt['arch']!r} {ckpt['arch_kwargs']}: {detail}") from None
    return prepare_for_test(net, test_norm=test_norm, test_dropout=test_dropout, inplace=True)


def load_generator(
    path: str | Path, *, test_norm: str | None = None, test_dropout: bool | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """``load_checkpoint`` then ``build_generator``: the generator and the checkpoint dict."""
    ckpt = load_checkpoint(path)
    return build_generator(ckpt, test_norm=test_norm, test_dropout=test_dropout), ckpt
