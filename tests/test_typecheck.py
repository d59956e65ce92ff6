"""mypy over the whole package with its real cross-module types, and no silenced error anywhere.

The editable install maps train/, export/ and runtime/ to i2i.train, i2i.export and i2i.runtime
through an import hook mypy cannot follow: run from the repository, every ``from i2i.train ...``
inside those folders would be typed Any and their errors unseen. The test stages the package as
it installs (symlinks: i2i/ with the three folders inside it) and checks that tree.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("i2i", "train", "export", "runtime")
pytestmark = pytest.mark.slow  # about half a minute from a cold cache: in make test, out of the edit loop


def stage_package(root: Path) -> Path:
    """``root/i2i``: i2i/'s files and the three layer folders, as symlinks (edits show through)."""
    tree = root / "i2i"
    tree.mkdir(parents=True)
    for entry in (REPO / "i2i").iterdir():
        if entry.name != "__pycache__":
            (tree / entry.name).symlink_to(entry)
    for part in PACKAGES[1:]:
        (tree / part).symlink_to(REPO / part, target_is_directory=True)
    return tree


def test_no_type_ignore_in_the_package() -> None:
    silenced = [
        f"{path.relative_to(REPO)}:{n}"
        for part in PACKAGES
        for path in sorted((REPO / part).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"#\s*type:\s*ignore", line)
    ]
    assert not silenced, f"fix the type error instead of silencing it: {silenced}"


def test_mypy_passes_on_the_package_as_installed(tmp_path: Path) -> None:
    tree = stage_package(tmp_path)
    # A probe that misuses a type two layers away: its one error shows the cross-layer types resolve.
    (tree / "_probe.py").write_text(
        "from i2i.train.loop import TrainConfig\n\n\ndef probe(config: TrainConfig) -> int:\n"
        "    return config.test_time()\n"
    )
    cache = REPO / ".mypy_cache" / "package-check"  # ignored by git; keeps torch's and numpy's analysis warm
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(cache)]
    result = subprocess.run(
        [*command, "--warn-unused-ignores", "i2i"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("i2i/_probe.py:5:"), result.stdout + result.stderr
    assert 'Incompatible return value type (got "tuple[str, bool]", expected "int")' in errors[0], errors
    # Every module of the four folders was checked through the staged tree, not just i2i/'s own.
    modules = sum(1 for part in PACKAGES for path in (REPO / part).rglob("*.py") if "__pycache__" not in path.parts)
    assert f"in 1 file (checked {modules + 1} source files)" in result.stdout, result.stdout
