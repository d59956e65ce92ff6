"""UNet++ (nested U-Net, Zhou et al., DLMIA 2018), the spectrum generator of STIG (Lee et al., AAAI 2024).

Five encoder levels of widths ngf·(1, 2, 4, 8, 8); node X^{i,j} = VGGBlock(concat(X^{i,0..j-1},
up(X^{i+1,j-1}))) with VGGBlock = (conv3×3, norm, ReLU) × 2, max-pool down, bicubic ×2 up
(as the official STIG ``NestedUNet``), a 1×1 head and 2σ(·) − 1, so outputs lie in (-1, 1) like
the normalised log-magnitude spectra it maps. ``encode`` returns the encoder features
X^{0,0} … X^{4,0} that PatchNCE compares. Registered as ``unetpp``.

``residual=True`` (not in the paper) makes the head predict a correction: y = clamp(x + head(·), -1, 1),
with the head zero-initialised by ``zero_head`` so an untrained network is the identity. The
paper's form must first learn to reproduce its input to ~1e-3 before the refined image is even
recognisable (a log-magnitude error e scales every coefficient by e^(e·span/2)), which takes
thousands of steps; the residual form starts there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i2i.train.nets import register_net
from i2i.train.nets.norm import bias_unless_batch, norm_layer

UPSAMPLE_MODES = ("bicubic", "bilinear", "nearest")


class VGGBlock(nn.Module):
    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        bias = bias_unless_batch(norm)
        make_norm = norm_layer(norm)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=bias),
            make_norm(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=bias),
            make_norm(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_net("unetpp")
class NestedUNet(nn.Module):
    """UNet++ with depth 5; inputs must be multiples of 16 (four 2× poolings)."""

    size_multiple = 16

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "batch",
        upsample: str = "bicubic",
        spectrum_size: int = 0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.upsample = upsample
        self.residual = residual
        # Not used by forward: the spectrum size the network was trained on travels with the
        # checkpoint and the ONNX card, so the runtime can resample other frame sizes' spectra.
        self.spectrum_size = spectrum_size
        w = [ngf, ngf * 2, ngf * 4, ngf * 8, ngf * 8]
        self.encoder = nn.ModuleList(
            [VGGBlock(input_nc if i == 0 else w[i - 1], w[i], w[i], norm) for i in range(5)]
        )  # X^{i,0}
        # X^{i,j} for j ≥ 1: j earlier nodes of level i plus the upsampled node of level i+1.
        self.nodes = nn.ModuleDict(
            {f"{i}_{j}": VGGBlock(w[i] * j + w[i + 1], w[i], w[i], norm) for j in range(1, 5) for i in range(5 - j)}
        )
        self.head = nn.Conv2d(w[0], output_nc, kernel_size=1)
        if residual and input_nc != output_nc:
            raise ValueError("residual=True needs input_nc == output_nc")
        if residual:
            self.zero_head()

    def zero_head(self) -> None:
        """Zero the 1×1 head: with ``residual`` the network is then exactly the identity."""
        nn.init.zeros_(self.head.weight)
        if self.head.bias is not None:
            nn.init.zeros_(self.head.bias)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample == "nearest":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.interpolate(x, scale_factor=2.0, mode=self.upsample, align_corners=False)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features X^{0,0} … X^{4,0}, (B, w_i, H/2^i, W/2^i)."""
        feats = [self.encoder[0](x)]
        for block in self.encoder[1:]:
            feats.append(block(F.max_pool2d(feats[-1], 2)))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid: dict[tuple[int, int], torch.Tensor] = {(i, 0): f for i, f in enumerate(self.encode(x))}
        for j in range(1, 5):
            for i in range(5 - j):
                inputs = [grid[(i, k)] for k in range(j)] + [self._up(grid[(i + 1, j - 1)])]
                grid[(i, j)] = self.nodes[f"{i}_{j}"](torch.cat(inputs, dim=1))
        if self.residual:
            return (x + self.head(grid[(0, 4)])).clamp(-1.0, 1.0)
        return 2.0 * torch.sigmoid(self.head(grid[(0, 4)])) - 1.0
