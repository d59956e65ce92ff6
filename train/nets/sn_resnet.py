"""SN-DCR generator: CUT's anti-aliased ResNet with spectral-normalised residual blocks and FCA attention.

Chen Zhao, Wei-Ling Cai, Zheng Yuan, "Spectral Normalization and Dual Contrastive Regularization for
Image-to-Image Translation" (arXiv 2304.11319; official code ChenzhaoNju/SN-DCR, ``networks_sn.py``).

Three pieces on top of :mod:`cut_resnet`:

* :class:`SNConv2d` — the official custom spectral norm (Miyato et al., ICLR 2018): W/σ(W) with σ
  estimated by ONE power iteration per training forward from a persistent buffer ``u`` (1, C_out).
  As in the official ``max_singular_value`` the estimate uses ``W.data``, so σ is a constant for
  autograd (torch's ``spectral_norm`` back-propagates through σ; this one does not).
* :class:`FcaLayer` — FcaNet frequency channel attention (Qin et al., ICCV 2021): adaptive-average-pool
  to 32×32, weight by 16 fixed 2-D DCT-II bases (one per channel group, FcaNet's "top16" set) and
  sum, then FC(C→C/8) ReLU FC(C/8→C) sigmoid, and rescale the channels. Buffer
  ``pre_computed_dct_weights`` (1, C, 32, 32) as in the official state dict.
* :class:`SNResnetBlock` — SN on the FIRST conv of each residual block only (``conv_block.1`` has
  ``weight``, ``bias``, ``u``; ``conv_block.5`` is a plain conv), as in the official code.

Module indices (9 blocks): 0 pad, 1 conv7, 2 norm, 3 ReLU, 4-8 down1 (7 Downsample, 8 Fca),
9-13 down2, 14-22 SN blocks, 23-27 up1 (27 Fca), 28-32 up2, 33 pad, 34 conv7, 35 tanh. The
official NCE layers "0,4,8,12,16" therefore land on the padded input, the down1 conv, Fca1, the
second Downsample and SN block 3 — not on the layers the paper's Fig. 3 names (RGB pixels, the two
down convs, blocks 1 and 5 = "0,4,9,14,18" here). Like the official code, the non-anti-aliased
variants (``antialias=False``) have no FCA layer in that step.

Inference (``eval()``, export) runs no power iteration and never writes ``u``: σ = ‖û W‖₂ with
û = u/‖u‖, which equals the training estimate once the iteration has converged. (The official code
iterates and updates ``u`` at test time too, so its outputs drift slightly from call to call.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from i2i.train.nets import register_net
from i2i.train.nets.cut_resnet import CutResnetGenerator, Downsample, Upsample
from i2i.train.nets.norm import conv_bias, norm_layer
from i2i.train.nets.resnet import PADDINGS

# FcaNet "top16" frequencies on a 7×7 grid, scaled to the 32×32 pooled map (32 // 7 = 4).
FCA_TOP16_U = (0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 2, 3)
FCA_TOP16_V = (0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 2, 5)
FCA_SIZE = 32
FCA_REDUCTION = 8


def _l2n(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return v / (v.norm() + eps)


class SNConv2d(nn.Conv2d):
    """Conv2d whose weight is divided by its spectral norm, estimated by power iteration on ``u``."""

    u: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.register_buffer("u", torch.randn(1, self.out_channels))  # left singular vector estimate

    @torch.no_grad()
    def sigma(self) -> torch.Tensor:
        """σ(W) as a constant. Training: one power iteration, ``u`` updated; eval: ‖û W‖, nothing written."""
        w = self.weight.flatten(1)  # (C_out, C_in·k·k)
        if not self.training:
            return (_l2n(self.u) @ w).norm()
        # At least fp32, even under --amp (a bf16 estimate of σ would rescale the weight by up to
        # ~1 %), and float64 for a float64 module; ``u`` is brought to the same dtype as ``w``.
        dtype = torch.promote_types(w.dtype, torch.float32)
        with torch.autocast(w.device.type, enabled=False):
            w = w.to(dtype)
            v = _l2n(self.u.to(dtype) @ w)  # (1, C_in·k·k)
            u = _l2n(v @ w.t())  # (1, C_out)
            self.u.copy_(u)
            return ((u @ w) * v).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight / self.sigma(), self.bias)


def dct_1d(i: int, freq: int, size: int) -> float:
    """Orthonormal DCT-II basis value: cos(π f (i + ½) / L) / √L, ×√2 for f > 0."""
    value = math.cos(math.pi * freq * (i + 0.5) / size) / math.sqrt(size)
    return value if freq == 0 else value * math.sqrt(2)


def dct_weights(channels: int, size: int = FCA_SIZE) -> torch.Tensor:
    """(1, C, size, size): channel group g (of 16) gets the 2-D basis of frequency (u_g, v_g).

    Channels beyond 16·(C // 16) keep zero weights, as in the official code.
    """
    scale = size // 7
    weights = torch.zeros(1, channels, size, size)
    part = channels // len(FCA_TOP16_U)
    for g, (u, v) in enumerate(zip(FCA_TOP16_U, FCA_TOP16_V)):
        bu = torch.tensor([dct_1d(t, u * scale, size) for t in range(size)])
        bv = torch.tensor([dct_1d(t, v * scale, size) for t in range(size)])
        weights[:, g * part : (g + 1) * part] = bu[:, None] * bv[None, :]
    return weights


def pool_matrix(size_in: int, size_out: int, like: torch.Tensor) -> torch.Tensor:
    """(size_out, size_in) matrix M with M @ v == adaptive_avg_pool1d(v, size_out).

    Window i is [floor(i·n/m), ceil((i+1)·n/m)), the rule of ``adaptive_avg_pool2d``. Written with
    arange/compare/matmul because the exporter's lowering of adaptive_avg_pool2d for a symbolic
    input size (here a feature map smaller or larger than 32) gathers out of range in ONNX Runtime.
    """
    i = torch.arange(size_out, device=like.device)
    start = (i * size_in) // size_out
    end = ((i + 1) * size_in + size_out - 1) // size_out
    pos = torch.arange(size_in, device=like.device)
    inside = ((pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])).to(like.dtype)
    return inside / inside.sum(dim=1, keepdim=True)


class FcaLayer(nn.Module):
    """Channel attention whose squeeze is a set of DCT coefficients instead of the global mean (FcaNet)."""

    pre_computed_dct_weights: torch.Tensor

    def __init__(self, channels: int, reduction: int = FCA_REDUCTION, size: int = FCA_SIZE) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("pre_computed_dct_weights", dct_weights(channels, size))
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> same
        rows = pool_matrix(x.shape[2], self.size, x)  # (32, H)
        cols = pool_matrix(x.shape[3], self.size, x)  # (32, W)
        pooled = rows @ x @ cols.t()  # (B, C, 32, 32) == F.adaptive_avg_pool2d(x, 32)
        squeeze = (pooled * self.pre_computed_dct_weights).sum(dim=(2, 3))  # (B, C)
        return x * self.fc(squeeze)[:, :, None, None]


class SNResnetBlock(nn.Module):
    """x + [pad, SNConv3, norm, ReLU, (dropout), pad, conv3, norm](x); names as the official block."""

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
            conv = nn.Conv2d if second else SNConv2d
            layers += [conv(dim, dim, kernel_size=3, padding=pad, bias=bias), make_norm(dim)]
            if not second:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@register_net("sn_resnet")
class SNResnetGenerator(CutResnetGenerator):
    """SN-DCR's generator; ``forward``/``encode`` behave as in :class:`CutResnetGenerator`."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        antialias: bool = True,
        antialias_up: bool = True,
    ) -> None:
        nn.Module.__init__(self)  # the layer list differs from the parent's; only its methods are shared
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
        for mult in (1, 2):
            out = ngf * mult * 2
            if antialias:
                layers += [
                    nn.Conv2d(ngf * mult, out, kernel_size=3, stride=1, padding=1, bias=bias),
                    make_norm(out),
                    nn.ReLU(True),
                    Downsample(out),
                    FcaLayer(out),
                ]
            else:
                layers += [nn.Conv2d(ngf * mult, out, kernel_size=3, stride=2, padding=1, bias=bias)]
                layers += [make_norm(out), nn.ReLU(True)]
        layers += [SNResnetBlock(ngf * 4, norm, use_dropout, padding_type) for _ in range(n_blocks)]
        for mult in (4, 2):
            out = ngf * mult // 2
            if antialias_up:
                layers += [
                    Upsample(ngf * mult),
                    nn.Conv2d(ngf * mult, out, kernel_size=3, stride=1, padding=1, bias=bias),
                    make_norm(out),
                    nn.ReLU(True),
                    FcaLayer(out),
                ]
            else:
                layers += [
                    nn.ConvTranspose2d(ngf * mult, out, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias)
                ]
                layers += [make_norm(out), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.size_multiple = 4
