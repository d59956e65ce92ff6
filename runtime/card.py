"""The model card: what goes into a model, what comes out, and where the model came from.

Every artefact i2i writes carries one: the exporter embeds it as JSON in ``metadata_props["i2i"]`` of
each ONNX file, TensorRT engines keep it in their ``.engine.json`` sidecar, and a ``model.pt``
checkpoint yields one through ``ModelCard.from_checkpoint``. ``ModelCard`` is the only writer and the
only reader of that JSON: code elsewhere reads typed fields (``card.io.kind``, ``card.precision``,
``card.refiner``), never dictionary keys, and never the training network's keyword arguments.

The runtime reads the card and never guesses: it says whether the graph takes float tensors
(``kind="tensor"``: NCHW RGB in [-1, 1], float32 or float16) or raw OpenCV frames (``kind="frame"``:
uint8 NHWC BGR, normalisation fused into the graph), and whether it has a fixed input size
(``static_size``: frames are resized to it) or a dynamic one (frames are padded to ``size_multiple``).

Versions: ``i2i-card/2`` is written today. ``i2i-card/1`` cards (exports of earlier releases) and
cards without a ``format`` key load with the first format's defaults: tensor, float32, dynamic.
Fields added within a format are optional, so cards written before them still load and older
readers skip them: ``test_norm_reason`` (why the test-time BatchNorm mode; None: not recorded) and
``teacher`` (a distilled student's teacher and the test-time mode it ran in; None: not a student).
Within ``parity``, ``runtime`` (precision -> record: the parity of a run-time precision such as
bf16, measured by OpenVINO at export; ``ModelCard.runtime_parity``) is optional in the same way.

``read_onnx_metadata`` reads the metadata straight from the protobuf bytes, so backends that do not
expose ONNX metadata (OpenVINO) and callers that only need the card (``--backend auto``) do not need
the ``onnx`` package or an inference session.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from i2i.errors import I2IError

CARD_KEY = "i2i"
CARD_FORMAT = "i2i-card/2"
LEGACY_FORMATS = ("i2i-card/1",)
KINDS = ("tensor", "frame")
TENSOR_DTYPES = ("float32", "float16")
TEST_NORMS = ("frame", "running")
REFINER_KINDS = ("stig",)
# The test-time mode of a model.pt written before checkpoints recorded one.
LEGACY_CHECKPOINT_TEST_NORM_REASON = "not recorded in this older checkpoint: per-frame, the reference test.py default"


_Dim = TypeVar("_Dim")  # one axis of a shape: an int, or a graph's symbolic name / None


@dataclass(frozen=True)
class ModelIO:
    """How frames enter and leave a model."""

    kind: str = "tensor"  # "tensor": float NCHW RGB in [-1, 1]; "frame": uint8 NHWC BGR
    dtype: str = "float32"  # element type of the graph's input and output
    size_multiple: int = 1  # H and W must be multiples of it (dynamic models)
    static_size: tuple[int, int] | None = None  # (H, W) of a fixed-size model
    channels: int = 3

    @property
    def layout(self) -> str:
        return "NHWC" if self.kind == "frame" else "NCHW"

    @property
    def channel_axis(self) -> int:
        return 3 if self.kind == "frame" else 1

    def hw(self, shape: Sequence[_Dim]) -> tuple[_Dim, _Dim]:
        """(H, W) of a batch shape in this layout (ints, or a graph's symbolic names and None)."""
        return (shape[1], shape[2]) if self.kind == "frame" else (shape[2], shape[3])

    def batch_shape(self, n: int | str | None, h: int | str | None, w: int | str | None) -> tuple[Any, ...]:
        return (n, h, w, self.channels) if self.kind == "frame" else (n, self.channels, h, w)

    def describe(self) -> str:
        size = f"static {self.static_size[0]}x{self.static_size[1]}" if self.static_size else "dynamic"
        return f"{self.kind} {self.layout} {self.dtype}, {size}, multiple {self.size_multiple}"

    def to_dict(self) -> dict[str, Any]:
        frame = self.kind == "frame"
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "channels": self.channels,
            "size_multiple": self.size_multiple,
            "static_size": list(self.static_size) if self.static_size else None,
            "layout": self.layout,
            "color": "BGR" if frame else "RGB",
            "range": [0, 255] if frame else [-1.0, 1.0],
        }


@dataclass(frozen=True)
class Refiner:
    """Set on the card of a model that is itself a spectrum refiner (the runtime's refine stage)."""

    kind: str  # "stig": a network on log-magnitude spectra; the FFT around it runs on the host
    spectrum_size: int | None = None  # the square spectrum side the network was trained at (None: any)


@dataclass(frozen=True)
class Teacher:
    """Set on the card of a distilled student: the teacher it learned from, and the test-time mode
    the teacher ran in for the student's targets (every student-teacher comparison uses that mode)."""

    name: str | None = None  # the teacher's file name
    sha256: str | None = None
    arch: str | None = None
    test_norm: str = "frame"
    test_dropout: bool = False

    def describe(self) -> str:
        dropout = ", dropout on" if self.test_dropout else ""
        return f"{self.name or '?'} ({self.arch or '?'}), run with BatchNorm {self.test_norm} statistics{dropout}"


@dataclass(frozen=True)
class ModelCard:
    """Everything the runtime, the bench and the deployment tools need to know about a model."""

    io: ModelIO = field(default_factory=ModelIO)
    precision: str = "fp32"  # a row of i2i.runtime.precisions
    static_batch: int | None = None
    arch: str | None = None
    method: str | None = None
    direction: str | None = None
    refiner: Refiner | None = None
    test_norm: str = "running"  # BatchNorm at test time: per-frame statistics ("frame") or running ones
    test_dropout: bool = False  # dropout active at test time (random output)
    test_norm_reason: str | None = None  # why test_norm: how the model trained, or an explicit option
    teacher: Teacher | None = None  # a distilled student's teacher and the mode it ran in
    fp32_ops: tuple[str, ...] = ()  # op types an fp16 graph keeps in fp32
    opset: int | None = None
    baked_refine: Mapping[str, Any] | None = None  # a spectral refinement compiled into the graph
    source: Mapping[str, Any] | None = None  # the checkpoint it came from: name, sha256
    exporter: Mapping[str, Any] = field(default_factory=dict)  # versions of the tools that wrote it
    export: Mapping[str, Any] = field(default_factory=dict)  # the export options
    parity: Mapping[str, Any] | None = None  # summary of the export's parity check
    flops: Mapping[str, Any] | None = None  # per_frame at height x width, per_pixel
    metrics: Mapping[str, Any] = field(default_factory=dict)  # training-time metrics
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)  # provenance only: read by train/ alone
    format: str = CARD_FORMAT

    # -- convenience ---------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return self.io.size_multiple

    @property
    def static_size(self) -> tuple[int, int] | None:
        return self.io.static_size

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)

    def runtime_parity(self, precision: str) -> Mapping[str, Any] | None:
        """The parity of a run-time precision (bf16: the fp32 graph computed in bfloat16) recorded
        at export in ``parity["runtime"][precision]``; None where none was recorded."""
        runtime = (self.parity or {}).get("runtime")
        record = runtime.get(precision) if isinstance(runtime, Mapping) else None
        return record if isinstance(record, Mapping) else None

    # -- writing -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CARD_FORMAT,
            "io": self.io.to_dict(),
            # Also at the top level, where i2i-card/1 kept them, for tools written against that format.
            "size_multiple": self.io.size_multiple,
            "static_size": list(self.io.static_size) if self.io.static_size else None,
            "precision": self.precision,
            "static_batch": self.static_batch,
            "arch": self.arch,
            "method": self.method,
            "direction": self.direction,
            "refiner": dataclasses.asdict(self.refiner) if self.refiner else None,
            "test_norm": self.test_norm,
            "test_dropout": self.test_dropout,
            "test_norm_reason": self.test_norm_reason,
            "teacher": dataclasses.asdict(self.teacher) if self.teacher else None,
            "fp32_ops": list(self.fp32_ops),
            "opset": self.opset,
            "baked_refine": _plain(self.baked_refine),
            "source": _plain(self.source),
            "exporter": _plain(self.exporter),
            "export": _plain(self.export),
            "parity": _plain(self.parity),
            "flops": _plain(self.flops),
            "metrics": _plain(self.metrics),
            "arch_kwargs": _plain(self.arch_kwargs),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- reading -------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str | bytes, where: str = "model") -> ModelCard:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise I2IError(f"{where}: the i2i model card is not valid JSON ({exc})") from None
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Any, where: str = "model") -> ModelCard:
        """Validate every field; each problem is one line that names the model and the field."""
        if not isinstance(data, dict):
            raise I2IError(f"{where}: the i2i model card must be a JSON object, got {type(data).__name__}")
        fmt = data.get("format", LEGACY_FORMATS[0])
        if fmt != CARD_FORMAT and fmt not in LEGACY_FORMATS:
            raise I2IError(
                f"{where}: card format {fmt!r} is not one this i2i reads ({CARD_FORMAT}); "
                "upgrade i2i or re-export the model"
            )
        f = _Fields(data, where)
        return cls(
            io=_parse_io(data, where),
            precision=f.choice("precision", _precision_names(), "fp32"),
            static_batch=f.positive_int("static_batch"),
            arch=f.text("arch"),
            method=f.text("method"),
            direction=f.text("direction"),
            refiner=_parse_refiner(data, where),
            test_norm=f.choice("test_norm", TEST_NORMS, "running"),
            test_dropout=f.boolean("test_dropout", False),
            test_norm_reason=f.text("test_norm_reason"),
            teacher=_parse_teacher(data, where),
            fp32_ops=tuple(f.text_list("fp32_ops")),
            opset=f.positive_int("opset"),
            baked_refine=f.mapping("baked_refine", legacy_key="refine"),
            source=f.mapping("source", legacy_key="source_checkpoint"),
            exporter=f.mapping("exporter") or {},
            export=f.mapping("export") or {},
            parity=f.mapping("parity"),
            flops=f.mapping("flops"),
            metrics=f.mapping("metrics") or {},
            arch_kwargs=f.mapping("arch_kwargs") or {},
            format=fmt,
        )

    @classmethod
    def from_onnx(cls, path: str | Path) -> ModelCard:
        """The card of an ONNX file; an I2IError if the file is not ONNX or carries no card."""
        card = find_onnx_card(path)
        if card is None:
            raise I2IError(f"{path} has no i2i model card (metadata key {CARD_KEY!r}); export it with i2i-export")
        return card

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], where: str = "model.pt") -> ModelCard:
        """The card of a ``model.pt`` (already loaded by ``i2i.train.checkpoint``): fp32 tensor I/O,
        dynamic shapes, the size multiple and test-time behaviour the checkpoint records."""
        io = ckpt.get("io")
        if not isinstance(io, Mapping):
            raise I2IError(f"{where}: checkpoint field 'io' is missing; it is not an i2i model.pt")
        method = ckpt.get("method")
        refiner = ckpt.get("refiner")
        if refiner is None and method == "stig":  # checkpoints that predate the explicit field
            kwargs = ckpt.get("arch_kwargs") or {}
            refiner = {"kind": "stig", "spectrum_size": kwargs.get("spectrum_size")}
        data = {
            "format": CARD_FORMAT,
            "io": {"kind": "tensor", "dtype": "float32", "channels": io.get("channels", 3)},
            "size_multiple": io.get("size_multiple", 1),
            "arch": ckpt.get("arch"),
            "method": method,
            "direction": ckpt.get("direction"),
            "refiner": refiner,
            "test_norm": ckpt.get("test_norm", "frame"),
            "test_dropout": ckpt.get("test_dropout", False),
            "test_norm_reason": ckpt.get("test_norm_reason")
            or (None if "test_norm" in ckpt else LEGACY_CHECKPOINT_TEST_NORM_REASON),
            "teacher": ckpt.get("teacher"),
            "metrics": ckpt.get("metrics") or {},
            "arch_kwargs": ckpt.get("arch_kwargs") or {},
        }
        return cls.from_dict(data, where)


def _precision_names() -> tuple[str, ...]:
    from i2i.runtime.precisions import PRECISIONS

    return tuple(PRECISIONS)


def _plain(value: Any) -> Any:
    """Mappings and tuples as JSON-ready dicts and lists; NaN/Inf as strings JSON can hold."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class _Fields:
    """Typed reads of one card dict, each failure a one-line error naming the field."""

    def __init__(self, data: dict[str, Any], where: str, prefix: str = "") -> None:
        self.data, self.where, self.prefix = data, where, prefix  # prefix: "teacher." for a nested object

    def _fail(self, key: str, want: str) -> I2IError:
        name = self.prefix + key
        return I2IError(
            f"{self.where}: card field {name!r} must be {want}, got {self.data[key]!r}; re-export the model"
        )

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, "a string or null")
        return value

    def choice(self, key: str, valid: tuple[str, ...], default: str) -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if value not in valid:
            raise self._fail(key, f"one of {', '.join(valid)}")
        return str(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def positive_int(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise self._fail(key, "a positive integer or null")
        return value

    def text_list(self, key: str) -> list[str]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings")
        return value

    def mapping(self, key: str, legacy_key: str | None = None) -> Mapping[str, Any] | None:
        if key not in self.data and legacy_key is not None and legacy_key in self.data:
            key = legacy_key
        value = self.data.get(key)
        if value is not None and not isinstance(value, dict):
            raise self._fail(key, "an object or null")
        return value


def _parse_refiner(data: dict[str, Any], where: str) -> Refiner | None:
    raw = data.get("refiner")
    if raw is None and data.get("format", LEGACY_FORMATS[0]) in LEGACY_FORMATS and data.get("method") == "stig":
        # i2i-card/1 recognised refiners by their training method; the spectrum size sat in arch_kwargs.
        raw = {"kind": "stig", "spectrum_size": (data.get("arch_kwargs") or {}).get("spectrum_size")}
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("kind") not in REFINER_KINDS:
        kinds = ", ".join(REFINER_KINDS)
        raise I2IError(f"{where}: card field 'refiner' must be an object with kind one of {kinds}, got {raw!r}")
    size = raw.get("spectrum_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise I2IError(f"{where}: card refiner.spectrum_size must be a positive integer or null, got {size!r}")
    return Refiner(kind=str(raw["kind"]), spectrum_size=size or None)


def _parse_teacher(data: dict[str, Any], where: str) -> Teacher | None:
    raw = data.get("teacher")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise I2IError(f"{where}: card field 'teacher' must be an object or null, got {raw!r}")
    f = _Fields(raw, where, prefix="teacher.")
    return Teacher(
        name=f.text("name"),
        sha256=f.text("sha256"),
        arch=f.text("arch"),
        test_norm=f.choice("test_norm", TEST_NORMS, "frame"),
        test_dropout=f.boolean("test_dropout", False),
    )


def _parse_io(card: dict[str, Any], where: str) -> ModelIO:
    """The I/O fields of a card of either format (v1 kept size_multiple and static_size at the top)."""
    io = card.get("io") or {}
    if not isinstance(io, dict):
        raise I2IError(f"{where}: card field 'io' must be an object, got {type(io).__name__}")
    kind = io.get("kind", "tensor")
    if kind not in KINDS:
        raise I2IError(f"{where}: card io.kind {kind!r} is not one of {', '.join(KINDS)}; re-export with i2i-export")
    if kind == "frame":
        # Frame I/O is uint8 at both ends whatever precision the graph computes in inside.
        dtype = "uint8"
    else:
        dtype = io.get("dtype", "float32")
        if dtype not in TENSOR_DTYPES:
            raise I2IError(f"{where}: card io.dtype {dtype!r} is not one of {', '.join(TENSOR_DTYPES)}")
    multiple = card.get("size_multiple", io.get("size_multiple", 1))
    if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
        raise I2IError(f"{where}: card size_multiple must be a positive integer, got {multiple!r}")
    channels = io.get("channels", 3)
    if channels != 3:
        raise I2IError(f"{where}: card io.channels is {channels!r}; the runtime translates 3-channel images only")
    static_size = _parse_static(io.get("static_size", card.get("static_size")), multiple, where)
    return ModelIO(kind=kind, dtype=dtype, size_multiple=multiple, static_size=static_size, channels=channels)


def _parse_static(static: Any, multiple: int, where: str) -> tuple[int, int] | None:
    if static is None:
        return None
    if (
        not isinstance(static, (list, tuple))
        or len(static) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in static)
    ):
        raise I2IError(f"{where}: card static_size must be [H, W] with positive integers or null, got {static!r}")
    size = (int(static[0]), int(static[1]))
    if size[0] % multiple or size[1] % multiple:
        raise I2IError(f"{where}: card static_size {list(size)} is not a multiple of {multiple}")
    return size


# -- reading the card from an ONNX file without the onnx package --------------------------------
# ModelProto field 14 is `repeated StringStringEntryProto metadata_props` (key = 1, value = 2).
# The graph (field 7) may be hundreds of MB: length-delimited fields other than 14 are skipped
# with a seek, so reading the card costs a few small reads whatever the model size.
_METADATA_PROPS = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(stream: BinaryIO) -> int | None:
    result = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            return None if shift == 0 else -1
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            return -1


def _entries(data: bytes) -> dict[int, bytes]:
    """The string fields of one small message (a StringStringEntryProto)."""
    import io

    stream = io.BytesIO(data)
    fields: dict[int, bytes] = {}
    while (tag := _varint(stream)) is not None:
        if tag < 0 or tag & 7 != _LEN:
            break
        length = _varint(stream)
        if length is None or length < 0:
            break
        fields[tag >> 3] = stream.read(length)
    return fields


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file; an I2IError if the file is not an ONNX protobuf."""
    target = Path(path)
    if not target.is_file():
        raise I2IError(f"model not found: {target}")
    size = target.stat().st_size
    props: dict[str, str] = {}
    not_onnx = I2IError(f"cannot load ONNX model {target}: not an ONNX file (its protobuf does not parse)")
    with target.open("rb") as stream:
        while (tag := _varint(stream)) is not None:
            if tag <= 0:
                raise not_onnx
            field, wire = tag >> 3, tag & 7
            if wire == _VARINT:
                if _varint(stream) in (None, -1):
                    raise not_onnx
            elif wire == _I64:
                stream.seek(8, 1)
            elif wire == _I32:
                stream.seek(4, 1)
            elif wire == _LEN:
                length = _varint(stream)
                if length is None or length < 0 or stream.tell() + length > size:
                    raise not_onnx
                if field == _METADATA_PROPS:
                    entry = _entries(stream.read(length))
                    props[entry.get(1, b"").decode("utf-8", "replace")] = entry.get(2, b"").decode("utf-8", "replace")
                else:
                    stream.seek(length, 1)
            else:  # groups (3, 4) and 6, 7 never occur in ModelProto
                raise not_onnx
    return props


def find_onnx_card(path: str | Path) -> ModelCard | None:
    """The card of an ONNX file, or None if it has none (an I2IError if it is not ONNX)."""
    meta = read_onnx_metadata(path)
    if CARD_KEY not in meta:
        return None
    return ModelCard.from_json(meta[CARD_KEY], where=str(path))
