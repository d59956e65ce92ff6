"""PatchGAN discriminator (pix2pix, CycleGAN): classifies overlapping 70×70 patches (n_layers=3).

Names match ``NLayerDiscriminator`` of pytorch-CycleGAN-and-pix2pix.
"""

from __future__ import annotations

import torch
from torch import nn

from i2i.train.nets import register_net
from i2i.train.nets.norm import conv_bias, norm_layer


@register_net("patchgan")
class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        bias = conv_bias(norm)
        make_norm = norm_layer(norm)
        kw, padw = 4, 1
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):  # the last one keeps stride 1
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(
                    ndf * prev, ndf * mult, kernel_size=kw, stride=2 if n < n_layers else 1, padding=padw, bias=bias
                ),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=kw, stride=1, padding=padw))  # one logit per patch
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, H', W')
        return self.model(x)
