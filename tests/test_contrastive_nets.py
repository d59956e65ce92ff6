"""CUT's anti-aliased generator and SN-DCR's spectral-norm / FCA pieces: names, shapes and the maths."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from i2i.train.nets import build_net
from i2i.train.nets.cut_resnet import AntialiasedPatchGAN
from i2i.train.nets.sn_resnet import FcaLayer, SNConv2d, dct_weights, pool_matrix


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cut_generator_reference_indices_and_buffers() -> None:
    names = list(build_net("cut_resnet").state_dict())  # ngf 64, 9 blocks
    assert {"model.7.filt", "model.11.filt", "model.21.filt", "model.25.filt"} <= set(names)
    assert "model.12.conv_block.1.weight" in names and "model.20.conv_block.5.weight" in names
    assert {"model.1.weight", "model.4.weight", "model.8.weight", "model.22.weight", "model.26.weight"} <= set(names)
    assert names[-2:] == ["model.30.weight", "model.30.bias"]
    plain = build_net("cut_resnet", antialias=False, antialias_up=False)
    assert list(plain.state_dict()) == list(build_net("resnet").state_dict())  # = CycleGAN's generator


@pytest.mark.parametrize("arch", ["cut_resnet", "sn_resnet"])
def test_size_multiple_is_the_smallest_that_round_trips(arch: str) -> None:
    net = build_net(arch, ngf=8, n_blocks=1).eval()
    m = net.size_multiple
    assert m == 4
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 2 * m, 3 * m)).shape[2:] == (2 * m, 3 * m)
        assert net(torch.zeros(1, 3, 2 * m + 2, 3 * m)).shape[2:] != (2 * m + 2, 3 * m)  # 10 is not a multiple of 4


@pytest.mark.parametrize(("arch", "layers", "channels"), [("cut_resnet", [0, 4, 8, 12, 16], [3, 16, 32, 32, 32])])
def test_encode_returns_reference_layers_and_stops_early(arch: str, layers: list[int], channels: list[int]) -> None:
    net = build_net(arch, ngf=8, n_blocks=5).eval()  # layer 16 = the fifth block, as with 9 blocks
    x = torch.randn(1, 3, 32, 32)
    feats = net.encode(x, layers)
    assert [f.shape[1] for f in feats] == channels
    assert feats[0].shape[2:] == (38, 38)  # layer 0 is the 3-pixel reflection pad
    with torch.no_grad():
        assert torch.equal(net(x, layers, encode_only=True)[-1], feats[-1])  # the reference call form
        out, _ = net(x, layers)
        assert torch.equal(out, net(x))


def test_sn_generator_nce_layers_are_the_official_ones() -> None:
    net = build_net("sn_resnet", ngf=8, n_blocks=9)
    kinds = [type(net.model[i]).__name__ for i in (0, 4, 8, 12, 16)]
    assert kinds == ["ReflectionPad2d", "Conv2d", "FcaLayer", "Downsample", "SNResnetBlock"]
    kinds = [type(net.model[i]).__name__ for i in (0, 4, 9, 14, 18)]  # the paper's Fig. 3 selection
    assert kinds == ["ReflectionPad2d", "Conv2d", "Conv2d", "SNResnetBlock", "SNResnetBlock"]
    names = set(net.state_dict())
    assert {"model.14.conv_block.1.u", "model.8.pre_computed_dct_weights", "model.32.fc.2.weight"} <= names
    assert "model.14.conv_block.5.u" not in names  # SN on the first conv only


def test_antialiased_discriminator_scores_patches() -> None:
    d = AntialiasedPatchGAN(ndf=8)
    assert d(torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)


# --------------------------------------------------------------------------- spectral norm


def test_power_iteration_converges_to_the_largest_singular_value() -> None:
    torch.manual_seed(0)
    conv = SNConv2d(4, 6, kernel_size=3, padding=1)
    sigma_true = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
    for _ in range(50):  # each training forward runs one iteration
        conv(torch.randn(1, 4, 5, 5))
    assert conv.sigma().item() == pytest.approx(sigma_true, rel=1e-4)
    conv.eval()
    assert conv.sigma().item() == pytest.approx(sigma_true, rel=1e-4)
    x = torch.randn(1, 4, 5, 5)
    expected = F.conv2d(x, conv.weight / sigma_true, conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-4)


def test_eval_runs_no_power_iteration_and_sigma_is_a_constant_for_autograd() -> None:
    conv = SNConv2d(3, 5, kernel_size=3)
    conv.eval()
    u = conv.u.clone()
    y1, y2 = conv(torch.ones(1, 3, 4, 4)), conv(torch.ones(1, 3, 4, 4))
    assert torch.equal(conv.u, u) and torch.equal(y1, y2)  # deterministic, nothing written
    conv.train()
    conv(torch.ones(1, 3, 4, 4))
    assert not torch.equal(conv.u, u)  # training forwards iterate
    # Official behaviour: σ is computed from W.data, so d(W/σ)/dW = 1/σ exactly.
    conv.weight.grad = None
    sigma = conv.sigma()
    (conv.weight / sigma).sum().backward()
    assert torch.allclose(conv.weight.grad, torch.full_like(conv.weight, 1 / sigma.item()), rtol=1e-5)


def test_float64_spectral_norm_trains_and_keeps_float64_precision() -> None:
    """A float64 module estimates σ in float64 (``u`` follows the weight's dtype), so the whole
    SN-DCR generator runs forward and backward in float64 and σ is exact to float64 precision."""
    torch.manual_seed(0)
    conv = SNConv2d(4, 6, kernel_size=3, padding=1).double()
    sigma_true = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
    for _ in range(200):
        conv(torch.randn(1, 4, 5, 5, dtype=torch.float64))
    assert conv.u.dtype == torch.float64
    assert abs(conv.sigma().item() - sigma_true) < 1e-9 * sigma_true  # float32 gets ~1e-7 at best

    net = build_net("sn_resnet", ngf=4, n_blocks=2).double().train()
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64) * 2 - 1
    y = net(x)
    y.mean().backward()
    assert y.dtype == torch.float64
    assert all(p.grad is not None and p.grad.dtype == torch.float64 for p in net.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- FCA


@pytest.mark.parametrize("size", [(10, 12), (33, 70), (64, 64), (7, 5)])
def test_pool_matrix_equals_adaptive_average_pooling(size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size)
    pooled = pool_matrix(size[0], 32, x) @ x @ pool_matrix(size[1], 32, x).t()
    assert torch.allclose(pooled, F.adaptive_avg_pool2d(x, 32), atol=1e-6)


def test_dct_bases_are_orthonormal_and_grouped() -> None:
    w = dct_weights(32)  # 16 groups of 2 channels
    assert w.shape == (1, 32, 32, 32)
    assert torch.equal(w[0, 0], w[0, 1]) and not torch.equal(w[0, 1], w[0, 2])
    bases = w[0, ::2].flatten(1)  # one per group
    assert torch.allclose(bases @ bases.t(), torch.eye(16), atol=1e-5)
    assert w[0, 0].flatten().sum().item() == pytest.approx(32.0, rel=1e-5)  # DC basis: constant 1/32, 32² cells
    assert math.isclose(dct_weights(20)[0, 16:].abs().sum().item(), 0.0)  # leftover channels get no basis


def test_fca_on_a_constant_map_is_a_per_channel_gate() -> None:
    layer = FcaLayer(16)
    x = torch.ones(1, 16, 9, 9)
    y = layer(x)
    gate = y[0, :, 0, 0]
    assert torch.allclose(y, gate[None, :, None, None].expand_as(y))
    assert ((gate > 0) & (gate < 1)).all()
