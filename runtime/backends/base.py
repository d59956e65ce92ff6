"""The backend interface and registry.

A backend is one class: ``open`` loads a model file and reads its card, the base class's checked
``__call__`` validates every batch and hands it to ``_infer``; backends are context managers.
Backend modules import their heavy library (onnxruntime, torch, tensorrt, openvino) themselves and
are imported only when asked for by name, so the runtime never pays for (or needs) what it does
not use — ``i2i-run`` with ONNX Runtime never imports torch.
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

    # -- what subclasses implement -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def available(cls) -> tuple[bool, str]:
        """(True, version) when the backend's library imports, else (False, why not)."""

    @classmethod
    @abc.abstractmethod
    def open(cls, path: str | Path, device: str = "cpu", precision: str = "fp32", **opts: Any) -> Backend:
        """Load a model file and read its card."""

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray: ...

    def _close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        pass

    # -- the checked public surface --------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return int(self.card.get("size_multiple") or self.card.get("io", {}).get("size_multiple", 1))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise I2IError(f"{self.name} backend is closed")
        self._validate(batch)
        return self._infer(batch)

    def _validate(self, batch: np.ndarray) -> None:
        spec = self.inputs[0]
        if not isinstance(batch, np.ndarray):
            raise I2IError(f"{self.name}: expected a numpy array, got {type(batch).__name__}")
        if batch.ndim != len(spec.shape):
            raise I2IError(f"{self.name}: expected a {len(spec.shape)}-D batch {spec.shape}, got shape {batch.shape}")
        if batch.dtype != np.dtype(spec.dtype):
            raise I2IError(f"{self.name}: expected {spec.dtype} input, got {batch.dtype}")
        channels = int(self.card.get("io", {}).get("channels", 3))
        if batch.shape[1] != channels:
            raise I2IError(f"{self.name}: expected {channels} channels (NCHW), got shape {batch.shape}")
        m = self.size_multiple
        if batch.shape[2] % m or batch.shape[3] % m:
            raise I2IError(
                f"{self.name}: height and width must be multiples of {m}, got {batch.shape[2]}x{batch.shape[3]}"
            )

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
BACKEND_MODULES: dict[str, str] = {"ort": "onnxruntime", "torch": "torch"}
BACKENDS: dict[str, type[Backend]] = {}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    def deco(cls: type[Backend]) -> type[Backend]:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


def get_backend(name: str) -> type[Backend]:
    if name not in BACKEND_MODULES:
        raise I2IError(f"unknown backend {name!r}; valid: {', '.join(sorted(BACKEND_MODULES))}")
    if name not in BACKENDS:
        importlib.import_module(f"i2i.runtime.backends.{BACKEND_MODULES[name]}")
    return BACKENDS[name]


def available_backends() -> dict[str, tuple[bool, str]]:
    return {name: get_backend(name).available() for name in BACKEND_MODULES}


def open_backend(name: str, path: str | Path, device: str = "cpu", precision: str = "fp32", **opts: Any) -> Backend:
    cls = get_backend(name)
    ok, why = cls.available()
    if not ok:
        raise I2IError(f"backend {name!r} is not available: {why}")
    return cls.open(path, device=device, precision=precision, **opts)
