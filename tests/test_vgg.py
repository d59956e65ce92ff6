"""VGG16 features without torchvision: the standard weight file loads strictly; anything else fails in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import invoke

from i2i.errors import I2IError
from i2i.train.cli import main as train_cli
from i2i.train.methods import get_method
from i2i.train.methods.sndcr import SNDCRConfig
from i2i.train.nets import NETS
from i2i.train.nets.vgg import (
    VGG16_FILE,
    VGG16_URL,
    VGG16Features,
    load_vgg16_features,
    resolve_vgg16_weights,
    vgg16_feature_shapes,
    vgg16_layers,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised torchvision-format VGG16 file: all 26 feature tensors (59 MB) + classifier keys.

    The real classifier (≈ 120 M parameters) is replaced by small tensors: the loader ignores it.
    """
    torch.manual_seed(0)
    features = torch.nn.Sequential(*vgg16_layers())
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state.update({"classifier.0.weight": torch.zeros(4, 4), "classifier.6.bias": torch.zeros(4)})
    path = tmp_path_factory.mktemp("vgg") / VGG16_FILE
    torch.save(state, path)
    return path


def test_vgg_is_not_a_registered_generator() -> None:
    assert not any("vgg" in name for name in NETS)


def test_parameter_names_match_torchvision() -> None:
    shapes = vgg16_feature_shapes()
    assert len(shapes) == 26  # 13 convs × (weight, bias)
    assert shapes["features.0.weight"] == (64, 3, 3, 3) and shapes["features.28.weight"] == (512, 512, 3, 3)
    assert "features.16.weight" not in shapes  # index 16 is a max-pool in VGG16 (a conv in VGG19)
    own = VGG16Features().state_dict()
    assert list(own) == [k for k in shapes if int(k.split(".")[1]) < 16]


def test_standard_file_loads_strictly(vgg_file: Path) -> None:
    net = load_vgg16_features(vgg_file, VGG16Features())
    stored = torch.load(vgg_file, weights_only=True)
    assert all(torch.equal(v, stored[k]) for k, v in net.state_dict().items())
    feats = net(torch.zeros(1, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8)]
    assert not any(p.requires_grad for p in net.parameters()) and not net.train().training


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("features.28.weight"), r"missing: features\.28\.weight"),
        (lambda s: s.__setitem__("features.16.weight", torch.zeros(1)), r"unexpected: features\.16\.weight"),
        (lambda s: s.__setitem__("features.0.weight", torch.zeros(64, 1, 3, 3)), r"wrong shape: features\.0\.weight"),
    ],
    ids=["missing", "vgg19-like", "shape"],
)
def test_wrong_files_are_refused(vgg_file: Path, tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    state = torch.load(vgg_file, weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(I2IError, match=f"not torchvision's VGG16.*{message}"):
        load_vgg16_features(tmp_path / "bad.pth", VGG16Features())


def test_corrupt_and_missing_files(vgg_file: Path, tmp_path: Path) -> None:
    (tmp_path / "cut.pth").write_bytes(vgg_file.read_bytes()[:4096])
    with pytest.raises(I2IError, match="truncated or not a torch file"):
        load_vgg16_features(tmp_path / "cut.pth", VGG16Features())
    with pytest.raises(I2IError, match=f"no such file.*{VGG16_URL}"):
        resolve_vgg16_weights(tmp_path / "absent.pth")


def test_hub_cache_is_used_when_present(vgg_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert resolve_vgg16_weights("") is None
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / VGG16_FILE).symlink_to(vgg_file)
    assert resolve_vgg16_weights("") == cache / VGG16_FILE
    assert resolve_vgg16_weights(vgg_file) == vgg_file  # an explicit file wins


def test_sndcr_without_weights_stops_before_training(
    demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # no hub-cache copy either
    out = tmp_path / "run"
    args = ["sndcr", "--data", demo_data, "--out", out, "--ngf", "8", "--max-steps", "1", "--no-progress"]
    result = invoke(train_cli, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and VGG16_FILE in lines[0] and VGG16_URL in lines[0] and "--vgg-weights" in lines[0]
    assert not (out / "log.jsonl").exists() and not (out / "state.pt").exists()


def test_sndcr_uses_the_given_weights(vgg_file: Path) -> None:
    cfg = SNDCRConfig(ngf=8, ndf=8, n_blocks=3, vgg_weights=str(vgg_file))
    method = get_method("sndcr")(cfg, torch.device("cpu"))
    stored = torch.load(vgg_file, weights_only=True)
    assert torch.equal(method.vgg.features[14].weight, stored["features.14.weight"])  # type: ignore[attr-defined]
    assert "vgg" not in method.networks()  # frozen input, not training state
