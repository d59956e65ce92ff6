"""The image transformation network of fast style transfer (Johnson, Alahi, Fei-Fei, ECCV 2016, §3.1 and
supplementary Table 1), in the form most re-implementations use (pytorch/examples ``fast_neural_style``):

* reflection padding before every convolution (no zero-padded borders to stylise);
* instance normalisation with affine parameters instead of the paper's batch norm (Ulyanov, Vedaldi,
  Lempitsky, "Instance Normalization: The Missing Ingredient for Fast Stylization", 2016);
* 9×9 stem, two stride-2 3×3 downsamplings, 5 residual blocks of 3×3 convolutions at 4·ngf channels;
* resize-convolution upsampling (nearest ×2, then a 3×3 convolution; Odena et al., Distill 2016)
  instead of fractionally strided convolutions, so the output has no checkerboard artefacts;
* a 9×9 output convolution and tanh: [-1, 1] like every i2i generator (the paper's scaled tanh);
  ``final="clamp"`` clamps to [-1, 1] instead, which is what pytorch/examples' ``stylize`` does to
  its unbounded output when saving (set for imported fast-neural-style files, so they compute it exactly).

Module names follow pytorch/examples' ``TransformerNet`` (conv1, in1, res1…res5, deconv1…3).
ngf=32, 5 blocks: 1.68 M parameters, ≈40 GMAC per 512² frame.
"""

from __future__ import annotations

import torch
from torch import nn

from i2i.errors import I2IError
from i2i.train.nets import register_net


class ConvLayer(nn.Module):
    """Reflection padding k//2, then a convolution (stride s): (B, C, H, W) → (B, C', H/s, W/s)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_ch, out_ch, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.pad(x))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour ×2 upsampling, then a reflection-padded convolution (resize-convolution)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, scale: int = 2) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=scale, mode="nearest")
        self.conv = ConvLayer(in_ch, out_ch, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.upsample(x))


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))) — no ReLU after the sum (Gross & Wilber's variant, as Johnson)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(self.relu(self.in1(self.conv1(x)))))


FINALS = ("tanh", "clamp")  # the output activation: i2i's tanh, or pytorch/examples' clamp to [-1, 1]


@register_net("transformer")
class TransformerNet(nn.Module):
    def __init__(
        self, input_nc: int = 3, output_nc: int = 3, ngf: int = 32, n_blocks: int = 5, final: str = "tanh"
    ) -> None:
        super().__init__()
        if final not in FINALS:
            raise I2IError(f"transformer final {final!r} is not one of {', '.join(FINALS)}")
        self.final = final
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = ConvLayer(input_nc, ngf, kernel_size=9)
        self.in1 = nn.InstanceNorm2d(ngf, affine=True)
        self.conv2 = ConvLayer(ngf, ngf * 2, kernel_size=3, stride=2)
        self.in2 = nn.InstanceNorm2d(ngf * 2, affine=True)
        self.conv3 = ConvLayer(ngf * 2, ngf * 4, kernel_size=3, stride=2)
        self.in3 = nn.InstanceNorm2d(ngf * 4, affine=True)
        self.res = nn.Sequential(*[ResidualBlock(ngf * 4) for _ in range(n_blocks)])
        self.deconv1 = UpsampleConvLayer(ngf * 4, ngf * 2)
        self.in4 = nn.InstanceNorm2d(ngf * 2, affine=True)
        self.deconv2 = UpsampleConvLayer(ngf * 2, ngf)
        self.in5 = nn.InstanceNorm2d(ngf, affine=True)
        self.deconv3 = ConvLayer(ngf, output_nc, kernel_size=9)
        self.size_multiple = 4  # two stride-2 convolutions, undone by two ×2 upsamplings

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1] -> (B, C', H, W) in [-1, 1]
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))  # (B, 2·ngf, H/2, W/2)
        y = self.relu(self.in3(self.conv3(y)))  # (B, 4·ngf, H/4, W/4)
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))  # (B, 2·ngf, H/2, W/2)
        y = self.relu(self.in5(self.deconv2(y)))  # (B, ngf, H, W)
        y = self.deconv3(y)
        return torch.tanh(y) if self.final == "tanh" else y.clamp(-1.0, 1.0)
