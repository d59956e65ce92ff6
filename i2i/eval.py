"""``i2i-eval``: image-quality metrics between folders (torch-free, except ssim, fid and kid).

``psnr``      paired PSNR by file name.
``ssim``      paired SSIM by file name (torch, imported inside the command).
``fid|kid``   Frechet / Kernel Inception Distance between two folders (torch; Inception weights from
              a local file, ``--inception-weights``; see ``i2i.train.metrics``).
``spectrum``  LFD (log frequency distance, STIG) between real and generated images, plus PNG plots
              of the mean log-spectra and the radial power profiles; ``--refine`` adds the refined set.
``profile``   estimate a spectral filter profile (.npz) from real vs generated images (closed form).
Plots are drawn with OpenCV, so the command needs nothing beyond the runtime's dependencies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np

from i2i import __version__
from i2i._cli import Group, debug_option
from i2i._files import write_text
from i2i.errors import I2IError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise I2IError(f"not a folder: {folder}")
    found = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    if not found:
        raise I2IError(f"no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return found


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def paired_psnr(reference_dir: Path, test_dir: Path) -> dict[str, float | int]:
    import cv2

    reference, test = _images_by_stem(reference_dir), _images_by_stem(test_dir)
    common = sorted(set(reference) & set(test))
    if not common:
        raise I2IError(f"no file names in common between {reference_dir} and {test_dir}")
    values = []
    for stem in common:
        a = cv2.imread(str(reference[stem]), cv2.IMREAD_COLOR)
        b = cv2.imread(str(test[stem]), cv2.IMREAD_COLOR)
        if a is None or b is None:
            unreadable = reference[stem] if a is None else test[stem]
            raise I2IError(f"cannot read image {unreadable}: empty, corrupt or not an image; remove or replace it")
        if a.shape != b.shape:
            b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
        values.append(min(psnr_uint8(a, b), 100.0))  # identical images count as 100 dB
    return {"pairs": len(common), "psnr_db_mean": float(np.mean(values)), "psnr_db_min": float(np.min(values))}


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def main() -> None:
    """Evaluate translations.

    \b
    Examples:
      i2i-eval psnr data/demo/test/B out/translated/
      i2i-eval ssim data/demo/test/B out/translated/
      i2i-eval fid data/demo/test/B out/translated/ --inception-weights pt_inception-2015-12-05-6726825d.pth
      i2i-eval spectrum data/demo/test/B out/translated/ --out spectrum/
      i2i-eval profile data/demo/train/B out/train_translated/ -o profile.npz
      i2i-eval spectrum data/demo/test/B out/translated/ --refine profile.npz
    """


@main.command("psnr")
@click.argument("reference_dir", type=click.Path(path_type=Path))
@click.argument("test_dir", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def psnr_command(reference_dir: Path, test_dir: Path, json_path: Path | None) -> None:
    """PSNR (8-bit, dB) between images of REFERENCE_DIR and TEST_DIR with the same file stem."""
    result = paired_psnr(reference_dir, test_dir)
    click.echo(
        f"{result['pairs']} pairs: mean PSNR {result['psnr_db_mean']:.2f} dB, min {result['psnr_db_min']:.2f} dB"
    )
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


# --------------------------------------------------------------------------- SSIM, FID, KID (need torch)


def _import_metrics() -> Any:
    """i2i.train.metrics, imported here so that the torch-free commands never load torch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        from i2i.errors import MissingDependencyError

        raise MissingDependencyError("torch", "train", "ssim, fid and kid run in torch") from None
    from i2i.train import metrics

    return metrics


@main.command("ssim")
@click.argument("reference_dir", type=click.Path(path_type=Path))
@click.argument("test_dir", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def ssim_command(reference_dir: Path, test_dir: Path, json_path: Path | None) -> None:
    """SSIM (Gaussian 11x11, sigma 1.5; 8-bit) between images of REFERENCE_DIR and TEST_DIR with the same stem."""
    result = _import_metrics().paired_ssim(reference_dir, test_dir)
    click.echo(f"{result['pairs']} pairs: mean SSIM {result['ssim_mean']:.4f}, min {result['ssim_min']:.4f}")
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


def _feature_metric(metric: str, real_dir: Path, fake_dir: Path, weights: str | None, **options: Any) -> dict[str, Any]:
    metrics = _import_metrics()
    from i2i.train.loop import resolve_device
    from i2i.train.nets.inception import INPUT_SIZE, TORCHVISION_FILE, load_inception, resolve_inception_weights

    path = resolve_inception_weights(weights)  # first: a missing file is one line, before any work
    for folder in (real_dir, fake_dir):
        if not folder.is_dir():
            raise I2IError(f"not a folder: {folder}")
    device = resolve_device(options.pop("device"))
    net = load_inception(path).to(device)
    if net.variant == "torch":
        click.echo(f"note: {path.name} is torchvision's Inception ({TORCHVISION_FILE}): not comparable", err=True)
    result = metrics.folder_metric(metric, real_dir, fake_dir, net, INPUT_SIZE, device, **options)
    return {**result, "inception": str(path), "inception_variant": net.variant}


def _inception_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--inception-weights",
                type=click.Path(dir_okay=False),
                default=None,
                help="Inception-v3 weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                "[default: the torch hub cache].",
            ),
            click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1)),
            click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
            click.option("--progress/--no-progress", default=True, show_default=True),
            click.option("--json", "json_path", type=click.Path(path_type=Path), default=None),
        ]
    ):
        func = option(func)
    return func


@main.command("fid")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@_inception_options
def fid_command(
    real_dir: Path, fake_dir: Path, inception_weights: str | None, json_path: Path | None, **kw: Any
) -> None:
    """Frechet Inception Distance between REAL_DIR and FAKE_DIR (Heusel et al. 2017; lower is closer).

    Images of any size are resized to 299x299 (bilinear) as pytorch-fid does; the 2048-d pool3
    features of the TF FID Inception make values comparable with pytorch-fid. Use thousands of
    images: FID is biased upwards for small sets.
    """
    result = _feature_metric("fid", real_dir, fake_dir, inception_weights, **kw)
    click.echo(f"FID {result['fid']:.4f}  ({result['real_images']} real, {result['generated_images']} generated)")
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


@main.command("kid")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@_inception_options
@click.option("--subsets", default=100, show_default=True, type=click.IntRange(1), help="Random subsets averaged.")
@click.option("--subset-size", default=1000, show_default=True, type=click.IntRange(2), help="Images per subset.")
@click.option("--seed", default=0, show_default=True, help="Seed of the subset draws.")
def kid_command(
    real_dir: Path, fake_dir: Path, inception_weights: str | None, json_path: Path | None, **kw: Any
) -> None:
    """Kernel Inception Distance between REAL_DIR and FAKE_DIR (Binkowski et al. 2018; lower is closer).

    Unbiased MMD^2 with the cubic polynomial kernel on Inception pool3 features, mean and standard
    deviation over random subsets (capped at the smaller folder's size). Unbiased: fine for small sets.
    """
    result = _feature_metric("kid", real_dir, fake_dir, inception_weights, **kw)
    click.echo(
        f"KID {result['kid']:.6f} +- {result['kid_std']:.6f}  ({result['real_images']} real, "
        f"{result['generated_images']} generated, subsets of {result['kid_subset_size']})"
    )
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


# --------------------------------------------------------------------------- spectra


def _parse_size(value: str | None) -> tuple[int, int] | None:
    """``HxW`` or ``N`` (square) → (H, W)."""
    if not value:
        return None
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise click.BadParameter(f"{value!r}: give HxW (e.g. 256x256) or one number for a square", param_hint="--size")
    return parts[0], parts[1]


def iter_images(folder: Path, size: tuple[int, int] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(stem, (3, H, W) float32 RGB in [0, 1]) for every image of ``folder``, sorted by name.

    With ``size`` every image is resized to it (INTER_AREA; this low-passes, so spectra change);
    without it, the images must already share one size.
    """
    import cv2

    for stem, path in _images_by_stem(folder).items():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise I2IError(f"cannot read image {path}")
        if size is not None and image.shape[:2] != size:
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
        yield stem, np.ascontiguousarray(rgb, dtype=np.float32) / 255.0


def folder_stats(folder: Path, size: tuple[int, int] | None = None) -> Any:
    from i2i.runtime.spectral import SpectrumStats

    stats = SpectrumStats()
    for stem, image in iter_images(folder, size):
        try:
            stats.add(image)
        except I2IError as exc:  # e.g. a size that differs from the first image's: say which image
            raise I2IError(f"{folder}: image {stem!r}: {exc.message}") from None
    return stats


def refined_stats(refiner: Any, folder: Path, size: tuple[int, int] | None) -> tuple[Any, dict[str, float]]:
    """Spectrum statistics of ``folder`` after refinement, and PSNR (dB) of refined vs unrefined."""
    from i2i.runtime.spectral import SpectrumStats

    stats, psnrs = SpectrumStats(), []
    for _stem, image in iter_images(folder, size):
        refined = refiner((image * 2.0 - 1.0)[None])[0]
        refined01 = (refined + 1.0) * 0.5
        mse = float(np.mean((refined01.astype(np.float64) - image) ** 2))
        psnrs.append(100.0 if mse == 0 else min(100.0, -10.0 * math.log10(mse)))
        stats.add(refined01)
    return stats, {"psnr_db_mean": float(np.mean(psnrs)), "psnr_db_min": float(np.min(psnrs))}


_COLOURS = [(40, 40, 200), (200, 90, 30), (40, 160, 40), (150, 40, 150)]  # BGR: real red, fake blue, ...


def _label(canvas: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    import cv2

    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def plot_spectra(maps: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Panels of mean normalised log-magnitude spectra (channel mean, viridis, shared scale), plus
    each set's difference to the first one (diverging map, ± the largest difference)."""
    import cv2

    names = list(maps)
    planes = {k: v.mean(0) for k, v in maps.items()}  # (H, W)
    h, w = next(iter(planes.values())).shape
    scale = max(1, 256 // max(h, w))
    low = min(float(p.min()) for p in planes.values())
    high = max(float(p.max()) for p in planes.values())

    def tile(plane: np.ndarray, lo: float, hi: float, cmap: int) -> np.ndarray:
        u8 = np.clip((plane - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255).astype(np.uint8)
        return cv2.resize(cv2.applyColorMap(u8, cmap), (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)

    top = [tile(planes[k], low, high, cv2.COLORMAP_VIRIDIS) for k in names]
    diffs = {k: planes[k] - planes[names[0]] for k in names[1:]}
    bound = max((float(np.abs(d).max()) for d in diffs.values()), default=1.0)
    bottom = [np.full_like(top[0], 255)] + [
        tile(diffs[k], -bound, bound, cv2.COLORMAP_TWILIGHT_SHIFTED) for k in names[1:]
    ]
    pad = 24
    cell_h, cell_w = top[0].shape[:2]
    canvas = np.full((pad + 2 * (cell_h + pad), len(names) * (cell_w + 8) + 8, 3), 255, np.uint8)
    _label(canvas, title, (8, 16))
    for i, k in enumerate(names):
        x = 8 + i * (cell_w + 8)
        _label(canvas, f"{k}: mean log|F|", (x, pad + 16))
        canvas[2 * pad : 2 * pad + cell_h, x : x + cell_w] = top[i]
        if i:
            _label(canvas, f"{k} - {names[0]} (+-{bound:.3f})", (x, 2 * pad + cell_h + 16))
            canvas[3 * pad + cell_h - 4 : 3 * pad + 2 * cell_h - 4, x : x + cell_w] = bottom[i]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise I2IError(f"cannot write {path}")
    return path


def plot_radial(profiles: dict[str, np.ndarray], radius: np.ndarray, path: Path, title: str) -> Path:
    """log10 radial power (channel mean) against normalised frequency, one line per set."""
    import cv2

    width, height, left, right, top, bottom = 760, 460, 70, 20, 40, 50
    canvas = np.full((height, width, 3), 255, np.uint8)
    curves = {k: np.log10(np.maximum(v.mean(0), 1e-12)) for k, v in profiles.items()}
    lo = min(float(c[1:].min()) for c in curves.values())  # ring 0 (DC) would squash the scale
    hi = max(float(c[1:].max()) for c in curves.values())
    x_max = float(radius[-1])

    def xy(r: np.ndarray, v: np.ndarray) -> np.ndarray:
        px = left + r / x_max * (width - left - right)
        py = top + (hi - v) / max(hi - lo, 1e-9) * (height - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    for frac in np.linspace(0, 1, 6):
        r = frac * x_max
        px = int(round(left + frac * (width - left - right)))
        cv2.line(canvas, (px, height - bottom), (px, height - bottom + 5), (0, 0, 0), 1)
        _label(canvas, f"{r:.2f}", (px - 14, height - bottom + 20))
        v = lo + frac * (hi - lo)
        py = int(round(top + (1 - frac) * (height - top - bottom)))
        cv2.line(canvas, (left - 5, py), (left, py), (0, 0, 0), 1)
        _label(canvas, f"{v:.1f}", (left - 45, py + 5))
    _label(canvas, "spatial frequency (cycles/pixel)", (width // 2 - 120, height - 10))
    _label(canvas, "log10 power", (4, top - 12))
    _label(canvas, title, (left + 110, top - 12))
    for i, (k, c) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        cv2.polylines(canvas, [xy(radius[1:], c[1:])], False, colour, 1, cv2.LINE_AA)
        cv2.line(canvas, (width - right - 150, top + 18 + 18 * i), (width - right - 120, top + 18 + 18 * i), colour, 2)
        _label(canvas, k, (width - right - 112, top + 23 + 18 * i), colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise I2IError(f"cannot write {path}")
    return path


def spectrum_report(
    real_dir: Path,
    fake_dir: Path,
    out_dir: Path | None,
    refine: Path | None = None,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """LFD real↔fake (and real↔refined), radial profiles, and the two plots in ``out_dir``."""
    from i2i.runtime.spectral import lfd, open_refiner, ring_radius

    stats = {"real": folder_stats(real_dir, size), "generated": folder_stats(fake_dir, size)}
    if stats["real"].size != stats["generated"].size:
        (rh, rw), (fh, fw) = stats["real"].size, stats["generated"].size
        raise I2IError(f"real images are {rw}x{rh}, generated ones {fw}x{fh}: pass --size HxW to compare them")
    result: dict[str, Any] = {
        "real_images": stats["real"].count,
        "generated_images": stats["generated"].count,
        "size": list(stats["real"].size),
        "lfd": lfd(stats["real"], stats["generated"]),
    }
    if refine is not None:
        with open_refiner(refine) as refiner:
            stats["refined"], psnr = refined_stats(refiner, fake_dir, size)
        result.update(refine=str(refine), lfd_refined=lfd(stats["real"], stats["refined"]), **psnr)
    if out_dir is not None:
        h, w = stats["real"].size
        title = f"LFD {result['lfd']:.3f}" + (f" -> {result['lfd_refined']:.3f} refined" if refine else "")
        spectra = plot_spectra({k: s.norm_log_magnitude for k, s in stats.items()}, out_dir / "spectra.png", title)
        radial = plot_radial(
            {k: s.radial_power() for k, s in stats.items()}, ring_radius(h, w), out_dir / "radial.png", title
        )
        result["plots"] = [str(spectra), str(radial)]
    return result


@main.command("spectrum")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("spectrum"),
    show_default=True,
    help="Folder for spectra.png and radial.png.",
)
@click.option(
    "--refine",
    type=click.Path(path_type=Path),
    default=None,
    help="Also refine FAKE_DIR with this profile (.npz) or STIG refiner (.onnx) and compare.",
)
@click.option("--size", default=None, help="Resize every image to HxW first (changes spectra; default: none).")
@click.option("--no-plots", is_flag=True, help="Only print the numbers.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the numbers as JSON.")
def spectrum_command(
    real_dir: Path,
    fake_dir: Path,
    out_dir: Path,
    refine: Path | None,
    size: str | None,
    no_plots: bool,
    json_path: Path | None,
) -> None:
    """Log frequency distance (LFD) between REAL_DIR and FAKE_DIR, with spectrum plots.

    LFD = ln(sum over channels and frequencies of (R - F)^2 + 1), R and F the mean per-image
    min-max normalised log-magnitude spectra on a 0..255 scale (STIG's metric, computed in float).
    Lower is closer; 0 for identical sets. The images of both folders must share one size.
    """
    result = spectrum_report(real_dir, fake_dir, None if no_plots else out_dir, refine, _parse_size(size))
    click.echo(
        f"LFD real vs generated: {result['lfd']:.4f}  ({result['real_images']} real, "
        f"{result['generated_images']} generated, {result['size'][1]}x{result['size'][0]})"
    )
    if refine is not None:
        click.echo(
            f"LFD real vs refined:   {result['lfd_refined']:.4f}  (PSNR refined vs generated: "
            f"mean {result['psnr_db_mean']:.2f} dB, min {result['psnr_db_min']:.2f} dB)"
        )
    for plot in result.get("plots", []):
        click.echo(f"  plot: {plot}")
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


@main.command("profile")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("profile.npz"),
    show_default=True,
    help="Where to write the profile (.npz).",
)
@click.option(
    "--min-psnr",
    type=float,
    default=33.0,
    show_default=True,
    help="Shrink the radial correction until refined vs generated images keep this PSNR (dB, set mean).",
)
@click.option("--max-gain", type=float, default=4.0, show_default=True, help="Largest radial gain.")
@click.option("--min-gain", type=float, default=0.25, show_default=True, help="Smallest radial gain.")
@click.option(
    "--notch-levels",
    type=int,
    default=3,
    show_default=True,
    help="Look for transposed-convolution peaks at multiples of 1/2^N cycles/pixel.",
)
@click.option(
    "--notch-threshold",
    type=float,
    default=0.5,
    show_default=True,
    help="A lattice bin gets a notch when it stands this far (natural log) above its ring.",
)
@click.option(
    "--notch-priority/--no-notch-priority",
    default=False,
    show_default=True,
    help="Keep the notches at full depth and shrink only the radial curve (removes a visible grid first).",
)
@click.option("--size", default=None, help="Resize every image to HxW first (changes spectra; default: none).")
def profile_command(
    real_dir: Path,
    fake_dir: Path,
    output: Path,
    min_psnr: float,
    max_gain: float,
    min_gain: float,
    notch_levels: int,
    notch_threshold: float,
    notch_priority: bool,
    size: str | None,
) -> None:
    """Estimate a spectral filter profile that moves FAKE_DIR's spectra towards REAL_DIR's.

    Closed form, no training: a per-channel radial gain curve (shrunk so the images keep
    --min-psnr) plus notches at the periodic peaks of stride-2 transposed convolutions. The .npz
    works at any frame size: `i2i-run MODEL --refine profile.npz` applies it after the model, and
    the export engineer's `i2i-export --refine` bakes it into the graph for one frame size.
    """
    from i2i.runtime.spectral import ProfileRefiner, estimate_profile, lfd

    shape = _parse_size(size)
    real, fake = folder_stats(real_dir, shape), folder_stats(fake_dir, shape)
    if real.size != fake.size:
        (rh, rw), (fh, fw) = real.size, fake.size
        raise I2IError(f"real images are {rw}x{rh}, generated ones {fw}x{fh}: pass --size HxW")
    provenance = {
        "real_dir": str(real_dir.resolve()),
        "fake_dir": str(fake_dir.resolve()),
        "resized_to": list(shape) if shape else None,
        "i2i_version": __version__,
    }
    profile = estimate_profile(
        real,
        fake,
        min_psnr=min_psnr,
        max_gain=max_gain,
        min_gain=min_gain,
        notch_levels=notch_levels,
        notch_threshold=notch_threshold,
        notch_priority=notch_priority,
        provenance=provenance,
    )
    refined, psnr = refined_stats(ProfileRefiner(output, profile), fake_dir, shape)
    before, after = lfd(real, fake), lfd(real, refined)
    profile.provenance.update(lfd_before=before, lfd_after=after, **psnr)
    profile.save(output)
    h, w = profile.size
    click.echo(
        f"profile: {output}  ({w}x{h}, {len(profile.notch_freq)} notches, "
        f"radial gain {profile.radial_gain.min():.2f}..{profile.radial_gain.max():.2f})"
    )
    click.echo(
        f"LFD on these images: {before:.4f} -> {after:.4f}; PSNR refined vs generated: "
        f"mean {psnr['psnr_db_mean']:.2f} dB, min {psnr['psnr_db_min']:.2f} dB"
    )
