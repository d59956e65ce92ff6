"""The code stays readable: no function in the package over 60 lines (a flat table excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("i2i", "train", "export", "runtime")
MAX_LINES = 60
# Functions that are one flat table (a literal per row, nothing to split), by file:name.
FLAT_TABLES: set[str] = set()


def _long_functions(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    where = f"{path.relative_to(root)}:{node.name}"
                    if lines > MAX_LINES and where not in FLAT_TABLES:
                        found.append(f"{where} ({lines} lines, from line {node.lineno})")
    return found


def test_no_function_over_60_lines() -> None:
    assert _long_functions() == []


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "pkg" / "m.py").write_text(
        f"class C:\n    def short(self):\n        pass\n\n    def long(self):\n{body}\n"
    )
    assert _long_functions(tmp_path, ("pkg",)) == [f"pkg/m.py:long ({MAX_LINES + 1} lines, from line 5)"]
