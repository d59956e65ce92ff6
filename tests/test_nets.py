"""Every registered network builds, keeps the input size, and matches the reference parameter names."""

from __future__ import annotations

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
