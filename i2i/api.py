"""The Python API: ``i2i.load`` for applications, ``i2i.export`` for build scripts.

    import cv2, i2i

    translator = i2i.load("model.onnx")           # the fastest backend here, as i2i-run --backend auto
    out = translator(cv2.imread("photo.jpg"))     # BGR uint8 in, BGR uint8 of the same size out
    out = translator("photo.jpg")                 # the same, read from the file
    for item in translator.stream("photos/"):     # or a video, a camera index, rtsp://...
        cv2.imwrite(f"out/{item.name}.png", item.image)   # item.path, item.index, item.speed (ms)

    fast = i2i.load("model.onnx", infer_size=(360, 640))   # translate at about 360x640, upsample back
    for item in fast.stream("clip.mp4", stabilize=0.5):    # flow-guided temporal stabilisation
        ...

``i2i.load`` is torch-free for ONNX models and TensorRT engines (a ``model.pt`` runs on the torch
backend and needs ``i2i[train]``). A ``Translator`` does exactly what ``i2i-run`` does to each frame:
the same backend, the same frame conversion (``FrameCodec``: gray and BGRA converted, padding to the
size multiple or resizing for fixed-size models) and the same refinement stage, so a frame it returns
equals the frame ``i2i-run`` writes for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend
from i2i.runtime.card import ModelCard
from i2i.runtime.frames import FrameCodec, to_bgr_uint8
from i2i.runtime.working_size import DEFAULT_UPSAMPLER, UPSAMPLERS, WorkingSize, working_size_for


@dataclass(frozen=True)
class TranslatedFrame:
    """One frame of ``Translator.stream``: the output with where it came from and what it cost.

    ``image`` is the translated HxWx3 uint8 BGR frame and ``input`` the frame it was translated
    from; ``index`` its position in the source (0-based); ``name`` the image's file stem for a
    folder (save the output under it), None for videos, cameras and streams; ``path`` the image
    file, or the source's name (never a URL's credentials); ``speed`` the milliseconds each stage
    took for this frame (a batch's time split evenly over its frames), as i2i-run's table names them:
    ``read``, ``preprocess``, ``infer``, ``refine`` (with a refiner), ``postprocess``, ``upsample``
    (with a working size smaller than the frame) and ``stabilize`` (a stabilised stream).
    """

    image: np.ndarray
    input: np.ndarray
    index: int
    name: str | None
    path: str
    speed: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        h, w = self.image.shape[:2]
        timing = ", ".join(f"{k} {v:.1f}" for k, v in self.speed.items())
        return f"TranslatedFrame(index={self.index}, path={self.path!r}, {h}x{w}, ms: {timing})"


class Translator:
    """A loaded model: call it on frames, ``stream`` a source through it, close it (or use ``with``).

    ``working_size``: frames larger than it are translated at it and upsampled back (``i2i.load``'s
    ``infer_size``); ``stabilize``: the default stabilisation strength of ``stream`` (None: off)."""

    def __init__(
        self,
        backend: Backend,
        refiner: Any = None,
        why: str | None = None,
        brief: str | None = None,
        working_size: WorkingSize | None = None,
        stabilize: float | None = None,
    ) -> None:
        self.backend = backend
        self.refiner = refiner
        self.why = why  # why --backend auto chose this backend, every skipped tier's reason (None when named)
        self.brief = brief or why  # the same in one short line (GPU install hints only where a GPU is present)
        self._codec = FrameCodec(backend.io)
        self._static_batch = _static_batch(backend)
        self.working_size = working_size
        self.stabilize = _check_strength(stabilize)

    @property
    def card(self) -> ModelCard:
        """The model card: I/O, precision, provenance, parity."""
        card: ModelCard = self.backend.card
        return card

    @property
    def precision_choice(self) -> str | None:
        """The precision the backend runs and why, in one line (``--precision auto``), where it says."""
        choice = getattr(self.backend, "precision_choice", None)
        return str(choice) if choice else None

    @overload
    def __call__(self, frames: np.ndarray | str | Path) -> np.ndarray: ...

    @overload
    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]: ...

    def __call__(self, frames: np.ndarray | str | Path | Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Translate one OpenCV frame (HxW gray, HxWx3 BGR or HxWx4 BGRA; uint8, uint16 or float in
        0..1) into an HxWx3 uint8 BGR frame of the same size, or a list of frames into a list
        (one batched call per run of same-sized frames, in the model's batch size if it is fixed).
        A path (``str`` or ``Path``) names one image file, read as ``i2i-run`` reads it.

        A float frame with values outside 0..1 (0..255 data as float32) or with NaN/Inf is refused
        with an ``I2IError`` saying what it holds: clipping would translate a white or black frame."""
        if isinstance(frames, np.ndarray):
            return self._translate([frames])[0]
        if isinstance(frames, (str, Path)):
            return self._translate([_read_one_image(Path(frames))])[0]
        if not isinstance(frames, Sequence) or not all(isinstance(f, np.ndarray) for f in frames):
            raise I2IError(f"expected a numpy frame, an image path or a list of frames, got {type(frames).__name__}")
        images = [f for f in frames if isinstance(f, np.ndarray)]  # all of them (checked above)
        results: list[np.ndarray] = []
        for group in _same_size_runs(images):
            step = self._static_batch or len(group)
            for start in range(0, len(group), step):
                results += self._translate(group[start : start + step])
        return results

    def _translate(self, images: list[np.ndarray], timings: dict[str, float] | None = None) -> list[np.ndarray]:
        """Translate one batch; with ``timings``, add each stage's seconds to it."""
        n = len(images)
        if self._static_batch and n < self._static_batch:  # a fixed-batch model: pad with the last frame
            images = images + [images[-1]] * (self._static_batch - n)
        clock = _StageClock(timings)
        small = images
        if self.working_size is not None:
            images = [to_bgr_uint8(image) for image in images]
            small = self.working_size.shrink(images)
        batch, geometry = self._codec.encode(small)
        clock.lap("preprocess")
        output = np.asarray(self.backend(batch))
        clock.lap("infer")
        if self.refiner is not None:
            refined = np.asarray(self.refiner(np.ascontiguousarray(output, dtype=np.float32)))
            if refined.shape != output.shape:
                raise I2IError(f"the refiner returned shape {refined.shape} for a batch of {output.shape}")
            output = refined
            clock.lap("refine")
        decoded = self._codec.decode(output, geometry)[:n]
        clock.lap("postprocess")
        if self.working_size is not None and small is not images:
            decoded = [self.working_size.enlarge(out, s, full) for out, s, full in zip(decoded, small, images)]
            clock.lap("upsample")
        return decoded

    def stream(
        self,
        source: str | int | Path,
        *,
        max_frames: int = 0,
        batch_size: int = 1,
        max_pixels: int | None = None,
        stabilize: float | None = None,
    ) -> Iterator[TranslatedFrame]:
        """Translate a source frame by frame, in order: a camera index, a video file, a folder or glob
        of images, an ``rtsp://`` / ``http://`` stream or ``pattern:`` (the test pattern), as ``i2i-run
        --source``. Yields a ``TranslatedFrame`` per frame: ``.image`` (the output), ``.input``,
        ``.index``, ``.name`` (a folder image's file stem), ``.path`` and ``.speed`` (ms per stage).

        ``batch_size`` frames of one size share an inference call; ``max_pixels`` caps the decoded
        frame size (default 8K UHD, as ``i2i-run --max-pixels``). ``stabilize`` (0..1, default the
        strength given to ``i2i.load``, None: off) blends each output with the previous one carried
        along the input's motion (``i2i.runtime.stabilize.FlowStabilizer``, as ``i2i-run --stabilize``);
        each stream starts afresh, and the stabiliser restarts itself at scene cuts."""
        from i2i.runtime.images import DEFAULT_MAX_PIXELS
        from i2i.runtime.sources import Frame, open_source

        if batch_size < 1:
            raise I2IError(f"batch_size must be >= 1, got {batch_size}")
        strength = self.stabilize if stabilize is None else _check_strength(stabilize)
        stabilizer = _open_stabilizer(strength)  # one per stream: each source starts afresh
        with open_source(str(source), max_pixels=max_pixels or DEFAULT_MAX_PIXELS) as frames:
            pending: list[tuple[Frame, float]] = []
            iterator = iter(frames)
            count = 0
            while not max_frames or count < max_frames:
                t0 = time.perf_counter()
                frame = next(iterator, None)
                if frame is None:
                    break
                count += 1
                if pending and frame.image.shape != pending[0][0].image.shape:
                    yield from self._stream_batch(pending, stabilizer)
                    pending = []
                pending.append((frame, time.perf_counter() - t0))
                if len(pending) == batch_size:
                    yield from self._stream_batch(pending, stabilizer)
                    pending = []
            if pending:
                yield from self._stream_batch(pending, stabilizer)

    def _stream_batch(self, pending: list[tuple[Any, float]], stabilizer: Any) -> Iterator[TranslatedFrame]:
        timings: dict[str, float] = {}
        outputs = self._translate([frame.image for frame, _ in pending], timings)
        n = len(pending)
        if stabilizer is not None:
            t0 = time.perf_counter()
            outputs = [stabilizer(frame.image, output) for (frame, _), output in zip(pending, outputs)]
            timings["stabilize"] = time.perf_counter() - t0
        shared = {stage: seconds * 1e3 / n for stage, seconds in timings.items()}
        for (frame, read_s), output in zip(pending, outputs):
            speed = {"read": read_s * 1e3, **shared}
            yield TranslatedFrame(output, frame.image, frame.index, frame.name, frame.path, speed)

    def close(self) -> None:
        if self.refiner is not None and hasattr(self.refiner, "close"):
            self.refiner.close()
        self.backend.close()

    def __enter__(self) -> Translator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Translator({self.backend.path}, {self.backend.describe()})"


class _StageClock:
    """Adds the time since the previous lap to ``timings[stage]`` (does nothing without timings)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.t = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timings is None:
            return
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
        self.t = now


def _check_strength(strength: float | None) -> float | None:
    """A stabilisation strength in [0, 1), or None (off)."""
    if strength is None:
        return None
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength < 1.0:
        raise I2IError(f"stabilize must be a strength in [0, 1) (1 would freeze the first frame), got {strength!r}")
    return float(strength)


def _open_stabilizer(strength: float | None) -> Any:
    """A fresh flow-guided stabiliser, or None for no stabilisation (None or 0)."""
    if not strength:
        return None
    from i2i.runtime.stabilize import FlowStabilizer

    return FlowStabilizer(strength=strength)


def _read_one_image(path: Path) -> np.ndarray:
    """``translator("photo.jpg")``: one image file, decoded as i2i-run's folder reader decodes it."""
    from i2i.common import is_image
    from i2i.runtime.frames import to_bgr_uint8
    from i2i.runtime.images import read_image

    if path.is_dir() or not is_image(path):
        what = "a folder" if path.is_dir() else "not an image file"
        raise I2IError(
            f"translator({str(path)!r}): {what}; translator(path) takes one image, translator.stream() the rest"
        )
    if not path.is_file():
        raise I2IError(f"no such image file: {path}")
    return to_bgr_uint8(read_image(path))


def _static_batch(backend: Backend) -> int:
    """The batch size a model takes if its batch axis is fixed, else 0."""
    shape = backend.inputs[0].shape
    first = shape[0] if shape else None
    return first if isinstance(first, int) and first > 0 else 0


def _same_size_runs(frames: list[np.ndarray]) -> Iterator[list[np.ndarray]]:
    """Consecutive frames of one size, which can share a batch."""
    run: list[np.ndarray] = []
    for frame in frames:
        if run and frame.shape[:2] != run[0].shape[:2]:
            yield run
            run = []
        run.append(frame)
    if run:
        yield run


def load(
    path: str | Path,
    backend: str = "auto",
    device: str | None = None,
    precision: str = "auto",
    refine: str | Path | None = None,
    *,
    infer_size: tuple[int, int] | None = None,
    upsample: str = DEFAULT_UPSAMPLER,
    stabilize: float | None = None,
    **options: Any,
) -> Translator:
    """Open a model (``.onnx``, ``.engine``, ``model.pt``) for translation.

    ``backend="auto"`` picks the fastest backend that starts here (TensorRT > ORT CUDA > OpenVINO >
    ORT CPU; ``translator.why`` says which and why); otherwise a backend by name (``i2i-run
    --backend``). ``device``: ``cpu``, ``cuda`` or ``cuda:N`` (None: the backend's default).
    ``precision="auto"`` runs the model's own precision. ``refine``: a spectral profile ``.npz`` or
    a STIG refiner ``.onnx`` applied to every output. ``infer_size`` (H, W): translate frames larger
    than it at about that size (each side the nearest multiple of the model's size multiple) and bring the
    outputs back to the frame's size with ``upsample`` (``"bilinear"``, or ``"guided"``: edge-aware,
    along the frame's own luma, slower), as ``i2i-run --infer-size``. ``stabilize``: the default stabilisation
    strength of ``translator.stream`` (0..1; None: off), as ``i2i-run --stabilize``.
    ``options``: the backend's options (``i2i-run -O``).
    """
    from i2i.runtime.backends.auto import open_auto_choice
    from i2i.runtime.backends.base import open_backend

    path = Path(path)
    _check_strength(stabilize)
    if upsample not in UPSAMPLERS:
        raise I2IError(f"unknown upsample {upsample!r}; valid: {', '.join(UPSAMPLERS)}")
    why = brief = None
    if backend == "auto":
        choice = open_auto_choice(path, device or "auto", None if precision == "auto" else precision, options)
        opened, why, brief = choice.backend, choice.why, choice.brief()
    else:
        kwargs: dict[str, Any] = {} if device is None else {"device": device}
        opened = open_backend(backend, path, precision=None if precision == "auto" else precision, **kwargs, **options)
    try:
        refiner = open_refiner(refine, opened) if refine is not None else None
        working = working_size_for(opened.io, infer_size, upsample) if infer_size is not None else None
    except BaseException:
        opened.close()
        raise
    return Translator(opened, refiner, why, brief, working, stabilize)


def open_refiner(path: str | Path, backend: Backend) -> Any:
    """The refinement stage for a tensor-I/O model (the runtime's spectral refiners)."""
    if backend.io.kind != "tensor":
        raise I2IError(
            "refinement needs a tensor-I/O model; this one takes uint8 frames (exported with --io frame): "
            "bake the refinement in at export instead (i2i-export --refine)"
        )
    from i2i.runtime.spectral import open_refiner as open_spectral

    # A STIG refiner runs where the model runs (a profile .npz is host-side numpy either way).
    return open_spectral(Path(path), device=backend.device)
