"""Build the i2i wheel as pip builds it, from a copy of the sources (shared by the packaging tests).

The copy keeps the build's own files (``build/``, ``*.egg-info``) out of the working tree, where
another build or ``make lint`` may be using ``build/`` at the same time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a wheel is built from: the build configuration and the folders of the package-dir mapping.
SOURCES = ("pyproject.toml", "setup.py", "README.md")


def package_dir() -> dict[str, str]:
    """Import name -> folder, as pyproject.toml maps them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(config["tool"]["setuptools"]["package-dir"])


def distribution_name() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"])


def build_wheel(work: Path) -> Path:
    """The wheel of the working tree, built under ``work`` (``pip wheel --no-deps --no-build-isolation``)."""
    src = work / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in sorted(set(package_dir().values())):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    out = work / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    build = subprocess.run(
        [*command, "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out.glob(f"{distribution_name().replace('-', '_')}-*.whl")
    return wheel
