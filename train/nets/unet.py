"""U-Net generator of pix2pix (Isola et al., 2017).

Built recursively from the innermost block outward, exactly as ``UnetGenerator`` of
pytorch-CycleGAN-and-pix2pix, so parameter names (``model.model.1.model.3...``) match the
released weights. Each of the ``num_downs`` levels halves H and W, so both must be multiples
of ``2**num_downs`` (256 for ``num_downs=8``).
"""

from __future__ import annotations

import torch
from torch import nn

from i2i.errors import I2IError
from i2i.train.nets import register_net
from i2i.train.nets.norm import conv_bias, norm_layer


class UnetSkipConnectionBlock(nn.Module):
    """down → submodule → up, with the block's input concatenated to its output (skip)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias = conv_bias(norm)
        make_norm = norm_layer(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        layers: list[nn.Module]
        if outermost:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, make_norm(outer_nc)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, make_norm(inner_nc), submodule, uprelu, upconv, make_norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # (B, outer_nc + outer_nc, H, W)


@register_net("unet")
class UnetGenerator(nn.Module):
    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError("num_downs must be >= 5 (the U-Net has 4 fixed outer levels + 1 innermost)")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm
        )
        self.num_downs = num_downs
        self.size_multiple = 2**num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H, W)
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):  # exports trace fitting sizes
            check_input_size(x.shape[-2], x.shape[-1], self.num_downs)
        return self.model(x)


def check_input_size(height: int, width: int, num_downs: int) -> None:
    """One line instead of torch's "Expected more than 1 value per channel" (a BatchNorm level that
    shrank to 1×1) or a concatenation size mismatch: each level halves H and W and the skips need
    them back exactly, so both sides must be multiples of 2**num_downs, which is also the smallest."""
    multiple = 2**num_downs
    if height % multiple or width % multiple:
        raise I2IError(
            f"a {height}x{width} (HxW) input does not fit a U-Net of {num_downs} levels (--num-downs "
            f"{num_downs}): sides must be multiples of {multiple}, so the smallest crop is {multiple} "
            f"(--crop-size {multiple}, {2 * multiple}, ...); or lower --num-downs (5 is the least, multiples of 32)"
        )
