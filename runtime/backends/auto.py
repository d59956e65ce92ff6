"""``--backend auto``: the fastest backend that works here, and a sentence saying why.

The ranking comes from the backends themselves: each class lists its ``auto_rank`` tiers
(TensorRT engine > ORT TensorRT > ORT CUDA > OpenVINO > ORT CPU, see ARCHITECTURE.md) and the
model suffixes it opens. What varies is what is installed and what starts. ``plan_auto`` decides
from cheap probes (does the backend's library import, does the tier's ``tier_skip`` find it
runnable) without loading the model; ``open_auto`` then opens the candidates in order, so a GPU
provider that is listed but fails to start (no driver, mismatched CUDA) falls through to the next
tier with the reason recorded, instead of failing the run or silently running on the CPU.

``AutoChoice`` keeps both forms of the reason: ``why`` names every tier skipped and its full reason
(install hints included), ``brief`` is the one short line a run starts with. The hints are for a
machine that has an NVIDIA GPU to use; on one without, ``brief`` only names what was skipped and
``i2i-run --verbose`` / ``--list-backends`` show the rest.
"""

from __future__ import annotations

import glob
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2i.errors import I2IError
from i2i.runtime.backends.base import AutoTier, Backend, backend_status, backends_for, get_backend, open_backend


@dataclass(frozen=True)
class Candidate:
    label: str  # what the user reads: "ORT CUDA"
    backend: str  # registry name
    device: str
    opts: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # why it cannot be used here; None if it is worth trying
    rank: int = 0


def _tier_candidate(name: str, tier: AutoTier, device: str, status: Callable[[str], tuple[bool, str]]) -> Candidate:
    wanted_kind = device.partition(":")[0]
    target = device if wanted_kind == tier.device else tier.device
    candidate = Candidate(tier.label, name, target, dict(tier.opts), rank=tier.rank)
    if device != "auto" and wanted_kind != tier.device:
        return _skip(candidate, f"--device {device}")
    ok, why = status(name)
    if not ok:
        return _skip(candidate, why)
    return _skip(candidate, get_backend(name).tier_skip(tier))


def _skip(candidate: Candidate, why: str | None) -> Candidate:
    return Candidate(candidate.label, candidate.backend, candidate.device, candidate.opts, why, candidate.rank)


def plan_auto(
    model: str | Path,
    device: str = "auto",
    *,
    status: Callable[[str], tuple[bool, str]] = backend_status,
) -> list[Candidate]:
    """Candidates fastest first, each with ``skip`` set when a probe already rules it out."""
    candidates = [
        _tier_candidate(name, tier, device, status)
        for name in backends_for(model)
        for tier in get_backend(name).auto_rank
    ]
    if not candidates:
        raise I2IError(f"no backend opens {Path(model).name}: --backend auto runs .onnx, .engine and .pt models")
    return sorted(candidates, key=lambda c: c.rank)


def auto_candidates(model: str | Path, device: str = "auto") -> list[Candidate]:
    """The candidates ``--backend auto`` would try for ``model``, for callers that list or pick them."""
    return plan_auto(model, device)


def backends_report() -> str:
    """``i2i-run --list-backends``: each backend's library (version, or why it is missing) and the
    order ``--backend auto`` tries for an ONNX model here, with every reason and install hint."""
    from i2i.runtime.backends.base import available_backends

    lines = ["backends:"]
    for name, (ok, detail) in available_backends().items():
        lines.append(f"  {name:<14} {'yes' if ok else 'no '}  {detail}")
    gpu = "an NVIDIA GPU is present" if nvidia_gpu_present() else "no NVIDIA GPU found"
    lines.append(f"--backend auto for an .onnx model, fastest first ({gpu}):")
    for candidate in plan_auto("model.onnx"):
        state = "tried" if candidate.skip is None else f"skipped: {candidate.skip}"
        lines.append(f"  {candidate.label:<42} {state}")
    return "\n".join(lines)


def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU with its driver loaded (device nodes, or nvidia-smi
    where there are none), probed without loading any GPU library."""
    if sys.platform.startswith("linux"):
        return bool(glob.glob("/dev/nvidia[0-9]*")) or Path("/proc/driver/nvidia/gpus").is_dir()
    return shutil.which("nvidia-smi") is not None


@dataclass(frozen=True)
class AutoChoice:
    """What ``--backend auto`` opened, and why: ``skipped`` holds "label: reason" per faster tier."""

    backend: Backend
    chosen: Candidate
    skipped: list[str]
    why: str  # the full account: every skipped tier with its reason

    def brief(self, gpu_present: bool | None = None) -> str:
        """One short line: the tier chosen and the tiers skipped by name; their reasons (with the
        GPU install hints) only where a GPU is present to use them."""
        gpu = nvidia_gpu_present() if gpu_present is None else gpu_present
        if gpu or not self.skipped:
            return self.why
        labels = ", ".join(entry.partition(":")[0].split(" (")[0] for entry in self.skipped)
        return (
            f"auto: {self.chosen.label} is the fastest that runs here; skipped {labels} "
            "(no NVIDIA GPU here; --verbose or --list-backends says why)"
        )


def open_auto(
    model: str | Path,
    device: str = "auto",
    precision: str | None = None,
    opts: dict[str, Any] | None = None,
    *,
    candidates: list[Candidate] | None = None,
) -> tuple[Backend, str]:
    """Open the first candidate that starts; returns (backend, why it was chosen)."""
    choice = open_auto_choice(model, device, precision, opts, candidates=candidates)
    return choice.backend, choice.why


def open_auto_choice(
    model: str | Path,
    device: str = "auto",
    precision: str | None = None,
    opts: dict[str, Any] | None = None,
    *,
    candidates: list[Candidate] | None = None,
) -> AutoChoice:
    """Open the first candidate that starts; the backend with the full and the short reason."""
    if Path(model).suffix.lower() == ".onnx":
        # Model-level problems (missing file, no card, a bad card) fail alike on every tier:
        # report them now, so the loop below only falls through on backend start-up failures.
        from i2i.runtime.backends.base import read_model_card

        read_model_card(Path(model))
    candidates = plan_auto(model, device) if candidates is None else candidates
    skipped: list[str] = []
    for candidate in candidates:
        if candidate.skip is not None:
            skipped.append(f"{candidate.label}: {candidate.skip}")
            continue
        try:
            backend = open_backend(
                candidate.backend, model, device=candidate.device, precision=precision, **candidate.opts, **(opts or {})
            )
        except I2IError as exc:
            if candidate is candidates[-1]:
                raise
            skipped.append(f"{candidate.label}: {exc.message}")
            continue
        return AutoChoice(backend, candidate, skipped, _why(model, candidate, skipped))
    raise I2IError(f"no backend can run {model} here: " + "; ".join(skipped))


def _why(model: str | Path, chosen: Candidate, skipped: list[str]) -> str:
    why = f"auto: {chosen.label} is the fastest available here"
    if skipped:
        why += "; skipped " + "; ".join(skipped)
    engine = Path(model).with_suffix(".engine")
    engine_backends = backends_for(engine)
    if engine.is_file() and chosen.backend not in engine_backends:
        why += f" (a native TensorRT engine exists: pass {engine} to use it)"
    return why
