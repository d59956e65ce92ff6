"""VGG16 feature stack (Simonyan & Zisserman, ICLR 2015) for perceptual losses, without torchvision.

torchvision cannot be installed beside the CPU torch wheel used here, so the convolutional part of
``torchvision.models.vgg16`` is defined in the project with the same module indices: the standard
ImageNet weight file ``vgg16-397923af.pth`` (torchvision's, also the one SN-DCR loads) fits key for
key (``features.0.weight`` … ``features.28.bias``; its ``classifier.*`` entries are not used).

Not a registered network: it is a fixed feature extractor, never a generator in a ``model.pt``.

Weights come from an explicit file, else from the torch hub cache if a torchvision install already
put the file there; nothing is downloaded. :func:`resolve_vgg16_weights` says what to supply.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from i2i.errors import I2IError

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"
# torchvision's config "D": channels per conv, "M" = 2×2 max-pool.
VGG16_CFG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)
# Module index of each ReLU output used by perceptual losses (relu1_2, relu2_2, relu3_3, relu4_3).
RELU1_2, RELU2_2, RELU3_3, RELU4_3 = 3, 8, 15, 22
# ImageNet statistics torchvision's weights were trained with (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return layers


def vgg16_feature_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of every ``features.*`` tensor of torchvision's VGG16 (the file's contract)."""
    shapes = {}
    for i, layer in enumerate(vgg16_layers()):
        if isinstance(layer, nn.Conv2d):
            shapes[f"features.{i}.weight"] = tuple(layer.weight.shape)
            shapes[f"features.{i}.bias"] = (layer.out_channels,)
    return shapes


class VGG16Features(nn.Module):
    """``features[:depth]`` of torchvision's VGG16; ``forward`` returns the outputs at ``taps``.

    Frozen (no gradients to its weights, eval mode); gradients still flow to its input.
    """

    def __init__(self, depth: int = RELU3_3 + 1, taps: Sequence[int] = (RELU1_2, RELU2_2, RELU3_3)) -> None:
        super().__init__()
        if not taps or max(taps) >= depth:
            raise ValueError(f"taps {list(taps)} must lie below depth {depth}")
        self.features = nn.Sequential(*vgg16_layers()[:depth])
        self.taps = tuple(sorted(taps))
        self._init_random()
        self.requires_grad_(False)
        self.eval()

    def _init_random(self) -> None:
        """torchvision's init (kaiming-normal fan_out, zero bias): a random VGG still has sane activations."""
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:  # every VGG conv has one
                    nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # always a fixed feature extractor

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W) -> [(B, C_t, H_t, W_t)]
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
                if i == self.taps[-1]:
                    break
        return feats


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    from i2i.train.reference import load_weights_file  # not at the top: reference imports the net registry

    state = load_weights_file(path)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise I2IError(f"{path} is not a state dict of tensors; supply torchvision's {VGG16_FILE}")
    return state


def load_vgg16_features(path: str | Path, net: VGG16Features) -> VGG16Features:
    """Load torchvision VGG16 weights into ``net``; every ``features.*`` tensor of VGG16 must be present.

    The whole feature stack is checked (names and shapes), not only the part ``net`` uses, so that a
    VGG19 or a batch-norm VGG file is refused instead of silently giving different features.
    """
    path = Path(path)
    state = _read_state_dict(path)
    expected = vgg16_feature_shapes()
    found = {k: tuple(v.shape) for k, v in state.items() if k.startswith("features.")}
    missing = sorted(set(expected) - set(found), key=_natural)
    unexpected = sorted(set(found) - set(expected), key=_natural)
    wrong = sorted((k for k in expected if k in found and found[k] != expected[k]), key=_natural)
    if missing or unexpected or wrong:
        parts = [
            f"{label}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        ]
        raise I2IError(f"{path} is not torchvision's VGG16 ({VGG16_FILE}): {'; '.join(parts)}")
    own = net.state_dict()
    net.load_state_dict({k: state[k] for k in own}, strict=True)
    return net


def _natural(key: str) -> tuple[int, str]:
    parts = key.split(".")
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1, key)


def hub_vgg16_path() -> Path:
    """Where torchvision would have cached the file: ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def resolve_vgg16_weights(explicit: str | Path | None) -> Path | None:
    """The explicit file (which must exist), else the hub-cache copy if present, else None."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise I2IError(f"--vgg-weights {explicit}: no such file (download {VGG16_URL})")
        return path
    cached = hub_vgg16_path()
    return cached if cached.is_file() else None


def missing_weights_message(method: str) -> str:
    return (
        f"{method} needs ImageNet VGG16 weights: pass --vgg-weights PATH/{VGG16_FILE} "
        f"(download {VGG16_URL}) or put the file in {hub_vgg16_path().parent}/ "
        "(--allow-random-vgg trains with a random VGG, for tests only)"
    )


def require_vgg16_weights(weights: str | Path | None, allow_random: bool, method: str) -> Path | None:
    """The weight file to load; None only when ``allow_random``. Otherwise a one-line error naming the
    file to supply: methods call this before any work, so a run never stops late for want of it."""
    path = resolve_vgg16_weights(weights)
    if path is None and not allow_random:
        raise I2IError(missing_weights_message(method))
    return path


def frozen_vgg16(
    weights: str | Path | None, allow_random: bool, method: str, depth: int, taps: Sequence[int]
) -> VGG16Features:
    """A frozen VGG16 ``features[:depth]`` with ImageNet weights from ``weights`` (or the hub cache).

    Without weights it is a one-line error naming the file to supply, unless ``allow_random``
    (tests only: the perceptual terms are then meaningless, and a warning says so)."""
    net = VGG16Features(depth=depth, taps=taps)
    path = require_vgg16_weights(weights, allow_random, method)
    if path is not None:
        return load_vgg16_features(path, net)
    warnings.warn(
        f"{method}: training with a RANDOM VGG16 (--allow-random-vgg): the VGG losses are meaningless", stacklevel=3
    )
    return net


def imagenet_input(images: torch.Tensor) -> torch.Tensor:
    """Generator images in [-1, 1] -> the ImageNet-normalised input the VGG weights expect."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std
