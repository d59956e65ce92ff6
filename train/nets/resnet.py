"""ResNet generator of CycleGAN (Zhu et al., 2017), after Johnson et al. (2016).

c7s1-64, d128, d256, n × R256, u128, u64, c7s1-3, tanh. Module indices and parameter names
match ``ResnetGenerator`` of pytorch-CycleGAN-and-pix2pix (``model.1.weight``,
``model.10.conv_block.1.weight`` ...) so the released ``*_net_G.pth`` weights load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from i2i.train.nets import register_net
from i2i.train.nets.norm import conv_bias, norm_layer

PADDINGS = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}


class ResnetBlock(nn.Module):
    """x + [pad, conv3, norm, ReLU, (dropout), pad, conv3, norm](x); indices as in the reference."""

    def __init__(self, dim: int, norm: str, use_dropout: bool, padding_type: str = "reflect") -> None:
        super().__init__()
        bias = conv_bias(norm)
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = []
        for second in (False, True):
            pad = 0
            if padding_type in PADDINGS:
                layers.append(PADDINGS[padding_type](1))
            else:  # "zero"
                pad = 1
            layers += [nn.Conv2d(dim, dim, kernel_size=3, padding=pad, bias=bias), make_norm(dim)]
            if not second:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@register_net("resnet")
class ResnetGenerator(nn.Module):
    """Encoder (2 stride-2 convs) → ``n_blocks`` residual blocks → decoder (2 transposed convs)."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError("n_blocks must be >= 0")
        bias = conv_bias(norm)
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        n_down = 2
        for i in range(n_down):  # (B, ngf·2^i, H/2^i, W/2^i) -> (B, ngf·2^(i+1), H/2^(i+1), ...)
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_down
        layers += [ResnetBlock(ngf * mult, norm, use_dropout, padding_type) for _ in range(n_blocks)]
        for i in range(n_down):
            mult = 2 ** (n_down - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                make_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        # Two stride-2 stages: H and W must be multiples of 4 for the output to match the input.
        self.size_multiple = 2**n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H, W)
        return self.model(x)
