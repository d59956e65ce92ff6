"""ResNet generator of CUT / FastCUT with anti-aliased resampling (Park et al., ECCV 2020).

CycleGAN's ResNet generator (``resnet.py``) with the strided convolutions replaced by the
anti-aliased resampling of Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019):

* down step = conv3×3 stride 1, norm, ReLU, :class:`Downsample` (blur [1,2,1]⊗[1,2,1]/16, reflect
  padding, stride 2, depthwise);
* up step = :class:`Upsample` (depthwise transposed conv with [1,3,3,1]⊗[1,3,3,1]/64·4 after a
  replicate pad of 1, then cropped), conv3×3 stride 1, norm, ReLU.

Module indices and names match ``ResnetGenerator`` of taesungp/contrastive-unpaired-translation
(``model.1.weight``, ``model.7.filt``, ``model.12.conv_block.1.weight`` ...), so released
``latest_net_G.pth`` files load key for key. For 9 blocks the indices are: 0 pad, 1 conv7, 2 norm,
3 ReLU, 4-7 down1 (7 = Downsample), 8-11 down2, 12-20 ResnetBlocks, 21-24 up1 (21 = Upsample),
25-28 up2, 29 pad, 30 conv7, 31 tanh. CUT's default NCE layers "0,4,8,12,16" are therefore the
padded input, the two down convs, the first and the fifth residual block.

``antialias=False`` / ``antialias_up=False`` are the reference's ``--no_antialias`` /
``--no_antialias_up`` (strided conv / ConvTranspose2d(k3, s2, p1, op1)); with both off the network
is CycleGAN's generator, indices included.

``forward(x)`` is the plain translation that export traces; ``forward(x, layers, encode_only=True)``
(the reference call) or :meth:`encode` return the encoder features PatchNCE needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from i2i.train.nets import register_net
from i2i.train.nets.norm import conv_bias, norm_layer
from i2i.train.nets.resnet import ResnetBlock

NormFactory = Callable[[int], nn.Module]
BINOMIAL = {3: (1.0, 2.0, 1.0), 4: (1.0, 3.0, 3.0, 1.0)}


def binomial_filter(size: int) -> torch.Tensor:
    """Normalised 2-D binomial kernel a·aᵀ/Σ (the blur of anti-aliased CNNs)."""
    a = torch.tensor(BINOMIAL[size])
    filt = a[:, None] * a[None, :]
    return filt / filt.sum()


class Downsample(nn.Module):
    """Blur then subsample by 2, per channel: removes the aliasing a strided conv introduces."""

    filt: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Persistent buffer: the reference saves it, so released state dicts carry ``model.7.filt``.
        self.register_buffer("filt", binomial_filter(3)[None, None].repeat(channels, 1, 1, 1))  # (C, 1, 3, 3)
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    """×2 upsampling by a fixed [1,3,3,1] transposed-conv kernel: a smooth, learned-filter-free zoom."""

    filt: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        # ×stride² keeps the mean: each output pixel receives a quarter of the kernel taps.
        self.register_buffer("filt", (binomial_filter(4) * 4)[None, None].repeat(channels, 1, 1, 1))  # (C, 1, 4, 4)
        self.pad = nn.ReplicationPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, 2H, 2W)
        y = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]  # the reference crops [1:] then [:-1] for an even kernel


def sequential_features(
    model: nn.Sequential, x: torch.Tensor, layers: Sequence[int], encode_only: bool = True
) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
    """Outputs of ``model[i]`` for each i in ``layers`` (ascending order, as the reference returns them).

    ``encode_only`` stops after the deepest requested layer, so the decoder is not run for PatchNCE.
    """
    wanted = set(layers)
    if not wanted:
        raise ValueError("layers must name at least one module index")
    if max(wanted) >= len(model) or min(wanted) < 0:
        raise ValueError(f"layer ids must lie in [0, {len(model) - 1}], got {sorted(wanted)}")
    last = max(wanted)
    feats = []
    for i, layer in enumerate(model):
        x = layer(x)
        if i in wanted:
            feats.append(x)
        if encode_only and i == last:
            return feats
    return x, feats


@register_net("cut_resnet")
class CutResnetGenerator(nn.Module):
    """c7s1-ngf, 2 anti-aliased down steps, ``n_blocks`` residual blocks, 2 anti-aliased up steps, c7s1, tanh."""

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
        for mult in (1, 2):  # (B, ngf·m, H, W) -> (B, 2·ngf·m, H/2, W/2)
            layers += down_step(ngf * mult, ngf * mult * 2, make_norm, bias, antialias)
        layers += [ResnetBlock(ngf * 4, norm, use_dropout, padding_type) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += up_step(ngf * mult, ngf * mult // 2, make_norm, bias, antialias_up)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        # Two ×2 down steps: H and W must be multiples of 4 (the blur pool rounds odd sizes up).
        self.size_multiple = 4

    def forward(
        self, x: torch.Tensor, layers: Sequence[int] | None = None, encode_only: bool = False
    ) -> torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        if not layers:  # the exported path: a plain Sequential
            return self.model(x)  # (B, C, H, W) -> (B, C', H, W)
        return sequential_features(self.model, x, layers, encode_only)

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """Features after each module in ``layers``; the decoder is not run."""
        feats = sequential_features(self.model, x, layers, encode_only=True)
        assert isinstance(feats, list)
        return feats


def down_step(in_ch: int, out_ch: int, make_norm: NormFactory, bias: bool, antialias: bool) -> list[nn.Module]:
    if not antialias:
        return [
            nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, bias=bias),
            make_norm(out_ch),
            nn.ReLU(True),
        ]
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias),
        make_norm(out_ch),
        nn.ReLU(True),
        Downsample(out_ch),
    ]


def up_step(in_ch: int, out_ch: int, make_norm: NormFactory, bias: bool, antialias_up: bool) -> list[nn.Module]:
    if not antialias_up:
        return [
            nn.ConvTranspose2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias),
            make_norm(out_ch),
            nn.ReLU(True),
        ]
    return [
        Upsample(in_ch),
        nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias),
        make_norm(out_ch),
        nn.ReLU(True),
    ]


class AntialiasedPatchGAN(nn.Module):
    """CUT's ``basic`` discriminator: PatchGAN whose stride-2 convs are conv(stride 1) + :class:`Downsample`.

    Not registered as a network: discriminators are never rebuilt from a ``model.pt``.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        bias = conv_bias(norm)
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=1, padding=1),
            nn.LeakyReLU(0.2, True),
            Downsample(ndf),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=bias),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
                Downsample(ndf * mult),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=bias),
            make_norm(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1),  # one score per patch
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, H', W')
        return self.model(x)


def xavier_init(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """CUT's default init (``--init_type xavier --init_gain 0.02``): xavier-normal conv/linear weights, zero biases."""

    def init(m: nn.Module) -> None:
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and isinstance(weight, torch.Tensor):
            nn.init.xavier_normal_(weight, gain=gain)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
        elif isinstance(m, nn.BatchNorm2d) and isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor):
            nn.init.normal_(weight, 1.0, gain)
            nn.init.zeros_(bias)

    net.apply(init)
    return net
