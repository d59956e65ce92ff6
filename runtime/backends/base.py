"""The backend interface and registry.

A backend is one class that declares what it opens (``suffixes``, ``devices``, ``default_device``,
``precisions``, ``options``, ``auto_rank``) and implements ``available``, ``_open`` and ``_infer``.
The base class's ``open`` checks a request against those declarations, reads the card once and
hands it to ``_open``; its checked ``__call__`` validates every batch against the card (layout,
dtype, size) and hands it to ``_infer``; backends are context managers. Backend modules import their heavy library
(onnxruntime, openvino, tensorrt, torch) inside ``available``/``open`` and are imported only when
asked for by name, so the runtime never pays for (or needs) what it does not use — ``i2i-run``
with ONNX Runtime never imports torch.

A registered name whose module is missing from the install (e.g. ``trt`` before its module is
shipped) or fails to import is reported as unavailable with the reason, never as a crash.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.card import ModelCard, ModelIO


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]  # None / str for dynamic axes
    dtype: str  # numpy dtype name: "float32", "float16", "uint8"


@dataclass(frozen=True)
class AutoTier:
    """One way ``--backend auto`` may run a model on this backend (a backend can offer several)."""

    rank: int  # lower is tried first: the fastest tier of all backends comes first
    label: str  # what people read: "ORT CUDA"
    device: str  # device kind: "cpu" or "cuda"
    opts: Mapping[str, str] = field(default_factory=dict)


# The card as ``_open`` receives it: the model's ``ModelCard``, or None for a checkpoint, whose card
# the torch backend builds from the checkpoint it loads anyway (so it is loaded once, not twice).
Card: TypeAlias = "ModelCard | None"


def read_model_card(path: Path) -> ModelCard | None:
    """The card of ``path``, read once by ``Backend.open`` and handed to ``_open``."""
    if path.suffix.lower() == ".pt":
        return None
    from i2i.runtime.formats import read_card

    return read_card(path)


def required_card(card: ModelCard | None, path: Path) -> ModelCard:
    """The card of a model file (only checkpoints come without one)."""
    if card is None:
        raise I2IError(f"{path}: this backend runs exported models, not checkpoints; export it with i2i-export")
    return card


def device_kind(device: str) -> str:
    """'cuda:1' -> 'cuda'."""
    return device.partition(":")[0]


def check_graph(path: Path, io: ModelIO, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
    """The graph's first input and output must have the layout and dtype the card promises (every
    backend at open; a backend may call it earlier, before it runs anything through the graph)."""
    for role, specs in (("input", inputs), ("output", outputs)):
        if not specs:
            raise I2IError(f"{path}: the model has no {role}")
        spec = specs[0]
        if len(spec.shape) != 4:
            raise I2IError(f"{path}: {role} {spec.name!r} has shape {spec.shape}; expected 4-D {io.layout}")
        if spec.dtype != io.dtype:
            raise I2IError(
                f"{path}: the card says {io.kind} I/O in {io.dtype} but {role} {spec.name!r} is "
                f"{spec.dtype}; the card and graph disagree: re-export the model"
            )
        channels = spec.shape[io.channel_axis]
        if isinstance(channels, int) and channels != io.channels:
            raise I2IError(
                f"{path}: {role} {spec.name!r} has shape {spec.shape}, not {io.layout} with "
                f"{io.channels} channels as the card ({io.kind} I/O) says"
            )
        if io.static_size is not None and role == "input":
            h, w = io.hw(spec.shape)
            if all(isinstance(d, int) for d in (h, w)) and (h, w) != io.static_size:
                raise I2IError(f"{path}: the card says static size {io.static_size} but the graph input is {h}x{w}")


class Backend(abc.ABC):
    """What a backend declares (class attributes) and what it implements (``available``, ``_open``,
    ``_infer``). ``open`` belongs to this base: a backend never re-implements option, device or
    precision checks, so every backend refuses the same mistakes with the same message."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # for people: "ONNX Runtime"
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)  # model files it opens
    devices: ClassVar[tuple[str, ...]] = ("cpu",)  # device kinds; "cuda" also accepts "cuda:N"
    default_device: ClassVar[str] = "cpu"  # what device=None means
    # precisions it runs: one tuple for every device, or device kind -> tuple
    precisions: ClassVar[tuple[str, ...] | Mapping[str, tuple[str, ...]]] = ("fp32",)
    options: ClassVar[Mapping[str, str]] = {}  # option name -> help (i2i-run -O name=value)
    auto_rank: ClassVar[tuple[AutoTier, ...]] = ()  # how --backend auto may use it; () = only by name

    def __init__(
        self,
        path: Path,
        card: ModelCard,
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
        self.io: ModelIO = card.io
        check_graph(path, card.io, inputs, outputs)

    # -- what subclasses implement -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def available(cls) -> tuple[bool, str]:
        """(True, version) when the backend's library imports, else (False, why not)."""

    @classmethod
    def _open(cls, path: Path, card: Card, device: str, precision: str, **opts: Any) -> Backend:
        """Load ``path`` (its ``card`` already read, device/precision/options already checked)."""
        raise NotImplementedError(f"{cls.__name__} implements no _open")

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray: ...

    def _close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        pass

    @classmethod
    def auto_device(cls) -> str:
        """What device='auto' means here (the default device unless a backend can probe better)."""
        return cls.default_device

    @classmethod
    def tier_skip(cls, tier: AutoTier) -> str | None:
        """Why ``tier`` cannot run here, from cheap probes (no model loaded); None if worth trying."""
        return None

    # -- opening, owned by the base ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, device: str | None = None, precision: str = "auto", **opts: Any) -> Backend:
        """Check the request against what the class declares, read the card once, then ``_open``.

        ``device=None`` is the backend's default device, ``"auto"`` its best one here;
        ``precision="auto"`` means the model's own.
        """
        path = Path(path)
        cls.check_suffix(path)
        cls.check_options(opts)
        device = cls.resolve_device(device)
        cls.check_precision(precision, device)
        if not path.exists():
            raise I2IError(f"model not found: {path}")
        return cls._open(path, read_model_card(path), device, precision, **opts)

    @classmethod
    def check_suffix(cls, path: Path) -> None:
        if path.suffix.lower() not in cls.suffixes:
            raise I2IError(f"{cls.name} backend opens {' / '.join(cls.suffixes)} files, not {path.name}")

    @classmethod
    def check_options(cls, opts: Mapping[str, Any]) -> None:
        """An option a backend does not take is an error, never silently ignored."""
        unknown = sorted(set(opts) - set(cls.options))
        if unknown:
            listed = ", ".join(cls.options) if cls.options else "none"
            raise I2IError(f"backend {cls.name!r} has no option {', '.join(unknown)}; valid options: {listed}")

    @classmethod
    def resolve_device(cls, device: str | None) -> str:
        device = cls.default_device if device is None else device
        if device == "auto":
            device = cls.auto_device()
        kind, _, index = device.partition(":")
        if kind not in cls.devices or (index and (kind == "cpu" or not index.isdigit())):
            valid = ", ".join(d + (", cuda:N" if d == "cuda" else "") for d in cls.devices)
            raise I2IError(f"{cls.name} backend: unknown device {device!r}; valid: {valid} (or auto)")
        return device

    @classmethod
    def precisions_on(cls, device: str) -> tuple[str, ...]:
        declared = cls.precisions
        return tuple(declared.get(device_kind(device), ())) if isinstance(declared, Mapping) else tuple(declared)

    @classmethod
    def check_precision(cls, precision: str, device: str) -> None:
        valid = cls.precisions_on(device)
        if precision != "auto" and precision not in valid:
            raise I2IError(
                f"{cls.name} backend: precision {precision!r} is not supported on {device} "
                f"(valid: auto, {', '.join(valid)})"
            )

    # -- the checked public surface --------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return self.io.size_multiple

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise I2IError(f"{self.name} backend is closed")
        self._validate(batch)
        return self._infer(batch)

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
# A new backend is its module plus one line here: everything else (i2i-run's --backend choices,
# --backend auto, the bench) reads the class attributes.
BACKEND_MODULES: dict[str, str] = {
    "ort": "onnxruntime",
    "openvino": "openvino",
    "trt": "tensorrt",
    "torch": "torch",
    "torch-compile": "torch",
}
BACKENDS: dict[str, type[Backend]] = {}
# The reference every benchmark compares against (torch eager on the checkpoint).
BASELINE = "torch"


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    def deco(cls: type[Backend]) -> type[Backend]:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


def backend_names() -> tuple[str, ...]:
    """Every registered backend name (installed or not), for choices and help texts."""
    return tuple(BACKEND_MODULES)


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


def backends_for(path: str | Path) -> tuple[str, ...]:
    """Names of the registered backends whose ``suffixes`` accept ``path`` (modules that load)."""
    suffix = Path(path).suffix.lower()
    names = []
    for name in BACKEND_MODULES:
        try:
            cls = get_backend(name)
        except I2IError:
            continue
        if suffix in cls.suffixes:
            names.append(name)
    return tuple(names)


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
    name: str, path: str | Path, device: str | None = None, precision: str | None = None, **opts: Any
) -> Backend:
    """Open ``path`` on backend ``name``. ``device=None`` is the backend's default device,
    ``precision=None`` (or "auto") the model's own."""
    cls = get_backend(name)
    ok, why = cls.available()
    if not ok:
        raise I2IError(f"cannot open {path}: backend {name!r} is not available: {why}")
    return cls.open(path, device=device, precision=precision or "auto", **opts)
