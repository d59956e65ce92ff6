"""Folders of images in, numbers and plots out: what ``i2i-eval psnr|spectrum|profile`` and the demo run.

Images pair up across folders by file stem; every reader error is one line naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from i2i.analysis.plots import plot_radial, plot_spectra
from i2i.analysis.profile import ProfileConfig, estimate_profile
from i2i.analysis.spectra import SpectrumStats, lfd, ring_radius
from i2i.common import IMAGE_EXTENSIONS, list_images, psnr_db
from i2i.errors import I2IError
from i2i.runtime.frames import to_bgr_uint8
from i2i.runtime.gallery import is_pair, target_half
from i2i.runtime.images import read_image
from i2i.runtime.spectral import ProfileRefiner, Refiner, SpectralProfile, open_refiner

PSNR_CAP_DB = 100.0  # identical images count as 100 dB, so a mean stays finite


def images_by_stem(folder: Path) -> dict[str, Path]:
    """The images of ``folder`` keyed by file stem (sorted by name); an error if there are none."""
    if not folder.is_dir():
        raise I2IError(f"not a folder: {folder}")
    found = {p.stem: p for p in list_images(folder)}
    if not found:
        raise I2IError(f"no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return found


def read_bgr(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 BGR, within the runtime's decoded-size cap (its header is
    checked before decoding); one I2IError naming the file if it cannot be read."""
    try:
        return to_bgr_uint8(read_image(path))
    except I2IError as exc:
        raise I2IError(f"cannot read image {path}: {exc.message}; remove or replace it") from None


def _common_stems(reference_dir: Path, test_dir: Path) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    reference, test = images_by_stem(reference_dir), images_by_stem(test_dir)
    common = sorted(set(reference) & set(test))
    if not common:
        raise I2IError(f"no file names in common between {reference_dir} and {test_dir}")
    return reference, test, common


def paired_psnr(
    reference_dir: Path, test_dir: Path, aligned: bool | None = None, direction: str = "AtoB"
) -> dict[str, float | int]:
    """Mean/min 8-bit PSNR between images with the same file stem; a test image of another size is
    resized to its reference first (INTER_AREA).

    A reference test folder of A|B pair images (pix2pix's ``test/``) is scored against each pair's
    target half (B for ``direction="AtoB"``): with ``aligned=True`` always, with ``None`` (the
    default) for each reference exactly twice as wide as its test image, the size of one half.
    ``aligned_pairs`` in the result counts them."""
    reference, test, common = _common_stems(reference_dir, test_dir)
    values, halves = [], 0
    for stem in common:
        a, b = read_bgr(reference[stem]), read_bgr(test[stem])
        if aligned or (aligned is None and a.shape[1] == 2 * b.shape[1] and a.shape[0] == b.shape[0] and is_pair(a)):
            a = target_half(a, direction, str(reference[stem]))
            halves += 1
        if a.shape != b.shape:
            b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
        values.append(min(psnr_db(a, b), PSNR_CAP_DB))
    return {
        "pairs": len(common),
        "psnr_db_mean": float(np.mean(values)),
        "psnr_db_min": float(np.min(values)),
        "aligned_pairs": halves,
    }


def paired_stems(reference_dir: Path, test_dir: Path) -> list[tuple[Path, Path]]:
    """(reference, test) file pairs with the same stem, sorted by stem (for metrics in other modules)."""
    reference, test, common = _common_stems(reference_dir, test_dir)
    return [(reference[stem], test[stem]) for stem in common]


def iter_images(folder: Path, size: tuple[int, int] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(stem, (3, H, W) float32 RGB in [0, 1]) for every image of ``folder``, sorted by name.

    With ``size`` (H, W) every image is resized to it (INTER_AREA; this low-passes, so spectra
    change); without it, the images must already share one size.
    """
    for stem, path in images_by_stem(folder).items():
        image = read_bgr(path)
        if size is not None and image.shape[:2] != size:
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
        yield stem, np.ascontiguousarray(rgb, dtype=np.float32) / 255.0


def folder_stats(folder: Path, size: tuple[int, int] | None = None) -> SpectrumStats:
    """Spectrum statistics of every image of ``folder``."""
    stats = SpectrumStats()
    for stem, image in iter_images(folder, size):
        try:
            stats.add(image)
        except I2IError as exc:  # e.g. a size that differs from the first image's: say which image
            raise I2IError(f"{folder}: image {stem!r}: {exc.message}") from None
    return stats


def refined_stats(
    refiner: Refiner, folder: Path, size: tuple[int, int] | None
) -> tuple[SpectrumStats, dict[str, float]]:
    """Spectrum statistics of ``folder`` after refinement, and PSNR (dB) of refined vs unrefined."""
    stats, psnrs = SpectrumStats(), []
    for _stem, image in iter_images(folder, size):
        refined01 = (refiner((image * 2.0 - 1.0)[None])[0] + 1.0) * 0.5
        psnrs.append(min(psnr_db(image, refined01, data_range=1.0), PSNR_CAP_DB))
        stats.add(refined01)
    return stats, {"psnr_db_mean": float(np.mean(psnrs)), "psnr_db_min": float(np.min(psnrs))}


def _same_size(real: SpectrumStats, fake: SpectrumStats) -> None:
    if real.size != fake.size:
        (rh, rw), (fh, fw) = real.size or (0, 0), fake.size or (0, 0)
        raise I2IError(f"real images are {rh}x{rw}, generated ones {fh}x{fw} (HxW): pass --size HxW to compare them")


def spectrum_report(
    real_dir: Path,
    fake_dir: Path,
    out_dir: Path | None,
    refine: Path | None = None,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """LFD real↔fake (and real↔refined), and the two plots (spectra.png, radial.png) in ``out_dir``."""
    stats = {"real": folder_stats(real_dir, size), "generated": folder_stats(fake_dir, size)}
    _same_size(stats["real"], stats["generated"])
    result: dict[str, Any] = {
        "real_images": stats["real"].count,
        "generated_images": stats["generated"].count,
        "size": list(stats["real"].size or ()),
        "lfd": lfd(stats["real"], stats["generated"]),
    }
    if refine is not None:
        with open_refiner(refine) as refiner:
            stats["refined"], psnr = refined_stats(refiner, fake_dir, size)
        result.update(refine=str(refine), lfd_refined=lfd(stats["real"], stats["refined"]), **psnr)
    if out_dir is not None:
        h, w = result["size"]
        title = f"LFD {result['lfd']:.3f}" + (f" -> {result['lfd_refined']:.3f} refined" if refine else "")
        spectra = plot_spectra({k: s.norm_log_magnitude for k, s in stats.items()}, out_dir / "spectra.png", title)
        radial = plot_radial(
            {k: s.radial_power() for k, s in stats.items()}, ring_radius(h, w), out_dir / "radial.png", title
        )
        result["plots"] = [str(spectra), str(radial)]
    return result


def fit_profile(
    real_dir: Path,
    fake_dir: Path,
    output: Path,
    config: ProfileConfig = ProfileConfig(),
    size: tuple[int, int] | None = None,
    provenance: dict[str, Any] | None = None,
) -> tuple[SpectralProfile, dict[str, float]]:
    """Fit a profile moving ``fake_dir``'s spectra towards ``real_dir``'s, measure it on the same
    images, save it to ``output``; returns the profile and {lfd_before, lfd_after, psnr_db_mean/min}."""
    real, fake = folder_stats(real_dir, size), folder_stats(fake_dir, size)
    _same_size(real, fake)
    info = {
        "real_dir": str(real_dir.resolve()),
        "fake_dir": str(fake_dir.resolve()),
        "resized_to": list(size) if size else None,
        **(provenance or {}),
    }
    profile = estimate_profile(real, fake, config, provenance=info)
    refined, psnr = refined_stats(ProfileRefiner(output, profile), fake_dir, size)
    report = {"lfd_before": lfd(real, fake), "lfd_after": lfd(real, refined), **psnr}
    profile.provenance.update(report)
    profile.save(output)
    return profile, report
