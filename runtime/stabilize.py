"""Flow-guided temporal stabilisation: a run-time stage that takes the flicker out of per-frame video.

Each new frame's translation is blended with the previous *stabilised output* carried along the
motion of the *inputs*::

    F        = flow current input → previous input      (current(p) ≈ previous(p + F(p)))
    W_t(p)   = stabilised_{t−1}(p + F(p))                (the last output moved to this frame)
    out_t    = (1 − a) · translated_t + a · W_t,          a = strength · confidence(p)

so along a trajectory the output is an exponential moving average of the translations with memory
1 / (1 − strength) frames, and wherever the motion is not trusted it is the fresh translation:

* confidence is 0 where the forward–backward check fails (Ruder et al. 2016's test, in the flow's
  own pixels: |F + B(p + F)|² > 0.01 (|F|² + |B|²) + 0.5), where p + F(p) leaves the frame, and it
  falls linearly to 0 as the warped previous input differs from the current one by up to
  ``photometric_tolerance`` gray levels (occlusions the flow check misses, lighting changes);
* a scene cut (fewer than ``cut_fraction`` of the pixels confident) restarts the average.

The flow is OpenCV's DIS at its ULTRAFAST preset on the gray inputs scaled so the longer side is at
most ``flow_size`` pixels, then upsampled: cheap, and unlike the metric in ``i2i.analysis.temporal``
(DIS MEDIUM at full resolution), so the stage does not grade its own homework. numpy + OpenCV only
(the runtime never imports torch); one instance per stream, not thread-safe (it keeps state).

    stabilizer = FlowStabilizer(strength=0.5)
    for frame in frames:
        out = stabilizer(frame, translator(frame))   # stabilizer.reset() between unrelated clips
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from i2i.errors import I2IError

DEFAULT_STRENGTH = 0.5
DEFAULT_FLOW_SIZE = 320  # longer side of the frames the flow is computed on, in pixels
DEFAULT_PHOTOMETRIC_TOLERANCE = 24.0  # gray levels (of 255) at which confidence reaches 0
DEFAULT_CUT_FRACTION = 0.3
OCCLUSION_RELATIVE = 0.01  # Ruder et al. 2016
OCCLUSION_ABSOLUTE = 0.5  # px² in the flow's pixels


class FlowStabilizer:
    """``__call__(input_frame, translated_frame) -> stabilised_frame``; ``reset()`` forgets the past.

    ``input_frame``: the frame the model saw (HxW gray or HxWx3 BGR, uint8); ``translated_frame``: the
    model's HxWx3 uint8 output of the same height and width. ``strength`` in [0, 1): the weight of
    the motion-compensated past where the flow is fully trusted (0 returns the translation as is).
    """

    def __init__(
        self,
        strength: float = DEFAULT_STRENGTH,
        flow_size: int = DEFAULT_FLOW_SIZE,
        photometric_tolerance: float = DEFAULT_PHOTOMETRIC_TOLERANCE,
        cut_fraction: float = DEFAULT_CUT_FRACTION,
    ) -> None:
        if not 0.0 <= strength < 1.0:
            raise I2IError(f"stabilisation strength must be in [0, 1) (1 would freeze the first frame), got {strength}")
        if flow_size < 16:
            raise I2IError(f"the stabiliser's flow size must be at least 16 pixels, got {flow_size}")
        if photometric_tolerance <= 0:
            raise I2IError(f"the photometric tolerance must be > 0 gray levels, got {photometric_tolerance}")
        if not 0.0 <= cut_fraction <= 1.0:
            raise I2IError(f"the scene-cut fraction must be in [0, 1], got {cut_fraction}")
        self.strength = float(strength)
        self.flow_size = int(flow_size)
        self.photometric_tolerance = float(photometric_tolerance)
        self.cut_fraction = float(cut_fraction)
        # OpenCV allocates an output passed as None; its stubs do not say so, hence the untyped handle.
        self._calc_flow: Any = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_ULTRAFAST).calc
        self.cuts = 0  # scene cuts detected since construction (restarts of the average)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame: the next output is its fresh translation."""
        self._previous_gray: np.ndarray | None = None  # (h, w) uint8 at flow resolution
        self._previous_output: np.ndarray | None = None  # (H, W, 3) uint8
        self._grid: tuple[np.ndarray, np.ndarray] | None = None  # small-frame pixel coordinates
        self.last_confidence = 0.0  # mean confidence of the last frame (0 after a reset or a cut)

    def __call__(self, input_frame: np.ndarray, translated_frame: np.ndarray) -> np.ndarray:
        translated = _check_frames(input_frame, translated_frame)
        if self.strength == 0.0:
            return translated
        gray = self._flow_frame(input_frame)
        previous_gray, previous_output = self._previous_gray, self._previous_output
        if previous_gray is None or previous_output is None or previous_output.shape != translated.shape:
            return self._restart(gray, translated)
        weight = self._confidence(gray, previous_gray)
        if weight is None:  # a scene cut
            self.cuts += 1
            return self._restart(gray, translated)
        stabilised = self._blend(translated, previous_output, weight)
        self._previous_gray, self._previous_output = gray, stabilised
        return stabilised

    def _restart(self, gray: np.ndarray, translated: np.ndarray) -> np.ndarray:
        self._previous_gray, self._previous_output = gray, translated.copy()
        self.last_confidence = 0.0
        return translated

    def _flow_frame(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 3:
            frame = frame[..., 0] if frame.shape[2] == 1 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        gray = frame
        h, w = gray.shape
        scale = min(1.0, self.flow_size / max(h, w))
        if scale < 1.0:
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(gray)

    def _coordinates(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if self._grid is None or self._grid[0].shape != shape:
            ys, xs = np.indices(shape, dtype=np.float32)
            self._grid = (xs, ys)
        return self._grid

    def _confidence(self, gray: np.ndarray, previous_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(forward flow, confidence in [0, 1]) at flow resolution, or None for a scene cut."""
        forward = np.asarray(self._calc_flow(gray, previous_gray, None))  # (h, w, 2): current → previous
        backward = np.asarray(self._calc_flow(previous_gray, gray, None))
        xs, ys = self._coordinates(gray.shape)
        fx, fy = cv2.split(forward)  # contiguous planes: numpy is slow on the interleaved (h, w, 2) layout
        map_x, map_y = xs + fx, ys + fy
        h, w = gray.shape
        bx, by = cv2.split(cv2.remap(backward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        sx, sy = fx + bx, fy + by
        mismatch = sx * sx + sy * sy
        bound = OCCLUSION_RELATIVE * (fx * fx + fy * fy + bx * bx + by * by) + OCCLUSION_ABSOLUTE
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        moved = cv2.remap(previous_gray, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        difference = cv2.absdiff(gray, moved).astype(np.float32)
        photometric = np.clip(1.0 - difference / np.float32(self.photometric_tolerance), 0.0, 1.0)
        confidence = np.where((mismatch <= bound) & inside, photometric, np.float32(0.0)).astype(np.float32)
        self.last_confidence = float(confidence.mean())
        if float(np.count_nonzero(confidence > 0.5)) < self.cut_fraction * confidence.size:
            return None
        return forward, confidence

    def _blend(
        self, translated: np.ndarray, previous_output: np.ndarray, flow_and_confidence: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        forward, confidence = flow_and_confidence
        h, w = translated.shape[:2]
        small_h, small_w = confidence.shape
        # The blend weight in 1/255 steps: uint8 arithmetic is the cheapest full-size blend OpenCV has
        # (cv2.blendLinear's float weights cost about twice as much at 720p); each output value is
        # within one level of the exact blend.
        weight = cv2.convertScaleAbs(confidence, alpha=255.0 * self.strength)
        if (small_h, small_w) != (h, w):
            # The flow is in the small frame's pixels: scaled to the full frame's (at the small size,
            # where it is cheap), then upsampled with the weights.
            forward = cv2.resize(forward * np.array([w / small_w, h / small_h], np.float32), (w, h))
            weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
        # WARP_RELATIVE_MAP: the map holds offsets, not coordinates (no full-size grid to add).
        moved = cv2.remap(
            previous_output, forward, None, cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP, borderMode=cv2.BORDER_REPLICATE
        )
        weight3 = cv2.merge([weight, weight, weight])
        past = cv2.multiply(moved, weight3, scale=1 / 255)
        fresh = cv2.multiply(translated, cv2.bitwise_not(weight3), scale=1 / 255)  # 255 - weight
        return cv2.add(past, fresh)


def _check_frames(input_frame: np.ndarray, translated_frame: np.ndarray) -> np.ndarray:
    """The translated frame, contiguous, once both frames are what the stage takes."""
    for what, frame in (("input", input_frame), ("translated", translated_frame)):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            kind = getattr(frame, "dtype", type(frame).__name__)
            raise I2IError(f"the stabiliser takes uint8 frames; the {what} frame is {kind}")
    if input_frame.ndim not in (2, 3) or (input_frame.ndim == 3 and input_frame.shape[2] not in (1, 3)):
        raise I2IError(f"the stabiliser's input frame must be HxW gray or HxWx3 BGR, got shape {input_frame.shape}")
    if translated_frame.ndim != 3 or translated_frame.shape[2] != 3:
        raise I2IError(f"the translated frame must be HxWx3 BGR, got shape {translated_frame.shape}")
    if input_frame.shape[:2] != translated_frame.shape[:2]:
        raise I2IError(
            f"the translated frame is {translated_frame.shape[1]}x{translated_frame.shape[0]}, its input "
            f"{input_frame.shape[1]}x{input_frame.shape[0]}: the stabiliser needs them the same size"
        )
    return np.ascontiguousarray(translated_frame)
