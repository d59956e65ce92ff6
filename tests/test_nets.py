"""Every registered network builds, keeps the input size, and matches the reference parameter names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from i2i.errors import I2IError
from i2i.train.nets import NETS, build_net

TINY = {
    "resnet": dict(ngf=8, n_blocks=2),
    "unet": dict(ngf=8, num_downs=5),
    "patchgan": dict(ndf=8),
    "fast": dict(ngf=8, n_blocks=1),
    "cut_resnet": dict(ngf=8, n_blocks=2),
    "sn_resnet": dict(ngf=8, n_blocks=2),
    "unetpp": dict(ngf=4),
    "transformer": dict(ngf=8, n_blocks=1),
}


def test_every_net_has_a_tiny_config() -> None:
    assert set(TINY) == set(NETS)


@pytest.mark.parametrize("name", sorted(NETS))
def test_net_forward_shapes(name: str) -> None:
    net = build_net(name, **TINY[name]).eval()
    m = getattr(net, "size_multiple", 16)
    x = torch.randn(2, 3, 2 * m, 3 * m)
    with torch.no_grad():
        y = net(x)
    if name == "patchgan":
        assert y.shape[:2] == (2, 1)
    else:
        assert y.shape == x.shape
        assert y.abs().max() <= 1.0  # tanh output


@pytest.mark.parametrize(("norm", "keys"), [("instance", 48), ("batch", None)])
def test_resnet_reference_parameter_names(norm: str, keys: int | None) -> None:
    net = build_net("resnet", norm=norm)
    names = list(net.state_dict())
    # Reference ResnetGenerator(9 blocks): convs at 1, 4, 7, blocks 10-18, ConvT 19, 22, final conv 26.
    assert "model.1.weight" in names and "model.26.bias" in names
    assert "model.10.conv_block.1.weight" in names and "model.18.conv_block.5.weight" in names
    assert "model.19.weight" in names and "model.22.weight" in names
    if keys is not None:
        assert len(names) == keys  # instance norm: no norm keys, every conv has a bias
        assert sum(p.numel() for p in net.parameters()) == 11_378_179
    else:
        assert "model.1.bias" not in names  # BatchNorm: hidden convs have no bias
        assert "model.2.running_mean" in names


def test_resnet_dropout_shifts_second_conv_like_reference() -> None:
    names = list(build_net("resnet", use_dropout=True).state_dict())
    assert "model.10.conv_block.6.weight" in names


def test_unet_reference_parameter_names() -> None:
    net = build_net("unet")  # unet_256: 8 downs, batch norm
    names = set(net.state_dict())
    assert sum(p.numel() for p in net.parameters()) == 54_413_955
    assert {
        "model.model.0.weight",
        "model.model.3.weight",
        "model.model.3.bias",
        "model.model.1.model.1.weight",
        "model.model.1.model.2.running_var",
    } <= names
    innermost = "model.model.1" + ".model.3" * 6  # unet_256: the 8th level sits six submodules deep
    assert {f"{innermost}.model.1.weight", f"{innermost}.model.3.weight", f"{innermost}.model.4.weight"} <= names
    assert f"{innermost}.model.5.weight" not in names  # innermost block has no downnorm
    assert net.size_multiple == 256


def test_unknown_net_lists_valid_names() -> None:
    with pytest.raises(I2IError, match="unknown network .nope.; valid: .*patchgan, resnet.*unet"):
        build_net("nope")


# --------------------------------------------------------------------------- --norm none


class _Residual(torch.nn.Module):
    conv_block: torch.nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _ref_resnet_none(ngf: int, n_blocks: int) -> torch.nn.Module:
    """The reference ResnetGenerator's layout with ``--norm none``: its norm layer is ``lambda x:
    Identity()``, not a partial of InstanceNorm2d, so ``use_bias`` is False for every hidden conv."""
    from torch import nn

    use_bias = False
    model: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=use_bias), nn.Identity(), nn.ReLU()]
    for mult in (1, 2):
        model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=use_bias), nn.Identity(), nn.ReLU()]
    for _ in range(n_blocks):
        block = _Residual()
        block.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ngf * 4, ngf * 4, 3, bias=use_bias),
            nn.Identity(),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ngf * 4, ngf * 4, 3, bias=use_bias),
            nn.Identity(),
        )
        model.append(block)
    for mult in (4, 2):
        model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, 1, bias=use_bias), nn.Identity(), nn.ReLU()]
    model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]  # the last conv keeps its bias
    ref = nn.Module()
    ref.model = nn.Sequential(*model)
    return ref


def _ref_unet_none_keys(num_downs: int, ngf: int) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the reference UnetGenerator with ``--norm none`` (no norm keys,
    no conv biases but the outermost up-conv's), written from its UnetSkipConnectionBlock."""
    from torch import nn

    def block(outer: int, inner: int, sub: nn.Module | None, input_nc: int | None = None, outermost: bool = False):  # type: ignore[no-untyped-def]
        down = nn.Conv2d(input_nc or outer, inner, 4, 2, 1, bias=False)
        if outermost:
            layers = [down, sub, nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif sub is None:  # innermost
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False)]
            layers.append(nn.Identity())
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False)
            layers = [nn.LeakyReLU(0.2), down, nn.Identity(), sub, nn.ReLU(), up, nn.Identity()]
        m = nn.Module()
        m.model = nn.Sequential(*layers)
        return m

    b = block(ngf * 8, ngf * 8, None)
    for _ in range(num_downs - 5):
        b = block(ngf * 8, ngf * 8, b)
    for mult in (4, 2, 1):
        b = block(ngf * mult, ngf * mult * 2, b)
    ref = nn.Module()
    ref.model = block(3, ngf, b, input_nc=3, outermost=True)
    return {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def test_norm_none_drops_conv_biases_as_the_reference_does() -> None:
    ref = _ref_resnet_none(ngf=4, n_blocks=2)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.1)
    net = build_net("resnet", ngf=4, n_blocks=2, norm="none")
    net.load_state_dict(ref.state_dict(), strict=True)  # a reference file saved with --norm none loads
    assert "model.1.bias" not in net.state_dict() and "model.19.bias" in net.state_dict()  # 19: the last conv
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), ref.model(x))

    unet = build_net("unet", ngf=4, num_downs=5, norm="none")
    assert {k: tuple(v.shape) for k, v in unet.state_dict().items()} == _ref_unet_none_keys(5, 4)


@pytest.mark.parametrize("name", ["resnet", "cut_resnet", "sn_resnet", "patchgan", "unet"])
def test_only_instance_norm_keeps_hidden_conv_biases(name: str) -> None:
    def conv_biases(norm: str) -> set[str]:
        net = build_net(name, **TINY[name], norm=norm)
        convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
        return {f"{n}.bias" for n, m in net.named_modules() if isinstance(m, convs) and m.bias is not None}

    # With instance norm every conv has a bias; with batch or none only the convs no norm follows.
    assert conv_biases("none") == conv_biases("batch")
    assert conv_biases("none") < conv_biases("instance")


def test_unet_refuses_sizes_its_depth_cannot_take_in_one_line() -> None:
    net = build_net("unet", ngf=4, num_downs=5)
    with pytest.raises(I2IError, match=r"a 48x64 \(HxW\) input does not fit a U-Net of 5 levels.*multiples of 32"):
        net(torch.zeros(1, 3, 48, 64))
    assert net(torch.zeros(1, 3, 32, 64)).shape == (1, 3, 32, 64)


def test_pix2pix_crop_too_small_for_num_downs_names_the_smallest_crop(tmp_path: Path) -> None:
    """i2i-train pix2pix --crop-size 100 --num-downs 7 stopped with torch's "Expected more than
    1 value per channel when training" (a BatchNorm level shrunk to 1×1)."""
    import cv2
    import numpy as np
    from conftest import invoke

    from i2i.train.cli import main

    rng = np.random.default_rng(0)
    for side in "AB":
        (tmp_path / "data" / "train" / side).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "data" / "train" / side / "0.png"), rng.integers(0, 256, (120, 120, 3), np.uint8))
    args = ["pix2pix", "--data", tmp_path / "data", "--out", tmp_path / "run", "--crop-size", "100"]
    args += ["--load-size", "112", "--num-downs", "7", "--ngf", "2", "--ndf", "2", "--max-steps", "1", "--workers", "0"]
    result = invoke(main, [*args, "--no-progress"])
    assert result.exit_code != 0
    message = (result.output + (result.stderr if result.stderr_bytes else "")).strip()
    assert "smallest crop is 128" in message and "multiples of 128" in message, message
    assert "Expected more than 1 value" not in message and "Traceback" not in message
