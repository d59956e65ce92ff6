"""The precision table: one row per numeric precision, read by export, parity, inspect, the bench
and the runtime's precision checks.

A row says how the exported graph is converted (``converter``, a ``module:function`` in
``i2i.export`` resolved only by the exporter, so this module stays torch- and onnx-free), the parity
bar an export must clear against torch fp32, and what the graph stores. Which backends run a
precision, on which devices, is declared by each backend class (``Backend.precisions``) and read
from the registry by ``runs_on``: a new backend never edits this table, and a new precision is one
row here plus its converter.

Reduced precision lives in the graph (TensorRT 10 and 11 build it strongly typed, exactly as
written): fp16 keeps normalisation statistics and reductions in fp32 (``export/precision.py``); int8
is symmetric Q/DQ calibrated at export (``export/quantize.py``). bf16 is a run-time precision only:
the graph stays fp32 and a backend computes in bf16 (OpenVINO's inference precision hint, torch
autocast).
"""

from __future__ import annotations

from dataclasses import dataclass

from i2i.errors import I2IError


@dataclass(frozen=True)
class ParityBar:
    """What an export of this precision must reach against the torch fp32 generator."""

    psnr_db: float  # minimum PSNR on every parity input (peak-to-peak 2 for [-1, 1] outputs)
    # Maximum absolute difference for values in [-1, 1], None: not barred. float32 round-off grows
    # with the magnitude of what is summed, so the bar scales by range / 2 for a case whose values
    # span more (the pre-activation of a final tanh/sigmoid, else the output; export/parity.py).
    max_abs: float | None = None
    real_images_only: bool = False  # measured on real images only (noise is outside calibrated ranges)

    def describe(self) -> str:
        scaled = [f"max abs <= {self.max_abs:g} (x range/2 beyond [-1, 1])"] if self.max_abs else []
        parts = [f"PSNR >= {self.psnr_db:g} dB", *scaled]
        return ", ".join(parts) + (" (real images)" if self.real_images_only else "")


@dataclass(frozen=True)
class Precision:
    name: str
    description: str
    graph_dtype: str  # what the exported graph stores its weights in ("float32" for run-time precisions)
    converter: str | None  # "module:function" that converts an fp32 graph; None: the graph stays fp32
    bar: ParityBar
    exportable: bool = True  # False: a run-time precision of some backends, not a kind of ONNX graph
    tensor_io_dtypes: tuple[str, ...] = ("float32",)  # float I/O a tensor-I/O export may have (first: default)

    def runs_on(self) -> dict[str, tuple[str, ...]]:
        """Backend name -> device kinds that run this precision, from the registered backend classes."""
        from collections.abc import Mapping

        from i2i.runtime.backends.base import BACKEND_MODULES, get_backend

        found: dict[str, tuple[str, ...]] = {}
        for name in BACKEND_MODULES:
            try:
                cls = get_backend(name)
            except I2IError:  # a backend module this install lacks runs nothing
                continue
            declared = cls.precisions  # device kind -> precisions, or one tuple for every device
            if isinstance(declared, Mapping):
                devices = tuple(d for d, names in declared.items() if self.name in names)
            else:
                devices = tuple(cls.devices) if self.name in declared else ()
            if devices:
                found[name] = devices
        return found


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision(
        "fp32",
        "float32 throughout (the reference; TensorRT and ORT CUDA on Ampere+ may use TF32 only if asked)",
        "float32",
        None,
        ParityBar(psnr_db=60.0, max_abs=1e-4),
    ),
    "fp16": Precision(
        "fp16",
        "float16 weights and activations; norm statistics and reductions in fp32 islands",
        "float16",
        "i2i.export.precision:convert_fp16",
        # 10 bits of mantissa: 40 dB is an RMS error of 1% of the range, invisible on a frame.
        ParityBar(psnr_db=40.0),
        tensor_io_dtypes=("float32", "float16"),
    ),
    "int8": Precision(
        "int8",
        "int8 weights (per channel) and activations as symmetric Q/DQ, calibrated on real frames at export",
        "int8",
        "i2i.export.precision:convert_int8",
        # 256 levels per tensor: 30 dB is an RMS error of ~3% of the range.
        ParityBar(psnr_db=30.0, real_images_only=True),
    ),
    "bf16": Precision(
        "bf16",
        "run-time only: an fp32 graph computed in bfloat16 by the backend (OpenVINO hint, torch autocast)",
        "float32",
        None,
        ParityBar(psnr_db=30.0),
        exportable=False,
    ),
}

# Run-time requests may also say "auto": the model's own precision.
AUTO = "auto"


def get_precision(name: str) -> Precision:
    """The row for ``name``; the error lists the valid names."""
    if name not in PRECISIONS:
        raise I2IError(f"unknown precision {name!r}; valid: {', '.join(PRECISIONS)}")
    return PRECISIONS[name]


def export_precisions() -> tuple[str, ...]:
    """Names an ONNX export can be converted to (``i2i-export --precision``)."""
    return tuple(name for name, row in PRECISIONS.items() if row.exportable)


def runtime_precisions() -> tuple[str, ...]:
    """Names a backend may be asked to run (``i2i-run --precision``), ``auto`` first."""
    return (AUTO, *PRECISIONS)
