"""Image-quality metrics: FID and KID on Inception features, PSNR and SSIM; periodic evaluation in training.

FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule ...", NeurIPS 2017, §"Fréchet
Inception Distance"): with (μ_r, Σ_r), (μ_g, Σ_g) the mean and covariance of the real and generated
features,  FID = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½).
The trace of the matrix square root is taken from the symmetric PSD matrix Σ_r^½ Σ_g Σ_r^½, which
has the same eigenvalues as Σ_r Σ_g: two ``eigh`` calls in float64, no complex parts to drop (the
scipy ``sqrtm`` route of pytorch-fid gives the same value, see the tests). With fewer images than
feature dimensions the same trace is the nuclear norm of a small n×n matrix (``fid_from_features``).

KID (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018, Eq. 4 and §4): the unbiased estimate
of MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over random subsets
(100 subsets of 1000, torch-fidelity's defaults; fewer when there are fewer images):
    MMD²_u = Σ_{i≠j} k(x_i, x_j) / m(m−1) + Σ_{i≠j} k(y_i, y_j) / m(m−1) − 2 Σ_{i,j} k(x_i, y_j) / m².

SSIM (Wang et al., IEEE TIP 2004, Eq. 13): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03,
over the valid region (no padding), averaged over channels (what scikit-image computes with
``gaussian_weights=True, use_sample_covariance=False``). PSNR on 8-bit values, 100 dB for identical
images, as ``i2i-eval psnr``.

No library is used for the arithmetic: torch-fidelity, clean-fid and pytorch-fid all require
torchvision (not installable beside this torch), and torchmetrics' FID/KID need torch-fidelity for
their Inception network; torchmetrics serves as a cross-check in the tests when it is installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from i2i.errors import I2IError

if TYPE_CHECKING:
    from i2i.train.loop import TrainConfig
    from i2i.train.methods import Method

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PSNR_CAP_DB = 100.0

# --------------------------------------------------------------------------- FID / KID arithmetic


def _features(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise I2IError(f"FID needs at least 2 images per set (got {x.shape[0] if x.ndim == 2 else 0})")
    return x


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, d) features → mean (d,) and unbiased covariance (d, d), float64."""
    x = _features(features)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), with Tr (Σ1Σ2)^½ = Σ √eig(Σ1^½ Σ2 Σ1^½)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: μ {mu1.shape} {mu2.shape}, Σ {sigma1.shape} {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return max(float(value), 0.0)  # a squared distance; rounding can leave -1e-12


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two (N, d) feature sets; with fewer images than dimensions, exactly, in sample space.

    With centred features A (n1, d), B (n2, d): Σ_r = AᵀA/(n1−1), Σ_g = BᵀB/(n2−1), and the non-zero
    eigenvalues of AᵀA·BᵀB are those of (ABᵀ)(ABᵀ)ᵀ, so Tr (Σ_r Σ_g)^½ = ‖ABᵀ‖_* / √((n1−1)(n2−1)) (the sum
    of the singular values of the n1×n2 matrix ABᵀ). For a few hundred images this replaces two 2048×2048
    eigendecompositions by one small SVD, and it has no square roots of rounding noise.
    """
    x, y = _features(real), _features(fake)
    if min(len(x), len(y)) > x.shape[1]:
        return frechet_distance(*feature_stats(x), *feature_stats(y))
    a, b = x - x.mean(axis=0), y - y.mean(axis=0)
    n1, n2 = len(x) - 1, len(y) - 1
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(n1 * n2)
    diff = x.mean(axis=0) - y.mean(axis=0)
    value = diff @ diff + np.sum(a * a) / n1 + np.sum(b * b) / n2 - 2.0 * tr_covmean
    return max(float(value), 0.0)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (xᵀy / d + coef0)^degree for rows of x (m, d) and y (n, d) → (m, n)."""
    base = x @ y.T / x.shape[1] + coef0
    out = base.copy()
    for _ in range(degree - 1):  # integer power by products: ~20x faster than np.power on float64
        out *= base
    return out


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² (Gretton et al. 2012, Eq. 3) from the three kernel matrices of m samples each."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid_from_features(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> dict[str, float]:
    """Mean and standard deviation of MMD²_u over ``subsets`` random subsets (without replacement)."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise I2IError(f"KID needs at least 2 images per set (got {len(x)} real, {len(y)} generated)")
    rng = np.random.default_rng(seed)  # its own generator: evaluation never moves the training RNG
    # Up to a few thousand images, the kernels of the whole sets once (≤ 3 × 128 MB) instead of per subset.
    full = (len(x) + len(y)) ** 2 <= 2**24
    if full:
        k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    values = []
    for _ in range(subsets):
        i, j = rng.choice(len(x), m, replace=False), rng.choice(len(y), m, replace=False)
        if full:
            values.append(mmd2_unbiased(k_xx[np.ix_(i, i)], k_yy[np.ix_(j, j)], k_xy[np.ix_(i, j)]))
        else:
            a, b = x[i], y[j]
            values.append(mmd2_unbiased(polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)))
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values)), "kid_subset_size": m}


# --------------------------------------------------------------------------- PSNR / SSIM


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(size, size) normalised Gaussian, float64."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image, (B, C, H, W) × 2 → (B,), in float64 (Wang et al. 2004, Eq. 13)."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"SSIM needs two (B, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if min(x.shape[-2:]) < size:
        raise I2IError(f"SSIM needs images of at least {size}x{size} pixels, got {x.shape[-1]}x{x.shape[-2]}")
    c = x.shape[1]
    x, y = x.double(), y.double()
    window = gaussian_window(size, sigma).to(x.device).expand(c, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:  # per-channel weighted mean over each window (valid region)
        return F.conv2d(t, window, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """PSNR per image in dB, (B, C, H, W) × 2 → (B,); identical images give PSNR_CAP_DB."""
    mse = (x.double() - y.double()).pow(2).mean(dim=(1, 2, 3))
    value = 10 * torch.log10(data_range**2 / mse.clamp_min(1e-30))
    return value.clamp(max=PSNR_CAP_DB)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] generator output → the 0..255 values a saved PNG would hold (float64)."""
    return ((images.double().clamp(-1, 1) + 1) * 127.5).round()


# --------------------------------------------------------------------------- folders


def read_rgb01(path: Path) -> torch.Tensor:
    """Any image file → (3, H, W) float32 RGB in [0, 1] (8-bit values / 255, as pytorch-fid's ToTensor)."""
    from i2i.train.data import load_image_rgb

    return torch.from_numpy(np.ascontiguousarray(load_image_rgb(path).transpose(2, 0, 1))).float().div_(255.0)


@torch.no_grad()
def batch_features(net: nn.Module, images: list[torch.Tensor], size: int | None, device: torch.device) -> np.ndarray:
    """(3, H, W) [0, 1] images → (N, d) features; each is resized to size² first (bilinear, as pytorch-fid)."""
    if size is not None:
        images = [F.interpolate(im[None], size=(size, size), mode="bilinear", align_corners=False)[0] for im in images]
    elif len({tuple(im.shape) for im in images}) > 1:
        raise I2IError("images of different sizes: give a feature size to resize them to")
    return net(torch.stack(images).to(device)).double().cpu().numpy()


def folder_features(
    folder: Path, net: nn.Module, size: int | None, device: torch.device, batch_size: int = 16, progress: bool = False
) -> np.ndarray:
    """(N, d) features of every image of ``folder`` (sorted by name)."""
    from tqdm.auto import tqdm

    from i2i.train.data import list_images

    paths = list_images(folder)
    chunks = []
    with tqdm(total=len(paths), desc=folder.name, unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(paths), batch_size):
            batch = [read_rgb01(p) for p in paths[start : start + batch_size]]
            chunks.append(batch_features(net, batch, size, device))
            bar.update(len(batch))
    return np.concatenate(chunks)


def folder_metric(
    metric: str,
    real_dir: Path,
    fake_dir: Path,
    net: nn.Module,
    size: int | None,
    device: torch.device,
    batch_size: int = 16,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """``fid`` or ``kid`` between the images of two folders (any sizes; each resized to ``size``²)."""
    real = folder_features(real_dir, net, size, device, batch_size, progress)
    fake = folder_features(fake_dir, net, size, device, batch_size, progress)
    result: dict[str, Any] = {"real_images": len(real), "generated_images": len(fake)}
    if metric == "fid":
        result["fid"] = fid_from_features(real, fake)
    elif metric == "kid":
        result.update(kid_from_features(real, fake, subsets, subset_size, seed))
    else:
        raise ValueError(f"unknown metric {metric!r}")
    return result


def paired_ssim(reference_dir: Path, test_dir: Path) -> dict[str, float | int]:
    """Mean/min SSIM between images with the same file stem (8-bit values, data range 255)."""
    from i2i.analysis import paired_stems

    pairs = paired_stems(reference_dir, test_dir)
    values = []
    for reference, test in pairs:
        a, b = read_rgb01(reference)[None], read_rgb01(test)[None]
        if a.shape != b.shape:  # as i2i-eval psnr: the test image is resized to the reference
            b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        values.append(float(ssim((a * 255).round(), (b * 255).round(), data_range=255.0)[0]))
    return {"pairs": len(pairs), "ssim_mean": float(np.mean(values)), "ssim_min": float(np.min(values))}


# --------------------------------------------------------------------------- evaluation during training


EVAL_LAYOUTS = (("test/A", "test/B", True), ("A", "B", True), ("testA", "testB", False))  # (A, B, paired)


def eval_folders(root: Path, layout: str = "paired") -> tuple[Path, Path, bool] | None:
    """(A, B, paired) of an evaluation set: ``test/A``+``test/B`` or ``A``+``B`` (paired), ``testA``+``testB``.

    An unpaired method looks for ``testA``+``testB`` first (a dataset may hold both layouts).
    """
    order = EVAL_LAYOUTS if layout == "paired" else EVAL_LAYOUTS[::-1]
    for a, b, paired in order:
        if (root / a).is_dir() and (root / b).is_dir():
            return root / a, root / b, paired
    return None


@dataclass
class EvalImages:
    names: list[str]
    images: torch.Tensor  # (N, 3, S, S) float32 in [-1, 1]


def load_eval_images(folder: Path, size: int, limit: int) -> EvalImages:
    """The (first ``limit``) images of ``folder``, resized to size² as training data is: PIL's bicubic
    (``i2i.train.data._resize``, antialiased when shrinking, the reference's ``transforms.Resize``),
    no crop or flip, each side rounded to a multiple of 4."""
    from i2i.train.data import ResizeCropFlip, list_images, load_image_rgb

    paths = list_images(folder)[: limit or None]
    transform = ResizeCropFlip(load_size=size, crop_size=size, flip=False, train=False)
    return EvalImages([p.stem for p in paths], torch.stack([transform(load_image_rgb(p))[0] for p in paths]))


class Evaluator:
    """Evaluates a method's generators on a held-out set (rank 0 only); see ``TrainConfig.eval_*``.

    Paired methods on paired sets get PSNR and SSIM of G(A) against B (by file stem); with an
    Inception network, every set gets FID and KID between G(source) and the target-domain images.
    The real images' features are computed once. Results go to ``OUT/eval.jsonl`` (one line per generator and
    evaluation) and ``latest`` (what ``save_run`` stores in each ``model.pt``'s ``metrics``).
    """

    def __init__(
        self,
        root: Path,
        size: int,
        every: int,
        out: Path,
        device: torch.device,
        inception: nn.Module | None = None,
        limit: int = 0,
        batch_size: int = 8,
        layout: str = "paired",
    ) -> None:
        found = eval_folders(root, layout)
        if found is None:
            raise I2IError(f"evaluation data {root}: expected test/A + test/B, A + B, or testA + testB subfolders")
        folder_a, folder_b, paired_set = found
        self.paired = paired_set and layout == "paired"  # PSNR/SSIM only where a pixel target exists
        self.root, self.every, self.log, self.device = root, every, out / "eval.jsonl", device
        self.sets = {"A": load_eval_images(folder_a, size, limit), "B": load_eval_images(folder_b, size, limit)}
        if self.paired and self.sets["A"].names != self.sets["B"].names:
            raise I2IError(f"evaluation data {root}: the A and B images do not pair up by file name")
        if inception is not None and min(len(s.names) for s in self.sets.values()) < 2:
            counts = ", ".join(f"{f.name}: {len(self.sets[k].names)}" for k, f in (("A", folder_a), ("B", folder_b)))
            raise I2IError(f"evaluation data {root}: FID/KID need at least 2 images per side ({counts})")
        self.inception, self.batch_size = inception, batch_size
        self._real_features: dict[str, np.ndarray] = {}
        self.latest: dict[str, dict[str, Any]] = {}

    @classmethod
    def for_run(
        cls,
        config: TrainConfig,
        layout: str,
        device: torch.device,
        main: bool,
        pairs: Path | None = None,
        size: int | None = None,
    ) -> Evaluator | None:
        """Check the evaluation options before any work; the evaluator on rank 0, None elsewhere or when off.

        Off: ``--eval-every -1``, or by default when the data has no test split or the method has no
        target images (``style``); asking for evaluation there is an error instead. ``pairs``: a
        held-out set the method labelled itself (distill: teacher translations), evaluated in
        place of ``--eval-data`` at ``size`` (default: the crop size).
        """
        asked = [
            flag
            for flag, on in (
                ("--eval-every", config.eval_every > 0),
                ("--eval-data", bool(config.eval_data)),
                ("--inception-weights", bool(config.inception_weights)),
            )
            if on
        ]
        if config.eval_every < 0 and asked:
            raise I2IError(f"--eval-every {config.eval_every} turns evaluation off; drop {', '.join(asked)}")
        if config.eval_every < 0:
            return None
        if layout not in ("paired", "unpaired"):
            if asked:
                raise I2IError(f"{', '.join(asked)}: a {layout!r} method has no target images to evaluate against")
            return None
        inception_path = None
        if config.inception_weights:
            from i2i.train.nets.inception import resolve_inception_weights

            inception_path = resolve_inception_weights(config.inception_weights)
        elif layout == "unpaired":  # no pixel targets: only FID/KID, which need the Inception weights
            if asked:
                raise I2IError(f"{', '.join(asked)}: unpaired methods get FID/KID only; add --inception-weights")
            return None
        root = pairs if pairs is not None else Path(config.eval_data or config.data)
        if eval_folders(root, layout) is None:
            if asked:
                raise I2IError(f"evaluation data {root}: expected test/A + test/B, A + B, or testA + testB subfolders")
            return None  # default end-of-run evaluation, but the data has no test split
        if not main:
            return None
        inception = None
        if inception_path is not None:
            from i2i.train.nets.inception import load_inception

            inception = load_inception(inception_path).to(device)
        out = Path(config.out)
        size = size or config.crop_size
        return cls(root, size, config.eval_every, out, device, inception, config.eval_images, layout=layout)

    def due(self, step: int, total_steps: int) -> bool:
        return step == total_steps or (self.every > 0 and step % self.every == 0)

    def _features(self, images: torch.Tensor) -> np.ndarray:
        """(N, 3, S, S) in [-1, 1] → Inception pool3 features of their 8-bit versions."""
        from i2i.train.nets.inception import INPUT_SIZE

        assert self.inception is not None
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = list(to_uint8(images[start : start + self.batch_size]).float().div(255.0))
            chunks.append(batch_features(self.inception, batch, INPUT_SIZE, self.device))
        return np.concatenate(chunks)

    @torch.no_grad()
    def _generate(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        step = self.batch_size
        return torch.cat([net(images[i : i + step].to(self.device)).float().cpu() for i in range(0, len(images), step)])

    def evaluate(self, net: nn.Module, direction: str) -> dict[str, Any]:
        source, target = ("A", "B") if direction == "AtoB" else ("B", "A")
        fake = self._generate(net, self.sets[source].images)
        result: dict[str, Any] = {"images": len(fake)}
        if self.paired:
            real8, fake8 = to_uint8(self.sets[target].images), to_uint8(fake)
            result["psnr_db"] = float(psnr(fake8, real8).mean())
            result["ssim"] = float(ssim(fake8, real8, data_range=255.0).mean())
        if self.inception is not None:
            if target not in self._real_features:
                self._real_features[target] = self._features(self.sets[target].images)
            real_f, fake_f = self._real_features[target], self._features(fake)
            result["fid"] = fid_from_features(real_f, fake_f)
            result.update(kid_from_features(real_f, fake_f))
        return result

    def run(self, method: Method, step: int, board: Any = None) -> dict[str, dict[str, Any]]:
        """Evaluate every generator of ``method`` at ``step``; append to eval.jsonl; return by file name."""
        method.train(False)
        try:
            for spec in method.generators():
                result = {"step": step, **self.evaluate(spec.net, spec.direction)}
                self.latest[spec.filename] = result
                with open(self.log, "a") as f:
                    f.write(json.dumps({"generator": spec.filename, "direction": spec.direction, **result}) + "\n")
                if board is not None:
                    for key in ("psnr_db", "ssim", "fid", "kid"):
                        if key in result:
                            board.add_scalar(f"eval/{spec.filename}/{key}", result[key], step)
        finally:
            method.train(True)
        return self.latest
