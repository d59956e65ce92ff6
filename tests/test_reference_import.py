"""``i2i-train import``: released reference generators load key for key and translate identically
(pytorch-CycleGAN-and-pix2pix, CUT, SN-DCR; pytorch/examples fast-neural-style and STIG through
their key and value mappings).

The reference networks below are an independent re-implementation of the module structure of
pytorch-CycleGAN-and-pix2pix / CUT ``models/networks.py`` (norm_layer partials, use_bias rule,
``build_conv_block``, anti-aliased Downsample/Upsample, recursive U-Net), written from the reference
code rather than from i2i's networks, so a state dict they produce is what a released file holds.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import invoke
from torch import nn

from i2i.errors import I2IError
from i2i.train.checkpoint import load_generator
from i2i.train.cli import main as train_cli
from i2i.train.nets import build_net
from i2i.train.reference import PIXEL_HALF_RANGE as PIXEL
from i2i.train.reference import import_reference


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- reference structure


def ref_norm(kind: str):  # type: ignore[no-untyped-def]
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "none":  # the reference's is a lambda returning Identity: no .func, so its use_bias is False too
        return functools.partial(nn.Identity)
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


def ref_filter(size: int) -> torch.Tensor:
    a = np.array({3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[size])
    f = torch.Tensor(a[:, None] * a[None, :])
    return f / torch.sum(f)


class RefDownsample(nn.Module):
    filt: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", ref_filter(3)[None, None, :, :].repeat((channels, 1, 1, 1)))
        self.pad = nn.ReflectionPad2d((1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class RefUpsample(nn.Module):
    filt: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", (ref_filter(4) * 4)[None, None, :, :].repeat((channels, 1, 1, 1)))
        self.pad = nn.ReplicationPad2d((1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ret = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])[:, :, 1:, 1:]
        return ret[:, :, :-1, :-1]


class RefResnetBlock(nn.Module):
    def __init__(self, dim: int, norm_layer, use_dropout: bool, use_bias: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        block: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias)]
        block += [norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            block += [nn.Dropout(0.5)]
        block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class RefResnetGenerator(nn.Module):
    """CG ResnetGenerator (antialias=False) or CUT's (antialias=True), as in the reference code."""

    def __init__(self, ngf: int, norm: str, n_blocks: int, use_dropout: bool = False, antialias: bool = False) -> None:
        super().__init__()
        norm_layer = ref_norm(norm)
        use_bias = norm_layer.func == nn.InstanceNorm2d
        model: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, padding=0, bias=use_bias)]
        model += [norm_layer(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            if antialias:
                model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=1, padding=1, bias=use_bias)]
                model += [norm_layer(ngf * mult * 2), nn.ReLU(True), RefDownsample(ngf * mult * 2)]
            else:
                model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias)]
                model += [norm_layer(ngf * mult * 2), nn.ReLU(True)]
        model += [RefResnetBlock(ngf * 4, norm_layer, use_dropout, use_bias) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            if antialias:
                model += [RefUpsample(ngf * mult), nn.Conv2d(ngf * mult, ngf * mult // 2, 3, padding=1, bias=use_bias)]
            else:
                model += [
                    nn.ConvTranspose2d(
                        ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias
                    )
                ]
            model += [norm_layer(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RefUnetBlock(nn.Module):
    def __init__(
        self,
        outer: int,
        inner: int,
        input_nc=None,
        sub=None,
        outermost=False,
        innermost=False,
        norm_layer=None,
        use_dropout=False,
    ):  # type: ignore[no-untyped-def]
        super().__init__()
        self.outermost = outermost
        use_bias = norm_layer.func == nn.InstanceNorm2d
        input_nc = outer if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner, 4, stride=2, padding=1, bias=use_bias)
        if outermost:
            model = [downconv, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=use_bias)
            model = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), up, norm_layer(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=use_bias)
            model = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner), sub, nn.ReLU(True), up, norm_layer(outer)]
            model += [nn.Dropout(0.5)] if use_dropout else []
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(self, num_downs: int, ngf: int, norm: str = "batch", use_dropout: bool = True) -> None:
        super().__init__()
        nl = ref_norm(norm)
        block = RefUnetBlock(ngf * 8, ngf * 8, innermost=True, norm_layer=nl)
        for _ in range(num_downs - 5):  # pix2pix trains with dropout unless --no_dropout
            block = RefUnetBlock(ngf * 8, ngf * 8, sub=block, norm_layer=nl, use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = RefUnetBlock(ngf * mult, ngf * mult * 2, sub=block, norm_layer=nl)
        self.model = RefUnetBlock(3, ngf, input_nc=3, sub=block, outermost=True, norm_layer=nl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def randomise(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BatchNorm statistics, so identical outputs mean identical weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point() and not name.endswith("filt"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith("running_var") else 0.0))
    return net.eval()


def add_legacy_instance_norm_stats(state: dict[str, torch.Tensor], net: nn.Module) -> int:
    """What checkpoints saved by torch < 0.4 hold: running stats for every (stat-free) InstanceNorm."""
    added = 0
    for name, module in net.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            c = module.num_features
            state[f"{name}.running_mean"], state[f"{name}.running_var"] = torch.zeros(c), torch.ones(c)
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
            added += 3
    return added


def import_and_compare(ref: nn.Module, tmp_path: Path, size: int, legacy: bool = False, **kw: object):  # type: ignore[no-untyped-def]
    state = dict(ref.state_dict())
    added = add_legacy_instance_norm_stats(state, ref) if legacy else 0
    torch.save(state, tmp_path / "latest_net_G.pth")
    result = import_reference(tmp_path / "latest_net_G.pth", tmp_path / "model.pt", **kw)  # type: ignore[arg-type]
    assert len(result.dropped) == added
    net, ckpt = load_generator(result.output, test_norm="running")  # strict load of the converted checkpoint
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))  # the reference with --eval
        frame, _ = load_generator(result.output)  # the default: the reference test.py without --eval
        per_frame = reference_test_mode(ref)
        expected = torch.cat([per_frame(x[i : i + 1]) for i in range(len(x))])
        assert torch.allclose(frame(x), expected, atol=1e-5)
    return result, ckpt


def reference_test_mode(ref: nn.Module) -> nn.Module:
    """The reference test.py without --eval: BatchNorm in train mode on one frame; dropout off (i2i's default)."""
    net = copy.deepcopy(ref).eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.train()
    return net


# --------------------------------------------------------------------------- tests


def test_cyclegan_resnet9_with_legacy_instance_norm_stats(tmp_path: Path) -> None:
    ref = randomise(RefResnetGenerator(ngf=8, norm="instance", n_blocks=9))
    result, ckpt = import_and_compare(ref, tmp_path, 32, legacy=True)
    assert (result.reference, result.arch) == ("resnet_9blocks", "resnet")
    assert result.arch_kwargs["norm"] == "instance" and result.arch_kwargs["n_blocks"] == 9
    assert ckpt["io"]["size_multiple"] == 4 and ckpt["method"] == "imported"
    assert ckpt["train_config"]["imported"]["reference_arch"] == "resnet_9blocks"


def test_pix2pix_resnet6_batchnorm_dropout(tmp_path: Path) -> None:
    ref = randomise(RefResnetGenerator(ngf=8, norm="batch", n_blocks=6, use_dropout=True))
    result, _ = import_and_compare(ref, tmp_path, 32, arch="resnet_6blocks")
    assert result.arch_kwargs == dict(input_nc=3, output_nc=3, ngf=8, norm="batch", use_dropout=True, n_blocks=6)


def test_pix2pix_unet128(tmp_path: Path) -> None:
    ref = randomise(RefUnetGenerator(num_downs=7, ngf=4))
    result, ckpt = import_and_compare(ref, tmp_path, 128)
    assert (result.reference, result.arch_kwargs["num_downs"]) == ("unet_128", 7)
    assert result.arch_kwargs["use_dropout"]  # pix2pix's U-Net has dropout (it only acts with test_dropout)
    assert ckpt["io"]["size_multiple"] == 128


@pytest.mark.parametrize("norm", ["none", "instance"])
def test_norm_none_files_are_told_from_instance_norm_by_their_conv_biases(norm: str, tmp_path: Path) -> None:
    resnet = randomise(RefResnetGenerator(ngf=8, norm=norm, n_blocks=2))
    assert ("model.1.bias" in resnet.state_dict()) == (norm == "instance")  # the reference's use_bias rule
    result, _ = import_and_compare(resnet, tmp_path, 32)
    assert (result.reference, result.arch_kwargs["norm"]) == ("resnet_2blocks", norm)
    unet = randomise(RefUnetGenerator(num_downs=5, ngf=4, norm=norm))
    assert ("model.model.0.bias" in unet.state_dict()) == (norm == "instance")
    result, _ = import_and_compare(unet, tmp_path, 32)
    assert (result.reference, result.arch_kwargs["norm"]) == ("unet_32", norm)


def test_cut_antialiased_resnet_from_data_parallel(tmp_path: Path) -> None:
    ref = randomise(RefResnetGenerator(ngf=8, norm="instance", n_blocks=9, antialias=True))
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}  # saved from nn.DataParallel
    torch.save(state, tmp_path / "cut.pth")
    result = import_reference(tmp_path / "cut.pth")
    assert result.arch == "cut_resnet" and result.arch_kwargs["antialias"] and result.arch_kwargs["antialias_up"]
    net, _ = load_generator(result.output)
    x = torch.rand(1, 3, 36, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def test_sn_resnet_is_detected(tmp_path: Path) -> None:
    net = randomise(build_net("sn_resnet", ngf=16, n_blocks=3))
    torch.save(net.state_dict(), tmp_path / "sndcr.pth")
    result = import_reference(tmp_path / "sndcr.pth")
    assert result.arch == "sn_resnet" and result.arch_kwargs["n_blocks"] == 3


def test_wrong_arch_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    ref = RefResnetGenerator(ngf=8, norm="instance", n_blocks=9, antialias=True)
    torch.save(ref.state_dict(), tmp_path / "cut.pth")
    with pytest.raises(
        I2IError, match=r"does not fit resnet_9blocks .*missing keys: .*unexpected keys: .*model\.7\.filt"
    ):
        import_reference(tmp_path / "cut.pth", arch="resnet_9blocks")


def test_missing_key_is_named(tmp_path: Path) -> None:
    state = dict(RefResnetGenerator(ngf=8, norm="instance", n_blocks=6).state_dict())
    del state["model.12.conv_block.5.weight"]
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(I2IError, match=r"missing keys: model\.12\.conv_block\.5\.weight"):
        import_reference(tmp_path / "g.pth")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot read"),
        (b"not a torch file at all", "cannot read"),
    ],
)
def test_corrupt_files_fail_cleanly(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "g.pth").write_bytes(content)
    with pytest.raises(I2IError, match=message):
        import_reference(tmp_path / "g.pth")


def test_truncated_file_fails_cleanly(tmp_path: Path) -> None:
    torch.save(RefResnetGenerator(ngf=8, norm="instance", n_blocks=2).state_dict(), tmp_path / "g.pth")
    data = (tmp_path / "g.pth").read_bytes()
    (tmp_path / "g.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(I2IError, match="truncated or not a torch file"):
        import_reference(tmp_path / "g.pth")


def test_unknown_state_dict_and_missing_file(tmp_path: Path) -> None:
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(I2IError, match="not a generator state dict i2i can import"):
        import_reference(tmp_path / "other.pth")
    with pytest.raises(I2IError, match="not found"):
        import_reference(tmp_path / "absent.pth")


def test_cli_import_and_usage_error(tmp_path: Path) -> None:
    torch.save(RefResnetGenerator(ngf=8, norm="instance", n_blocks=6).state_dict(), tmp_path / "latest_net_G.pth")
    result = invoke(train_cli, ["import", tmp_path / "latest_net_G.pth", "-o", tmp_path / "h2z.pt"])
    assert result.exit_code == 0, result.output
    assert "resnet_6blocks" in result.output and (tmp_path / "h2z.pt").exists()
    bad = invoke(train_cli, ["import", tmp_path / "latest_net_G.pth", "--arch", "nope"])
    assert bad.exit_code == 2 and "valid: resnet_9blocks" in bad.output
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"xx")
    failed = invoke(train_cli, ["import", broken])
    assert failed.exit_code == 1 and "cannot read" in failed.output


def test_legacy_non_zip_file_imports(tmp_path: Path) -> None:
    """Released CycleGAN/pix2pix weights predate torch 1.6's zip format."""
    ref = randomise(RefResnetGenerator(ngf=8, norm="instance", n_blocks=6))
    torch.save(ref.state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    result = import_reference(tmp_path / "old.pth")
    net, _ = load_generator(result.output)
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


class _Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"model.1.weight": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(I2IError, match="holds objects other than tensors"):
        import_reference(tmp_path / "evil.pth")
    assert "pickled code ran" not in capsys.readouterr().out


def test_an_i2i_checkpoint_needs_no_import(tmp_path: Path) -> None:
    ref = RefResnetGenerator(ngf=8, norm="instance", n_blocks=6)
    torch.save(ref.state_dict(), tmp_path / "g.pth")
    result = import_reference(tmp_path / "g.pth")
    with pytest.raises(I2IError, match="already an i2i checkpoint"):
        import_reference(result.output)


# --------------------------------------------------------------------------- pytorch/examples fast-neural-style


class RefConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: int | None = None) -> None:
        super().__init__()
        self.upsample = upsample
        if upsample:
            self.upsample_layer = nn.Upsample(mode="nearest", scale_factor=upsample)
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(self.upsample_layer(x) if self.upsample else x))


class RefStyleResidual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.in1 = RefConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = RefConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class RefTransformerNet(nn.Module):
    """pytorch/examples' TransformerNet: [0, 255] in, [0, 255] out, no final activation, res1…res5."""

    def __init__(self, ngf: int = 32) -> None:
        super().__init__()
        self.conv1, self.in1 = RefConvLayer(3, ngf, 9), nn.InstanceNorm2d(ngf, affine=True)
        self.conv2, self.in2 = RefConvLayer(ngf, 2 * ngf, 3, 2), nn.InstanceNorm2d(2 * ngf, affine=True)
        self.conv3, self.in3 = RefConvLayer(2 * ngf, 4 * ngf, 3, 2), nn.InstanceNorm2d(4 * ngf, affine=True)
        for i in range(1, 6):
            setattr(self, f"res{i}", RefStyleResidual(4 * ngf))
        self.deconv1, self.in4 = RefConvLayer(4 * ngf, 2 * ngf, 3, upsample=2), nn.InstanceNorm2d(2 * ngf, affine=True)
        self.deconv2, self.in5 = RefConvLayer(2 * ngf, ngf, 3, upsample=2), nn.InstanceNorm2d(ngf, affine=True)
        self.deconv3 = RefConvLayer(ngf, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in3(self.conv3(F.relu(self.in2(self.conv2(y))))))
        for i in range(1, 6):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in5(self.deconv2(F.relu(self.in4(self.deconv1(y))))))
        return self.deconv3(y)


def _style_reference() -> RefTransformerNet:
    ref = RefTransformerNet(ngf=4)
    randomise(ref)
    last = ref.deconv3.conv2d
    assert last.bias is not None
    with torch.no_grad():  # outputs around the [0, 255] range, as a trained model gives
        last.weight.mul_(400.0)
        last.bias.fill_(127.5)
    return ref


def test_fast_neural_style_model_imports_with_its_value_range(tmp_path: Path) -> None:
    ref = _style_reference()
    state = dict(ref.state_dict())
    for name in ("in1", "res3.in2"):  # what files saved by old torch hold (pytorch/examples deletes them)
        state[f"{name}.running_mean"], state[f"{name}.running_var"] = torch.zeros(4), torch.ones(4)
    torch.save(state, tmp_path / "mosaic.model")
    result = import_reference(tmp_path / "mosaic.model", tmp_path / "mosaic.pt")
    assert (result.arch, result.reference) == ("transformer", "fast_neural_style")
    assert result.arch_kwargs == dict(input_nc=3, output_nc=3, ngf=4, n_blocks=5, final="clamp")
    assert len(result.dropped) == 4 and len(result.notes) == 2
    net, ckpt = load_generator(result.output)
    assert ckpt["train_config"]["imported"]["value_mappings"] == result.notes
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        u = ref(PIXEL * (x + 1)) / PIXEL - 1  # the reference's output on i2i's scale
        got = net(x)
    assert u.abs().max() > 1.0 and (u.abs() < 0.9).any()  # the test covers the clamped range and mid-tones
    saved = u.clamp(-1, 1)  # what pytorch/examples' stylize writes
    assert torch.allclose(got, saved, atol=1e-5)  # the original, to float precision
    assert build_net("transformer", ngf=4).final == "tanh"  # i2i-trained style nets keep their tanh
    from i2i.export.onnx import ExportConfig, export_checkpoint

    exported = export_checkpoint(ExportConfig(checkpoint=str(result.output), progress=False))  # the clamp as Clip
    assert exported.parity["passed"]


def test_fast_neural_style_that_does_not_fit_names_its_keys(tmp_path: Path) -> None:
    state = dict(_style_reference().state_dict())
    del state["res2.conv1.conv2d.weight"]
    state["res2.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "candy.pth")
    with pytest.raises(I2IError, match=r"does not fit fast_neural_style .*missing keys: res2\.conv1\.conv2d\.weight"):
        import_reference(tmp_path / "candy.pth")
    with pytest.raises(I2IError, match=r"unexpected keys: res2\.extra\.weight"):
        import_reference(tmp_path / "candy.pth")


# --------------------------------------------------------------------------- STIG


class RefVGGBlock(nn.Module):
    """The official STIG VGGBlock: conv (with bias) → BN → ReLU, twice."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class RefNestedUNet(nn.Module):
    """The official STIG NestedUNet layout (conv{i}_{j}, final), width ``n`` instead of 64."""

    def __init__(self, n: int = 64) -> None:
        super().__init__()
        w = [n, 2 * n, 4 * n, 8 * n, 8 * n]
        for i in range(5):
            setattr(self, f"conv{i}_0", RefVGGBlock(3 if i == 0 else w[i - 1], w[i], w[i]))
        for j in range(1, 5):
            for i in range(5 - j):
                setattr(self, f"conv{i}_{j}", RefVGGBlock(w[i] * j + w[i + 1], w[i], w[i]))
        self.final = nn.Conv2d(w[0], 3, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bicubic", align_corners=False)  # noqa: E731
        grid: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(5):
            grid[(i, 0)] = getattr(self, f"conv{i}_0")(x if i == 0 else F.max_pool2d(grid[(i - 1, 0)], 2))
        for j in range(1, 5):
            for i in range(5 - j):
                inputs = [grid[(i, k)] for k in range(j)] + [up(grid[(i + 1, j - 1)])]
                grid[(i, j)] = getattr(self, f"conv{i}_{j}")(torch.cat(inputs, 1))
        return 2.0 * torch.sigmoid(self.final(grid[(0, 4)])) - 1.0


def test_official_stig_checkpoint_imports_with_conv_biases_folded(tmp_path: Path) -> None:
    ref = randomise(RefNestedUNet(n=4))
    with torch.no_grad():
        for module in ref.modules():
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.uniform_(-0.5, 0.5)  # biases that matter in eval mode
    official = {"Generator": ref.state_dict(), "Discriminator": {}, "MLP": {}, "PSD": {}}  # its save_checkpoint
    torch.save(official, tmp_path / "parameters_10_epoch.pt")
    result = import_reference(tmp_path / "parameters_10_epoch.pt", tmp_path / "refiner.pt")
    assert (result.arch, result.reference) == ("unetpp", "stig")
    assert result.arch_kwargs["spectrum_size"] == 256 and result.arch_kwargs["norm"] == "batch"
    assert result.notes == [
        "30 conv biases before BatchNorm folded into the running means",
        "channels: the official whole-tensor fftshift's channel roll folded into the first and last convs",
    ]
    x = torch.rand(2, 3, 32, 32) * 2 - 1

    def rolled(t: torch.Tensor) -> torch.Tensor:  # what the official network sees and writes
        return t[:, ROLL]

    with torch.no_grad():
        running, ckpt = load_generator(result.output, test_norm="running")
        assert torch.allclose(rolled(running(x)), ref(rolled(x)), atol=1e-5)
        frame, _ = load_generator(result.output)  # the official inference: BatchNorm in train mode
        per_frame = reference_test_mode(ref)
        expected = torch.cat([per_frame(rolled(x)[i : i + 1]) for i in range(2)])
        assert torch.allclose(rolled(frame(x)), expected, atol=1e-5)
    assert ckpt["method"] == "stig"  # so the model card calls it a refiner
    sized = import_reference(tmp_path / "parameters_10_epoch.pt", tmp_path / "r32.pt", spectrum_size=32)
    assert sized.arch_kwargs["spectrum_size"] == 32
    with pytest.raises(I2IError, match="multiple of 16"):
        import_reference(tmp_path / "parameters_10_epoch.pt", tmp_path / "r.pt", spectrum_size=40)


ROLL = [2, 0, 1]  # torch.fft.fftshift(t) with no dim on (B, 3, H, W): channel c of the result is channel ROLL[c]


def official_stig_refine(
    generator: nn.Module, image01: torch.Tensor, take: Callable[[torch.Tensor], torch.Tensor] = torch.abs
) -> torch.Tensor:
    """STIG's evaluation() on one image in [0, 1] (utils/processing.py, model/stig_model.py):
    img2fft → fft2polar → normalize → G → inverse_normalize → polar2img. ``take`` is how
    polar2img makes the inverse FFT real: the official ``abs``, or the real part as i2i does."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(torch.fft.fftshift(image01, dim=(-1, -2))))  # img2fft: no dim
    magnitude, phase = torch.log1p(torch.abs(spectrum)), torch.angle(spectrum)  # fft2polar
    v_max, v_min = magnitude.max(), magnitude.min()  # normalize: one min/max over the whole tensor
    normed = (magnitude - v_min) / (v_max - v_min) * 2.0 - 1.0
    out = (generator(normed) + 1.0) / 2.0 * (v_max - v_min) + v_min  # inverse_normalize
    inverse = torch.fft.ifft2(torch.fft.ifftshift(torch.expm1(out) * torch.exp(1j * phase)))  # polar2img
    return torch.fft.fftshift(take(inverse), dim=(-1, -2))


def test_imported_official_stig_refiner_computes_the_official_pipeline(tmp_path: Path) -> None:
    """The whole official pipeline (written above from the official code) against i2i's
    ``spectral.refine`` with the imported network, on one photo-like image, in float64.

    Both compute the same complex image before it is made real; i2i takes its real part where the
    official code takes abs() (a documented deviation), so i2i must equal the official pipeline
    with ``take=real`` (clamped, as i2i clamps). Tolerance: float64 (ε = 2.2e-16); the largest
    spectrum coefficient of a 64² image in [0, 1] is H·W = 4096, and the inverse FFT of 4096 terms
    adds ≲ log2(4096) = 12 roundings of that size: 4096 · 12 · ε ≈ 1e-11 per pixel; 1e-9 leaves
    room for the network's own float64 rounding amplified by expm1. Without the channel fix the
    two differ by tenths of the range."""
    from i2i.train import spectral

    ref = randomise(RefNestedUNet(n=4), seed=3)
    torch.save({"Generator": ref.state_dict()}, tmp_path / "official.pt")
    result = import_reference(tmp_path / "official.pt", tmp_path / "refiner.pt", spectrum_size=64)
    refiner, _ = load_generator(result.output)  # per-frame BatchNorm: the official G is never put in eval()
    official_g = reference_test_mode(ref).double()
    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.uniform(0.0, 1.0, (1, 3, 64, 64)))
    image01 = F.avg_pool2d(F.pad(noise, (2, 2, 2, 2), mode="circular"), 5, stride=1)  # smooth, in [0, 1]
    image01[:, 0] *= 0.6  # channels that differ, so a channel mix-up shows
    with torch.no_grad():
        official_real = official_stig_refine(official_g, image01, take=torch.real).clamp(0.0, 1.0)
        ours = (spectral.refine(refiner.double(), image01 * 2.0 - 1.0) + 1.0) / 2.0
        assert (ours - official_real).abs().max() < 1e-9
        unfixed = (spectral.refine(reference_test_mode(ref).double(), image01 * 2.0 - 1.0) + 1.0) / 2.0
        assert (unfixed - official_real).abs().mean() > 1e-2  # the official weights, channels not unrolled


def test_stig_checkpoint_that_does_not_fit_names_its_keys(tmp_path: Path) -> None:
    state = dict(RefNestedUNet(n=4).state_dict())
    del state["conv1_2.bn1.weight"]
    torch.save(state, tmp_path / "g.pt")
    with pytest.raises(I2IError, match=r"does not fit stig .*missing keys: conv1_2\.bn1\.weight"):
        import_reference(tmp_path / "g.pt")
    torch.save(RefResnetGenerator(ngf=8, norm="instance", n_blocks=2).state_dict(), tmp_path / "r.pth")
    with pytest.raises(I2IError, match="--arch stig: the file holds a resnet_2blocks generator"):
        import_reference(tmp_path / "r.pth", arch="stig")
    with pytest.raises(I2IError, match="spectrum_size applies to STIG refiners only"):
        import_reference(tmp_path / "r.pth", spectrum_size=32)


def test_cli_imports_fast_neural_style_and_stig_files(tmp_path: Path) -> None:
    torch.save(_style_reference().state_dict(), tmp_path / "udnie.model")
    result = invoke(train_cli, ["import", tmp_path / "udnie.model", "-o", tmp_path / "udnie.pt"])
    assert result.exit_code == 0, result.output
    assert "fast_neural_style → transformer" in result.output and (tmp_path / "udnie.pt").is_file()
    assert "mapped: output: its [0, 255] mapped to [-1, 1] inside deconv3" in result.output  # the notes
    torch.save({"Generator": RefNestedUNet(n=4).state_dict()}, tmp_path / "stig.pt")
    args = ["import", tmp_path / "stig.pt", "--arch", "stig", "-o", tmp_path / "refiner.pt", "--spectrum-size", "64"]
    result = invoke(train_cli, args)
    assert result.exit_code == 0, result.output
    assert "stig → unetpp" in result.output and "mapped: 30 conv biases before BatchNorm folded" in result.output
    assert load_generator(tmp_path / "refiner.pt")[1]["arch_kwargs"]["spectrum_size"] == 64
    bad = invoke(train_cli, [*args[:-1], "40"])
    assert bad.exit_code == 1 and "stig.pt: spectrum_size 40" in bad.output and "multiple of 16" in bad.output
    style = invoke(train_cli, ["import", tmp_path / "udnie.model", "-o", tmp_path / "u.pt", "--spectrum-size", "64"])
    assert style.exit_code == 1 and "applies to STIG refiners only" in style.output
