"""TensorRT backend: runs ``model.engine`` after checking its sidecar ``model.engine.json``.

A TensorRT engine is compiled for one GPU model (compute capability) and one TensorRT version;
loading it anywhere else fails deep inside TensorRT, or worse, runs with wrong tactics. The
sidecar written by ``i2i-export --engine trt`` records the card, the TensorRT version, the GPU
name and compute capability, the optimisation profiles and the engine's sha256; ``open`` checks
them against this machine *before* deserialising and refuses a mismatch with the command that
rebuilds the engine here.

Everything here is importable without TensorRT (sidecar logic is plain JSON; the export side
imports it to write sidecars): ``tensorrt`` is imported only inside ``open`` and the helpers
that need it. Device memory and streams go through the CUDA driver API (``libcuda``, part of
every NVIDIA driver) by ctypes, so the ``trt`` extra needs nothing beyond ``tensorrt``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from i2i.common import file_sha256
from i2i.errors import I2IError, MissingDependencyError
from i2i.runtime.backends.base import AutoTier, Backend, Card, TensorSpec, register_backend

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


_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


class CudaDriver:
    """The few CUDA driver calls the TensorRT backend needs: device identity, memory, a stream."""

    def __init__(self) -> None:
        name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise I2IError(f"cannot load the CUDA driver ({name}): no NVIDIA GPU driver here ({exc})") from None
        u64, vp, sz, i32 = ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        signatures: dict[str, list[Any]] = {
            "cuInit": [ctypes.c_uint],
            "cuDeviceGet": [ctypes.POINTER(i32), i32],
            "cuDeviceGetName": [ctypes.c_char_p, i32, i32],
            "cuDeviceGetAttribute": [ctypes.POINTER(i32), i32, i32],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(vp), i32],
            "cuDevicePrimaryCtxRelease_v2": [i32],
            "cuCtxSetCurrent": [vp],
            "cuStreamCreate": [ctypes.POINTER(vp), ctypes.c_uint],
            "cuStreamDestroy_v2": [vp],
            "cuStreamSynchronize": [vp],
            "cuMemAlloc_v2": [ctypes.POINTER(u64), sz],
            "cuMemFree_v2": [u64],
            "cuMemcpyHtoDAsync_v2": [u64, vp, sz, vp],
            "cuMemcpyDtoHAsync_v2": [vp, u64, sz, vp],
            "cuGetErrorString": [i32, ctypes.POINTER(ctypes.c_char_p)],
        }
        for fn, argtypes in signatures.items():
            getattr(lib, fn).argtypes = argtypes
            getattr(lib, fn).restype = i32
        self._lib = lib
        self.check(lib.cuInit(0), "cuInit")

    def check(self, status: int, what: str) -> None:
        if status != 0:
            text = ctypes.c_char_p()
            self._lib.cuGetErrorString(status, ctypes.byref(text))
            detail = text.value.decode() if text.value else f"error {status}"
            raise I2IError(f"CUDA {what} failed: {detail}")

    def identity(self, index: int = 0) -> GpuIdentity:
        device = ctypes.c_int()
        self.check(self._lib.cuDeviceGet(ctypes.byref(device), index), f"cuDeviceGet({index})")
        name = ctypes.create_string_buffer(256)
        self.check(self._lib.cuDeviceGetName(name, 256, device.value), "cuDeviceGetName")
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.check(self._lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, device.value), "cuDeviceGetAttribute")
        self.check(self._lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, device.value), "cuDeviceGetAttribute")
        return GpuIdentity(name.value.decode(), f"{major.value}.{minor.value}", index)

    def activate(self, index: int) -> None:
        """Make the device's primary context (the one the CUDA runtime and TensorRT use) current."""
        device = ctypes.c_int()
        self.check(self._lib.cuDeviceGet(ctypes.byref(device), index), f"cuDeviceGet({index})")
        context = ctypes.c_void_p()
        self.check(self._lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), device.value), "cuDevicePrimaryCtxRetain")
        self.check(self._lib.cuCtxSetCurrent(context), "cuCtxSetCurrent")

    def release(self, index: int) -> None:
        self.check(self._lib.cuDevicePrimaryCtxRelease_v2(index), "cuDevicePrimaryCtxRelease")

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self.check(self._lib.cuStreamCreate(ctypes.byref(handle), 0), "cuStreamCreate")
        return int(handle.value or 0)

    def destroy_stream(self, stream: int) -> None:
        self.check(self._lib.cuStreamDestroy_v2(ctypes.c_void_p(stream)), "cuStreamDestroy")

    def synchronize(self, stream: int) -> None:
        self.check(self._lib.cuStreamSynchronize(ctypes.c_void_p(stream)), "cuStreamSynchronize")

    def alloc(self, nbytes: int) -> int:
        pointer = ctypes.c_uint64()
        self.check(self._lib.cuMemAlloc_v2(ctypes.byref(pointer), max(1, nbytes)), f"cuMemAlloc({nbytes})")
        return int(pointer.value)

    def free(self, pointer: int) -> None:
        self.check(self._lib.cuMemFree_v2(pointer), "cuMemFree")

    def to_device(self, pointer: int, array: np.ndarray, stream: int) -> None:
        self.check(
            self._lib.cuMemcpyHtoDAsync_v2(pointer, array.ctypes.data, array.nbytes, ctypes.c_void_p(stream)),
            "cuMemcpyHtoDAsync",
        )

    def to_host(self, array: np.ndarray, pointer: int, stream: int) -> None:
        self.check(
            self._lib.cuMemcpyDtoHAsync_v2(array.ctypes.data, pointer, array.nbytes, ctypes.c_void_p(stream)),
            "cuMemcpyDtoHAsync",
        )


def gpu_identity(index: int = 0) -> GpuIdentity:
    return CudaDriver().identity(index)


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


@register_backend("trt")
class TensorRTBackend(Backend):
    label = "TensorRT"
    suffixes = (".engine", ".plan")
    devices = ("cuda",)
    default_device = "cuda"
    precisions = ("fp32", "fp16", "bf16", "int8")  # an engine runs as built: _open checks the sidecar
    options: ClassVar[Mapping[str, str]] = {}
    auto_rank = (AutoTier(0, "TensorRT engine", "cuda"),)
    _driver: CudaDriver
    _engine: trt.ICudaEngine
    _context: trt.IExecutionContext
    _stream: int
    _device_index: int
    _buffers: dict[str, tuple[int, int]]  # tensor name -> (device pointer, bytes)
    _sidecar: dict[str, Any]
    _runtime: trt.Runtime

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
        index = parse_device(device)
        version = require_tensorrt()
        driver = CudaDriver()
        check_compatible(sidecar, version, driver.identity(index))
        check_engine_file(path, sidecar)

        import tensorrt as trt

        driver.activate(index)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise I2IError(f"TensorRT could not deserialise {path.name}; rebuild with `{sidecar['rebuild']}`")
        context = engine.create_execution_context()
        if context is None:
            raise I2IError(f"TensorRT could not create an execution context for {path.name} (out of GPU memory?)")
        inputs, outputs = engine_specs(engine, sidecar["profiles"][0])
        if len(inputs) != 1 or len(outputs) != 1:
            raise I2IError(f"{path.name}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        backend = cls(path, card, inputs, outputs, f"cuda:{index}", built)
        backend._driver, backend._engine, backend._context = driver, engine, context
        backend._stream, backend._device_index, backend._buffers = driver.stream(), index, {}
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

    def _buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self._buffers.get(name, (0, 0))
        if size < nbytes:  # grow only: frame sizes rarely change within a stream
            if pointer:
                self._driver.free(pointer)
            pointer, size = self._driver.alloc(nbytes), nbytes
            self._buffers[name] = (pointer, size)
        return pointer

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        source = np.ascontiguousarray(batch)
        in_spec, out_spec = self.inputs[0], self.outputs[0]
        if not self._context.set_input_shape(in_spec.name, tuple(source.shape)):
            raise I2IError(f"{self.name}: TensorRT rejected input shape {tuple(source.shape)}")
        out_shape = _dims_tuple(self._context.get_tensor_shape(out_spec.name))
        result = np.empty(out_shape, dtype=np.dtype(out_spec.dtype))
        device_in = self._buffer(in_spec.name, source.nbytes)
        device_out = self._buffer(out_spec.name, result.nbytes)
        self._driver.to_device(device_in, source, self._stream)
        self._context.set_tensor_address(in_spec.name, device_in)
        self._context.set_tensor_address(out_spec.name, device_out)
        if not self._context.execute_async_v3(self._stream):
            raise I2IError(f"{self.name}: TensorRT execution failed")
        self._driver.to_host(result, device_out, self._stream)
        self._driver.synchronize(self._stream)
        return result

    def _close(self) -> None:
        self._driver.synchronize(self._stream)
        for pointer, _ in self._buffers.values():
            self._driver.free(pointer)
        self._buffers.clear()
        del self._context
        del self._engine
        self._driver.destroy_stream(self._stream)
        self._driver.release(self._device_index)
