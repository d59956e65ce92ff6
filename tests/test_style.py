"""Fast style transfer: the transformer network, fp32 Gram/losses under autocast, option errors, a short
CPU run that must cut the style loss, and the exported generator passing ONNX parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from i2i.errors import I2IError
from i2i.train.data import ResizeCropFlip, list_images, load_image_rgb
from i2i.train.loop import TrainConfig, train
from i2i.train.methods.style import Style, StyleConfig, gram_matrix, total_variation
from i2i.train.nets import build_net
from i2i.train.nets.vgg import VGG16Features, vgg16_layers

CROP = 32  # the smallest crop with a 4x4 relu4_3 map


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A locally saved RANDOM VGG16 with every ``features.*`` tensor of torchvision's file (~59 MB)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    depth = len(vgg16_layers())  # the whole feature stack, features.0 … features.30
    torch.save(VGG16Features(depth=depth, taps=(depth - 2,)).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def style_image(demo_data: Path) -> Path:
    return list_images(demo_data / "train" / "B")[0]  # a colour pencil sketch


def _config(style_image: Path, vgg_file: Path, **kwargs: object) -> StyleConfig:
    return StyleConfig(style_image=str(style_image), vgg_weights=str(vgg_file), ngf=8, n_blocks=1, **kwargs)  # type: ignore[arg-type]


def _train_config(data: Path, out: Path, **kwargs: object) -> TrainConfig:
    defaults: dict[str, object] = dict(load_size=CROP + 8, crop_size=CROP, batch_size=2, workers=0, progress=False)
    return TrainConfig(data=str(data), out=str(out), **{**defaults, **kwargs})  # type: ignore[arg-type]


def test_transformer_net_is_johnsons_layout() -> None:
    net = build_net("transformer")
    modules = list(net.modules())
    assert sum(p.numel() for p in net.parameters()) == 1_679_235  # pytorch/examples' TransformerNet
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in modules) == 6 + 2 * 5  # before every conv
    assert all(m.affine for m in modules if isinstance(m, nn.InstanceNorm2d))
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in modules) == 5 + 2 * 5
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d)) for m in modules)
    assert sum(isinstance(m, nn.Upsample) and m.mode == "nearest" for m in modules) == 2
    assert {"conv1.conv2d.weight", "res.4.conv2.conv2d.weight", "deconv3.conv2d.bias"} <= set(net.state_dict())
    x = torch.rand(1, 3, 2 * net.size_multiple * 3, net.size_multiple * 5) * 2 - 1
    with torch.no_grad():
        y = build_net("transformer", ngf=8, n_blocks=1)(x)
    assert y.shape == x.shape and y.abs().max() <= 1


def test_gram_and_losses_stay_fp32_under_autocast() -> None:
    features = torch.randn(2, 8, 5, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = nn.functional.conv2d(features, torch.randn(8, 8, 1, 1))
        assert low.dtype == torch.bfloat16
        gram = gram_matrix(low)
        tv = total_variation(low)
    assert gram.dtype == torch.float32 and tv.dtype == torch.float32 and gram.shape == (2, 8, 8)
    f = features.reshape(2, 8, 30)
    # Two float32 matmuls of 30 products of N(0, 1) values, summed in possibly different orders:
    # they differ by at most 30 · 2^-24 · Σ|f_i f_j| ≈ 30 · 6e-8 · 30 · 0.64 ≈ 3.4e-5 before the
    # division by 240, i.e. 1.4e-7 after; atol 1e-6 bounds it on any CPU.
    assert torch.allclose(gram_matrix(features), f @ f.transpose(1, 2) / (8 * 30), atol=1e-6)
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4)  # horizontal steps of 1, no vertical change
    assert total_variation(ramp).item() == pytest.approx(1.0)


def _fixed_batch(data: Path) -> torch.Tensor:
    center = ResizeCropFlip(load_size=CROP, crop_size=CROP, flip=False, train=False)
    return torch.stack([center(load_image_rgb(p))[0] for p in list_images(data)])


@pytest.mark.slow  # ~25 s on a busy 2-core CPU: training 40 steps through VGG16, then an ONNX export
def test_short_run_cuts_the_style_loss_and_exports(
    demo_data: Path, style_image: Path, vgg_file: Path, tmp_path: Path
) -> None:
    """A short CPU run (40 steps, random VGG16, ngf 8) must at least halve the style loss on a fixed batch.

    A random VGG's activations are far smaller than ImageNet VGG16's, so its content and style terms are
    too; the default TV weight would then dominate the objective, hence a lighter one here.
    """
    from i2i.export.onnx import ExportConfig, export_checkpoint

    content_dir = demo_data / "train" / "A"  # a plain folder of content images
    config = _config(style_image, vgg_file, tv_weight=0.1)
    fixed = _fixed_batch(content_dir)

    def style_loss(method: Style) -> float:
        method.train(False)
        with torch.no_grad():
            return method.losses(fixed, method.generator(fixed))["style"].item()

    torch.manual_seed(0)  # the loop seeds the same way: this is the run's starting generator
    before = style_loss(Style(config, torch.device("cpu")))
    result = train("style", config, _train_config(content_dir, tmp_path / "run", max_steps=40, sample_every=40))
    assert result.method is not None
    after = style_loss(result.method)  # type: ignore[arg-type]
    print(f"style loss on the fixed batch: {before:.4g} -> {after:.4g} ({after / before:.1%})")
    assert after < 0.5 * before
    assert result.metrics == {} and not (tmp_path / "run" / "eval.jsonl").exists()  # nothing to evaluate against

    export = export_checkpoint(ExportConfig(checkpoint=str(tmp_path / "run" / "model.pt"), progress=False))
    assert export.parity["passed"]


def test_style_option_errors(demo_data: Path, style_image: Path, vgg_file: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub cache
    data = demo_data / "train" / "A"
    out = tmp_path / "out"
    with pytest.raises(I2IError, match="style needs ImageNet VGG16 weights: pass --vgg-weights .*vgg16-397923af.pth"):
        train("style", StyleConfig(style_image=str(style_image)), _train_config(data, out))
    with pytest.raises(I2IError, match="--vgg-weights nope.pth: no such file"):
        train("style", StyleConfig(style_image=str(style_image), vgg_weights="nope.pth"), _train_config(data, out))
    with pytest.raises(I2IError, match="style needs --style-image FILE"):
        train("style", StyleConfig(vgg_weights=str(vgg_file)), _train_config(data, out))
    with pytest.raises(I2IError, match="--style-image missing.png: no such file"):
        train("style", _config(Path("missing.png"), vgg_file), _train_config(data, out))
    with pytest.raises(I2IError, match="no target images to evaluate against"):
        train("style", _config(style_image, vgg_file), _train_config(data, out, eval_every=5))
    with pytest.raises(I2IError, match="--content-layer 'relu9_9'; valid: relu2_2, relu3_3"):
        StyleConfig(content_layer="relu9_9")
    assert not out.exists()  # every error came before any work


def test_style_cli_trains_from_a_plain_folder_under_bf16(
    demo_data: Path, style_image: Path, vgg_file: Path, tmp_path: Path
) -> None:
    from conftest import invoke

    from i2i.train.cli import main

    help_text = invoke(main, ["style", "--help"]).output
    for option in ("--style-image", "--vgg-weights", "--content-layer", "--style-weight", "--tv-weight"):
        assert option in help_text
    args = ["style", "--data", demo_data / "train" / "A", "--style-image", style_image, "--vgg-weights", vgg_file]
    args += ["--ngf", 8, "--n-blocks", 1, "--crop-size", CROP, "--load-size", CROP + 8, "--max-steps", 2]
    result = invoke(main, [*args, "--workers", 0, "--no-progress", "--out", tmp_path, "--amp", "bf16"])
    assert result.exit_code == 0, result.output
    assert f"checkpoint: {tmp_path / 'model.pt'}" in result.output and f"config:     {tmp_path}" in result.output
    assert "eval log" not in result.output  # a style run has no held-out targets
