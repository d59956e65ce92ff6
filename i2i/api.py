"""The Python API: ``i2i.load`` for applications, ``i2i.export`` for build scripts.

    import cv2, i2i

    translator = i2i.load("model.onnx")           # the fastest backend here, as i2i-run --backend auto
    out = translator(cv2.imread("photo.jpg"))     # BGR uint8 in, BGR uint8 of the same size out
    for frame in translator.stream("clip.mp4"):   # or a camera index, a folder, rtsp://...
        ...

``i2i.load`` is torch-free for ONNX models and TensorRT engines (a ``model.pt`` runs on the torch
backend and needs ``i2i[train]``). A ``Translator`` does exactly what ``i2i-run`` does to each frame:
the same backend, the same frame conversion (``FrameCodec``: gray and BGRA converted, padding to the
size multiple or resizing for fixed-size models) and the same refinement stage, so a frame it returns
equals the frame ``i2i-run`` writes for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend
from i2i.runtime.card import ModelCard
from i2i.runtime.frames import FrameCodec


class Translator:
    """A loaded model: call it on frames, ``stream`` a source through it, close it (or use ``with``)."""

    def __init__(self, backend: Backend, refiner: Any = None, why: str | None = None) -> None:
        self.backend = backend
        self.refiner = refiner
        self.why = why  # why --backend auto chose this backend (None when it was named)
        self._codec = FrameCodec(backend.io)
        self._static_batch = _static_batch(backend)

    @property
    def card(self) -> ModelCard:
        """The model card: I/O, precision, provenance, parity."""
        card: ModelCard = self.backend.card
        return card

    @overload
    def __call__(self, frames: np.ndarray) -> np.ndarray: ...

    @overload
    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]: ...

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Translate one OpenCV frame (HxW gray, HxWx3 BGR or HxWx4 BGRA; uint8, uint16 or float in
        0..1) into an HxWx3 uint8 BGR frame of the same size, or a list of frames into a list
        (one batched call per run of same-sized frames, in the model's batch size if it is fixed).

        A float frame with values outside 0..1 (0..255 data as float32) or with NaN/Inf is refused
        with an ``I2IError`` saying what it holds: clipping would translate a white or black frame."""
        if isinstance(frames, np.ndarray):
            return self._translate([frames])[0]
        if not isinstance(frames, Sequence) or not all(isinstance(f, np.ndarray) for f in frames):
            raise I2IError(f"expected a numpy frame or a list of them, got {type(frames).__name__}")
        results: list[np.ndarray] = []
        for group in _same_size_runs(list(frames)):
            step = self._static_batch or len(group)
            for start in range(0, len(group), step):
                results += self._translate(group[start : start + step])
        return results

    def _translate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        n = len(images)
        if self._static_batch and n < self._static_batch:  # a fixed-batch model: pad with the last frame
            images = images + [images[-1]] * (self._static_batch - n)
        batch, geometry = self._codec.encode(images)
        output = np.asarray(self.backend(batch))
        if self.refiner is not None:
            refined = np.asarray(self.refiner(np.ascontiguousarray(output, dtype=np.float32)))
            if refined.shape != output.shape:
                raise I2IError(f"the refiner returned shape {refined.shape} for a batch of {output.shape}")
            output = refined
        return self._codec.decode(output, geometry)[:n]

    def stream(self, source: str | int | Path, *, max_frames: int = 0, batch_size: int = 1) -> Iterator[np.ndarray]:
        """Translated frames of a source, in order: a camera index, a video file, a folder or glob of
        images, an ``rtsp://`` / ``http://`` stream or ``pattern:`` (the test pattern), as ``i2i-run --source``."""
        from i2i.runtime.sources import open_source

        if batch_size < 1:
            raise I2IError(f"batch_size must be >= 1, got {batch_size}")
        with open_source(str(source)) as frames:
            pending: list[np.ndarray] = []
            for count, frame in enumerate(frames, start=1):
                pending.append(frame.image)
                if len(pending) == batch_size:
                    yield from self(pending)
                    pending = []
                if max_frames and count >= max_frames:
                    break
            if pending:
                yield from self(pending)

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
    **options: Any,
) -> Translator:
    """Open a model (``.onnx``, ``.engine``, ``model.pt``) for translation.

    ``backend="auto"`` picks the fastest backend that starts here (TensorRT > ORT CUDA > OpenVINO >
    ORT CPU; ``translator.why`` says which and why); otherwise a backend by name (``i2i-run
    --backend``). ``device``: ``cpu``, ``cuda`` or ``cuda:N`` (None: the backend's default).
    ``precision="auto"`` runs the model's own precision. ``refine``: a spectral profile ``.npz`` or
    a STIG refiner ``.onnx`` applied to every output. ``options``: the backend's options (``i2i-run -O``).
    """
    from i2i.runtime.backends.auto import open_auto
    from i2i.runtime.backends.base import open_backend

    path = Path(path)
    why = None
    if backend == "auto":
        opened, why = open_auto(path, device or "auto", None if precision == "auto" else precision, options)
    else:
        kwargs: dict[str, Any] = {} if device is None else {"device": device}
        opened = open_backend(backend, path, precision=None if precision == "auto" else precision, **kwargs, **options)
    try:
        refiner = open_refiner(refine, opened) if refine is not None else None
    except BaseException:
        opened.close()
        raise
    return Translator(opened, refiner, why)


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
