"""``i2i-eval``: image-quality metrics between folders (torch-free)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np

from i2i._cli import Group, debug_option
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
            raise I2IError(f"cannot read image pair {stem!r}")
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
        json_path.write_text(json.dumps(result, indent=2))
