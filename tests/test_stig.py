"""STIG: the spectrum refiner trains, writes a model.pt, exports, and runs as the runtime refine stage."""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import invoke

from i2i.errors import I2IError
from i2i.train import spectral
from i2i.train.loop import TrainConfig, train
from i2i.train.methods.stig import Stig, StigConfig

TINY = dict(size=32, ngf=4, ndf=4, num_patches=16, sigma=2)


def _config(out: Path, steps: int = 3) -> TrainConfig:
    return TrainConfig(
        data="", out=str(out), batch_size=2, max_steps=steps, workers=0, sample_every=steps, progress=False
    )


def test_spectrum_representation_roundtrips_and_shifts_spatial_dims_only() -> None:
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    parts = spectral.to_spectrum(images)
    assert parts.normed.min() == pytest.approx(-1.0) and parts.normed.max() == pytest.approx(1.0)
    assert torch.allclose(spectral.from_spectrum(parts.normed, parts), images, atol=1e-5)
    planes = torch.zeros(2, 3, 8, 6)
    planes[1, 2] = 1.0
    spectrum = spectral.centred_spectrum(planes)
    assert spectrum[1, 2, 4, 3].abs() == pytest.approx(48.0) and spectrum[:, :2].abs().max() == 0
    # Per-image normalisation: an image's spectrum does not depend on its batch mates.
    alone = spectral.to_spectrum(images[:1]).normed
    assert torch.allclose(alone, parts.normed[:1])


@pytest.fixture(scope="module")
def tiny_stig(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A STIG run of 3 steps (the paper's form) at 32²: real sketches vs the photos as "generated"."""
    out = tmp_path_factory.mktemp("stig")
    train(
        "stig",
        StigConfig(real=str(demo_data / "train" / "B"), fake=str(demo_data / "train" / "A"), **TINY),
        _config(out),
    )
    return out


def test_stig_trains_a_few_steps(tiny_stig: Path) -> None:
    ckpt = torch.load(tiny_stig / "model.pt", weights_only=True)
    assert ckpt["method"] == "stig" and ckpt["arch"] == "unetpp"
    assert ckpt["arch_kwargs"]["spectrum_size"] == 32 and ckpt["io"]["size_multiple"] == 16
    lines = [json.loads(line) for line in (tiny_stig / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 3
    for key in ("g_gan", "g_psd", "nce", "ssim_fake", "ssim_real", "lf", "d", "d_psd"):
        assert math.isfinite(lines[-1][key]), key
    grid = cv2.imread(str(tiny_stig / "samples" / "step_000003.png"))
    assert grid is not None and grid.shape[:2] == (3 * 32, 4 * 32)  # rows: generated | refined | real


def _unit_nce(method: Stig, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every PatchNCE layer loss exactly 1 and record the batch size of every encoder pass."""
    passes: list[int] = []
    encode = method.generator.encode

    def spy(x: torch.Tensor) -> list[torch.Tensor]:
        passes.append(x.shape[0])
        return encode(x)

    monkeypatch.setattr(method.nce_loss, "forward", lambda query, key: (query * 0).sum() + 1.0)
    monkeypatch.setattr(method.generator, "encode", spy)
    return passes


@pytest.mark.parametrize(("weighting", "expected"), [("paper", 10.0 * 2.0), ("official", 10.0 * 10.0 / 5 * 2.0)])
def test_patch_nce_weighting_and_separate_encoder_passes(
    monkeypatch: pytest.MonkeyPatch, weighting: str, expected: float
) -> None:
    """paper: λ_NCE · (mean of the five layers), once for A and once for the identity term B.
    official: λ_NCE² / 5 · first layer only, the official code's effective weight (20 · ℓ_0)."""
    method = Stig(StigConfig(lambda_nce=10.0, nce_weighting=weighting, **TINY), torch.device("cpu"))
    passes = _unit_nce(method, monkeypatch)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    losses = method.train_step({"source": images, "target": images.flip(0)})
    assert losses["nce"] == pytest.approx(expected)
    # G's forward sees A and B in one batch of 4 (as the official code); then four PatchNCE encoder
    # passes of one domain each (output and source, for A and for B): BatchNorm statistics apart.
    assert passes == [4, 2, 2, 2, 2]


def test_init_and_mlp_width_follow_the_official_code() -> None:
    method = Stig(StigConfig(**{**TINY, "num_patches": 24}), torch.device("cpu"))
    mlp_layers = [m for m in method.patch_mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert len(mlp_layers) == 10 and all(m.out_features == 24 for m in mlp_layers)  # width = patches
    for layer in [*mlp_layers, method.spectral_discriminator[0]]:  # PyTorch's default (kaiming-uniform)
        bound = 1.0 / math.sqrt(layer.in_features)
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        assert layer.bias.abs().max() > 0  # normal(0, 0.02) init would zero it
        assert layer.weight.std() > 0.5 * bound / math.sqrt(3)
    convs = [m for m in method.generator.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.std().item() - 0.02) < 0.002  # G (and D): normal(0, 0.02) as the official init_net


@pytest.mark.parametrize("option", [dict(crop_size=128), dict(load_size=300), dict(flip=False)])
def test_shared_augmentation_options_are_refused(option: dict[str, object], tmp_path: Path) -> None:
    config = TrainConfig(data="", out=str(tmp_path), **option)  # type: ignore[arg-type]
    flag = "--" + next(iter(option)).replace("_", "-")
    with pytest.raises(I2IError, match=f"stig: {flag} does not apply"):
        Stig.make_dataset(config, StigConfig(real=str(tmp_path), fake=str(tmp_path)))


def test_stig_cli_needs_no_data_but_real_and_fake(demo_data: Path, tmp_path: Path) -> None:
    from i2i.train.cli import main

    args = ["--size", 32, "--ngf", 4, "--ndf", 4, "--num-patches", 16, "--sigma", 2, "--max-steps", 2]
    args += ["--batch-size", 2, "--workers", 0, "--no-progress", "--out", tmp_path / "run"]
    result = invoke(main, ["stig", "--real", demo_data / "train" / "B", "--fake", demo_data / "train" / "A", *args])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model.pt").is_file()
    result = invoke(main, ["stig", "--real", demo_data / "train" / "B", *args])
    assert result.exit_code == 1 and "--fake DIR" in result.output
    result = invoke(main, ["stig", "--real", demo_data / "train" / "B", "--fake", demo_data, "--crop-size", 16, *args])
    assert result.exit_code == 2 and "No such option '--crop-size'" in result.output  # not offered at all


def test_stig_help_leaves_out_the_options_it_does_not_use() -> None:
    from i2i.train.cli import main

    stig = invoke(main, ["stig", "--help"])
    pix2pix = invoke(main, ["pix2pix", "--help"])
    assert stig.exit_code == pix2pix.exit_code == 0
    for flag in ("--load-size", "--crop-size", "--flip", "--preprocess"):
        assert flag not in stig.output and flag in pix2pix.output
    assert "--batch-size" in stig.output  # the shared options it does use stay


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(size=40), "multiple of 16"),
        (dict(sigma=20), "low-frequency box"),
        (dict(nce_layers="0,7"), "encoder levels are 0-4"),
        (dict(nce_layers="a"), "comma-separated"),
        (dict(nce_weighting="cut"), "--nce-weighting 'cut': valid: paper, official"),
    ],
)
def test_stig_config_errors(overrides: dict[str, object], message: str) -> None:
    config = StigConfig(**{**TINY, **overrides})  # type: ignore[arg-type]
    with pytest.raises(I2IError, match=message):
        Stig(config, torch.device("cpu"))


def _export_refiner(model_pt: Path, out: Path) -> Path:
    """TorchScript export (fast) of the spectrum network plus the card i2i-export would embed."""
    import onnx

    from i2i.train.checkpoint import load_generator

    network, ckpt = load_generator(model_pt)
    example = torch.rand(1, 3, 32, 32) * 2 - 1
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network, (example,), str(out), dynamo=False, opset_version=17, input_names=["image"],
            output_names=["output"],
            dynamic_axes={"image": {0: "batch", 2: "h", 3: "w"}, "output": {0: "batch", 2: "h", 3: "w"}},
        )  # fmt: skip
    model = onnx.load(str(out))
    card = {"method": ckpt["method"], "arch_kwargs": ckpt["arch_kwargs"], "size_multiple": 16, "io": ckpt["io"]}
    entry = model.metadata_props.add()
    entry.key, entry.value = "i2i", json.dumps(card)
    onnx.save(model, str(out))
    return out


def test_stig_onnx_refiner_matches_torch(tiny_stig: Path, tmp_path: Path) -> None:
    from i2i.runtime.spectral import StigRefiner, open_refiner
    from i2i.train.checkpoint import load_generator

    onnx_path = _export_refiner(tiny_stig / "model.pt", tmp_path / "refiner.onnx")
    network, _ = load_generator(tiny_stig / "model.pt")
    batch = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = spectral.refine(network, batch).numpy()
    with open_refiner(onnx_path) as refiner:
        assert isinstance(refiner, StigRefiner) and refiner.spectrum_size == 32
        got = refiner(batch.numpy())
        assert np.abs(got - expected).max() <= 1e-3
        # Any frame size: the spectrum is resampled to the trained 32² grid and the change back.
        frame = refiner((torch.rand(1, 3, 40, 56) * 2 - 1).numpy())
        assert frame.shape == (1, 3, 40, 56) and np.isfinite(frame).all()


def test_in_graph_stig_refinement_matches_runtime_stage(tiny_stig: Path, tmp_path: Path) -> None:
    """generator + baked STIG refiner (DFT as MatMuls) in one ONNX graph vs generator → runtime stage."""
    import onnx

    from i2i.export.spectral import bake_refinement
    from i2i.runtime.backends.onnxruntime import OrtSession
    from i2i.runtime.spectral import open_refiner
    from i2i.train.nets import build_net

    generator = build_net("resnet", ngf=4, n_blocks=1).eval()
    model = bake_refinement(generator, tiny_stig / "model.pt", (32, 32)).eval()
    example = torch.rand(2, 3, 32, 32) * 2 - 1
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(tmp_path / "baked.onnx"), dynamo=False, opset_version=17, input_names=["image"],
            output_names=["output"], dynamic_axes={"image": {0: "batch"}, "output": {0: "batch"}},
        )  # fmt: skip
    ops = {node.op_type for node in onnx.load(str(tmp_path / "baked.onnx")).graph.node}
    assert "MatMul" in ops and not ops & {"DFT", "STFT"}
    with OrtSession(tmp_path / "baked.onnx") as session:
        in_graph = session.run(example.numpy())
    with torch.no_grad():
        translated = generator(example).numpy()
    refiner_onnx = _export_refiner(tiny_stig / "model.pt", tmp_path / "refiner.onnx")
    with open_refiner(refiner_onnx) as refiner:
        runtime = refiner(translated)
    assert np.abs(in_graph - runtime).max() <= 1e-3
    with pytest.raises(I2IError, match="trained on 32x32 spectra"):
        bake_refinement(generator, tiny_stig / "model.pt", (64, 64))


@pytest.mark.slow
def test_stig_refiner_exports_with_i2i_export(demo_data: Path, tmp_path: Path) -> None:
    from i2i.export.onnx import ExportConfig, export_checkpoint
    from i2i.runtime.spectral import open_refiner

    train(
        "stig",
        StigConfig(real=str(demo_data / "train" / "B"), fake=str(demo_data / "train" / "A"), **TINY),
        _config(tmp_path / "run", steps=2),
    )
    result = export_checkpoint(ExportConfig(checkpoint=str(tmp_path / "run" / "model.pt"), progress=False))
    assert result.card.method == "stig" and result.card.refiner is not None
    assert result.card.refiner.spectrum_size == 32 and result.card.test_norm == "frame"
    with open_refiner(result.onnx) as refiner:
        out = refiner((torch.rand(1, 3, 32, 32) * 2 - 1).numpy())
    assert out.shape == (1, 3, 32, 32) and np.isfinite(out).all()


@pytest.mark.slow
def test_stig_lowers_lfd_on_demo_data(demo_data: Path, tmp_path: Path) -> None:
    """A tiny CycleGAN (transposed convolutions) trained 30 steps translates the demo photos; a
    STIG refiner trained 200 steps on its outputs vs the real sketches lowers their LFD, measured
    on the training images as the official evaluation does (measured 16.20 → 15.78 at 64²,
    PSNR ≈ 30 dB to the unrefined images). Uses ``residual=True`` (not in the paper): the paper's
    form must first learn to reproduce its input spectrum to ~1e-3, thousands of steps that a CPU
    test cannot afford."""
    from i2i.train.checkpoint import load_generator
    from i2i.train.data import _resize, list_images, load_image_rgb, to_tensor
    from i2i.train.methods.cyclegan import CycleGANConfig

    translator_run = tmp_path / "cyclegan"
    translator_config = TrainConfig(
        data=str(demo_data), out=str(translator_run), load_size=72, crop_size=64, batch_size=2, max_steps=30,
        workers=0, sample_every=10**6, save_every=10**6, progress=False,
    )  # fmt: skip
    train("cyclegan", CycleGANConfig(ngf=8, ndf=8, n_blocks=2), translator_config)
    translator, _ = load_generator(translator_run / "model.pt")
    photos = torch.stack([to_tensor(load_image_rgb(p)) for p in list_images(demo_data / "train" / "A")])
    with torch.no_grad():
        translated = translator(photos)  # (12, 3, 128, 128)
    (tmp_path / "fake").mkdir()
    for i, image in enumerate(translated):
        pixels = ((image.permute(1, 2, 0).numpy() + 1) * 127.5 + 0.5).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "fake" / f"{i:03d}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))

    config = StigConfig(
        real=str(demo_data / "train" / "B"), fake=str(tmp_path / "fake"), size=64, ngf=8, ndf=8, num_patches=64,
        sigma=2, lr=1e-3, epochs=1, epochs_decay=1, residual=True,
    )  # fmt: skip
    train("stig", config, TrainConfig(data="", out=str(tmp_path / "run"), max_steps=200, workers=0, progress=False))
    refiner, _ = load_generator(tmp_path / "run" / "model.pt")

    def load(folder: Path) -> torch.Tensor:  # as the STIG dataset sees them: resized to 64²
        return torch.stack(
            [
                to_tensor(np.ascontiguousarray(_resize(load_image_rgb(p), 64, 64, resample="bilinear")))
                for p in list_images(folder)
            ]
        )

    real, fake = load(demo_data / "train" / "B"), load(tmp_path / "fake")
    with torch.no_grad():
        refined = spectral.refine(refiner, fake)

    def to01(x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2

    before, after = spectral.lfd(to01(real), to01(fake)), spectral.lfd(to01(real), to01(refined))
    assert after < before - 0.1, (before, after)
    mse = ((refined - fake) ** 2).mean(dim=(1, 2, 3)) / 4  # [0, 1] scale
    assert (10 * torch.log10(1 / mse)).mean() >= 20.0  # refined, not replaced
