"""Normalisation layers named as in pytorch-CycleGAN-and-pix2pix.

InstanceNorm has no affine parameters and no running statistics (affine=False,
track_running_stats=False), so checkpoints of the reference code load key for key.
Convolutions keep their bias only before an InstanceNorm: before a BatchNorm (which has its own
shift) and with ``norm="none"`` they have none. The second is the reference's ``use_bias`` rule
(``norm_layer.func == nn.InstanceNorm2d``; its "none" layer is a lambda, so the test is false),
which files saved with ``--norm none`` by the reference code rely on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from i2i.errors import I2IError

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "none":
        return lambda _channels: nn.Identity()
    raise I2IError(f"unknown norm {kind!r}; valid: {', '.join(NORMS)}")


def conv_bias(kind: str) -> bool:
    """Whether a conv before a ``kind`` norm has a bias in the reference networks: instance norm only
    (its ``use_bias``). The reference-layout nets (unet, resnet, patchgan, cut_resnet, sn_resnet) use it."""
    return kind == "instance"


def bias_unless_batch(kind: str) -> bool:
    """A bias wherever no BatchNorm follows: the rule of i2i's own nets (fast, nested_unet), which
    have no reference counterpart whose files must load, so their checkpoints stay as they were."""
    return kind != "batch"


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """N(0, gain) for conv/linear weights, N(1, gain) for BatchNorm scales, zero biases (pix2pix/CycleGAN)."""

    def init(m: nn.Module) -> None:
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and isinstance(weight, torch.Tensor):
            nn.init.normal_(weight, 0.0, gain)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
        elif isinstance(m, nn.BatchNorm2d) and isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor):
            nn.init.normal_(weight, 1.0, gain)
            nn.init.zeros_(bias)

    net.apply(init)
    return net
