"""``--precision auto`` on OpenVINO's CPU plugin: the fastest precision this CPU runs natively whose
parity, measured for this model, clears the precision table's bar.

What the CPU runs natively is what OpenVINO reports (``OPTIMIZATION_CAPABILITIES``: BF16 on CPUs
with AVX-512 BF16 or AMX, FP16 on those with AMX-FP16 or ARM fp16), never ``/proc/cpuinfo``. A
reduced run-time precision (bf16, fp16: the graph stays fp32, OpenVINO computes in it) is chosen
only where its parity for this model is known and above its bar: recorded in the card at export
(``card.parity["runtime"][precision]``, see ``i2i.export.build``), else in a cache beside the model
(``<model>.precision-parity.json``, keyed by the model's sha256 and the OpenVINO version), else
measured now, on the card's parity inputs, and cached (in memory where the folder is read-only).
An int8 (Q/DQ) export runs as int8: its parity was measured at export.

Parity of a run-time precision is measured against OpenVINO f32 on the same graph (itself within
the fp32 bar of torch, 60 dB), so it needs no torch and runs at load time as at export.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.card import ModelCard
from i2i.runtime.precisions import get_precision

CACHE_SUFFIX = ".precision-parity.json"
# Run-time precisions OpenVINO's CPU plugin computes in, fastest first, with the hint and the
# capability OpenVINO lists for them.
RUNTIME_CANDIDATES = (("bf16", "bf16", "BF16"), ("fp16", "f16", "FP16"))
_CAPABILITY_WORDS = {"BF16": "AVX-512 BF16 or AMX", "FP16": "native fp16"}
_MEMORY: dict[str, dict[str, Any]] = {}  # cache key -> record, where the model's folder is read-only


@dataclass(frozen=True)
class Choice:
    """The precision ``auto`` picked and why, said in one line by ``describe``."""

    precision: str
    reason: str

    def describe(self) -> str:
        return f"precision: {self.precision} ({self.reason})"


def cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin reports it runs natively (BF16, FP16, INT8, FP32 ...)."""
    import openvino as ov

    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def openvino_version() -> str:
    import openvino as ov

    return str(ov.get_version())


def parity_cases(card: ModelCard, image_dir: str | Path | None = None) -> list[tuple[str, np.ndarray]]:
    """The card's parity inputs: the export's random tensors (or uint8 frames for frame I/O) at its
    sizes and batch, plus real images where a folder is given."""
    from i2i.export.parity import frame_inputs, parity_inputs

    images = image_dir if image_dir is not None and Path(image_dir).is_dir() else None
    make = frame_inputs if card.io.kind == "frame" else parity_inputs
    return make(card.size_multiple, images, batch=card.static_batch, size=card.static_size)


def measure(path: str | Path, card: ModelCard, precision: str, image_dir: str | Path | None = None) -> dict[str, Any]:
    """Parity of ``precision`` computed by OpenVINO against OpenVINO f32 on the card's parity inputs."""
    import openvino as ov

    hint = {name: h for name, h, _ in RUNTIME_CANDIDATES}.get(precision)
    if hint is None:
        raise I2IError(f"precision {precision!r} is not a run-time precision of OpenVINO ({', '.join(_names())})")
    core = ov.Core()
    try:
        model = core.read_model(str(path))
        compiled = {h: core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": h}) for h in ("f32", hint)}
    except Exception as exc:
        detail = " ".join(str(exc).split())[:200]
        raise I2IError(f"{precision} parity: OpenVINO cannot compile {path}: {detail}") from None
    frame = card.io.kind == "frame"
    worst = math.inf
    cases = parity_cases(card, image_dir)
    for _name, batch in cases:
        reference = np.asarray(compiled["f32"](batch)[0], dtype=np.float64)
        other = np.asarray(compiled[hint](batch)[0], dtype=np.float64)
        if not np.isfinite(other).all():
            worst = -math.inf
            break
        mse = float(np.mean((reference - other) ** 2))
        peak = 255.0 if frame else 2.0  # uint8 frames, or [-1, 1] tensors (peak-to-peak 2)
        worst = min(worst, math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse))
    bar = get_precision(precision).bar.psnr_db
    return {
        "min_psnr_db": worst if math.isfinite(worst) else str(worst),
        "bar_psnr_db": bar,
        "passed": bool(worst >= bar),
        "cases": len(cases),
        "reference": "openvino f32",
        "openvino": openvino_version(),
    }


def _names() -> tuple[str, ...]:
    return tuple(name for name, _, _ in RUNTIME_CANDIDATES)


def _psnr(record: Mapping[str, Any]) -> float:
    value = record.get("min_psnr_db")
    return float(value) if isinstance(value, (int, float, str)) else -math.inf


def cache_path(path: str | Path) -> Path:
    target = Path(path)
    return target.with_name(target.name + CACHE_SUFFIX)


def _cache_key(sha256: str, version: str, precision: str) -> str:
    return f"{sha256}:{version}:{precision}"


def known_parity(path: str | Path, card: ModelCard, precision: str) -> tuple[dict[str, Any], str]:
    """(the parity record of ``precision`` for this model, where it came from): the card's, when
    written with this OpenVINO; else the cache beside the model; else measured now and cached."""
    from i2i.common import file_sha256

    version = openvino_version()
    recorded = card.runtime_parity(precision)
    if recorded is not None and recorded.get("openvino") == version:
        return dict(recorded), "measured at export"
    key = _cache_key(file_sha256(path), version, precision)
    if key in _MEMORY:
        return _MEMORY[key], "measured at first load"
    cache = cache_path(path)
    entries = _read_cache(cache)
    if key in entries:
        return entries[key], "measured at first load"
    record = measure(path, card, precision)
    entries[key] = record
    try:
        from i2i._files import write_text

        write_text(cache, json.dumps(entries, indent=2, sort_keys=True), "precision parity cache")
    except (OSError, I2IError):  # a read-only folder: keep it for this process only
        _MEMORY[key] = record
    return record, "measured now"


def _read_cache(cache: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def choose(path: str | Path, card: ModelCard, capabilities: tuple[str, ...] | None = None) -> Choice:
    """What ``--precision auto`` runs ``path`` at on OpenVINO's CPU plugin, and why."""
    if card.precision == "int8":
        parity = card.parity or {}
        psnr = parity.get("min_psnr_db")
        bar = get_precision("int8").bar.psnr_db
        measured = f"; parity {psnr:.1f} dB >= {bar:g} dB bar at export" if isinstance(psnr, (int, float)) else ""
        return Choice("int8", f"an int8 (Q/DQ) export runs as int8{measured}")
    if card.precision != "fp32":  # an fp16 graph: its weights computed in f32, as the hint-free plugin would
        return Choice("fp32", f"an {card.precision} graph runs in f32 on OpenVINO's CPU plugin")
    listed = cpu_capabilities() if capabilities is None else capabilities
    refused: list[str] = []
    for name, _hint, capability in RUNTIME_CANDIDATES:
        if capability not in listed:
            continue
        record, origin = known_parity(path, card, name)
        psnr, bar = _psnr(record), float(record.get("bar_psnr_db", get_precision(name).bar.psnr_db))
        words = _CAPABILITY_WORDS[capability]
        if record.get("passed") and psnr >= bar:
            return Choice(name, f"CPU has {words}; parity {psnr:.1f} dB >= {bar:g} dB bar, {origin}")
        refused.append(f"{name} parity {psnr:.1f} dB < {bar:g} dB bar, {origin}")
    if refused:
        return Choice("fp32", "; ".join(refused))
    return Choice("fp32", f"CPU has no native bf16 or fp16 (OpenVINO lists {', '.join(listed) or 'nothing'})")
