"""Torch peers: eager (``torch``) and ``torch.compile`` (``torch-compile``) run ``model.pt`` directly.

Only used when asked for by name: benchmarks measure every engine against them in the same run,
so on a GPU they are set up the way a careful PyTorch user would deploy: ``cudnn.benchmark``
(cuDNN times its convolution algorithms once per shape), channels_last memory format, reduced
precision under ``torch.autocast`` (norms and reductions stay fp32), and optionally the network
replayed as a CUDA graph (``cuda_graph=true``; ``torch-compile`` in ``max-autotune`` mode, its
default on CUDA, captures CUDA graphs itself). "fp32" means true fp32: TF32 matmuls and
convolutions are off unless ``tf32=true`` is passed, and then the precision reads "fp32 (TF32)".
torch is imported here, never elsewhere in the runtime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from i2i.errors import I2IError, MissingDependencyError, install_hint
from i2i.runtime.backends.base import AutoTier, Backend, Card, TensorSpec, register_backend

PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
EAGER_OPTIONS = {
    "channels_last": "channels_last memory format (default: true on CUDA)",
    "cudnn_benchmark": "let cuDNN time its algorithms per shape (default: true on CUDA)",
    "tf32": "allow TF32 for fp32 matmuls and convolutions on Ampere+ (default false: true fp32)",
    "cuda_graph": "replay the network as a CUDA graph, one per input shape (default false)",
}


def flag(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() not in _FLAGS:
        raise I2IError(f"torch backend: option {name}={value!r} must be true or false")
    return _FLAGS[str(value).lower()]


def configure_torch(torch: Any, cuda: bool, tf32: bool, cudnn_benchmark: bool) -> None:
    """Process-wide settings a fair GPU comparison needs (they are global in torch)."""
    if cuda:
        torch.backends.cudnn.benchmark = cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


def autocast_for(torch: Any, device: str, precision: str, cache: bool = True) -> Any:
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=dtype, cache_enabled=cache)


class GraphRunner:
    """``net`` replayed as a CUDA graph, one per input shape: static input/output tensors, warmed
    up on a side stream before capture (as torch.cuda.graphs documents)."""

    def __init__(self, torch: Any, net: Callable[[Any], Any], device: str, precision: str) -> None:
        self.torch, self.net, self.device, self.precision = torch, net, device, precision
        self.graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}

    def _capture(self, x: Any) -> tuple[Any, Any, Any]:
        torch = self.torch
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode(), autocast_for(torch, self.device, self.precision, False):
            for _ in range(3):
                self.net(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode(), autocast_for(torch, self.device, self.precision, False):
            static_out = self.net(static_in)
        return graph, static_in, static_out

    def __call__(self, x: Any) -> Any:
        key = tuple(x.shape)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "train", str(exc)) from None
    return torch


@register_backend("torch")
class TorchBackend(Backend):
    label = "torch eager"
    suffixes = (".pt",)
    devices = ("cpu", "cuda")
    default_device = "cpu"
    precisions = {"cpu": ("fp32", "bf16"), "cuda": PRECISIONS}  # CPU fp16 autocast runs emulated kernels
    options = EAGER_OPTIONS
    auto_rank: ClassVar[tuple[AutoTier, ...]] = (
        AutoTier(50, "torch eager on CUDA (a .pt checkpoint runs on the torch baseline)", "cuda"),
        AutoTier(55, "torch eager (a .pt checkpoint runs on the torch baseline)", "cpu"),
    )
    _torch: Any
    _generator: Any
    _memory: Any = None
    tf32: bool = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        # find_spec, not import: asking whether torch exists must not load it into the runtime.
        import importlib.metadata
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return False, f"torch is not installed; {install_hint('train')}"
        return True, f"torch {importlib.metadata.version('torch')}"

    @classmethod
    def auto_device(cls) -> str:
        return "cuda" if _import_torch().cuda.is_available() else "cpu"

    @classmethod
    def tier_skip(cls, tier: AutoTier) -> str | None:
        if tier.device == "cuda" and not _import_torch().cuda.is_available():
            return "torch has no CUDA device here"
        return None

    @classmethod
    def _open(cls, path: Path, card: Card, device: str, precision: str, **opts: Any) -> Backend:
        torch = _import_torch()
        from i2i.train.checkpoint import load_generator

        precision = "fp32" if precision == "auto" else precision
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise I2IError(f"{cls.name} backend: CUDA is not available")
        generator, ckpt = load_generator(path)
        from i2i.runtime.card import ModelCard

        card = ModelCard.from_checkpoint(ckpt, where=str(path)).replace(precision=precision)
        tf32 = flag(opts.get("tf32"), "tf32", False)
        configure_torch(torch, cuda, tf32, flag(opts.get("cudnn_benchmark"), "cudnn_benchmark", True))
        spec = TensorSpec("image", ("batch", 3, "height", "width"), "float32")
        backend = cls(path, card, [spec], [TensorSpec("output", spec.shape, "float32")], device, precision)
        backend._torch, backend.tf32 = torch, tf32 and cuda
        backend._memory = (
            torch.channels_last if flag(opts.get("channels_last"), "channels_last", cuda) else torch.contiguous_format
        )
        net = generator.to(device).eval()
        to_layout: Callable[..., Any] = net.to  # torch's overloads omit memory_format, which it takes
        net = to_layout(memory_format=backend._memory)
        backend._generator = backend._prepare(net, **opts)
        return backend

    def _prepare(self, generator: Any, **opts: Any) -> Any:
        if flag(opts.get("cuda_graph"), "cuda_graph", False):
            if not self.device.startswith("cuda"):
                raise I2IError("torch backend: cuda_graph=true needs a CUDA device")
            return GraphRunner(self._torch, generator, self.device, self.precision)
        return generator

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(batch)
        if self.device.startswith("cuda"):
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=self._memory)
        with torch.inference_mode(), autocast_for(torch, self.device, self.precision):
            out = self._generator(x)
        return out.float().cpu().numpy()

    def describe(self) -> str:
        shown = "fp32 (TF32)" if self.tf32 and self.precision == "fp32" else self.precision
        layout = ", channels_last" if self._memory is self._torch.channels_last else ""
        return f"{self.name} ({self.device}, {shown}{layout})"


@register_backend("torch-compile")
class TorchCompileBackend(TorchBackend):
    """``torch.compile`` peer (Inductor). The first call at each new shape compiles, which takes
    seconds to minutes: benchmarks absorb it in their warm-up. Needs a C++ compiler on CPU.
    On CUDA the default mode is ``max-autotune`` (Triton autotuning plus CUDA graphs)."""

    label = "torch.compile"
    options = {
        **{k: v for k, v in EAGER_OPTIONS.items() if k != "cuda_graph"},
        "mode": f"compile mode: {', '.join(COMPILE_MODES)} (default: max-autotune on CUDA, default on CPU)",
    }
    auto_rank: ClassVar[tuple[AutoTier, ...]] = ()

    def _prepare(self, generator: Any, mode: str | None = None, **opts: Any) -> Any:
        mode = mode or ("max-autotune" if self.device.startswith("cuda") else "default")
        if mode not in COMPILE_MODES:
            raise I2IError(f"torch-compile backend: unknown mode {mode!r}; valid: {', '.join(COMPILE_MODES)}")
        self.mode = mode
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
