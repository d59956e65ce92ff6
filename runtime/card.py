"""The model card as the runtime sees it: what goes into the model and what comes out.

The exporter writes a JSON card into ``metadata_props["i2i"]`` of every ONNX file (and into the
``.engine.json`` sidecar of TensorRT engines). The runtime reads it and never guesses: the card
says whether the graph takes float tensors (``kind="tensor"``: NCHW RGB in [-1, 1], float32 or
float16) or raw OpenCV frames (``kind="frame"``: uint8 NHWC BGR, normalisation fused into the
graph), and whether it has a fixed input size (``static_size``: frames are resized to it) or a
dynamic one (frames are padded to ``size_multiple``). Missing keys mean the defaults of the first
card format: tensor, float32, dynamic.

``read_onnx_card`` reads the card straight from the protobuf bytes, so backends that do not
expose ONNX metadata (OpenVINO) and callers that only need the card (``--backend auto``) do not
need the ``onnx`` package or a full inference session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from i2i.errors import I2IError

CARD_KEY = "i2i"
KINDS = ("tensor", "frame")
TENSOR_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class ModelIO:
    """How frames enter and leave a model (parsed from the card by ``parse_io``)."""

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

    def hw(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(H, W) of a batch shape in this layout."""
        return (shape[1], shape[2]) if self.kind == "frame" else (shape[2], shape[3])

    def batch_shape(self, n: int | str | None, h: int | str | None, w: int | str | None) -> tuple[Any, ...]:
        return (n, h, w, self.channels) if self.kind == "frame" else (n, self.channels, h, w)

    def describe(self) -> str:
        size = f"static {self.static_size[0]}x{self.static_size[1]}" if self.static_size else "dynamic"
        return f"{self.kind} {self.layout} {self.dtype}, {size}, multiple {self.size_multiple}"


def parse_io(card: dict[str, Any], where: str = "model") -> ModelIO:
    """Validate the card's I/O fields; every problem is a one-line error that names the model."""
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
    static = card.get("static_size")
    static_size: tuple[int, int] | None = None
    if static is not None:
        if (
            not isinstance(static, (list, tuple))
            or len(static) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in static)
        ):
            raise I2IError(f"{where}: card static_size must be [H, W] with positive integers or null, got {static!r}")
        static_size = (int(static[0]), int(static[1]))
        if static_size[0] % multiple or static_size[1] % multiple:
            raise I2IError(f"{where}: card static_size {list(static_size)} is not a multiple of {multiple}")
    return ModelIO(kind=kind, dtype=dtype, size_multiple=multiple, static_size=static_size, channels=channels)


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


def read_onnx_card(path: str | Path) -> dict[str, Any] | None:
    """The i2i card of an ONNX file, or None if it has none."""
    meta = read_onnx_metadata(path)
    if CARD_KEY not in meta:
        return None
    try:
        card = json.loads(meta[CARD_KEY])
    except json.JSONDecodeError as exc:
        raise I2IError(f"{path}: the i2i model card is not valid JSON ({exc.msg})") from None
    if not isinstance(card, dict):
        raise I2IError(f"{path}: the i2i model card must be a JSON object")
    return card


def require_card(card: dict[str, Any] | None, path: str | Path) -> dict[str, Any]:
    if card is None:
        raise I2IError(f"{path} has no i2i model card (metadata key {CARD_KEY!r}); export it with i2i-export")
    return card
