"""Reference test folders (each image A|B side by side): the aligned split, the metrics, the results page.

pix2pix's reference datasets ship ``test/`` as pair images, 2W x H, the input half and the target
half side by side. Training splits them (``train/data.py``); so do inference (``i2i-run --aligned``:
the input half is translated) and evaluation (``i2i-eval psnr`` scores against the target half), by
the same rule: an even width larger than the height, A left, B right, ``--direction`` choosing which
half is the input.

``write_gallery`` writes what the reference's ``test.py`` writes, the page people look at: an
``index.html`` with one row per image, input | output | target, and that image's PSNR and SSIM.
Everything here is numpy and OpenCV (SSIM included), so it runs in the torch-free runtime.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from i2i.common import psnr_db
from i2i.errors import I2IError

from .frames import to_bgr_uint8
from .images import DEFAULT_MAX_PIXELS, read_image

DIRECTIONS = ("AtoB", "BtoA")
PSNR_CAP_DB = 100.0  # identical images count as 100 dB (as i2i-eval), so a mean stays finite
SSIM_SIZE, SSIM_SIGMA = 11, 1.5  # Wang et al. 2004, as i2i-eval ssim


def is_pair(image: np.ndarray) -> bool:
    """Whether an image can be an A|B pair: an even width larger than its height (train/data.py's rule)."""
    h, w = image.shape[:2]
    return w % 2 == 0 and w > h


def split_pair(image: np.ndarray, direction: str = "AtoB", where: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """(input, target) halves of an A|B pair image: A is the left half; BtoA swaps them."""
    if direction not in DIRECTIONS:
        raise I2IError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
    h, w = image.shape[:2]
    if not is_pair(image):
        why = "its width is odd" if w % 2 else "it is not wider than tall"
        raise I2IError(f"{where} is {h}x{w} (HxW), not an A|B pair side by side ({why})")
    a, b = np.ascontiguousarray(image[:, : w // 2]), np.ascontiguousarray(image[:, w // 2 :])
    return (a, b) if direction == "AtoB" else (b, a)


def target_half(image: np.ndarray, direction: str = "AtoB", where: str = "image") -> np.ndarray:
    return split_pair(image, direction, where)[1]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 images of one shape (8-bit range, Gaussian 11x11 window, sigma 1.5,
    over the valid region and every channel): the numbers ``i2i-eval ssim`` gives, without torch."""
    if a.shape != b.shape:
        raise I2IError(f"SSIM needs images of one size, got {a.shape} and {b.shape}")
    if min(a.shape[:2]) < SSIM_SIZE:
        raise I2IError(f"SSIM needs images of at least {SSIM_SIZE}x{SSIM_SIZE} pixels, got {a.shape[0]}x{a.shape[1]}")
    g = cv2.getGaussianKernel(SSIM_SIZE, SSIM_SIGMA, cv2.CV_64F)
    window = g @ g.T
    r = SSIM_SIZE // 2

    def blur(x: np.ndarray) -> np.ndarray:  # the window's weighted mean, on the valid region only
        return cv2.filter2D(x, cv2.CV_64F, window, borderType=cv2.BORDER_CONSTANT)[r:-r, r:-r]

    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(s.mean())


@dataclass(frozen=True)
class GalleryRow:
    """One image of the page: its name, the three image files (relative to the page), its metrics."""

    name: str
    input: str
    output: str
    target: str
    psnr_db: float
    ssim: float


def aligned_gallery(
    sources: Sequence[Path],
    out_dir: Path,
    direction: str = "AtoB",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """The results page of an ``i2i-run --aligned`` folder run: for every pair image in ``sources``
    whose output ``out_dir/<stem>.png`` exists, its input and target halves go to ``out_dir/input/``
    and ``out_dir/target/``, its PSNR and SSIM (output vs target) to ``out_dir/index.html``.

    Returns {pairs, psnr_db_mean, psnr_db_min, ssim_mean, ssim_min, page}."""
    rows: list[GalleryRow] = []
    for source in sources:
        output_path = out_dir / f"{source.stem}.png"
        if not output_path.is_file():  # skipped by the reader (a warning said why), or the run stopped early
            continue
        pair = to_bgr_uint8(read_image(source, max_pixels))
        given, target = split_pair(pair, direction, str(source))
        output = to_bgr_uint8(read_image(output_path, max_pixels))
        if output.shape != target.shape:  # a model that changes the size: score at the target's
            output = cv2.resize(output, (target.shape[1], target.shape[0]), interpolation=cv2.INTER_AREA)
        for folder, image in (("input", given), ("target", target)):
            (out_dir / folder).mkdir(exist_ok=True)
            if not cv2.imwrite(str(out_dir / folder / f"{source.stem}.png"), image):
                raise I2IError(f"cannot write {out_dir / folder / source.stem}.png")
        rows.append(
            GalleryRow(
                name=source.stem,
                input=f"input/{source.stem}.png",
                output=f"{source.stem}.png",
                target=f"target/{source.stem}.png",
                psnr_db=min(psnr_db(output, target), PSNR_CAP_DB),
                ssim=ssim(output, target),
            )
        )
    if not rows:
        raise I2IError(f"no outputs in {out_dir} to put on a results page")
    psnrs, ssims = [r.psnr_db for r in rows], [r.ssim for r in rows]
    summary = {
        "pairs": len(rows),
        "psnr_db_mean": float(np.mean(psnrs)),
        "psnr_db_min": float(np.min(psnrs)),
        "ssim_mean": float(np.mean(ssims)),
        "ssim_min": float(np.min(ssims)),
    }
    page = write_gallery(out_dir / "index.html", rows, summary, direction)
    return {**summary, "page": str(page)}


def write_gallery(path: Path, rows: Sequence[GalleryRow], summary: dict[str, Any], direction: str) -> Path:
    """``index.html``: a summary line, then one row per image, input | output | target with its metrics."""
    from i2i._files import write_text

    def cell(src: str, label: str) -> str:
        return f'<td><img src="{html.escape(src)}" alt="{label}" loading="lazy"></td>'

    body = []
    for row in rows:
        body.append(
            f'<tr id="{html.escape(row.name)}"><th>{html.escape(row.name)}</th>'
            + cell(row.input, "input")
            + cell(row.output, "output")
            + cell(row.target, "target")
            + f'<td class="psnr">{row.psnr_db:.2f} dB</td><td class="ssim">{row.ssim:.4f}</td></tr>'
        )
    title = f"{summary['pairs']} images, {direction}"
    mean = f"mean PSNR {summary['psnr_db_mean']:.2f} dB, mean SSIM {summary['ssim_mean']:.4f}"
    page = _PAGE.format(title=html.escape(title), mean=html.escape(mean), rows=os.linesep.join(body))
    return write_text(path, page, "results page")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>i2i results: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px 8px; text-align: left; vertical-align: middle; }}
thead th {{ position: sticky; top: 0; background: #fff; }}
img {{ display: block; max-width: 256px; image-rendering: pixelated; }}
td.psnr, td.ssim {{ font-variant-numeric: tabular-nums; }}
</style>
</head>
<body>
<h1>i2i results: {title}</h1>
<p id="summary">{mean}</p>
<table>
<thead><tr><th>image</th><th>input</th><th>output</th><th>target</th><th>PSNR</th><th>SSIM</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
