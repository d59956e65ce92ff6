"""A small generator for CPU real time, trained by distillation (``i2i-train distill``).

Same layout as the CycleGAN ResNet generator (encode ×4 down, residual blocks, decode), with
three changes that matter on a CPU:

* depthwise-separable 3×3 convolutions in the residual blocks and the decoder
  (MobileNet, Howard et al. 2017): ~8× fewer multiply-adds than dense 3×3 at the same width;
* resize-convolution upsampling (nearest ×2, then a convolution; Odena et al., "Deconvolution
  and Checkerboard Artifacts", Distill 2016) instead of stride-2 transposed convolutions, so
  the output has no periodic grid peaks in its spectrum;
* BatchNorm by default: at inference it folds into the preceding convolution (ONNX Runtime and
  OpenVINO do this), so it costs nothing, unlike InstanceNorm's per-frame statistics.

ngf=16, 6 blocks: ≈0.6 GMAC per 256² frame against ≈57 GMAC for the ResNet-9 teacher.
"""

from __future__ import annotations

import torch
from torch import nn

from i2i.train.nets import register_net
from i2i.train.nets.norm import bias_unless_batch, norm_layer


def _separable(in_ch: int, out_ch: int, norm: str) -> list[nn.Module]:
    """Depthwise 3×3 (per channel) then pointwise 1×1 (mixes channels), norm, ReLU."""
    return [
        nn.Conv2d(in_ch, in_ch, kernel_size=3, padding=1, padding_mode="reflect", groups=in_ch, bias=False),
        nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=bias_unless_batch(norm)),
        norm_layer(norm)(out_ch),
        nn.ReLU(inplace=True),
    ]


class SeparableResBlock(nn.Module):
    def __init__(self, dim: int, norm: str) -> None:
        super().__init__()
        layers = _separable(dim, dim, norm)
        layers += _separable(dim, dim, norm)[:-1]  # no ReLU before the residual sum
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@register_net("fast")
class FastGenerator(nn.Module):
    def __init__(
        self, input_nc: int = 3, output_nc: int = 3, ngf: int = 16, n_blocks: int = 6, norm: str = "batch"
    ) -> None:
        super().__init__()
        bias = bias_unless_batch(norm)
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ngf, kernel_size=3, padding=1, padding_mode="reflect", bias=bias),
            make_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):  # (B, ngf·m, H, W) -> (B, 2·ngf·m, H/2, W/2)
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [SeparableResBlock(ngf * 4, norm) for _ in range(n_blocks)]
        for mult in (4, 2):  # resize-convolution: no transposed-conv checkerboard
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), *_separable(ngf * mult, ngf * mult // 2, norm)]
        layers += [nn.Conv2d(ngf, output_nc, kernel_size=3, padding=1, padding_mode="reflect"), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.size_multiple = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H, W)
        return self.model(x)
