"""ONNX Runtime backend (CPU now; CUDA/TensorRT execution providers plug in here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend, TensorSpec, register_backend

CARD_KEY = "i2i"
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a base dependency
        raise I2IError(f"onnxruntime is not installed ({exc}); pip install i2i") from None
    return onnxruntime


class OrtSession:
    """A thin InferenceSession wrapper that reads the i2i card and turns load errors into one line."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 0) -> None:
        ort = _import_ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise I2IError(f"model not found: {self.path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:
            detail = " ".join(str(exc).split())[:200]
            raise I2IError(f"cannot load ONNX model {self.path}: {detail}") from None
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.card: dict[str, Any] | None = json.loads(meta[CARD_KEY]) if CARD_KEY in meta else None

    def specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(arg: Any) -> TensorSpec:
            return TensorSpec(arg.name, tuple(arg.shape), _ORT_TYPES.get(arg.type, arg.type))

        return [spec(a) for a in self.session.get_inputs()], [spec(a) for a in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def close(self) -> None:
        del self.session

    def __enter__(self) -> OrtSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@register_backend("ort")
class OnnxRuntimeBackend(Backend):
    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime
        except ImportError as exc:
            return False, f"onnxruntime does not import: {exc}"
        return True, f"onnxruntime {onnxruntime.__version__}"

    @classmethod
    def open(cls, path: str | Path, device: str = "cpu", precision: str = "fp32", **opts: Any) -> Backend:
        if device != "cpu":
            raise I2IError(f"ort backend: device {device!r} is not supported yet (use --device cpu)")
        session = OrtSession(path, threads=int(opts.get("threads", 0)))
        if session.card is None:
            raise I2IError(f"{path} has no i2i model card (metadata key {CARD_KEY!r}); export it with i2i-export")
        inputs, outputs = session.specs()
        backend = cls(Path(path), session.card, inputs, outputs, device, session.card.get("precision", precision))
        backend._session = session
        return backend

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(batch)

    def _close(self) -> None:
        self._session.close()
