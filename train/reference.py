"""Import released generators of pytorch-CycleGAN-and-pix2pix, CUT, SN-DCR, pytorch/examples
fast-neural-style and STIG into the ``model.pt`` format.

The reference repositories save ``net.module.cpu().state_dict()`` as ``latest_net_G.pth``
(``*_net_G_A.pth`` / ``_G_B`` for CycleGAN). Our networks keep the reference module indices, so
a state dict loads key for key once the architecture and its hyper-parameters are known. They are
read off the state dict itself:

* ResNet family (``model.1.weight``): ngf and input channels from the first conv, the number of
  residual blocks from the ``model.K.conv_block.*`` keys, the norm from whether the norm after the
  first conv has a ``weight`` (batch) or else the first conv a bias (instance; none without, the
  reference's ``use_bias`` rule), dropout from ``conv_block.6`` (dropout shifts the
  second conv from index 5 to 6). CycleGAN's ``resnet``, CUT's anti-aliased ``cut_resnet`` (blur
  ``filt`` buffers, shifted indices) and SN-DCR's ``sn_resnet`` (``u`` and DCT buffers) are then
  told apart by which candidate's key set and shapes match exactly.
* U-Net (``model.model.0.weight``): depth from how deep the ``model.model.1(.model.3)*`` chain goes.

Two layouts are renamed onto i2i's networks first (:data:`LAYOUTS`), and their values mapped so
the imported model computes what the original does:

* pytorch/examples fast-neural-style (``*.pth`` / ``*.model``, ``conv1.conv2d.weight``): its
  ``TransformerNet`` is i2i's ``transformer`` up to key names (``res1`` → ``res.0``,
  ``deconv1.conv2d`` → ``deconv1.conv.conv2d``) and value range: it maps [0, 255] images to
  [0, 255] with no final activation (its ``stylize`` clamps to [0, 255] when saving), i2i maps
  [-1, 1] to [-1, 1]. The [-1, 1] → [0, 255] input scaling is folded into the first conv exactly;
  the output scaling into the last conv, and the net is built with ``final="clamp"``, so it
  computes clamp(u, -1, 1) with u = its output / 127.5 − 1: what the original saves, to float
  precision. (i2i-trained style nets end in tanh.)
* STIG (``conv0_0.conv1.weight``, bare or under the official checkpoint's ``Generator`` key):
  the official ``NestedUNet`` is i2i's ``unetpp`` up to key names and one thing: its convolutions
  keep a bias before every BatchNorm. A bias b before a BatchNorm changes nothing but the running
  mean (batch or per-frame statistics subtract it again), so it is folded exactly into
  ``running_mean − b``. The spectrum size is the official default (256) unless given. Its
  ``img2fft`` calls ``torch.fft.fftshift`` with no ``dim``, which rolls the channel axis too (and
  ``polar2img``'s ``ifftshift`` rolls it back): the official network's input channel c holds the
  spectrum of image channel (c − C//2) mod C ([2, 0, 1] for RGB), and its output channel c that of
  the same image channel. i2i shifts only the spatial axes, so the import permutes the first
  conv's input channels and the head's outputs to match: i2i's pipeline then computes the
  official one (up to the deviations listed in ``i2i.train.spectral``).

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from i2i.errors import I2IError
from i2i.train.checkpoint import atomic_save, file_sha256, make_checkpoint
from i2i.train.nets import build_net

# Reference --netG names (and ours for CUT / SN-DCR / the other layouts) accepted by ``i2i-train import --arch``.
REFERENCE_ARCHS = (
    "resnet_9blocks",
    "resnet_6blocks",
    "unet_256",
    "unet_128",
    "cut_resnet",
    "sn_resnet",
    "fast_neural_style",
    "stig",
)
STIG_SPECTRUM_SIZE = 256  # the official --size default: the spectrum side an official refiner was trained at
LEGACY_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
CONSTANT_BUFFERS = ("filt", "pre_computed_dct_weights")  # fixed by the architecture, safe to regenerate
AA_VARIANTS = ((True, True), (True, False), (False, True), (False, False))  # (antialias, antialias_up)


@dataclass(frozen=True)
class Candidate:
    arch: str  # our registry name
    kwargs: dict[str, Any]
    reference: str  # what the reference calls it, for messages
    method: str = "imported"  # what model.pt records ("stig" makes the card see a refiner)


@dataclass
class Fit:
    candidate: Candidate
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # legacy InstanceNorm statistics
    regenerated: list[str] = field(default_factory=list)  # constant buffers absent from the file
    notes: list[str] = field(default_factory=list)  # value mappings of the layout (see LAYOUTS)

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
    notes: list[str] = field(default_factory=list)  # value mappings applied (folded biases, ranges)


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
    for wrapper in ("state_dict", "Generator"):  # {"state_dict": ...}; the official STIG checkpoint
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise I2IError(f"{path} is not a state dict of tensors (a released *_net_G.pth is one)")
    # nn.DataParallel prefixes every key with "module."; the reference strips it before saving.
    return {k.removeprefix("module."): v for k, v in obj.items()}


# --------------------------------------------------------------------------- other layouts


@dataclass(frozen=True)
class Layout:
    """A file layout other than pix2pix/CUT's: ``convert`` renames its keys onto an i2i network
    and maps its values (returning notes on what it mapped); ``file_key`` names an i2i key as the
    file would, for the list of keys that do not fit."""

    name: str
    marker: str  # a key that only this layout has
    convert: Callable[[dict[str, torch.Tensor]], tuple[dict[str, torch.Tensor], list[str]]]
    file_key: Callable[[str], str]
    candidates: Callable[[Mapping[str, torch.Tensor]], Iterator[Candidate]]


PIXEL_HALF_RANGE = 127.5  # [-1, 1] ↔ [0, 255]: v255 = 127.5 · (v + 1)


def _fast_neural_style_to_i2i(key: str) -> str:
    key = re.sub(r"^res(\d+)\.", lambda m: f"res.{int(m.group(1)) - 1}.", key)
    return re.sub(r"^deconv([12])\.conv2d\.", r"deconv\1.conv.conv2d.", key)


def _fast_neural_style_key(key: str) -> str:
    key = re.sub(r"^res\.(\d+)\.", lambda m: f"res{int(m.group(1)) + 1}.", key)
    return re.sub(r"^deconv([12])\.conv\.conv2d\.", r"deconv\1.conv2d.", key)


def _from_fast_neural_style(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename, then fold the value ranges into the first and last convolutions (exact affine maps)."""
    out = {_fast_neural_style_to_i2i(k): v for k, v in state.items()}
    notes = []
    w, b = out.get("conv1.conv2d.weight"), out.get("conv1.conv2d.bias")
    if w is not None and b is not None:  # conv(127.5·(x + 1)) = conv'(x); reflection padding keeps constants
        w64 = w.double()
        out["conv1.conv2d.bias"] = (b.double() + PIXEL_HALF_RANGE * w64.sum(dim=(1, 2, 3))).to(b.dtype)
        out["conv1.conv2d.weight"] = (PIXEL_HALF_RANGE * w64).to(w.dtype)
        notes.append("input: i2i's [-1, 1] mapped to its [0, 255] inside conv1")
    w, b = out.get("deconv3.conv2d.weight"), out.get("deconv3.conv2d.bias")
    if w is not None and b is not None:  # u = y255 / 127.5 − 1, then the net's clamp (module docstring)
        out["deconv3.conv2d.weight"] = (w.double() / PIXEL_HALF_RANGE).to(w.dtype)
        out["deconv3.conv2d.bias"] = (b.double() / PIXEL_HALF_RANGE - 1.0).to(b.dtype)
        notes.append("output: its [0, 255] mapped to [-1, 1] inside deconv3, then clamped to [-1, 1] as it saves")
    return out, notes


def _fast_neural_style_candidates(state: Mapping[str, torch.Tensor]) -> Iterator[Candidate]:
    first = state["conv1.conv2d.weight"]  # (ngf, input_nc, 9, 9)
    last = state.get("deconv3.conv2d.weight")  # (output_nc, ngf, 9, 9)
    kwargs = dict(
        input_nc=int(first.shape[1]),
        output_nc=int(last.shape[0]) if last is not None else 3,
        ngf=int(first.shape[0]),
        n_blocks=len(_indices(state, r"res\.(\d+)\..*")),
        final="clamp",  # its stylize clamps the output when saving; i2i's own style nets end in tanh
    )
    yield Candidate("transformer", kwargs, "fast_neural_style")


_STIG_PARTS = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4"}  # VGGBlock → i2i's body indices
_STIG_FILE = re.compile(r"conv(\d)_(\d)\.(conv1|bn1|conv2|bn2)\.(\w+)")
_STIG_I2I = re.compile(r"(?:encoder\.(\d)|nodes\.(\d)_(\d))\.body\.([0134])\.(\w+)")


def _stig_to_i2i(key: str) -> str:
    found = _STIG_FILE.fullmatch(key)
    if found:
        i, j, part, leaf = found.groups()
        node = f"encoder.{i}" if j == "0" else f"nodes.{i}_{j}"
        return f"{node}.body.{_STIG_PARTS[part]}.{leaf}"
    return "head." + key.removeprefix("final.") if key.startswith("final.") else key


def _stig_key(key: str) -> str:
    found = _STIG_I2I.fullmatch(key)
    if found:
        level, i, j, index, leaf = found.groups()
        part = {v: k for k, v in _STIG_PARTS.items()}[index]
        return f"conv{level}_0.{part}.{leaf}" if level is not None else f"conv{i}_{j}.{part}.{leaf}"
    return "final." + key.removeprefix("head.") if key.startswith("head.") else key


def _from_stig(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename, then fold each conv bias into the running mean of the BatchNorm after it."""
    out = {_stig_to_i2i(k): v for k, v in state.items()}
    folded = 0
    for key in [k for k in out if _STIG_I2I.fullmatch(k) and k.endswith(".bias")]:
        body, _, rest = key.rpartition(".body.")
        index = rest.split(".")[0]
        mean = f"{body}.body.{int(index) + 1}.running_mean"
        if index in ("0", "3") and mean in out:
            # BN(conv(x) + b) = BN'(conv(x)) with running_mean' = running_mean − b; batch and
            # per-frame statistics subtract b with the mean.
            out[mean] = out[mean] - out.pop(key)
            folded += 1
    notes = [f"{folded} conv biases before BatchNorm folded into the running means"] if folded else []
    if _unroll_stig_channels(out):
        notes.append("channels: the official whole-tensor fftshift's channel roll folded into the first and last convs")
    return out, notes


def stig_channel_roll(channels: int) -> list[int]:
    """``roll[c]``: the image channel whose spectrum the official STIG network sees (and writes) at
    channel c. ``torch.fft.fftshift`` with no ``dim`` rolls every axis by half its length, the
    channel axis included: out[c] = in[(c − C//2) mod C], so [2, 0, 1] for RGB."""
    return [(c - channels // 2) % channels for c in range(channels)]


def _unroll_stig_channels(state: dict[str, torch.Tensor]) -> bool:
    """Permute the first conv's input channels and the 1×1 head's outputs so a network fed spectra
    in image channel order computes what the official one computes on rolled spectra; the
    reconstruction then needs no roll back. False where the keys are absent (the fit reports them)."""
    first, head_w, head_b = (state.get(k) for k in ("encoder.0.body.0.weight", "head.weight", "head.bias"))
    if first is None or head_w is None:
        return False
    # i2i's input channel k must meet the official weights of the channel that held image channel k.
    to_input = _inverse(stig_channel_roll(int(first.shape[1])))
    state["encoder.0.body.0.weight"] = first[:, to_input].contiguous()
    # i2i's output channel k is image channel k: the official output channel that held it.
    to_output = _inverse(stig_channel_roll(int(head_w.shape[0])))
    state["head.weight"] = head_w[to_output].contiguous()
    if head_b is not None:
        state["head.bias"] = head_b[to_output].contiguous()
    return True


def _inverse(permutation: list[int]) -> list[int]:
    inverse = [0] * len(permutation)
    for position, value in enumerate(permutation):
        inverse[value] = position
    return inverse


def _stig_candidates(state: Mapping[str, torch.Tensor]) -> Iterator[Candidate]:
    first = state["encoder.0.body.0.weight"]  # (ngf, input_nc, 3, 3)
    head = state.get("head.weight")  # (output_nc, ngf, 1, 1)
    kwargs = dict(
        input_nc=int(first.shape[1]),
        output_nc=int(head.shape[0]) if head is not None else 3,
        ngf=int(first.shape[0]),
        norm="batch",
        upsample="bicubic",
        spectrum_size=STIG_SPECTRUM_SIZE,
        residual=False,
    )
    yield Candidate("unetpp", kwargs, "stig", method="stig")


LAYOUTS = (
    Layout(
        "pytorch/examples fast-neural-style",
        "deconv1.conv2d.weight",
        _from_fast_neural_style,
        _fast_neural_style_key,
        _fast_neural_style_candidates,
    ),
    Layout("STIG", "conv0_0.conv1.weight", _from_stig, _stig_key, _stig_candidates),
)


def detect_layout(state: Mapping[str, torch.Tensor]) -> Layout | None:
    """The layout whose marker key the file holds; None for the pix2pix/CUT layout."""
    return next((layout for layout in LAYOUTS if layout.marker in state), None)


# --------------------------------------------------------------------------- candidates


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.fullmatch(k))})


def _norm_of(state: Mapping[str, torch.Tensor], norm_weight: str, first_conv_bias: str) -> str:
    """batch if the norm after the first conv has a weight; else the reference's ``use_bias`` rule
    tells the two weightless ones apart: a conv bias is kept only before an InstanceNorm, so a
    first conv without one was saved with ``--norm none``."""
    if norm_weight in state:
        return "batch"
    return "instance" if first_conv_bias in state else "none"


def _resnet_candidates(state: Mapping[str, torch.Tensor]) -> Iterator[Candidate]:
    first = state["model.1.weight"]  # (ngf, input_nc, 7, 7)
    convs = _indices(state, r"model\.(\d+)\.weight")
    last = state[f"model.{convs[-1]}.weight"]  # the final 7×7 conv: (output_nc, ngf, 7, 7)
    common = dict(
        input_nc=int(first.shape[1]),
        output_nc=int(last.shape[0]),
        ngf=int(first.shape[0]),
        norm=_norm_of(state, "model.2.weight", "model.1.bias"),
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
        norm=_norm_of(state, "model.model.1.model.2.weight", "model.model.0.bias"),
        # Dropout has no weights, so the file cannot tell; pix2pix trains its U-Net with dropout unless
        # --no_dropout. It acts only when the model runs with test_dropout=True.
        use_dropout=True,
    )
    yield Candidate("unet", kwargs, f"unet_{2**num_downs}")


def candidates(state: Mapping[str, torch.Tensor], layout: Layout | None = None) -> list[Candidate]:
    if layout is not None:
        return list(layout.candidates(state))
    if "model.1.weight" in state:
        return list(_resnet_candidates(state))
    if "model.model.0.weight" in state:
        return list(_unet_candidates(state))
    keys = ", ".join(list(state)[:4])
    raise I2IError(
        "not a generator state dict i2i can import: expected model.1.weight (pix2pix/CUT ResNet), "
        "model.model.0.weight (U-Net), deconv1.conv2d.weight (fast-neural-style) or conv0_0.conv1.weight "
        f"(STIG), found {keys} …"
    )


def _wanted(candidate: Candidate, arch: str | None) -> bool:
    if arch is None:
        return True
    if arch.startswith("resnet_"):
        return candidate.arch == "resnet" and candidate.reference == arch
    if arch.startswith("unet_"):
        return candidate.arch == "unet" and candidate.reference == arch
    if arch in ("fast_neural_style", "stig"):
        return candidate.reference == arch
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


def choose(state: Mapping[str, torch.Tensor], arch: str | None = None, layout: Layout | None = None) -> Fit:
    """The first candidate (CycleGAN before CUT before SN-DCR) whose keys and shapes match exactly.
    ``state`` is in i2i's key names (``layout.convert`` applied); messages use the file's."""
    if arch is not None and arch not in REFERENCE_ARCHS:
        raise I2IError(f"unknown --arch {arch!r}; valid: {', '.join(REFERENCE_ARCHS)}")
    found = candidates(state, layout)
    pool = [c for c in found if _wanted(c, arch)]
    if not pool:
        detected = found[0].reference
        raise I2IError(f"--arch {arch}: the file holds a {detected} generator (omit --arch to detect it)")
    fits = [fit(c, state) for c in pool]
    for f in fits:
        if f.exact:
            return f
    best = min(fits, key=lambda f: f.errors)
    named = layout.file_key if layout is not None else (lambda key: key)
    parts = [
        f"{label} keys: {_listing([named(k) for k in keys])}"
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


def _with_spectrum_size(candidate: Candidate, spectrum_size: int) -> Candidate:
    if candidate.arch != "unetpp":
        raise I2IError(f"spectrum_size applies to STIG refiners only, not to a {candidate.reference} generator")
    if spectrum_size < 16 or spectrum_size % 16:
        raise I2IError(f"spectrum_size {spectrum_size}: STIG's UNet++ needs a positive multiple of 16")
    return Candidate(candidate.arch, {**candidate.kwargs, "spectrum_size": spectrum_size}, candidate.reference, "stig")


def load_reference(
    path: str | Path, arch: str | None = None, spectrum_size: int | None = None
) -> tuple[nn.Module, Fit]:
    """Build the matching generator and load the file into it with strict key matching."""
    state = read_state_dict(path)
    layout = detect_layout(state)
    notes: list[str] = []
    if layout is not None:
        state, notes = layout.convert(state)
    chosen = choose(state, arch, layout)
    chosen.notes = notes
    if spectrum_size is not None:
        chosen.candidate = _with_spectrum_size(chosen.candidate, spectrum_size)
    net = _build(chosen.candidate)
    own = net.state_dict()
    cleaned = {k: v for k, v in state.items() if k not in chosen.dropped}
    cleaned.update({k: own[k] for k in chosen.regenerated})
    net.load_state_dict(cleaned, strict=True)
    return net.eval(), chosen


def import_reference(
    path: str | Path,
    output: str | Path | None = None,
    arch: str | None = None,
    direction: str = "AtoB",
    spectrum_size: int | None = None,
) -> ImportResult:
    """Convert a released ``*_net_G.pth`` into a ``model.pt`` (default: beside it, same stem).
    ``spectrum_size``: the square spectrum side a STIG refiner was trained at (default 256)."""
    path = Path(path)
    net, chosen = load_reference(path, arch, spectrum_size)
    out = Path(output) if output else path.with_suffix(".pt")
    if out.resolve() == path.resolve():
        raise I2IError(f"-o {out}: would overwrite the input file")
    c = chosen.candidate
    ckpt = make_checkpoint(
        net,
        arch=c.arch,
        arch_kwargs=c.kwargs,
        method=c.method,
        direction=direction,
        train_config={
            "imported": {
                "file": path.name,
                "sha256": file_sha256(path),
                "reference_arch": c.reference,
                "dropped_keys": chosen.dropped,
                "regenerated_buffers": chosen.regenerated,
                "value_mappings": chosen.notes,
            }
        },
    )
    atomic_save(ckpt, out)
    return ImportResult(out, c.arch, c.kwargs, c.reference, chosen.dropped, chosen.regenerated, chosen.notes)
