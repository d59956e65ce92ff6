"""Every registered training method: a few steps on tiny data, finite losses, a checkpoint that reloads,
resume through the loop, and (slow) an ONNX export that passes parity. A new method is tested by
registering it and adding its tiny config here."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from float32_bounds import reorder_bound

from i2i.errors import I2IError
from i2i.train.checkpoint import load_checkpoint, load_generator
from i2i.train.loop import TrainConfig, train
from i2i.train.methods import METHODS, get_method
from i2i.train.methods.cut import CUT, CUTConfig, FastCUTConfig


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CUT_TINY = dict(ngf=8, ndf=8, n_blocks=5, num_patches=16, nce_channels=16)  # layer 16 = block 5, as with 9 blocks
# (method config, crop size) per method; crops are multiples of each generator's size_multiple.
TINY: dict[str, tuple[dict[str, Any], int]] = {
    "pix2pix": (dict(ngf=8, ndf=8, num_downs=5), 32),
    "cyclegan": (dict(ngf=8, ndf=8, n_blocks=2), 32),
    "cut": (CUT_TINY, 32),
    "fastcut": (CUT_TINY, 32),
    "sndcr": (dict(CUT_TINY, n_blocks=3, allow_random_vgg=True), 32),
}
# Methods whose data or inputs the shared tiny fixture cannot provide; their own files test them
# (test_distill.py, test_stig.py, test_style.py), so they are left out here rather than skipped.
TESTED_ELSEWHERE = {
    "distill": "needs a teacher checkpoint",
    "stig": "trains on real/generated image pairs",
    "style": "needs a style image",
}
STEPS = 3


def registry_params() -> list[str]:
    return [name for name in sorted(METHODS) if name not in TESTED_ELSEWHERE]


def test_every_method_is_covered() -> None:
    assert set(TINY) | set(TESTED_ELSEWHERE) == set(METHODS)


@pytest.fixture(scope="module")
def tiny_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Train a method for a few steps once per module; return its run folder."""
    runs: dict[str, Path] = {}

    def run(name: str) -> Path:
        if name not in runs:
            kwargs, crop = TINY[name]
            out = tmp_path_factory.mktemp(f"run_{name}")
            config = TrainConfig(
                data=str(demo_data),
                out=str(out),
                load_size=crop + crop // 8,
                crop_size=crop,
                batch_size=2,
                max_steps=STEPS,
                workers=0,
                log_every=1,
                sample_every=STEPS,
                save_every=2,  # one intermediate save_run as well as the final one
                progress=False,
            )
            train(name, get_method(name).config_class(**kwargs), config)
            runs[name] = out
        return runs[name]

    return run


@pytest.mark.parametrize("name", registry_params())
def test_method_trains_and_its_checkpoint_reloads(name: str, tiny_run: Callable[[str], Path]) -> None:
    out = tiny_run(name)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    losses = {k: v for r in records for k, v in r.items() if k not in ("step", "epoch", "lr", "images_per_s")}
    assert losses and all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    if name in ("cut", "sndcr"):
        assert "nce_y" in losses  # identity NCE
    if name == "fastcut":
        assert "nce_y" not in losses
    if name == "sndcr":
        assert {"semantic", "style"} <= set(losses)

    generator, ckpt = load_generator(out / "model.pt")  # strict: every key fits the registered arch
    assert ckpt["method"] == name
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    saved = ckpt["state_dict"]
    assert any(  # model.pt holds exactly the trained generator's tensors
        net.keys() == saved.keys() and all(torch.equal(net[k], saved[k]) for k in saved)
        for net in state["networks"].values()
    )
    m = ckpt["io"]["size_multiple"]
    assert m == getattr(generator, "size_multiple", None)
    with torch.no_grad():
        y = generator(torch.rand(1, 3, 2 * m, 3 * m) * 2 - 1)
    assert y.shape == (1, 3, 2 * m, 3 * m) and torch.isfinite(y).all() and y.abs().max() <= 1


@pytest.mark.parametrize("name", registry_params())
def test_resume_continues_through_the_loop(name: str, tiny_run: Callable[[str], Path], tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(tiny_run(name), out)
    kwargs, crop = TINY[name]
    config = json.loads((out / "config.json").read_text())["train"]
    config.update(out=str(out), resume=True, max_steps=STEPS + 1)
    result = train(name, get_method(name).config_class(**kwargs), TrainConfig(**config))
    assert result.steps == STEPS + 1
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    if issubclass(get_method(name), CUT):  # the lazily built head and its optimiser came back
        assert "mlp_0.0.weight" in state["networks"]["projection"]
        assert state["optimizers"]["projection"]["state"]


@pytest.mark.slow
@pytest.mark.parametrize("name", registry_params())
def test_export_parity(name: str, tiny_run: Callable[[str], Path]) -> None:
    from i2i.export.onnx import ExportConfig, export_checkpoint

    out = tiny_run(name)
    result = export_checkpoint(ExportConfig(checkpoint=str(out / "model.pt"), progress=False))
    assert result.parity["passed"] and result.parity["max_abs"] <= 1e-4
    assert result.card.method == name
    assert load_checkpoint(out / "model.pt")["arch"] == result.card.arch


# --------------------------------------------------------------------------- CUT specifics


def batch(seed: int, size: int = 32, n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "source": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
        "target": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
    }


@pytest.mark.parametrize("config_cls", [CUTConfig, FastCUTConfig])
def test_lazy_head_resumes_exactly(config_cls: type[CUTConfig]) -> None:
    """Save after two steps, rebuild a fresh method from the state dicts, step both: identical."""
    name = "cut" if config_cls is CUTConfig else "fastcut"
    cfg = config_cls(**CUT_TINY)
    torch.manual_seed(0)
    a = get_method(name)(cfg, torch.device("cpu"))
    assert not a.projection.built and "projection" not in a.optimizers()  # type: ignore[attr-defined]
    for i in range(2):
        a.train_step(batch(i))
    assert set(a.optimizers()) == {"generator", "discriminator", "projection"}
    nets = copy.deepcopy({k: v.state_dict() for k, v in a.networks().items()})
    opts = copy.deepcopy({k: v.state_dict() for k, v in a.optimizers().items()})

    b = get_method(name)(cfg, torch.device("cpu"))
    for k, net in b.networks().items():  # the loop's resume order: networks, then optimisers
        net.load_state_dict(nets[k])
    for k, opt in b.optimizers().items():
        opt.load_state_dict(opts[k])
    assert set(b.optimizers()) == {"generator", "discriminator", "projection"}
    for method in (a, b):
        method.opt_g.param_groups[0]["lr"] = 1e-4  # type: ignore[attr-defined]  # as the loop's scheduler would
    torch.manual_seed(7)
    losses_a = a.train_step(batch(9))
    torch.manual_seed(7)
    losses_b = b.train_step(batch(9))
    assert losses_a == losses_b
    assert b.opt_f.param_groups[0]["lr"] == 1e-4  # type: ignore[attr-defined]  # the head follows G's schedule
    for k in nets:
        sa, sb = a.networks()[k].state_dict(), b.networks()[k].state_dict()
        assert all(torch.equal(sa[n], sb[n]) for n in sa)


def test_flip_equivariance_compares_flipped_back_features() -> None:
    """With the input flipped, query features are flipped back before they meet the keys (FastCUT)."""
    torch.manual_seed(0)
    cfg = FastCUTConfig(**CUT_TINY)
    m = get_method("fastcut")(cfg, torch.device("cpu"))
    source = batch(0)["source"]
    m.data_dependent_initialize(source)  # type: ignore[attr-defined]
    with torch.no_grad():
        output = m.generator(source.flip(3))  # type: ignore[attr-defined]
        torch.manual_seed(1)
        flipped = m.nce(source, output, flipped=True).item()  # type: ignore[attr-defined]
        torch.manual_seed(1)
        as_is = m.nce(source, output, flipped=False).item()  # type: ignore[attr-defined]
        queries = [f.flip(3) for f in m.generator.encode(output, cfg.layer_ids)]  # type: ignore[attr-defined]
        keys = m.generator.encode(source, cfg.layer_ids)  # type: ignore[attr-defined]
        torch.manual_seed(1)
        pooled_k, sampling = m.projection(keys, cfg.num_patches)  # type: ignore[attr-defined]
        pooled_q, _ = m.projection(queries, cfg.num_patches, sampling)  # type: ignore[attr-defined]
        expected = sum(m.nce_loss(q, k).item() * 10.0 for q, k in zip(pooled_q, pooled_k)) / 5  # type: ignore[attr-defined]
    assert flipped == pytest.approx(expected, rel=1e-6)
    assert flipped != pytest.approx(as_is, rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(nce_layers="4,0"), "ascending"),
        (dict(nce_layers="a,b"), "comma-separated"),
        (dict(lambda_nce=0.0), "plain GAN"),
    ],
)
def test_bad_cut_options_are_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(I2IError, match=message):
        CUTConfig(**kwargs)


def test_nce_layer_beyond_the_generator_is_an_error() -> None:
    with pytest.raises(I2IError, match="modules 0..24"):
        get_method("cut")(CUTConfig(**dict(CUT_TINY, n_blocks=2), nce_layers="0,30"), torch.device("cpu"))


# --------------------------------------------------------------------------- learning


def colour_histogram(images: list[Any], bins: int = 16) -> Any:
    """Normalised per-channel 16-bin histograms of uint8 RGB images, concatenated (48 values summing to 1)."""
    import numpy as np

    per_image = [
        np.concatenate([np.histogram(im[..., c], bins=bins, range=(0, 256))[0] for c in range(3)]) for im in images
    ]
    counts = np.sum(per_image, axis=0)
    return counts / counts.sum()


def demo_images(root: Path, folders: tuple[str, str], size: int) -> list[Any]:
    from i2i.train.data import _resize, load_image_rgb

    return [_resize(load_image_rgb(p), size, size) for d in folders for p in sorted((root / d).iterdir())]


@pytest.mark.slow
def test_cut_moves_the_demo_photos_toward_the_sketch_domain(demo_data: Path, tmp_path: Path) -> None:
    """400 CPU steps of CUT (ngf 8, 64² crops, ~2 min on one core) on photo → colour-pencil-sketch.

    Statistic: L1 distance between the colour histogram of G(photos) and that of the real sketches.
    Measured on the reference machine: untrained G 1.80 (a flat grey image), the photos themselves
    (identity) 0.57, CUT after 400 steps 0.31. Asserted: at least halved vs the untrained generator,
    and closer to the sketch domain than the unchanged photos are.
    """
    import numpy as np

    from i2i.train.data import to_tensor

    crop = 64
    photos = demo_images(demo_data, ("trainA", "testA"), crop)
    sketches = demo_images(demo_data, ("trainB", "testB"), crop)
    target = colour_histogram(sketches)

    def distance(generator: torch.nn.Module) -> float:
        with torch.no_grad():
            out = generator.eval()(torch.stack([to_tensor(p) for p in photos]))
        images = [((t.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).round().astype(np.uint8) for t in out]
        return float(np.abs(colour_histogram(images) - target).sum())

    config = CUTConfig(ngf=8, ndf=8, n_blocks=4, num_patches=64)
    torch.manual_seed(0)  # the loop seeds the same way: this is the generator training starts from
    untrained = distance(get_method("cut")(config, torch.device("cpu")).generator)  # type: ignore[attr-defined]
    identity = float(np.abs(colour_histogram(photos) - target).sum())
    train(
        "cut",
        config,
        TrainConfig(
            data=str(demo_data),
            out=str(tmp_path),
            load_size=72,
            crop_size=crop,
            batch_size=2,
            max_steps=400,
            workers=0,
            progress=False,
            sample_every=10**6,
            save_every=10**6,
        ),
    )
    trained = distance(load_generator(tmp_path / "model.pt")[0])
    assert trained < 0.5 * untrained, (trained, untrained)
    assert trained < identity, (trained, identity)


# --------------------------------------------------------------------------- aligned data, --direction


def _aligned_dataset(root: Path, n: int = 2, half: int = 32) -> Path:
    """The reference pix2pix layout as distributed: train/N.jpg = A|B side by side (2W x H)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    for i in range(n):
        a = cv2.GaussianBlur(rng.integers(0, 256, (half, half, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(root / "train" / f"{i}.jpg"), np.concatenate([a, 255 - a], axis=1))
    return root


def test_pix2pix_trains_on_the_aligned_layout_in_either_direction(tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.train.cli import main as train_cli

    data = _aligned_dataset(tmp_path / "facades")
    tiny = ["--ngf", "8", "--ndf", "8", "--num-downs", "5", "--crop-size", "32", "--load-size", "32"]
    for direction in ("AtoB", "BtoA"):
        out = tmp_path / direction
        args = ["pix2pix", "--data", str(data), "--out", str(out), "--max-steps", "1", "--workers", "0"]
        result = invoke(train_cli, [*args, *tiny, "--no-progress", "--direction", direction])
        assert result.exit_code == 0, result.output
        ckpt = load_checkpoint(out / "model.pt")
        assert ckpt["direction"] == direction and ckpt["train_config"]["train"]["direction"] == direction


def test_direction_btoa_swaps_the_unpaired_domains_and_names_the_files(demo_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        data=str(demo_data),
        out=str(tmp_path),
        load_size=32,
        crop_size=32,
        max_steps=1,
        workers=0,
        progress=False,
        eval_every=-1,
        direction="BtoA",
    )
    result = train("cyclegan", get_method("cyclegan").config_class(ngf=8, ndf=8, n_blocks=1), config)
    assert sorted(p.name for p in result.checkpoints) == ["model.pt", "model_AtoB.pt"]
    assert load_checkpoint(tmp_path / "model.pt")["direction"] == "BtoA"  # model.pt translates B to A
    assert load_checkpoint(tmp_path / "model_AtoB.pt")["direction"] == "AtoB"
    from i2i.train.loop import make_dataset

    dataset = make_dataset(get_method("cyclegan"), get_method("cyclegan").config_class(), config)
    assert all(p.parent.name == "trainB" for p in dataset.source_paths)  # type: ignore[attr-defined]
    with pytest.raises(I2IError, match="--direction BtoA: style has no A/B dataset to swap"):
        make_dataset(get_method("style"), get_method("style").config_class(), config)


# --------------------------------------------------------------------------- CUT's decay-epoch data


def _unpaired_photos(root: Path, n: int = 2) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(1)
    for side in ("A", "B"):
        (root / f"train{side}").mkdir(parents=True)
        for i in range(n):
            image = cv2.GaussianBlur(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), (7, 7), 0)
            cv2.imwrite(str(root / f"train{side}" / f"{i}.png"), image)
    return root


@pytest.mark.parametrize("name", ["cut", "fastcut", "sndcr"])
def test_cut_family_decay_epochs_resize_to_the_crop_without_random_crops(name: str, tmp_path: Path) -> None:
    """As the official loaders: resize 40 + random crop 32 while the LR is constant, then (epoch >
    n_epochs) load size = crop size, i.e. a plain resize to 32. Checked on the loop's own samples."""
    from i2i.train.data import _resize, load_image_rgb, to_tensor
    from i2i.train.distributed import DistEnv
    from i2i.train.loop import _setup

    data = _unpaired_photos(tmp_path / "data")
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), load_size=40, crop_size=32, flip=False)
    kwargs = dict(TINY[name][0], epochs=2, epochs_decay=1)
    run = _setup(get_method(name), get_method(name).config_class(**kwargs), config, DistEnv(), torch.device("cpu"))
    samples = run.samples
    assert samples is not None and run.steps_per_epoch == 2 and run.total_steps == 6
    assert samples.late_from == 2  # epochs 0, 1 at the constant rate; epoch 2 (the reference's 3rd) decays
    sources = [to_tensor(_resize(load_image_rgb(data / "trainA" / f"{i}.png"), 32, 32)) for i in range(2)]
    for epoch in range(3):
        for index in range(2):
            sample = samples[epoch * 2 + index]["source"]
            assert sample.shape == (3, 32, 32)
            assert torch.equal(sample, sources[index]) == (epoch == 2)  # random 32-crop of a 40-resize before


def test_compressed_runs_switch_at_the_first_epoch_of_the_decay_and_other_methods_never(tmp_path: Path) -> None:
    from i2i.train.distributed import DistEnv
    from i2i.train.loop import _setup

    data = _unpaired_photos(tmp_path / "data")
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), load_size=40, crop_size=32, max_steps=7)
    cut = _setup(
        get_method("cut"), CUTConfig(**CUT_TINY, epochs=1, epochs_decay=1), config, DistEnv(), torch.device("cpu")
    )
    assert cut.samples is not None and cut.samples.late_from == 2  # decay from step round(3.5) = 4: epoch 2
    cyclegan_cfg = get_method("cyclegan").config_class(ngf=8, ndf=8, n_blocks=1)
    other = TrainConfig(data=str(data), out=str(tmp_path / "run2"), load_size=40, crop_size=32, max_steps=7)
    cyclegan = _setup(get_method("cyclegan"), cyclegan_cfg, other, DistEnv(), torch.device("cpu"))
    assert cyclegan.samples is not None and cyclegan.samples.late is None  # the CycleGAN loaders always crop


# --------------------------------------------------------------------------- test-time normalisation


def test_sample_grids_and_evaluation_run_in_the_recorded_test_mode(tmp_path: Path) -> None:
    from i2i.train.checkpoint import prepare_for_test
    from i2i.train.loop import test_mode

    method = get_method("pix2pix")(get_method("pix2pix").config_class(ngf=4, ndf=4, num_downs=5), torch.device("cpu"))
    trained = method.generator
    with torch.no_grad():  # running statistics far from any batch's own, so the two modes differ
        for m in trained.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.fill_(0.5)
                m.running_var.fill_(4.0)
    batch = {"source": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.zeros(2, 3, 32, 32)}
    rows = {}
    for test_norm in ("frame", "running"):
        config = TrainConfig(data="", out=str(tmp_path), test_norm=test_norm)
        with test_mode(method, config):
            assert method.generator is not trained
            rows[test_norm] = method.sample_rows(batch)[1]
        assert method.generator is trained and trained.training  # the training net is untouched
        expected = prepare_for_test(trained, test_norm=test_norm)(batch["source"])
        assert torch.equal(rows[test_norm], expected)
    assert not torch.allclose(rows["frame"], rows["running"], atol=1e-3)
    # Per-frame statistics: each image gets what it gets alone (the reference test.py, batch size 1).
    config = TrainConfig(data="", out=str(tmp_path), test_norm="frame")
    with test_mode(method, config), torch.no_grad():
        alone = method.generator(batch["source"][1:])
        bound = reorder_bound(method.generator, batch["source"][1:])
    with torch.no_grad():
        training_mode = trained(batch["source"])  # batch statistics over both images: neither mode
    # In a batch and alone, only the order of the convolutions' sums differs (kernels are chosen per batch
    # size and CPU): the float32 reordering bound of tests/float32_bounds.py, well below what statistics
    # mixed across the batch would change.
    assert bound < 0.5 * (training_mode - rows["frame"]).abs().max()
    assert (rows["frame"][1:] - alone).abs().max() <= bound


def test_test_mode_is_recorded_in_model_pt(demo_data: Path, tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.train.cli import main as train_cli

    tiny = ["--ngf", "4", "--ndf", "4", "--num-downs", "5", "--crop-size", "32", "--load-size", "32"]
    args = ["pix2pix", "--data", str(demo_data), "--out", str(tmp_path / "run"), "--max-steps", "1", "--workers", "0"]
    result = invoke(train_cli, [*args, *tiny, "--no-progress", "--eval-every", "-1", "--test-norm", "running"])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert (ckpt["test_norm"], ckpt["test_dropout"]) == ("running", False)
    bad = invoke(train_cli, [*args, *tiny, "--test-norm", "batch"])
    assert bad.exit_code == 2 and "'batch' is not one of 'frame', 'running'" in bad.output  # a usage error


def test_option_help_and_bounds_live_beside_the_config_defaults() -> None:
    """Each config field carries its help (and range or choices) as field metadata, which the CLI
    reads: no table in the CLI to keep in step."""
    import click

    from i2i.train.cli import main as train_cli
    from i2i.train.options import field_metadata

    for method_cls in METHODS.values():
        for config_cls in (TrainConfig, method_cls.config_class):
            for f in dataclasses.fields(config_cls):
                assert field_metadata(config_cls, f.name).get("help"), f"{config_cls.__name__}.{f.name}"
    options = {p.name: p for p in train_cli.commands["cut"].params if isinstance(p, click.Option)}
    assert isinstance(options["direction"].type, click.Choice) and options["direction"].type.choices == ("AtoB", "BtoA")
    assert isinstance(options["num_patches"].type, click.IntRange) and options["num_patches"].type.min == 1
    assert options["epochs"].default == 200 and options["epochs"].help == "Epochs at the initial learning rate."
