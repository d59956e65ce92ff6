"""Import released generators of pytorch-CycleGAN-and-pix2pix, CUT and SN-DCR into the ``model.pt`` format.

The reference repositories save ``net.module.cpu().state_dict()`` as ``latest_net_G.pth``
(``*_net_G_A.pth`` / ``_G_B`` for CycleGAN). Our networks keep the reference module indices, so
a state dict loads key for key once the architecture and its hyper-parameters are known. They are
read off the state dict itself:

* ResNet family (``model.1.weight``): ngf and input channels from the first conv, the number of
  residual blocks from the ``model.K.conv_block.*`` keys, batch vs instance norm from whether the
  norm after the first conv has a ``weight``, dropout from ``conv_block.6`` (dropout shifts the
  second conv from index 5 to 6). CycleGAN's ``resnet``, CUT's anti-aliased ``cut_resnet`` (blur
  ``filt`` buffers, shifted indices) and SN-DCR's ``sn_resnet`` (``u`` and DCT buffers) are then
  told apart by which candidate's key set and shapes match exactly.
* U-Net (``model.model.0.weight``): depth from how deep the ``model.model.1(.model.3)*`` chain goes.

Older released checkpoints carry InstanceNorm ``running_mean``/``running_var``/``num_batches_tracked``
entries that affine-free, stat-free InstanceNorm layers do not have; they are dropped, as the
original loader's ``__patch_instance_norm_state_dict`` does. Missing constant buffers (the blur
kernels, the DCT bases) are regenerated. Anything else that does not fit is an error that lists the
missing and unexpected keys.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from i2i.errors import I2IError
from i2i.train.checkpoint import atomic_save, file_sha256, make_checkpoint
from i2i.train.nets import build_net

# Reference --netG names (and ours for CUT / SN-DCR) accepted by ``i2i-train import --arch``.
REFERENCE_ARCHS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "cut_resnet", "sn_resnet")
LEGACY_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
CONSTANT_BUFFERS = ("filt", "pre_computed_dct_weights")  # fixed by the architecture, safe to regenerate
AA_VARIANTS = ((True, True), (True, False), (False, True), (False, False))  # (antialias, antialias_up)


@dataclass(frozen=True)
class Candidate:
    arch: str  # our registry name
    kwargs: dict[str, Any]
    reference: str  # what the reference calls it, for messages


@dataclass
class Fit:
    candidate: Candidate
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # legacy InstanceNorm statistics
    regenerated: list[str] = field(default_factory=list)  # constant buffers absent from the file

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    @property
    def errors(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.wrong_shape)


@dataclass
class ImportResult:
    output: Path
    arch: str
    arch_kwargs: dict[str, Any]
    reference: str
    dropped: list[str]
    regenerated: list[str]


# --------------------------------------------------------------------------- reading


def load_weights_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors; legacy (pre-1.6, non-zip) files load too.

    Pickled code is refused, never run. Released CycleGAN/pix2pix weights predate the zip format,
    so a non-zip file is tried as well; garbage then fails as "not a torch file".
    """
    path = Path(path)
    if not path.is_file():
        raise I2IError(f"weights file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of junk files: the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # a class or function the safe unpickler will not import
            raise I2IError(f"refusing to load {path}: it holds objects other than tensors") from None
        raise I2IError(f"cannot read {path}: truncated or not a torch file (unpickling failed)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = " ".join(str(exc).split())[:120] or exc.__class__.__name__
        raise I2IError(f"cannot read {path}: truncated or not a torch file ({reason})") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A tensors-only generator state dict from ``path`` (``module.`` prefixes of DataParallel removed)."""
    path = Path(path)
    obj = load_weights_file(path)
    if isinstance(obj, Mapping) and obj.get("format") == "i2i-checkpoint/1":
        raise I2IError(f"{path} is already an i2i checkpoint; no import needed")
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):  # {"state_dict": ...} wrappers
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise I2IError(f"{path} is not a state dict of tensors (a released *_net_G.pth is one)")
    # nn.DataParallel prefixes every key with "module."; the reference strips it before saving.
    return {k.removeprefix("module."): v for k, v in obj.items()}


# --------------------------------------------------------------------------- candidates


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.fullmatch(k))})


def _resnet_candidates(state: Mapping[str, torch.Tensor]) -> Iterator[Candidate]:
    first = state["model.1.weight"]  # (ngf, input_nc, 7, 7)
    convs = _indices(state, r"model\.(\d+)\.weight")
    last = state[f"model.{convs[-1]}.weight"]  # the final 7×7 conv: (output_nc, ngf, 7, 7)
    common = dict(
        input_nc=int(first.shape[1]),
        output_nc=int(last.shape[0]),
        ngf=int(first.shape[0]),
        norm="batch" if "model.2.weight" in state else "instance",
        # Dropout pushes the second conv to index 6 (a 4-D weight; index 6 is otherwise the norm).
        use_dropout=any(k.endswith(".conv_block.6.weight") and v.dim() == 4 for k, v in state.items()),
        n_blocks=len(_indices(state, r"model\.(\d+)\.conv_block\..*")),
    )
    name = f"resnet_{common['n_blocks']}blocks"
    yield Candidate("resnet", common, name)
    for arch in ("cut_resnet", "sn_resnet"):
        for antialias, antialias_up in AA_VARIANTS:
            yield Candidate(arch, dict(common, antialias=antialias, antialias_up=antialias_up), arch)


def _unet_candidates(state: Mapping[str, torch.Tensor]) -> Iterator[Candidate]:
    first = state["model.model.0.weight"]  # (ngf, input_nc, 4, 4)
    outer_up = state["model.model.3.weight"]  # ConvTranspose2d: (2·ngf, output_nc, 4, 4)
    depth = 0
    while f"model.model.1{'.model.3' * (depth + 1)}.model.1.weight" in state:
        depth += 1
    num_downs = depth + 2  # outermost + (depth + 1) nested blocks below it
    kwargs = dict(
        input_nc=int(first.shape[1]),
        output_nc=int(outer_up.shape[1]),
        num_downs=num_downs,
        ngf=int(first.shape[0]),
        norm="batch" if "model.model.1.model.2.weight" in state else "instance",
        # Dropout has no weights, so the file cannot tell; pix2pix trains its U-Net with dropout unless
        # --no_dropout. It acts only when the model runs with test_dropout=True.
        use_dropout=True,
    )
    yield Candidate("unet", kwargs, f"unet_{2**num_downs}")


def candidates(state: Mapping[str, torch.Tensor]) -> list[Candidate]:
    if "model.1.weight" in state:
        return list(_resnet_candidates(state))
    if "model.model.0.weight" in state:
        return list(_unet_candidates(state))
    keys = ", ".join(list(state)[:4])
    raise I2IError(
        "not a pytorch-CycleGAN-and-pix2pix / CUT generator state dict: expected model.1.weight (ResNet) "
        f"or model.model.0.weight (U-Net), found {keys} …"
    )


def _wanted(candidate: Candidate, arch: str | None) -> bool:
    if arch is None:
        return True
    if arch.startswith("resnet_"):
        return candidate.arch == "resnet" and candidate.reference == arch
    if arch.startswith("unet_"):
        return candidate.arch == "unet" and candidate.reference == arch
    return candidate.arch == arch


# --------------------------------------------------------------------------- matching


def _build(candidate: Candidate, device: str = "cpu") -> nn.Module:
    with torch.device(device):
        return build_net(candidate.arch, **candidate.kwargs)


def fit(candidate: Candidate, state: Mapping[str, torch.Tensor]) -> Fit:
    """Compare names and shapes (on the meta device: no memory, no init)."""
    net = _build(candidate, "meta")
    own = net.state_dict()
    modules = dict(net.named_modules())
    result = Fit(candidate)
    for key in state:
        if key in own:
            if tuple(state[key].shape) != tuple(own[key].shape):
                result.wrong_shape.append(key)
            continue
        owner, _, leaf = key.rpartition(".")
        if leaf in LEGACY_NORM_STATS and isinstance(modules.get(owner), nn.InstanceNorm2d):
            result.dropped.append(key)
        else:
            result.unexpected.append(key)
    for key in own:
        if key not in state:
            (result.regenerated if key.rpartition(".")[2] in CONSTANT_BUFFERS else result.missing).append(key)
    return result


def _listing(keys: list[str], limit: int = 6) -> str:
    more = f" … (+{len(keys) - limit})" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def choose(state: Mapping[str, torch.Tensor], arch: str | None = None) -> Fit:
    """The first candidate (CycleGAN before CUT before SN-DCR) whose keys and shapes match exactly."""
    if arch is not None and arch not in REFERENCE_ARCHS:
        raise I2IError(f"unknown --arch {arch!r}; valid: {', '.join(REFERENCE_ARCHS)}")
    found = candidates(state)
    pool = [c for c in found if _wanted(c, arch)]
    if not pool:
        detected = found[0].reference
        raise I2IError(f"--arch {arch}: the file holds a {detected} generator (omit --arch to detect it)")
    fits = [fit(c, state) for c in pool]
    for f in fits:
        if f.exact:
            return f
    best = min(fits, key=lambda f: f.errors)
    parts = [
        f"{label} keys: {_listing(keys)}"
        for label, keys in (
            ("missing", best.missing),
            ("unexpected", best.unexpected),
            ("wrong-shape", best.wrong_shape),
        )
        if keys
    ]
    name = arch or best.candidate.reference
    raise I2IError(f"state dict does not fit {name} {best.candidate.kwargs}: {'; '.join(parts)}")


# --------------------------------------------------------------------------- import


def load_reference(path: str | Path, arch: str | None = None) -> tuple[nn.Module, Fit]:
    """Build the matching generator and load the file into it with strict key matching."""
    state = read_state_dict(path)
    chosen = choose(state, arch)
    net = _build(chosen.candidate)
    own = net.state_dict()
    cleaned = {k: v for k, v in state.items() if k not in chosen.dropped}
    cleaned.update({k: own[k] for k in chosen.regenerated})
    net.load_state_dict(cleaned, strict=True)
    return net.eval(), chosen


def import_reference(
    path: str | Path, output: str | Path | None = None, arch: str | None = None, direction: str = "AtoB"
) -> ImportResult:
    """Convert a released ``*_net_G.pth`` into a ``model.pt`` (default: beside it, same stem)."""
    path = Path(path)
    net, chosen = load_reference(path, arch)
    out = Path(output) if output else path.with_suffix(".pt")
    if out.resolve() == path.resolve():
        raise I2IError(f"-o {out}: would overwrite the input file")
    c = chosen.candidate
    ckpt = make_checkpoint(
        net,
        arch=c.arch,
        arch_kwargs=c.kwargs,
        method="imported",
        direction=direction,
        train_config={
            "imported": {
                "file": path.name,
                "sha256": file_sha256(path),
                "reference_arch": c.reference,
                "dropped_keys": chosen.dropped,
                "regenerated_buffers": chosen.regenerated,
            }
        },
    )
    atomic_save(ckpt, out)
    return ImportResult(out, c.arch, c.kwargs, c.reference, chosen.dropped, chosen.regenerated)
