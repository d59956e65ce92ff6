"""Torch eager baseline: runs ``model.pt`` directly. Only used when asked for by name
(benchmarks compare every backend with it); torch is imported here, never elsewhere in the runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from i2i.errors import I2IError, MissingDependencyError
from i2i.runtime.backends.base import Backend, TensorSpec, check_options, register_backend


@register_backend("torch")
class TorchBackend(Backend):
    _torch: Any
    _generator: Any

    @classmethod
    def available(cls) -> tuple[bool, str]:
        # find_spec, not import: asking whether torch exists must not load it into the runtime.
        import importlib.metadata
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return False, "torch is not installed; pip install 'i2i[train]'"
        return True, f"torch {importlib.metadata.version('torch')}"

    @classmethod
    def open(cls, path: str | Path, device: str = "cpu", precision: str = "auto", **opts: Any) -> Backend:
        check_options("torch", opts, ())
        if device == "auto":
            device = "cpu"
        precision = "fp32" if precision == "auto" else precision
        try:
            import torch

            from i2i.train.checkpoint import load_generator
        except ImportError as exc:
            raise MissingDependencyError("torch", "train", str(exc)) from None
        if precision != "fp32":
            raise I2IError(f"torch backend: precision {precision!r} is not supported (fp32 only)")
        if Path(path).suffix != ".pt":
            raise I2IError(f"torch backend runs model.pt checkpoints, not {Path(path).name}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise I2IError("torch backend: CUDA is not available")
        generator, ckpt = load_generator(path)
        card = {
            "arch": ckpt["arch"],
            "method": ckpt.get("method"),
            "io": ckpt["io"],
            "size_multiple": ckpt["io"]["size_multiple"],
            "precision": "fp32",
        }
        spec = TensorSpec("image", ("batch", 3, "height", "width"), "float32")
        backend = cls(Path(path), card, [spec], [TensorSpec("output", spec.shape, "float32")], device, precision)
        backend._torch = torch
        backend._generator = generator.to(device)
        return backend

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self._generator(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()
