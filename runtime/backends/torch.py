"""Torch baselines: eager (``torch``) and ``torch.compile`` (``torch-compile``) run ``model.pt`` directly.

Only used when asked for by name: benchmarks measure every engine against them in the same run.
torch is imported here, never elsewhere in the runtime. Reduced precision (fp16, bf16) runs under
``torch.autocast``, the way a PyTorch user would run it, so norms and reductions stay fp32.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from i2i.errors import I2IError, MissingDependencyError
from i2i.runtime.backends.base import Backend, TensorSpec, check_options, register_backend

PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@register_backend("torch")
class TorchBackend(Backend):
    _torch: Any
    _generator: Any
    _dtype: Any = None

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
        check_options(cls.name, opts, cls._options())
        if device == "auto":
            device = "cpu"
        precision = "fp32" if precision == "auto" else precision
        try:
            import torch

            from i2i.train.checkpoint import load_generator
        except ImportError as exc:
            raise MissingDependencyError("torch", "train", str(exc)) from None
        if precision not in PRECISIONS:
            raise I2IError(f"{cls.name} backend: precision {precision!r} is not supported ({', '.join(PRECISIONS)})")
        if Path(path).suffix != ".pt":
            raise I2IError(f"{cls.name} backend runs model.pt checkpoints, not {Path(path).name}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise I2IError(f"{cls.name} backend: CUDA is not available")
        if precision == "fp16" and not device.startswith("cuda"):
            # CPU autocast to fp16 exists but runs emulated kernels: a number nobody would deploy.
            raise I2IError(f"{cls.name} backend: fp16 needs a CUDA device (on CPU use bf16)")
        generator, ckpt = load_generator(path)
        card = {
            "arch": ckpt["arch"],
            "method": ckpt.get("method"),
            "io": ckpt["io"],
            "size_multiple": ckpt["io"]["size_multiple"],
            "precision": precision,
        }
        spec = TensorSpec("image", ("batch", 3, "height", "width"), "float32")
        backend = cls(Path(path), card, [spec], [TensorSpec("output", spec.shape, "float32")], device, precision)
        backend._torch = torch
        backend._dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        backend._generator = backend._prepare(generator.to(device).eval(), **opts)
        return backend

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return ()

    def _prepare(self, generator: Any, **opts: Any) -> Any:
        return generator

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        autocast = (
            torch.autocast(device_type, dtype=self._dtype) if self._dtype is not None else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            out = self._generator(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()


@register_backend("torch-compile")
class TorchCompileBackend(TorchBackend):
    """``torch.compile`` peer (Inductor). The first call at each new shape compiles, which takes
    seconds to minutes: benchmarks absorb it in their warm-up. Needs a C++ compiler on CPU."""

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return ("mode",)

    def _prepare(self, generator: Any, mode: str = "default", **opts: Any) -> Any:
        if mode not in COMPILE_MODES:
            raise I2IError(f"torch-compile backend: unknown mode {mode!r}; valid: {', '.join(COMPILE_MODES)}")
        # dynamic=False: one specialised graph per frame size, the fast path for a fixed stream.
        return self._torch.compile(generator, mode=None if mode == "default" else mode, dynamic=False)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        try:
            return super()._infer(batch)
        except Exception as exc:  # Inductor reports a missing compiler or an unsupported op deep inside
            if isinstance(exc, I2IError):
                raise
            first = " ".join(str(exc).split())[:300]
            raise I2IError(f"torch.compile failed: {exc.__class__.__name__}: {first}") from exc
