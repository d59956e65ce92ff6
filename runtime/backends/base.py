"""The backend interface and registry.

A backend is one class: ``open`` loads a model file and reads its card, the base class's checked
``__call__`` validates every batch against the card (layout, dtype, size) and hands it to
``_infer``; backends are context managers. Backend modules import their heavy library
(onnxruntime, openvino, tensorrt, torch) inside ``available``/``open`` and are imported only when
asked for by name, so the runtime never pays for (or needs) what it does not use — ``i2i-run``
with ONNX Runtime never imports torch.

A registered name whose module is missing from the install (e.g. ``trt`` before its module is
shipped) or fails to import is reported as unavailable with the reason, never as a crash.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.card import ModelIO, parse_io


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]  # None / str for dynamic axes
    dtype: str  # numpy dtype name: "float32", "float16", "uint8"


class Backend(abc.ABC):
    name: ClassVar[str] = ""

    def __init__(
        self,
        path: Path,
        card: dict[str, Any],
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        device: str,
        precision: str,
    ) -> None:
        self.path = path
        self.card = card
        self.inputs = inputs
        self.outputs = outputs
        self.device = device
        self.precision = precision
        self._closed = False
        # A card that disagrees with the graph is an export bug; catching it here means a wrong
        # model fails at load time with a clear message, not as garbage frames at run time.
        self.io: ModelIO = parse_io(card, where=str(path))
        self._check_graph()

    # -- what subclasses implement -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def available(cls) -> tuple[bool, str]:
        """(True, version) when the backend's library imports, else (False, why not)."""

    @classmethod
    @abc.abstractmethod
    def open(cls, path: str | Path, device: str = "cpu", precision: str = "auto", **opts: Any) -> Backend:
        """Load a model file and read its card. ``precision="auto"`` means the model's own."""

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray: ...

    def _close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        pass

    # -- the checked public surface --------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return self.io.size_multiple

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise I2IError(f"{self.name} backend is closed")
        self._validate(batch)
        return self._infer(batch)

    def _check_graph(self) -> None:
        """The graph's first input and output must have the layout and dtype the card promises."""
        io = self.io
        for role, specs in (("input", self.inputs), ("output", self.outputs)):
            if not specs:
                raise I2IError(f"{self.path}: the model has no {role}")
            spec = specs[0]
            if len(spec.shape) != 4:
                raise I2IError(f"{self.path}: {role} {spec.name!r} has shape {spec.shape}; expected 4-D {io.layout}")
            if spec.dtype != io.dtype:
                raise I2IError(
                    f"{self.path}: the card says {io.kind} I/O in {io.dtype} but {role} {spec.name!r} is "
                    f"{spec.dtype}; the card and graph disagree: re-export the model"
                )
            channels = spec.shape[io.channel_axis]
            if isinstance(channels, int) and channels != io.channels:
                raise I2IError(
                    f"{self.path}: {role} {spec.name!r} has shape {spec.shape}, not {io.layout} with "
                    f"{io.channels} channels as the card ({io.kind} I/O) says"
                )
            if io.static_size is not None and role == "input":
                h, w = io.hw(spec.shape)
                if all(isinstance(d, int) for d in (h, w)) and (h, w) != io.static_size:
                    raise I2IError(
                        f"{self.path}: the card says static size {io.static_size} but the graph input is {h}x{w}"
                    )

    def _validate(self, batch: np.ndarray) -> None:
        spec, io = self.inputs[0], self.io
        if not isinstance(batch, np.ndarray):
            raise I2IError(f"{self.name}: expected a numpy array, got {type(batch).__name__}")
        if batch.ndim != 4:
            raise I2IError(f"{self.name}: expected a 4-D {io.layout} batch, got shape {batch.shape}")
        if batch.dtype != np.dtype(io.dtype):
            raise I2IError(f"{self.name}: expected {io.dtype} input ({io.kind} I/O), got {batch.dtype}")
        if batch.shape[io.channel_axis] != io.channels:
            raise I2IError(f"{self.name}: expected {io.channels} channels ({io.layout}), got shape {batch.shape}")
        h, w = io.hw(batch.shape)
        if io.static_size is not None:
            if (h, w) != io.static_size:
                sh, sw = io.static_size
                raise I2IError(f"{self.name}: this model takes {sh}x{sw} inputs only, got {h}x{w}")
        elif h % io.size_multiple or w % io.size_multiple:
            m = io.size_multiple
            raise I2IError(f"{self.name}: height and width must be multiples of {m}, got {h}x{w}")
        for want, got in zip(spec.shape, batch.shape):
            if isinstance(want, int) and want > 0 and want != got:
                raise I2IError(f"{self.name}: the model's input has a fixed shape {spec.shape}, got {batch.shape}")
        if not batch.flags.c_contiguous:
            raise I2IError(f"{self.name}: the batch must be C-contiguous (np.ascontiguousarray)")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision})"


# name -> module under i2i.runtime.backends; imported on first use, the module registers its class.
BACKEND_MODULES: dict[str, str] = {
    "ort": "onnxruntime",
    "openvino": "openvino",
    "trt": "tensorrt",
    "torch": "torch",
    "torch-compile": "torch",
}
BACKENDS: dict[str, type[Backend]] = {}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    def deco(cls: type[Backend]) -> type[Backend]:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


def get_backend(name: str) -> type[Backend]:
    """The class registered as ``name``; an I2IError if it is unknown or its module cannot load."""
    if name not in BACKEND_MODULES:
        raise I2IError(f"unknown backend {name!r}; valid: {', '.join(sorted(BACKEND_MODULES))}")
    if name not in BACKENDS:
        module = f"i2i.runtime.backends.{BACKEND_MODULES[name]}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise I2IError(f"backend {name!r} is not part of this install (no module {module})") from None
            raise I2IError(f"backend {name!r} cannot load: {exc}") from None
        except ImportError as exc:
            raise I2IError(f"backend {name!r} cannot load: {exc}") from None
        if name not in BACKENDS:
            raise I2IError(f"backend {name!r}: {module} registered no backend of that name")
    return BACKENDS[name]


def backend_status(name: str) -> tuple[bool, str]:
    """(available, version or reason); never raises for a known name."""
    try:
        cls = get_backend(name)
    except I2IError as exc:
        return False, exc.message
    try:
        return cls.available()
    except Exception as exc:  # a broken optional library must not take the runtime down
        return False, f"availability check failed: {exc}"


def available_backends() -> dict[str, tuple[bool, str]]:
    return {name: backend_status(name) for name in BACKEND_MODULES}


def open_backend(
    name: str, path: str | Path, device: str = "cpu", precision: str | None = None, **opts: Any
) -> Backend:
    """Open ``path`` on backend ``name``. ``precision=None`` leaves the backend's default (the model's own)."""
    cls = get_backend(name)
    ok, why = cls.available()
    if not ok:
        raise I2IError(f"cannot open {path}: backend {name!r} is not available: {why}")
    if precision is not None:
        opts["precision"] = precision
    return cls.open(path, device=device, **opts)


def check_options(backend: str, opts: dict[str, Any], valid: tuple[str, ...]) -> None:
    """Unknown backend options are errors (never silently ignored)."""
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        listed = ", ".join(valid) if valid else "none"
        raise I2IError(f"backend {backend!r} has no option {', '.join(unknown)}; valid options: {listed}")
