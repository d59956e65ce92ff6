"""Frame conversions between OpenCV images and model tensors.

OpenCV hands us HxWx3 uint8 BGR; generators take float32 NCHW RGB in [-1, 1] with H and W
divisible by the network's stride. ``preprocess`` and ``postprocess`` are exact inverses on
uint8 data (a round trip returns the same pixels), and both run per frame at video rate, so
they are built from whole-plane OpenCV calls rather than numpy expressions that allocate
several float temporaries per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from i2i.errors import I2IError
from i2i.runtime.card import ModelIO

# x / 127.5 - 1 maps 0..255 onto -1..1; postprocess applies the inverse (x + 1) * 127.5. A lookup
# table is both the fastest conversion (cv2.LUT) and exact: each entry is the float32 nearest
# the true value, so 0 and 255 map to exactly -1 and 1 (x * float32(1/127.5) would give 1.0000001).
_TO_UNIT = (np.arange(256, dtype=np.float64) / 127.5 - 1.0).astype(np.float32)


class NonFiniteOutputError(I2IError):
    """The backend returned NaN or Inf: the model or engine is numerically broken."""

    def __init__(self, count: int, total: int) -> None:
        self.count = count
        self.total = total
        super().__init__(
            f"the model output holds {count} non-finite values (NaN/Inf) out of {total}; "
            "the model or engine is numerically broken (often an fp16 overflow): "
            "try an fp32 export or engine, or check the checkpoint"
        )


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Normalise anything OpenCV decodes (gray, BGRA, 16-bit, float) to HxWx3 uint8 BGR.

    The frame contract: uint8 (or uint16) frames, or float frames with finite values in 0..1;
    a float frame out of that range, or holding NaN/Inf, is refused (I2IError), never clipped.

    The common case (already HxWx3 uint8) returns the input unchanged, without a copy.
    """
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.size:
        return image
    channels = _channels(image)
    image = _to_uint8(image)
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def _channels(image: np.ndarray) -> int:
    """Channel count of an HxW / HxWxC image; anything else is rejected."""
    shape = image.shape
    if image.ndim == 2:
        channels = 1
    elif image.ndim == 3 and shape[2] in (1, 3, 4):
        channels = shape[2]
    else:
        raise I2IError(f"unsupported image shape {shape}: expected HxW (gray), HxWx1, HxWx3 (BGR) or HxWx4 (BGRA)")
    if shape[0] == 0 or shape[1] == 0:
        raise I2IError(f"empty image of shape {shape}")
    return channels


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert uint8 / uint16 / float-in-[0, 1] pixel values to uint8 (rounded)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # Round-to-nearest of x / 257 (65535 -> 255); 257 is odd, so there are no ties.
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        _check_unit_range(image)
        # Clip before narrowing to float32: a float64 beyond float32's range would overflow to inf.
        scaled = np.clip(image, 0.0, 1.0).astype(np.float32)
        scaled *= 255.0
        return np.rint(scaled).astype(np.uint8)
    raise I2IError(f"unsupported image dtype {image.dtype}: expected uint8, uint16 or float in [0, 1]")


# Float frames hold 0..1. Values within half an 8-bit step outside it (float arithmetic's 1.0000001)
# round to 0 or 255 exactly as clipping gives, so they pass; anything further out is another scale.
_UNIT_SLACK = 0.5 / 255.0


def _check_unit_range(image: np.ndarray) -> None:
    """The frame contract for floats: finite values in 0..1, else one error saying what was found.

    Clipping would turn 0..255 data into a white frame and NaN into black, silently.
    """
    finite = np.isfinite(image)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise I2IError(f"float frame holds {bad} NaN/Inf values out of {image.size}: frames must be finite")
    low, high = float(image.min()), float(image.max())
    if low < -_UNIT_SLACK or high > 1.0 + _UNIT_SLACK:
        hint = "; 0..255 data? pass it as uint8, or divide it by 255" if 2.0 < high <= 255.0 and low >= 0.0 else ""
        raise I2IError(f"float frames hold values in 0..1; this one spans {low:g}..{high:g}{hint}")


def preprocess(frames: Sequence[np.ndarray], multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """BGR uint8 frames -> (float32 NCHW RGB batch in [-1, 1], original (h, w)).

    H and W are padded on the bottom/right up to a multiple of ``multiple`` (a generator with
    n stride-2 stages needs 2**n). Padding mirrors the image (reflect-101) so the network sees
    natural content at the border instead of a hard edge; an axis too short for one mirror
    (pad >= size, e.g. a 1-pixel frame) is padded by repeating its last row/column instead.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if len(frames) == 0:
        raise ValueError("preprocess needs at least one frame")
    h, w = _check_batch(frames)
    pad_h, pad_w = -h % multiple, -w % multiple
    batch = np.empty((len(frames), 3, h + pad_h, w + pad_w), dtype=np.float32)  # (N, C, H, W)
    for i, frame in enumerate(frames):
        padded = _pad_bottom_right(frame, pad_h, pad_w)
        blue, green, red = cv2.split(padded)
        for c, plane in enumerate((red, green, blue)):
            dst = batch[i, c]  # contiguous (H, W) float32 view: the LUT writes straight into the batch
            out = cv2.LUT(plane, _TO_UNIT, dst=dst)
            if out is not dst:  # OpenCV reallocated instead of writing in place
                dst[...] = out
    return batch, (h, w)


def _check_batch(frames: Sequence[np.ndarray]) -> tuple[int, int]:
    """All frames must be non-empty HxWx3 uint8 of one size; returns that (h, w)."""
    first = frames[0]
    h, w = first.shape[:2]
    for i, frame in enumerate(frames):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise I2IError(
                f"frame {i} has shape {frame.shape} and dtype {frame.dtype}: expected HxWx3 uint8 BGR "
                "(normalise it with to_bgr_uint8)"
            )
        if frame.size == 0:  # OpenCV's border padding loops forever on an empty image
            raise I2IError(f"frame {i} is empty (shape {frame.shape})")
        if frame.shape[:2] != (h, w):
            raise I2IError(
                f"frames in one batch must share a size: frame 0 is {w}x{h}, frame {i} is "
                f"{frame.shape[1]}x{frame.shape[0]}; resize them or use batch size 1"
            )
    return h, w


def _pad_bottom_right(frame: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """Pad bottom/right by reflect-101, or by edge replication where an axis is too short."""
    if pad_h == 0 and pad_w == 0:
        return frame
    h, w = frame.shape[:2]
    mode_h = cv2.BORDER_REFLECT_101 if pad_h < h else cv2.BORDER_REPLICATE
    mode_w = cv2.BORDER_REFLECT_101 if pad_w < w else cv2.BORDER_REPLICATE
    if mode_h == mode_w:
        return cv2.copyMakeBorder(frame, 0, pad_h, 0, pad_w, mode_h)
    frame = cv2.copyMakeBorder(frame, 0, pad_h, 0, 0, mode_h)
    return cv2.copyMakeBorder(frame, 0, 0, 0, pad_w, mode_w)


def postprocess(batch: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """Float NCHW RGB batch in [-1, 1] -> list of contiguous HxWx3 uint8 BGR frames cropped to size.

    Values map by (x + 1) * 127.5, rounded to nearest and clipped to 0..255. NaN/Inf anywhere in
    the batch raises NonFiniteOutputError: clipping would silently turn them into black or
    white pixels and hide a broken engine.
    """
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise I2IError(f"model output has shape {batch.shape}: expected (N, 3, H, W) RGB")
    if batch.dtype.kind != "f":
        raise I2IError(f"model output has dtype {batch.dtype}: expected float16, float32 or float64")
    h, w = size
    if h > batch.shape[2] or w > batch.shape[3] or h < 1 or w < 1:
        raise I2IError(f"cannot crop model output {batch.shape[3]}x{batch.shape[2]} to {w}x{h}")
    finite = np.isfinite(batch)
    if not finite.all():
        raise NonFiniteOutputError(int(finite.size - np.count_nonzero(finite)), int(finite.size))
    if batch.dtype != np.float32:
        # fp16 engines (OpenCV's fp16 support is patchy); clipped first so float64 cannot overflow float32
        batch = np.clip(batch, -1.0, 1.0).astype(np.float32)
    return [_to_bgr_frame(batch[i, :, :h, :w]) for i in range(batch.shape[0])]


def _to_bgr_frame(chw: np.ndarray) -> np.ndarray:
    """One (3, h, w) RGB float plane stack -> HxWx3 uint8 BGR."""
    planes = []
    for c in (2, 1, 0):  # RGB -> BGR
        # After clamping to [-1, 1], x * 127.5 + 127.5 is in 0..255, so convertScaleAbs's abs() is a
        # no-op and it reduces to a round-to-nearest cast in one pass. Both ends must be clamped: it
        # rounds to int32 before saturating, so x > ~1.7e7 would wrap to 0 (black) instead of 255.
        plane = np.clip(chw[c], np.float32(-1.0), np.float32(1.0))
        planes.append(cv2.convertScaleAbs(plane, alpha=127.5, beta=127.5))
    merged = cv2.merge(planes)
    return merged.reshape(chw.shape[1], chw.shape[2], 3)


# -- frames <-> model batches, for every kind of model the card can describe --------------------


@dataclass(frozen=True)
class Geometry:
    """How a batch was fitted to the model, so ``FrameCodec.decode`` can undo it."""

    size: tuple[int, int]  # (h, w) of the source frames
    model_size: tuple[int, int]  # (H, W) the model saw, before any padding
    resized: bool  # fixed-size model: frames were resized to model_size (else padded)


class FrameCodec:
    """Turns HxWx3 uint8 BGR frames into the batch a model takes, and its output back into frames.

    * tensor models (float NCHW RGB in [-1, 1], float32 or float16): ``preprocess``/``postprocess``;
    * frame models (uint8 NHWC BGR, normalisation inside the graph): no host conversion at all,
      only stacking, padding and cropping — that is the point of exporting with ``--io frame``;
    * dynamic models are padded to ``size_multiple`` and cropped back (no resampling, so a
      pass-through model returns the exact pixels); fixed-size models (``static_size``) get
      frames resized to their size and outputs resized back to the frame's.
    """

    def __init__(self, io: ModelIO) -> None:
        self.io = io

    def encode(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, Geometry]:
        if len(frames) == 0:
            raise ValueError("encode needs at least one frame")
        images = [to_bgr_uint8(frame) for frame in frames]  # gray / BGRA / 16-bit -> BGR uint8
        h, w = _check_batch(images)
        io = self.io
        if io.static_size is not None:
            target = io.static_size
            resized = target != (h, w)
            if resized:
                images = [_resize(image, target) for image in images]
            multiple = 1
        else:
            target, resized, multiple = (h, w), False, io.size_multiple
        geometry = Geometry(size=(h, w), model_size=target, resized=resized)
        if io.kind == "tensor":
            batch, _ = preprocess(images, multiple)
            if io.dtype != "float32":
                batch = batch.astype(io.dtype)
            return batch, geometry
        pad_h, pad_w = -target[0] % multiple, -target[1] % multiple
        return np.stack([_pad_bottom_right(image, pad_h, pad_w) for image in images]), geometry  # (N, H, W, 3)

    def decode(self, output: np.ndarray, geometry: Geometry) -> list[np.ndarray]:
        output = np.asarray(output)
        if self.io.kind == "tensor":
            images = postprocess(output, geometry.model_size)
        else:
            images = _crop_frames(output, geometry.model_size)
        if geometry.resized:
            images = [_resize(image, geometry.size) for image in images]
        return images


def _crop_frames(batch: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """uint8 NHWC BGR model output -> contiguous frames cropped to size."""
    if batch.ndim != 4 or batch.shape[3] != 3 or batch.dtype != np.uint8:
        raise I2IError(f"model output has shape {batch.shape} and dtype {batch.dtype}: expected uint8 (N, H, W, 3) BGR")
    h, w = size
    if h > batch.shape[1] or w > batch.shape[2]:
        raise I2IError(f"cannot crop model output {batch.shape[2]}x{batch.shape[1]} to {w}x{h}")
    return [np.ascontiguousarray(batch[i, :h, :w]) for i in range(batch.shape[0])]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (h, w): area averaging when shrinking (no aliasing), bilinear when enlarging."""
    h, w = size
    shrinking = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
