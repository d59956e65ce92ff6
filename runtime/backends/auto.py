"""``--backend auto``: the fastest backend that works here, and a sentence saying why.

The ranking is fixed (TensorRT > ORT CUDA > OpenVINO > ORT CPU, see ARCHITECTURE.md); what varies
is what is installed and what starts. ``plan_auto`` decides from cheap probes (is the library
importable, does onnxruntime list the provider) without loading the model; ``open_auto`` then
opens the candidates in order, so a GPU provider that is listed but fails to start (no driver,
mismatched CUDA) falls through to the next tier with the reason recorded, instead of failing
the run or silently running on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend, backend_status, open_backend
from i2i.runtime.card import parse_io, read_onnx_card, require_card


@dataclass(frozen=True)
class Candidate:
    label: str  # what the user reads: "ORT CUDA"
    backend: str  # registry name
    device: str
    opts: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # why it cannot be used here; None if it is worth trying


def _ort_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def plan_auto(
    model: str | Path,
    device: str = "auto",
    *,
    providers: list[str] | None = None,
    status: Callable[[str], tuple[bool, str]] = backend_status,
) -> list[Candidate]:
    """Candidates fastest first, each with ``skip`` set when a probe already rules it out."""
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        ok, why = status("torch")
        label = "torch eager (a .pt checkpoint runs on the torch baseline)"
        return [Candidate(label, "torch", device, skip=None if ok else why)]
    if suffix in (".engine", ".plan"):
        ok, why = status("trt")
        gpu = device if device != "auto" else "cuda"
        return [Candidate("TensorRT engine", "trt", gpu, skip=None if ok else why)]

    providers = _ort_providers() if providers is None else providers
    gpu_ok = device == "auto" or device.startswith("cuda")
    cpu_ok = device in ("auto", "cpu")
    gpu_device = device if device.startswith("cuda") else "cuda"
    ort_ok, ort_why = status("ort")
    openvino_ok, openvino_why = status("openvino")
    cpu_skip = None if cpu_ok else f"--device {device}"

    def ort_gpu(provider: str) -> str | None:
        if not gpu_ok:
            return f"--device {device}"
        if not ort_ok:
            return ort_why
        if provider not in providers:
            return f"onnxruntime has no {provider} (pip install 'i2i[gpu]')"
        return None

    candidates = [
        Candidate(
            "TensorRT (ONNX Runtime's TensorRT provider)",
            "ort",
            gpu_device,
            {"provider": "tensorrt"},
            ort_gpu("TensorrtExecutionProvider"),
        ),
        Candidate("ORT CUDA", "ort", gpu_device, {}, ort_gpu("CUDAExecutionProvider")),
        Candidate("OpenVINO CPU", "openvino", "cpu", {}, cpu_skip or (None if openvino_ok else openvino_why)),
        Candidate("ORT CPU", "ort", "cpu", {}, cpu_skip or (None if ort_ok else ort_why)),
    ]
    return candidates


def open_auto(
    model: str | Path,
    device: str = "auto",
    precision: str | None = None,
    opts: dict[str, Any] | None = None,
    *,
    candidates: list[Candidate] | None = None,
) -> tuple[Backend, str]:
    """Open the first candidate that starts; returns (backend, why it was chosen)."""
    if Path(model).suffix.lower() == ".onnx":
        # Model-level problems (missing file, no card, a bad card) fail alike on every tier:
        # report them now, so the loop below only falls through on backend start-up failures.
        parse_io(require_card(read_onnx_card(model), model), where=str(model))
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
        why = f"auto: {candidate.label} is the fastest available here"
        if skipped:
            why += "; skipped " + "; ".join(skipped)
        engine = Path(model).with_suffix(".engine")
        if engine.is_file() and candidate.backend != "trt":
            why += f" (a native TensorRT engine exists: pass {engine} to use it)"
        return backend, why
    raise I2IError(f"no backend can run {model} here: " + "; ".join(skipped))
