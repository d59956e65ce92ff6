"""TensorRT backend: runs ``model.engine`` after checking its sidecar ``model.engine.json``.

A TensorRT engine is compiled for one GPU model (compute capability) and one TensorRT version;
loading it anywhere else fails deep inside TensorRT, or worse, runs with wrong tactics. The
sidecar written by ``i2i-export --engine trt`` records the card, the TensorRT version, the GPU
name and compute capability, the optimisation profiles and the engine's sha256; ``open`` checks
them against this machine *before* deserialising and refuses a mismatch with the command that
rebuilds the engine here.

Everything here is importable without TensorRT (sidecar logic is plain JSON; the export side
imports it to write sidecars): ``tensorrt`` is imported only inside ``open`` and the helpers
that need it. The GPU is reached through NVIDIA's cuda-python (``cuda.bindings``, in the ``trt``
extra). A call copies the batch (uint8 frames stay uint8 to the device) into page-locked staging
memory, runs on a non-blocking stream into device and host buffers allocated once per input
shape, and, for static-shape engines, replays copy-in, inference and copy-out as one CUDA graph.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from i2i.common import file_sha256
from i2i.errors import I2IError, MissingDependencyError, install_hint
from i2i.runtime.backends.base import AutoTier, Backend, Card, TensorSpec, register_backend, required_card
from i2i.runtime.backends.cuda import Cuda, GpuIdentity, gpu_identity
from i2i.runtime.card import ModelCard

__all__ = ["Cuda", "CudaDriver", "GpuIdentity", "TensorRTBackend", "gpu_identity", "read_sidecar", "validate_sidecar"]
CudaDriver = Cuda  # the name the export side imported

if TYPE_CHECKING:
    import tensorrt as trt

SIDECAR_FORMAT = "i2i-engine/1"
SIDECAR_KEYS = ("format", "card", "engine", "tensorrt", "gpu", "profiles", "precision")


# -- TensorRT import ------------------------------------------------------------------------------
def tensorrt_status() -> tuple[bool, str]:
    """(True, version) when the TensorRT library imports, else (False, why not).

    ``tensorrt-stubs`` installs a ``tensorrt/`` folder holding only ``.pyi`` files, which Python
    imports as an empty namespace package: a successful import is not enough, the module must
    have the real API.
    """
    if importlib.util.find_spec("tensorrt") is None:
        return False, "the tensorrt package is not installed"
    try:
        import tensorrt
    except Exception as exc:  # a broken install raises anything from ImportError to OSError
        return False, f"tensorrt does not import: {' '.join(str(exc).split())[:200]}"
    if not hasattr(tensorrt, "Builder"):
        return False, "only type stubs for tensorrt are installed (tensorrt-stubs), not the library"
    return True, str(getattr(tensorrt, "__version__", "unknown"))


def require_tensorrt() -> str:
    """Raise MissingDependencyError naming the ``trt`` extra unless TensorRT is usable; its version."""
    ok, detail = tensorrt_status()
    if not ok:
        raise MissingDependencyError("TensorRT", "trt", detail)
    return detail


# -- the sidecar ------------------------------------------------------------------------------------
# A sidecar is data from beside a file that may come from anywhere: every field is checked for its
# type and form, and nothing in it is shown as a command as it is (``rebuild`` is recomposed from
# the validated card and profile; the free text written there is never printed).
_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"\d+(\.\d+){1,3}")
_CAPABILITY = re.compile(r"\d+\.\d+")
_GPU_NAME = re.compile(r"[\w .,:()\[\]/+@#-]{1,100}")  # no quotes, backticks, $ ; | & < > or newlines
_TENSOR_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
_ONNX_NAME = re.compile(r"[^/\\\0\n\r]{1,200}\.onnx")


def sidecar_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def _text(value: Any, where: str, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise I2IError(f"{where}: {field} must be a string like {_EXAMPLES[field]}, got {str(value)[:60]!r}")
    return value


_EXAMPLES = {
    "engine.sha256": "64 lowercase hex digits",
    "tensorrt": "'10.13.0.35'",
    "gpu.compute_capability": "'8.9'",
    "profiles[].input": "'image' (letters, digits, _ . : / -)",
    "tensors.input": "'image' (letters, digits, _ . : / -)",
    "tensors.output": "'output' (letters, digits, _ . : / -)",
    "gpu.name": "'NVIDIA H100 80GB HBM3'",
}


def _shape(value: Any, where: str, field: str) -> list[int]:
    if not isinstance(value, list) or not 1 <= len(value) <= 8:
        raise I2IError(f"{where}: {field} must be a list of 1 to 8 dimensions, got {str(value)[:60]}")
    if not all(type(d) is int and 1 <= d <= 1 << 20 for d in value):
        raise I2IError(f"{where}: {field} must hold integers >= 1, got {str(value)[:60]}")
    return list(value)


def _profile(profile: Any, where: str, rank: int) -> dict[str, Any]:
    if not isinstance(profile, dict) or not {"input", "min", "opt", "max"} <= set(profile):
        raise I2IError(f"{where}: each profile needs input, min, opt and max shapes")
    _text(profile["input"], where, "profiles[].input", _TENSOR_NAME)
    shapes = [_shape(profile[k], where, f"profiles[].{k}") for k in ("min", "opt", "max")]
    if any(len(s) != rank for s in shapes):
        raise I2IError(f"{where}: profile shapes must have the model's {rank} dimensions, got {shapes}")
    if not all(a <= b <= c for a, b, c in zip(*shapes)):
        raise I2IError(f"{where}: profile shapes must satisfy min <= opt <= max, got {shapes}")
    if "max_batch" in profile and profile["max_batch"] != shapes[2][0]:
        raise I2IError(f"{where}: profile max_batch {profile['max_batch']!r} is not the max shape's batch")
    return profile


def validate_sidecar(sidecar: Any, where: str = "sidecar") -> dict[str, Any]:
    """Check the sidecar's structure and every field's type (not its compatibility with this
    machine); return a copy whose ``rebuild`` is the command composed from the checked fields."""
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        found = sidecar.get("format") if isinstance(sidecar, dict) else type(sidecar).__name__
        raise I2IError(f"{where} is not an i2i engine sidecar: format={str(found)[:40]!r}, expected {SIDECAR_FORMAT!r}")
    missing = [k for k in SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise I2IError(f"{where} lacks {', '.join(missing)}")
    card = ModelCard.from_dict(sidecar["card"], where=f"{where}: card")
    engine = sidecar["engine"]
    if not isinstance(engine, dict) or "sha256" not in engine:
        raise I2IError(f"{where}: 'engine' must hold the engine's sha256 (rebuild the engine to get a sidecar with it)")
    _text(engine["sha256"], where, "engine.sha256", _SHA256)
    _text(sidecar["tensorrt"], where, "tensorrt", _VERSION)
    gpu = sidecar["gpu"]
    if not isinstance(gpu, dict):
        raise I2IError(f"{where}: 'gpu' must hold the GPU's name and compute_capability")
    _text(gpu.get("name"), where, "gpu.name", _GPU_NAME)
    _text(gpu.get("compute_capability"), where, "gpu.compute_capability", _CAPABILITY)
    if sidecar["precision"] not in _PRECISIONS:
        found = str(sidecar["precision"])[:20]
        raise I2IError(f"{where}: precision must be one of {', '.join(_PRECISIONS)}, got {found!r}")
    profiles = sidecar["profiles"]
    if not isinstance(profiles, list) or not profiles:
        raise I2IError(f"{where}: 'profiles' must be a non-empty list")
    tensors = sidecar.get("tensors")
    if tensors is not None:  # the engine's I/O names, which the Triton writer puts in config.pbtxt
        if not isinstance(tensors, dict):
            raise I2IError(f"{where}: 'tensors' must name the input and output tensors")
        for key in ("input", "output"):
            _text(tensors.get(key), where, f"tensors.{key}", _TENSOR_NAME)
    rank = len(card.io.batch_shape(1, 1, 1))
    checked = dict(sidecar, profiles=[_profile(p, where, rank) for p in profiles])
    checked["rebuild"] = rebuild_advice(checked, card)
    return checked


def rebuild_advice(sidecar: dict[str, Any], card: ModelCard) -> str:
    """``i2i-export MODEL.onnx --engine trt --min .. --opt .. --max ..`` from validated fields only:
    the source model's file name (quoted; MODEL.onnx unless it is a plain ``.onnx`` name) and the
    first profile's integer shapes."""
    source = sidecar.get("source_onnx")
    name = source.get("name") if isinstance(source, dict) else None
    onnx_name = name if isinstance(name, str) and _ONNX_NAME.fullmatch(name) else "MODEL.onnx"
    profile = sidecar["profiles"][0]

    def nhw(shape: list[int]) -> str:
        h, w = card.io.hw(shape)
        return f"{shape[0]}x{h}x{w}"

    shapes = " ".join(f"--{k} {nhw(profile[k])}" for k in ("min", "opt", "max"))
    return f"i2i-export {shlex.quote(onnx_name)} --engine trt {shapes}"


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    path = sidecar_path(engine)
    if not path.is_file():
        raise I2IError(
            f"{Path(engine).name} has no sidecar {path.name}: build engines with `i2i-export MODEL.onnx --engine trt`, "
            "which writes both"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise I2IError(f"cannot read {path}: {' '.join(str(exc).split())[:160]}") from None
    return validate_sidecar(data, str(path))


def check_compatible(sidecar: dict[str, Any], tensorrt_version: str, gpu: GpuIdentity) -> None:
    """Refuse an engine built for another TensorRT version or GPU, saying how to rebuild it."""
    built_gpu = sidecar["gpu"]
    problems = []
    if sidecar["tensorrt"] != tensorrt_version:
        problems.append(f"TensorRT {sidecar['tensorrt']} (this machine has {tensorrt_version})")
    if built_gpu["compute_capability"] != gpu.compute_capability or built_gpu["name"] != gpu.name:
        problems.append(
            f"{built_gpu['name']} (sm {built_gpu['compute_capability']}; this machine has {gpu.name}, "
            f"sm {gpu.compute_capability})"
        )
    if problems:
        raise I2IError(
            f"engine was built for {' and '.join(problems)}; engines are tied to one GPU model and TensorRT "
            f"version: rebuild it here with `{sidecar['rebuild']}`"
        )


def check_engine_file(engine: Path, sidecar: dict[str, Any]) -> None:
    """The engine bytes must be the ones the sidecar describes (no engine swapped under a sidecar):
    the sha256 is mandatory (``validate_sidecar``) and always compared."""
    if file_sha256(engine) != sidecar["engine"]["sha256"]:
        raise I2IError(
            f"{engine.name} does not match its sidecar (sha256 differs): it was rebuilt or replaced without "
            f"{sidecar_path(engine).name}; rebuild with `{sidecar['rebuild']}`"
        )


def parse_device(device: str) -> int:
    """ "cuda" / "cuda:N" / "gpu" -> device index N."""
    head, _, tail = device.partition(":")
    if head not in ("cuda", "gpu") or (tail and not tail.isdigit()):
        raise I2IError(f"trt backend runs on an NVIDIA GPU: --device cuda or cuda:N, got {device!r}")
    return int(tail or 0)


def _dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    # trt.Dims behaves like a tuple (len + index), but declares no __iter__.
    return tuple(int(dims[i]) for i in range(len(dims)))


def _shape_in_profile(shape: tuple[int, ...], profile: dict[str, Any]) -> bool:
    lo, hi = profile["min"], profile["max"]
    return len(shape) == len(lo) and all(a <= s <= b for s, a, b in zip(shape, lo, hi))


# -- the backend ------------------------------------------------------------------------------------
def engine_specs(engine: trt.ICudaEngine, profile: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The engine's I/O tensors. An axis the engine reports as dynamic (-1) but whose profile has
    min == max is fixed: an engine built from a dynamic ONNX with a fixed-batch profile runs that
    batch only, so the pipeline must see it as fixed (and pad a last, short batch)."""
    import tensorrt as trt

    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    lo, hi = list(profile["min"]), list(profile["max"])
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dims = _dims_tuple(engine.get_tensor_shape(name))
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape: list[int | None] = [None if d < 0 else d for d in dims]
        if shape and shape[0] is None and lo and lo[0] == hi[0]:
            shape[0] = int(lo[0])  # batch: the same for input and output of a translation model
        if is_input and len(lo) == len(shape):
            shape = [int(a) if d is None and a == b else d for d, a, b in zip(shape, lo, hi)]
        spec = TensorSpec(name, tuple(shape), np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name)
        (inputs if is_input else outputs).append(spec)
    return inputs, outputs


@dataclass
class _Buffers:
    """Everything one input shape needs, allocated once: pinned staging in and out, device
    tensors in and out, and (static engines) the captured graph of copy-in, inference, copy-out."""

    shape: tuple[int, ...]
    host_in: tuple[int, np.ndarray]
    host_out: tuple[int, np.ndarray]
    device_in: int
    device_out: int
    graph: Any = None


KEEP_SHAPES = 4  # buffers kept for this many input shapes (frame sizes rarely change within a stream)


@register_backend("trt")
class TensorRTBackend(Backend):
    label = "TensorRT"
    suffixes = (".engine", ".plan")
    devices = ("cuda",)
    default_device = "cuda"
    precisions = ("fp32", "fp16", "bf16", "int8")  # an engine runs as built: _open checks the sidecar
    options: ClassVar[Mapping[str, str]] = {
        "cuda_graph": "true, false or auto (auto: replay static-shape engines as one CUDA graph)",
    }
    auto_rank = (AutoTier(0, "TensorRT engine", "cuda"),)
    _cuda: Cuda
    _engine: trt.ICudaEngine
    _context: trt.IExecutionContext
    _stream: Any
    _device_index: int
    _buffers: OrderedDict[tuple[int, ...], _Buffers]
    _sidecar: dict[str, Any]
    _runtime: trt.Runtime
    _lock: threading.Lock
    use_graph: bool = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        ok, detail = tensorrt_status()
        return (True, f"tensorrt {detail}") if ok else (False, f"{detail}; {install_hint('trt')}")

    @classmethod
    def _open(cls, path: Path, card: Card, device: str, precision: str, **opts: Any) -> Backend:
        sidecar = read_sidecar(path)
        built = str(sidecar["precision"])
        if precision not in ("auto", built):
            raise I2IError(
                f"trt backend: {path.name} was built for {built}; an engine runs at the precision it was built "
                f"with: rebuild with `{sidecar['rebuild']}` from a {precision} export"
            )
        graph = _flag(opts.get("cuda_graph", "auto"))
        index = parse_device(device)
        version = require_tensorrt()
        cuda = Cuda()
        check_compatible(sidecar, version, cuda.identity(index))
        check_engine_file(path, sidecar)
        with cuda.on_device(index):
            runtime, engine, context = _load_engine(path, sidecar)
            stream = cuda.stream()
        inputs, outputs = engine_specs(engine, sidecar["profiles"][0])
        if len(inputs) != 1 or len(outputs) != 1:
            raise I2IError(f"{path.name}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        backend = cls(path, required_card(card, path), inputs, outputs, f"cuda:{index}", built)
        static = all(isinstance(d, int) for d in inputs[0].shape)
        if graph and not static:
            raise I2IError("trt backend: cuda_graph=true needs a static-shape engine (profile min == max)")
        backend.use_graph = static if graph is None else graph
        backend._cuda, backend._engine, backend._context = cuda, engine, context
        backend._stream, backend._device_index, backend._buffers = stream, index, OrderedDict()
        backend._sidecar = sidecar
        backend._runtime = runtime  # keep the runtime alive as long as the engine
        # One execution context, one stream, one set of staging buffers: calls from several threads
        # take turns (each thread's own backend runs concurrently with the others).
        backend._lock = threading.Lock()
        return backend

    def _validate(self, batch: np.ndarray) -> None:
        super()._validate(batch)  # layout, dtype, size multiple: from the card (tensor or frame I/O)
        profile = self._sidecar["profiles"][0]
        if not _shape_in_profile(tuple(batch.shape), profile):
            raise I2IError(
                f"{self.name}: input shape {tuple(batch.shape)} is outside the engine's profile "
                f"{profile['min']}..{profile['max']}; rebuild with wider --min/--max"
            )

    def _bind(self, shape: tuple[int, ...]) -> _Buffers:
        """Allocate and bind the buffers of one input shape (the output shape comes from TensorRT)."""
        in_spec, out_spec = self.inputs[0], self.outputs[0]
        if not self._context.set_input_shape(in_spec.name, shape):
            raise I2IError(f"{self.name}: TensorRT rejected input shape {shape}")
        out_shape = _dims_tuple(self._context.get_tensor_shape(out_spec.name))
        cuda = self._cuda
        host_in = cuda.host_array(shape, np.dtype(in_spec.dtype))
        host_out = cuda.host_array(out_shape, np.dtype(out_spec.dtype))
        buffers = _Buffers(shape, host_in, host_out, cuda.alloc(host_in[1].nbytes), cuda.alloc(host_out[1].nbytes))
        if self.use_graph:
            self._enqueue(buffers)  # TensorRT's first enqueue does deferred setup that must not be captured
            cuda.synchronize(self._stream)
            buffers.graph = cuda.capture(self._stream, lambda: self._enqueue(buffers))
        self._buffers[shape] = buffers
        if len(self._buffers) > KEEP_SHAPES:
            self._release(self._buffers.popitem(last=False)[1])
        return buffers

    def _enqueue(self, b: _Buffers) -> None:
        """Copy in, infer, copy out: all asynchronous on the backend's stream."""
        in_spec, out_spec = self.inputs[0], self.outputs[0]
        context = self._context
        context.set_input_shape(in_spec.name, b.shape)
        context.set_tensor_address(in_spec.name, b.device_in)
        context.set_tensor_address(out_spec.name, b.device_out)
        self._cuda.to_device(b.device_in, b.host_in[0], b.host_in[1].nbytes, self._stream)
        if not context.execute_async_v3(self._cuda.handle(self._stream)):
            raise I2IError(f"{self.name}: TensorRT execution failed")
        self._cuda.to_host(b.host_out[0], b.device_out, b.host_out[1].nbytes, self._stream)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        # The current device is per thread and other backends (or libraries) in this thread may have
        # changed it: every call selects this engine's GPU, and gives the thread its device back.
        with self._lock, self._cuda.on_device(self._device_index):
            shape = tuple(batch.shape)
            if shape in self._buffers:
                self._buffers.move_to_end(shape)
                buffers = self._buffers[shape]
            else:
                buffers = self._bind(shape)
            np.copyto(buffers.host_in[1], batch)  # into page-locked staging; the dtype is the engine's own
            if buffers.graph is not None:
                self._cuda.launch(buffers.graph, self._stream)
            else:
                self._enqueue(buffers)
            self._cuda.synchronize(self._stream)
            return buffers.host_out[1].copy()  # the staging buffer is reused by the next call

    def _release(self, b: _Buffers) -> None:
        cuda = self._cuda
        if b.graph is not None:
            cuda.destroy_graph(b.graph)
        cuda.free(b.device_in)
        cuda.free(b.device_out)
        cuda.host_free(b.host_in[0])
        cuda.host_free(b.host_out[0])

    def _close(self) -> None:
        with self._lock, self._cuda.on_device(self._device_index):
            self._cuda.synchronize(self._stream)
            for buffers in self._buffers.values():
                self._release(buffers)
            self._buffers.clear()
            del self._context
            del self._engine
            self._cuda.destroy_stream(self._stream)
            self._cuda.release(self._device_index)

    def describe(self) -> str:
        graph = ", CUDA graph" if self.use_graph else ""
        return f"{self.name} ({self.device}, {self.precision}{graph})"


def _flag(value: Any) -> bool | None:
    text = str(value).lower()
    if text == "auto":
        return None
    if text in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return text in ("1", "true", "yes", "on")
    raise I2IError(f"trt backend: option cuda_graph={value!r} must be true, false or auto")


def _load_engine(path: Path, sidecar: dict[str, Any]) -> tuple[trt.Runtime, trt.ICudaEngine, trt.IExecutionContext]:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise I2IError(f"TensorRT could not deserialise {path.name}; rebuild with `{sidecar['rebuild']}`")
    context = engine.create_execution_context()
    if context is None:
        raise I2IError(f"TensorRT could not create an execution context for {path.name} (out of GPU memory?)")
    return runtime, engine, context
