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

import ctypes
import importlib.util
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from i2i.common import file_sha256
from i2i.errors import I2IError, MissingDependencyError
from i2i.runtime.backends.base import AutoTier, Backend, Card, TensorSpec, register_backend, required_card

if TYPE_CHECKING:
    import tensorrt as trt

SIDECAR_FORMAT = "i2i-engine/1"
SIDECAR_KEYS = ("format", "card", "engine", "tensorrt", "gpu", "profiles", "precision", "rebuild")


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


# -- the GPU, through the CUDA driver API ---------------------------------------------------------
@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str  # "8.9"
    index: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.compute_capability, "index": self.index}


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError as exc:
        raise MissingDependencyError(
            "cuda-python", "trt", f"{exc}; the TensorRT backend reaches the GPU through it"
        ) from None
    return runtime


class Cuda:
    """The CUDA runtime calls the TensorRT backend needs, through NVIDIA's cuda-python
    (``cuda.bindings.runtime``): device identity, a non-blocking stream, device and page-locked
    host memory, asynchronous copies and stream capture into CUDA graphs. Every call's status is
    checked; a failure is one line naming the call."""

    def __init__(self, runtime: Any = None) -> None:
        self.rt = _cudart() if runtime is None else runtime

    def check(self, what: str, result: Any) -> Any:
        """cuda-python returns (status, *values): raise on a bad status, return the value(s)."""
        status, *values = result if isinstance(result, tuple) else (result,)
        if status != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(status)
            detail = text.decode() if isinstance(text, bytes) else str(text or status)
            raise I2IError(f"CUDA {what} failed: {detail}")
        return values[0] if len(values) == 1 else tuple(values)

    def identity(self, index: int = 0) -> GpuIdentity:
        props = self.check(f"cudaGetDeviceProperties({index})", self.rt.cudaGetDeviceProperties(index))
        name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
        return GpuIdentity(name, f"{props.major}.{props.minor}", index)

    def activate(self, index: int) -> None:
        """Make the device current (its primary context: the one TensorRT and the runtime share)."""
        self.check(f"cudaSetDevice({index})", self.rt.cudaSetDevice(index))

    def release(self, index: int) -> None:
        """Nothing to release: the primary context lives as long as the process."""

    def stream(self) -> Any:
        # Non-blocking: no implicit synchronisation with the legacy default stream, so work other
        # libraries put there (OpenCV, torch) never serialises with inference.
        return self.check("cudaStreamCreateWithFlags", self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking))

    def destroy_stream(self, stream: Any) -> None:
        self.check("cudaStreamDestroy", self.rt.cudaStreamDestroy(stream))

    def synchronize(self, stream: Any) -> None:
        self.check("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(stream))

    def alloc(self, nbytes: int) -> int:
        return int(self.check(f"cudaMalloc({nbytes})", self.rt.cudaMalloc(max(1, nbytes))))

    def free(self, pointer: int) -> None:
        self.check("cudaFree", self.rt.cudaFree(pointer))

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[int, np.ndarray]:
        """A page-locked host buffer and a numpy view of it: copies from pinned memory are true DMA
        (asynchronous, full bandwidth); from pageable memory the driver stages them itself."""
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        pointer = int(self.check(f"cudaMallocHost({nbytes})", self.rt.cudaMallocHost(nbytes)))
        raw = (ctypes.c_uint8 * nbytes).from_address(pointer)
        return pointer, np.frombuffer(memoryview(raw), dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def host_free(self, pointer: int) -> None:
        self.check("cudaFreeHost", self.rt.cudaFreeHost(pointer))

    def to_device(self, device: int, host: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check("cudaMemcpyAsync(host to device)", self.rt.cudaMemcpyAsync(device, host, nbytes, kind, stream))

    def to_host(self, host: int, device: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check("cudaMemcpyAsync(device to host)", self.rt.cudaMemcpyAsync(host, device, nbytes, kind, stream))

    def capture(self, stream: Any, work: Any) -> Any:
        """Run ``work()`` under stream capture and return the instantiated graph."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check("cudaStreamBeginCapture", self.rt.cudaStreamBeginCapture(stream, mode))
        try:
            work()
        finally:
            graph = self.check("cudaStreamEndCapture", self.rt.cudaStreamEndCapture(stream))
        try:
            return self.check("cudaGraphInstantiate", self.rt.cudaGraphInstantiate(graph, 0))
        finally:
            self.check("cudaGraphDestroy", self.rt.cudaGraphDestroy(graph))

    def launch(self, graph: Any, stream: Any) -> None:
        self.check("cudaGraphLaunch", self.rt.cudaGraphLaunch(graph, stream))

    def destroy_graph(self, graph: Any) -> None:
        self.check("cudaGraphExecDestroy", self.rt.cudaGraphExecDestroy(graph))


CudaDriver = Cuda  # the name the export side imports


def gpu_identity(index: int = 0) -> GpuIdentity:
    return Cuda().identity(index)


# -- the sidecar ------------------------------------------------------------------------------------
def sidecar_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def validate_sidecar(sidecar: Any, where: str = "sidecar") -> dict[str, Any]:
    """Check the sidecar's structure (not its compatibility with this machine); return it."""
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        found = sidecar.get("format") if isinstance(sidecar, dict) else type(sidecar).__name__
        raise I2IError(f"{where} is not an i2i engine sidecar: format={found!r}, expected {SIDECAR_FORMAT!r}")
    missing = [k for k in SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise I2IError(f"{where} lacks {', '.join(missing)}")
    gpu = sidecar["gpu"]
    if not isinstance(gpu, dict) or not {"name", "compute_capability"} <= set(gpu):
        raise I2IError(f"{where}: 'gpu' must hold name and compute_capability")
    profiles = sidecar["profiles"]
    if not isinstance(profiles, list) or not profiles:
        raise I2IError(f"{where}: 'profiles' must be a non-empty list")
    for profile in profiles:
        if not isinstance(profile, dict) or not {"input", "min", "opt", "max"} <= set(profile):
            raise I2IError(f"{where}: each profile needs input, min, opt and max shapes")
    card = sidecar["card"]
    if not isinstance(card, dict) or "io" not in card:
        raise I2IError(f"{where}: 'card' must be the model card of the source ONNX model")
    return sidecar


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
    """The engine bytes must be the ones the sidecar describes (no engine swapped under a sidecar)."""
    expected = sidecar["engine"].get("sha256")
    if expected and file_sha256(engine) != expected:
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
    use_graph: bool = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        ok, detail = tensorrt_status()
        return (True, f"tensorrt {detail}") if ok else (False, f"{detail}; pip install 'i2i[trt]'")

    @classmethod
    def _open(cls, path: Path, card: Card, device: str, precision: str, **opts: Any) -> Backend:
        sidecar = read_sidecar(path)
        built = str(sidecar["precision"])
        if precision not in ("auto", built):
            raise I2IError(
                f"trt backend: {path.name} was built for {built}; an engine runs at the precision it was built "
                f"with: rebuild with `{sidecar['rebuild']}` and the precision you want"
            )
        graph = _flag(opts.get("cuda_graph", "auto"))
        index = parse_device(device)
        version = require_tensorrt()
        cuda = Cuda()
        check_compatible(sidecar, version, cuda.identity(index))
        check_engine_file(path, sidecar)
        cuda.activate(index)
        runtime, engine, context = _load_engine(path, sidecar)
        inputs, outputs = engine_specs(engine, sidecar["profiles"][0])
        if len(inputs) != 1 or len(outputs) != 1:
            raise I2IError(f"{path.name}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        backend = cls(path, required_card(card, path), inputs, outputs, f"cuda:{index}", built)
        static = all(isinstance(d, int) for d in inputs[0].shape)
        if graph and not static:
            raise I2IError("trt backend: cuda_graph=true needs a static-shape engine (profile min == max)")
        backend.use_graph = static if graph is None else graph
        backend._cuda, backend._engine, backend._context = cuda, engine, context
        backend._stream, backend._device_index, backend._buffers = cuda.stream(), index, OrderedDict()
        backend._sidecar = sidecar
        backend._runtime = runtime  # keep the runtime alive as long as the engine
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
        if not context.execute_async_v3(int(self._stream)):
            raise I2IError(f"{self.name}: TensorRT execution failed")
        self._cuda.to_host(b.host_out[0], b.device_out, b.host_out[1].nbytes, self._stream)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
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
