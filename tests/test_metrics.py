"""FID/KID arithmetic against closed forms, SSIM/PSNR against references, the Inception weight-file
contract (strict keys, one-line errors), the i2i-eval commands, and evaluation during training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import invoke, run_script
from torch import nn

from i2i.errors import I2IError
from i2i.train import metrics
from i2i.train.nets.inception import FID_FILE, InceptionV3Features, detect_variant, load_inception


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Small tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- FID arithmetic


def _spd(rng: np.random.Generator, d: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def test_fid_equal_covariances_is_squared_mean_distance() -> None:
    rng = np.random.default_rng(0)
    sigma = _spd(rng, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    assert metrics.frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


def test_fid_commuting_covariances_closed_form() -> None:
    """Σ1 = Q diag(a) Qᵀ, Σ2 = Q diag(b) Qᵀ: FID = ‖Δμ‖² + Σ (√a − √b)²."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a, b = rng.uniform(0.1, 4.0, 8), rng.uniform(0.1, 4.0, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    value = metrics.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert value == pytest.approx(expected, rel=1e-9)
    assert metrics.frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9.0 + 1.0)  # 1-D: Δμ² + Δσ²


def test_fid_general_covariances_match_scipy_sqrtm_formula() -> None:
    """pytorch-fid's form: Tr(Σ1 + Σ2 − 2 sqrtm(Σ1 Σ2)) with scipy.linalg.sqrtm, for non-commuting Σ."""
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    s1, s2 = _spd(rng, 32), _spd(rng, 32, scale=3.0)
    mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_matches_torchmetrics() -> None:
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 12)), rng.normal(0.3, 1.5, size=(300, 12))
    mu1, s1 = metrics.feature_stats(real)
    mu2, s2 = metrics.feature_stats(fake)
    reference = fid_module._compute_fid(*(torch.from_numpy(t) for t in (mu1, s1, mu2, s2)))
    assert metrics.fid_from_features(real, fake) == pytest.approx(float(reference), rel=1e-8)


def test_fid_shifted_feature_sets_and_identical_sets() -> None:
    """Y = X + δ has the same sample covariance: FID = ‖δ‖² exactly; X against itself: 0 (rank-deficient Σ)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 64))  # fewer samples than dimensions, as FID on a small test set
    delta = rng.normal(size=64)
    assert metrics.fid_from_features(x, x + delta) == pytest.approx(delta @ delta, rel=1e-6)
    assert metrics.fid_from_features(x, x) < 1e-9 * np.trace(np.cov(x, rowvar=False))


def test_fid_sample_space_and_covariance_forms_agree() -> None:
    """Fewer images than dimensions: the n×n nuclear-norm form equals the d×d eigen form."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(9, 40)), rng.normal(0.2, 2.0, size=(14, 40))
    via_covariances = metrics.frechet_distance(*metrics.feature_stats(x), *metrics.feature_stats(y))
    # The d×d form takes square roots of the rounding noise in Σ's 31 zero eigenvalues (≈1e-8 relative).
    assert metrics.fid_from_features(x, y) == pytest.approx(via_covariances, rel=1e-7)


def test_fid_rejects_bad_input() -> None:
    with pytest.raises(I2IError, match="at least 2 images"):
        metrics.fid_from_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --------------------------------------------------------------------------- KID arithmetic


def _kid_brute_force(x: np.ndarray, y: np.ndarray) -> float:
    """MMD²_u written out with loops over pairs, k(a, b) = (a·b/d + 1)³."""
    m, d = len(x), x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1) ** 3)

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_full_subsets_match_brute_force_and_torchmetrics() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    result = metrics.kid_from_features(x, y, subsets=3, subset_size=12)  # subsets = the whole sets
    assert result["kid"] == pytest.approx(_kid_brute_force(x, y), rel=1e-10)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-12) and result["kid_subset_size"] == 12
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    reference = kid_module.poly_mmd(torch.from_numpy(x), torch.from_numpy(y))
    assert result["kid"] == pytest.approx(float(reference), rel=1e-10)


def _expected_cubic_kernel(mu_a: np.ndarray, s_a: np.ndarray, mu_b: np.ndarray, s_b: np.ndarray) -> float:
    """E[(xᵀy/d + 1)³] for independent x ~ N(μa, Σa), y ~ N(μb, Σb), from Gaussian moments up to order 3."""
    d = len(mu_a)
    m_a, m_b = s_a + np.outer(mu_a, mu_a), s_b + np.outer(mu_b, mu_b)

    def third(mu: np.ndarray, s: np.ndarray) -> np.ndarray:  # E[x_i x_j x_k]
        return (
            np.einsum("i,j,k->ijk", mu, mu, mu)
            + np.einsum("i,jk->ijk", mu, s)
            + np.einsum("j,ik->ijk", mu, s)
            + np.einsum("k,ij->ijk", mu, s)
        )

    e1, e2 = mu_a @ mu_b / d, np.trace(m_a @ m_b) / d**2
    e3 = np.sum(third(mu_a, s_a) * third(mu_b, s_b)) / d**3
    return 1 + 3 * e1 + 3 * e2 + e3


def test_kid_shifted_gaussians_closed_form_and_same_distribution_near_zero() -> None:
    """MMD² = E k(x,x') + E k(y,y') − 2 E k(x,y) in closed form; KID is unbiased, so it lands there."""
    rng = np.random.default_rng(0)
    d = 8
    sigma = _spd(rng, d, scale=0.25)
    mu1, mu2 = np.zeros(d), np.linspace(-0.5, 0.5, d)
    expected = (
        _expected_cubic_kernel(mu1, sigma, mu1, sigma)
        + _expected_cubic_kernel(mu2, sigma, mu2, sigma)
        - 2 * _expected_cubic_kernel(mu1, sigma, mu2, sigma)
    )
    root = np.linalg.cholesky(sigma)
    draw = np.random.default_rng(10)
    x, y, z = (draw.normal(size=(3000, d)) @ root.T + mu for mu in (mu1, mu2, mu1))
    shifted = metrics.kid_from_features(x, y, subsets=20, subset_size=500)
    same = metrics.kid_from_features(x, z, subsets=20, subset_size=500)
    assert shifted["kid"] == pytest.approx(expected, rel=0.15)  # expected = 0.364
    assert abs(same["kid"]) < 0.02 * expected


def test_kid_leaves_global_random_state_alone() -> None:
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    metrics.kid_from_features(np.zeros((20, 3)), np.ones((20, 3)), subsets=5, subset_size=10)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


# --------------------------------------------------------------------------- feature pipeline (small random network)


class LinearFeatures(nn.Module):
    """A small random *linear* feature network (conv + global average pool): f(x + δ) = f(x) + f(δ) − f(0)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


def _write_images(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return folder


def test_folder_fid_with_random_linear_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(30, 200, (20, 24, 3), dtype=np.uint8) for _ in range(12)]
    real = _write_images(tmp_path / "real", images)
    shift = np.array([20, 5, 12], np.uint8)  # per BGR channel, exact in 8 bits
    fake = _write_images(tmp_path / "fake", [im + shift for im in images])
    net, cpu = LinearFeatures(), torch.device("cpu")
    delta = torch.from_numpy(shift[::-1].copy()).float().view(1, 3, 1, 1).expand(1, 3, 20, 24) / 255.0  # RGB
    with torch.no_grad():
        expected_shift = (net(delta) - net(torch.zeros_like(delta)))[0].double().numpy()
    result = metrics.folder_metric("fid", real, fake, net, None, cpu)
    assert result["real_images"] == result["generated_images"] == 12
    assert result["fid"] == pytest.approx(expected_shift @ expected_shift, rel=1e-4)
    same = metrics.folder_metric("fid", real, real, net, None, cpu)["fid"]
    assert same < 1e-6 * result["fid"]
    kid = metrics.folder_metric("kid", real, fake, net, None, cpu, subsets=4, subset_size=6)
    assert kid["kid"] > 0 and kid["kid_subset_size"] == 6


# --------------------------------------------------------------------------- SSIM / PSNR


def test_ssim_matches_scikit_image_and_psnr_closed_form() -> None:
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 40, 36)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).round()
    reference = skimage_metrics.structural_similarity(
        a, b, data_range=255, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    ours = metrics.ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None], data_range=255.0)
    assert float(ours[0]) == pytest.approx(reference, abs=1e-9)
    assert float(metrics.ssim(torch.from_numpy(a)[None], torch.from_numpy(a)[None], 255.0)[0]) == pytest.approx(1.0)
    x = torch.zeros(1, 3, 8, 8)
    assert float(metrics.psnr(x, x + 5)[0]) == pytest.approx(10 * np.log10(255**2 / 25))
    assert float(metrics.psnr(x, x)[0]) == metrics.PSNR_CAP_DB
    with pytest.raises(I2IError, match="at least 11x11"):
        metrics.ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


# --------------------------------------------------------------------------- Inception weight files


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A locally saved RANDOM Inception state dict with the FID file's names and shapes (~95 MB, one per module)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / FID_FILE
    torch.save(InceptionV3Features("fid").state_dict(), path)
    return path


@pytest.fixture
def small_inception_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resize to 80² instead of 299² (Inception's minimum is 75²): the same code path at 1/14 of the cost."""
    import i2i.train.nets.inception as inception

    monkeypatch.setattr(inception, "INPUT_SIZE", 80)


def test_inception_parameter_names_are_torchvision_names() -> None:
    fid, tv = InceptionV3Features("fid"), InceptionV3Features("torch")
    names = set(tv.state_dict())
    assert {
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_1a_3x3.bn.running_mean",
        "Mixed_5b.branch1x1.conv.weight",
        "Mixed_6e.branch7x7dbl_5.bn.running_var",
        "Mixed_7c.branch3x3dbl_3b.bn.bias",
        "AuxLogits.conv1.conv.weight",
        "AuxLogits.fc.weight",
        "fc.bias",
    } <= names
    assert sum(p.numel() for p in tv.parameters()) == 27_161_264  # torchvision's inception_v3
    assert not any(k.startswith("AuxLogits") for k in fid.state_dict()) and fid.fc.out_features == 1008
    assert detect_variant(fid.state_dict()) == "fid" and detect_variant(tv.state_dict()) == "torch"


def test_inception_file_loads_strictly(inception_file: Path, tmp_path: Path, small_inception_input: None) -> None:
    net = load_inception(inception_file)
    saved = torch.load(inception_file, weights_only=True)
    assert net.variant == "fid"
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 2048) and torch.isfinite(y).all()
    torch.save(InceptionV3Features("torch").state_dict(), tmp_path / "inception_v3_google-0cc3c7bd.pth")
    assert load_inception(tmp_path / "inception_v3_google-0cc3c7bd.pth").variant == "torch"  # torchvision's file
    # Older files carry no BatchNorm step counters: still a strict match.
    trimmed = {k: v for k, v in saved.items() if not k.endswith("num_batches_tracked")}
    torch.save(trimmed, tmp_path / "no_counters.pth")
    assert load_inception(tmp_path / "no_counters.pth").variant == "fid"


def test_inception_file_errors_are_one_line(inception_file: Path, tmp_path: Path) -> None:
    saved = torch.load(inception_file, weights_only=True)
    missing = dict(saved)
    del missing["Mixed_6b.branch7x7_2.conv.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(I2IError, match=r"missing: Mixed_6b\.branch7x7_2\.conv\.weight"):
        load_inception(tmp_path / "missing.pth")
    torch.save({**saved, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(I2IError, match=r"unexpected: extra\.weight"):
        load_inception(tmp_path / "extra.pth")
    torch.save({"fc.weight": torch.zeros(1008, 10)}, tmp_path / "tiny.pth")
    with pytest.raises(I2IError, match="wrong shape: fc.weight"):
        load_inception(tmp_path / "tiny.pth")
    with pytest.raises(I2IError, match=f"Inception weights not found: .*nope.pth.*{FID_FILE}"):
        load_inception(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk" * 10)
    with pytest.raises(I2IError, match="truncated or not a torch file"):
        load_inception(tmp_path / "junk.pth")


# --------------------------------------------------------------------------- i2i-eval


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    images = [rng.integers(30, 200, (48, 40, 3), dtype=np.uint8) for _ in range(3)]
    noisy = [np.clip(im + rng.normal(0, 20, im.shape), 0, 255).astype(np.uint8) for im in images]
    return _write_images(root / "real", images), _write_images(root / "fake", noisy)


def test_eval_fid_kid_commands(
    inception_file: Path, image_folders: tuple[Path, Path], tmp_path: Path, small_inception_input: None
) -> None:
    from i2i.eval import main

    real, fake = image_folders
    common = ["--inception-weights", inception_file, "--no-progress", "--device", "cpu"]
    result = invoke(main, ["fid", real, real, *common, "--json", tmp_path / "fid.json"])
    assert result.exit_code == 0 and result.output.startswith("FID ")
    report = json.loads((tmp_path / "fid.json").read_text())
    assert report["real_images"] == 3 and report["inception_variant"] == "fid"
    assert report["fid"] < 1e-3  # identical folders
    result = invoke(main, ["kid", real, fake, *common, "--subsets", "2", "--json", tmp_path / "kid.json"])
    assert result.exit_code == 0 and "KID" in result.output
    kid = json.loads((tmp_path / "kid.json").read_text())
    assert kid["kid_subset_size"] == 3 and np.isfinite(kid["kid"])


def test_eval_fid_missing_weights_is_one_line_before_any_work(tmp_path: Path) -> None:
    from i2i.eval import main

    result = invoke(main, ["fid", tmp_path / "no_real", tmp_path / "no_fake", "--inception-weights", "gone.pth"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "gone.pth" in lines[0] and FID_FILE in lines[0]


def test_eval_ssim_command(image_folders: tuple[Path, Path], tmp_path: Path) -> None:
    from i2i.eval import main

    real, fake = image_folders
    assert "mean SSIM 1.0000" in invoke(main, ["ssim", real, real]).output
    result = invoke(main, ["ssim", real, fake, "--json", tmp_path / "ssim.json"])
    report = json.loads((tmp_path / "ssim.json").read_text())
    assert result.exit_code == 0 and report["pairs"] == 3 and 0 < report["ssim_mean"] < 0.95


def test_eval_module_stays_torch_free() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import i2i.eval as e\n"
        "assert {'psnr', 'ssim', 'fid', 'kid'} <= set(e.main.commands)\n"
        "assert 'i2i.train' not in ' '.join(sys.modules)\n"
    )
    result = run_script(code)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- evaluation during training


def _tiny_config(data: Path, out: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    from i2i.train.loop import TrainConfig

    defaults: dict[str, object] = dict(
        load_size=72, crop_size=64, batch_size=2, max_steps=4, workers=0, sample_every=100, progress=False
    )
    return TrainConfig(data=str(data), out=str(out), **{**defaults, **kwargs})  # type: ignore[arg-type]


def test_training_evaluation_writes_eval_log_and_checkpoint_metrics(
    demo_data: Path, inception_file: Path, tmp_path: Path, small_inception_input: None
) -> None:
    from i2i.train.checkpoint import load_checkpoint
    from i2i.train.loop import train
    from i2i.train.methods.pix2pix import Pix2PixConfig

    method_config = Pix2PixConfig(ngf=8, ndf=8, num_downs=5)
    evaluated = train(
        "pix2pix",
        method_config,
        _tiny_config(demo_data, tmp_path / "eval", eval_every=2, inception_weights=str(inception_file)),
    )
    lines = [json.loads(ln) for ln in (tmp_path / "eval" / "eval.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [2, 4] and lines[0]["images"] == 2  # the demo's test split
    assert all({"psnr_db", "ssim", "fid", "kid"} <= set(ln) and ln["generator"] == "model.pt" for ln in lines)
    stored = load_checkpoint(tmp_path / "eval" / "model.pt")["metrics"]
    assert stored == evaluated.metrics["model.pt"]
    assert stored == {k: v for k, v in lines[-1].items() if k not in ("generator", "direction")}
    assert evaluated.eval_log == tmp_path / "eval" / "eval.jsonl"
    # Evaluation must not disturb training: same weights as a run with evaluation off.
    plain = train("pix2pix", method_config, _tiny_config(demo_data, tmp_path / "plain", eval_every=-1))
    assert not (tmp_path / "plain" / "eval.jsonl").exists() and plain.metrics == {}
    a = load_checkpoint(tmp_path / "eval" / "model.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "plain" / "model.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_cli_summary_names_every_output(demo_data: Path, tmp_path: Path) -> None:
    from i2i.train.cli import main

    args = ["pix2pix", "--data", demo_data, "--out", tmp_path, "--ngf", 8, "--ndf", 8, "--num-downs", 5]
    args += ["--load-size", 72, "--crop-size", 64, "--max-steps", 2, "--workers", 0, "--no-progress"]
    result = invoke(main, args)
    assert result.exit_code == 0, result.output
    for label, path in [
        ("checkpoint", tmp_path / "model.pt"),
        ("state", tmp_path / "state.pt"),
        ("log", tmp_path / "log.jsonl"),
        ("samples", tmp_path / "samples" / "step_000002.png"),
        ("config", tmp_path / "config.json"),
        ("eval log", tmp_path / "eval.jsonl"),
    ]:
        assert f"{label}:" in result.output and str(path) in result.output and path.exists(), label
    assert "metrics:    model.pt at step 2: psnr_db " in result.output and ", ssim " in result.output


def test_unpaired_training_evaluation_is_fid_kid_per_generator(
    demo_data: Path, inception_file: Path, tmp_path: Path, small_inception_input: None
) -> None:
    from i2i.train.checkpoint import load_checkpoint
    from i2i.train.loop import train
    from i2i.train.methods.cyclegan import CycleGANConfig

    weights = str(inception_file)
    with pytest.raises(I2IError, match=r"FID/KID need at least 2 images per side \(testA: 1, testB: 1\)"):
        train("cyclegan", CycleGANConfig(), _tiny_config(demo_data, tmp_path / "o", inception_weights=weights))
    for side in "AB":  # an unpaired held-out set with two images a side
        shutil.copytree(demo_data / "test" / side, tmp_path / "eval" / f"test{side}")
    config = _tiny_config(demo_data, tmp_path, max_steps=2, inception_weights=weights, eval_data=str(tmp_path / "eval"))
    result = train("cyclegan", CycleGANConfig(ngf=8, ndf=8, n_blocks=1), config)
    lines = [json.loads(ln) for ln in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [(ln["generator"], ln["direction"], ln["step"]) for ln in lines] == [
        ("model.pt", "AtoB", 2),
        ("model_BtoA.pt", "BtoA", 2),
    ]
    assert all({"fid", "kid", "kid_std"} <= set(ln) and "psnr_db" not in ln for ln in lines)  # unpaired: no PSNR
    assert load_checkpoint(tmp_path / "model_BtoA.pt")["metrics"] == result.metrics["model_BtoA.pt"]


def test_training_evaluation_option_errors(demo_data: Path, tmp_path: Path) -> None:
    from i2i.train.loop import train
    from i2i.train.methods.cyclegan import CycleGANConfig
    from i2i.train.methods.pix2pix import Pix2PixConfig

    config = Pix2PixConfig(ngf=8, ndf=8, num_downs=5)
    with pytest.raises(I2IError, match=f"Inception weights not found: missing.pth.*{FID_FILE}"):
        # the data folder does not exist either: the weights are checked first, before any work
        train("pix2pix", config, _tiny_config(tmp_path / "no_data", tmp_path / "o", inception_weights="missing.pth"))
    with pytest.raises(I2IError, match="turns evaluation off"):
        train("pix2pix", config, _tiny_config(demo_data, tmp_path / "o", eval_every=-1, eval_data=str(demo_data)))
    with pytest.raises(I2IError, match="expected test/A"):
        train("pix2pix", config, _tiny_config(demo_data, tmp_path / "o", eval_data=str(tmp_path)))
    with pytest.raises(I2IError, match="unpaired methods get FID/KID only; add --inception-weights"):
        train("cyclegan", CycleGANConfig(), _tiny_config(demo_data, tmp_path / "o", eval_every=2))
