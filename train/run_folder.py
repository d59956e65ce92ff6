"""One run per run folder: a second training run never mixes itself into the first.

Without ``--out``, ``i2i-train METHOD`` takes a fresh numbered folder, as ultralytics does:
``runs/pix2pix``, then ``runs/pix2pix2``, ``runs/pix2pix3``, ... (``--resume`` without ``--out``
continues the newest of them). A folder given with ``--out`` that already holds a run is refused
unless the run continues it (``--resume``) or clears it first (``--overwrite``, which removes the
run's own files only: those in ``RUN_FILES`` and ``RUN_FOLDERS`` and the generators' ``model*.pt``; anything else in
the folder, and a distillation's teacher cache, which is reused only while it matches, stay).
A run resumed from an earlier state than its last (the latest unreadable) drops the log lines and
state history of the steps it redoes (``forget_after``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from i2i._files import write_text
from i2i.errors import I2IError

# What a training run writes in its folder (besides its generators, model.pt and model_<dir>.pt).
RUN_FILES = ("config.json", "log.jsonl", "state.pt", "eval.jsonl")
RUN_FOLDERS = ("checkpoints", "samples", "tensorboard")
_GENERATOR = re.compile(r"model(_[A-Za-z]+)?\.pt$")


def run_files(out: Path) -> list[Path]:
    """The files and folders of a training run present in ``out`` (empty: no run there)."""
    if not out.is_dir():
        return []
    found = [out / name for name in RUN_FILES if (out / name).is_file()]
    found += [out / name for name in RUN_FOLDERS if (out / name).is_dir()]
    found += sorted(p for p in out.iterdir() if p.is_file() and _GENERATOR.fullmatch(p.name))
    return found


def next_run_folder(base: Path, resume: bool = False) -> Path:
    """The default run folder: ``base`` (runs/METHOD) if no run is there, else the first of ``base2``,
    ``base3``, ... that holds none. With ``resume``: the newest (highest-numbered) one that holds a run."""
    if resume:
        used = [f for f in _numbered(base) if run_files(f)]
        if not used:
            raise I2IError(f"--resume: no run in {base} to continue (give its folder with --out)")
        return used[-1]
    if not run_files(base):
        return base
    n = 2
    while run_files(base.with_name(f"{base.name}{n}")):
        n += 1
    return base.with_name(f"{base.name}{n}")


def _numbered(base: Path) -> list[Path]:
    """``base`` and ``base2``, ``base3``, ... that exist, in order of their number."""
    pattern = re.compile(re.escape(base.name) + r"(\d*)")
    found: list[tuple[int, Path]] = []
    if base.parent.is_dir():
        for p in base.parent.iterdir():
            match = pattern.fullmatch(p.name)
            if p.is_dir() and match and (not match.group(1) or int(match.group(1)) >= 2):
                found.append((int(match.group(1) or 1), p))
    return [p for _, p in sorted(found)]


def claim_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Check that a run may write into ``out``: refuse a folder that holds another run unless the
    run continues it (``resume``) or clears it (``overwrite``: its run files removed here)."""
    if resume and overwrite:
        raise I2IError("--resume continues the run in --out and --overwrite clears it: give one of them")
    if out.exists() and not out.is_dir():
        raise I2IError(f"--out {out} exists and is not a folder; give a folder for the run")
    present = run_files(out)
    if not present or resume:
        return
    if not overwrite:
        names = ", ".join(p.name for p in present[:4]) + (", ..." if len(present) > 4 else "")
        raise I2IError(
            f"--out {out} already holds a run ({names}); continue it with --resume, "
            "clear it with --overwrite, or give another --out"
        )
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def forget_after(out: Path, step: int) -> None:
    """Resumed at ``step`` (from an earlier state when the latest was unreadable): the log lines and
    state history of later steps belong to a run that is now being redone, and are dropped."""
    for old in (out / "checkpoints").glob("state_*.pt"):
        if old.stem[len("state_") :].isdigit() and int(old.stem[len("state_") :]) > step:
            old.unlink(missing_ok=True)
    for name in ("log.jsonl", "eval.jsonl"):
        log = out / name
        if not log.is_file():
            continue
        lines = log.read_text().splitlines(keepends=True)
        kept = [line for line in lines if _logged_step(line) <= step]
        if len(kept) != len(lines):
            write_text(log, "".join(kept), "run log")


def _logged_step(line: str) -> int:
    """The step of one log.jsonl / eval.jsonl line (-1 when it has none: kept)."""
    try:
        record = json.loads(line)
    except ValueError:
        return -1
    value = record.get("step") if isinstance(record, dict) else None
    return value if isinstance(value, int) else -1
