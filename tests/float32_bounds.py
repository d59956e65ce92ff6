"""How far two float32 evaluations of one network may differ when only the order of their sums does.

A convolution library picks kernels per batch size and per CPU (AVX-512 or AVX2 blocking, Winograd,
im2col + GEMM), so an image run alone and the same image inside a batch are summed in different orders.

One output of a layer sums K products w_i·x_i. Any float32 order is within γ_K·S of the exact sum
(γ_K = K·u/(1 − K·u), u = 2^-24, S = Σ|w_i·x_i|; Higham, Accuracy and Stability of Numerical
Algorithms, §3.1), but that worst case needs every rounding to err the same way. Modelling the
roundings as independent and mean-zero (Higham and Mary, SIAM J. Sci. Comput. 41(5), 2019, Thm 2.4),
|error| ≤ λ·√K·u·S except with probability 2·K·exp(−λ²/2) per sum: λ = 6 makes that below 1e-5 for
K ≤ 1024. Two orders then differ by at most 2·λ·√K·u·S, plus one rounding of the bias added after the
sum (u·|y|). ``reorder_bound`` adds this up over the network's convolutions, each in units of its
output's spread over the image (the mean over channels of σ, what the per-frame normalisation after it
divides by; the last layer, which a tanh follows, in absolute units). A normalisation rescales signal
and error alike, so each layer's share reaches the output in those units, and the shares add.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

UNIT_ROUNDOFF = 2.0**-24
LAMBDA = 6.0


def _share(sums: torch.Tensor, output: torch.Tensor, fan_in: int, last: bool) -> float:
    """One layer's reordering error (2·λ·√K·u·max S + u·max|y|) in units of its output's spread."""
    error = 2 * LAMBDA * math.sqrt(fan_in) * UNIT_ROUNDOFF * float(sums.max())
    error += UNIT_ROUNDOFF * float(output.abs().max())
    if last:
        return error
    channels = output.double().transpose(0, 1).flatten(1)  # (C, H·W)
    # A 1x1 map (a U-Net's innermost level, which no normalisation follows) carries its error at its own scale.
    spread = channels.abs().mean() if channels.shape[1] == 1 else channels.std(dim=1, correction=0).mean()
    return error / float(spread.clamp_min(1e-30))


@torch.no_grad()
def reorder_bound(net: nn.Module, x: torch.Tensor) -> float:
    """The bound above for ``net(x)`` (one image), from the sums ``net`` computes on ``x`` (S in float64)."""
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    shares: list[float] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        assert isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(module.padding, tuple)
        magnitude, weight = inputs[0].double().abs(), module.weight.double().abs()
        if isinstance(module, nn.Conv2d):
            fan_in = weight[0].numel()
            sums = F.conv2d(magnitude, weight, None, module.stride, module.padding, module.dilation, module.groups)
        else:  # at most in_channels · k² products per output of a transposed convolution
            fan_in = weight.shape[0] * weight[0, 0].numel()
            sums = F.conv_transpose2d(magnitude, weight, None, module.stride, module.padding, module.output_padding)
        shares.append(_share(sums, output, fan_in, module is convs[-1]))

    handles = [m.register_forward_hook(hook) for m in convs]
    try:
        net(x)
    finally:
        for handle in handles:
            handle.remove()
    return sum(shares)
