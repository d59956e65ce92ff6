"""The TensorRT backend's own CUDA path on a real GPU, without TensorRT.

``gpu_check.py`` runs this first. TensorRT (and onnxruntime-gpu) are too large to bring to a GPU
box, but the part of the TensorRT backend most likely to be wrong is its CUDA code: page-locked
staging, the non-blocking stream, per-shape device buffers, uint8 frame I/O, CUDA-graph capture
and replay, per-call device selection. This check opens real ``.engine`` files through the
backend (``open_backend("trt", ...)``: sidecar, sha256, GPU identity and all) with a stand-in for
``tensorrt`` whose execution context does what the real one does to the stream: instead of
``execute_async_v3`` running an engine, it launches a device kernel (torch, on the bound device
addresses, on the backend's stream) that computes a known function of the input: ``255 - x`` for
uint8 frames (bitwise not), ``-x`` for float tensors. Every frame that comes back is compared with
that function bit for bit, for static engines (CUDA graph) and dynamic ones (a buffer set per
shape), from one thread and from two at once.

Nothing here times an engine or stands for TensorRT's numbers: it checks the data path.
The same code runs on the CPU with tests/cuda_double.py for cuda-python and a host stand-in for
the kernel (``gpu_check.py --dry-run``, tests/test_gpu_check.py).
"""

from __future__ import annotations

import ctypes
import enum
import hashlib
import importlib.machinery
import json
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STANDIN_VERSION = "10.13.0.35"  # what the stand-in reports; the sidecars it opens name it
ENGINE_MAGIC = b"i2i trt-cuda-check stand-in engine: "


# -- device kernels --------------------------------------------------------------------------------
def expected(x: np.ndarray) -> np.ndarray:
    """What the stand-in engine computes: 255 - x for uint8 (bitwise not), -x for floats."""
    return np.invert(x) if x.dtype == np.uint8 else np.negative(x)


class TorchKernel:
    """The engine's work as a torch kernel on the bound device addresses, on the given stream.

    Views of the device buffers are made once per address (from ``__cuda_array_interface__``,
    zero-copy) at the first, uncaptured enqueue, so the captured one only launches the kernel with
    ``out=`` (no allocation, no query: nothing a stream capture refuses)."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self._views: dict[tuple[int, tuple[int, ...], str], Any] = {}
        self._streams: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()

    def _view(self, address: int, shape: tuple[int, ...], dtype: np.dtype[Any], device: int) -> Any:
        key = (address, shape, dtype.str)
        with self._lock:
            if key not in self._views:

                class Buffer:
                    __cuda_array_interface__ = {
                        "shape": shape,
                        "typestr": dtype.str,
                        "data": (address, False),
                        "version": 2,
                    }

                self._views[key] = self.torch.as_tensor(Buffer(), device=self.torch.device("cuda", device))
            return self._views[key]

    def __call__(
        self, src: int, dst: int, shape: tuple[int, ...], dtype: np.dtype[Any], stream: int, device: int
    ) -> None:
        torch = self.torch
        x, y = self._view(src, shape, dtype, device), self._view(dst, shape, dtype, device)
        with self._lock:
            if (stream, device) not in self._streams:
                self._streams[stream, device] = torch.cuda.ExternalStream(stream, device=torch.device("cuda", device))
            external = self._streams[stream, device]
        with torch.cuda.stream(external):
            if dtype == np.uint8:
                torch.bitwise_not(x, out=y)
            else:
                torch.neg(x, out=y)

    def forget(self) -> None:
        """Drop the views (before their buffers are freed)."""
        with self._lock:
            self._views.clear()


class HostKernel:
    """The same function on the CPU, enqueued on a cuda-python double's stream (the dry run)."""

    def __init__(self, cuda: Any) -> None:
        self.cuda = cuda

    def __call__(
        self, src: int, dst: int, shape: tuple[int, ...], dtype: np.dtype[Any], stream: int, device: int
    ) -> None:
        n = int(np.prod(shape)) * dtype.itemsize

        def run() -> None:
            x = np.frombuffer(memoryview((ctypes.c_uint8 * n).from_address(src)), dtype=dtype)
            y = np.frombuffer(memoryview((ctypes.c_uint8 * n).from_address(dst)), dtype=dtype)
            y[:] = expected(x)

        self.cuda.enqueue(stream, run)

    def forget(self) -> None:
        pass


Kernel = TorchKernel | HostKernel


# -- the tensorrt stand-in (runtime side only) ------------------------------------------------------
def standin_tensorrt(kernel: Kernel, current_device: Callable[[], int]) -> types.ModuleType:
    """A ``tensorrt`` module with what the backend's load and run path calls: Logger, Runtime,
    ICudaEngine, IExecutionContext, TensorIOMode, DataType, nptype. The engine bytes say the
    I/O dtype and shape (-1: dynamic); execution checks it runs on the device it was loaded on."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    vars(trt)["__version__"] = STANDIN_VERSION

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1
        UINT8 = 5

    class TensorIOMode(enum.IntEnum):
        INPUT = 1
        OUTPUT = 2

    numpy_of = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.UINT8: np.uint8}

    class Logger:
        __slots__ = ("level",)
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class Dims:
        __slots__ = ("dims",)

        def __init__(self, dims: tuple[int, ...]) -> None:
            self.dims = dims

        def __len__(self) -> int:
            return len(self.dims)

        def __getitem__(self, i: int) -> int:
            return self.dims[i]

    class IExecutionContext:
        __slots__ = ("engine", "shape", "addresses", "device")
        shape: tuple[int, ...] | None
        addresses: dict[str, int]

        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.shape = None
            self.addresses = {}
            self.device = current_device()

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            fixed = self.engine.shape
            ok = name == "input" and len(shape) == len(fixed) and all(d in (-1, s) for d, s in zip(fixed, shape))
            if ok:
                self.shape = tuple(int(s) for s in shape)
            return ok

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self.shape if self.shape is not None else self.engine.shape)

        def set_tensor_address(self, name: str, address: int) -> bool:
            self.addresses[name] = int(address)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            if type(stream_handle) is not int or self.shape is None or current_device() != self.device:
                return False
            kernel(
                self.addresses["input"],
                self.addresses["output"],
                self.shape,
                np.dtype(numpy_of[self.engine.dtype]),
                stream_handle,
                self.device,
            )
            return True

    class ICudaEngine:
        __slots__ = ("shape", "dtype")

        def __init__(self, shape: tuple[int, ...], dtype: DataType) -> None:
            self.shape, self.dtype = shape, dtype

        @property
        def num_io_tensors(self) -> int:
            return 2

        def get_tensor_name(self, i: int) -> str:
            return ("input", "output")[i]

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self.shape)

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return TensorIOMode.INPUT if name == "input" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> DataType:
            return self.dtype

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

    class Runtime:
        __slots__ = ("logger",)

        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
            if not data.startswith(ENGINE_MAGIC):
                return None
            spec = json.loads(data[len(ENGINE_MAGIC) :])
            return ICudaEngine(tuple(spec["shape"]), DataType[spec["dtype"]])

    def nptype(kind: DataType) -> Any:
        return numpy_of[kind]

    members = dict(Builder=object, Logger=Logger, Runtime=Runtime, TensorIOMode=TensorIOMode, DataType=DataType)
    for name, value in {**members, "nptype": nptype}.items():
        setattr(trt, name, value)
    return trt


@contextmanager
def installed(module: types.ModuleType) -> Iterator[None]:
    """``module`` as ``sys.modules['tensorrt']`` for the block (a real TensorRT is put back after)."""
    before = sys.modules.get("tensorrt")
    sys.modules["tensorrt"] = module
    try:
        yield
    finally:
        if before is None:
            sys.modules.pop("tensorrt", None)
        else:
            sys.modules["tensorrt"] = before


class _Patches:
    """The two calls of pytest's monkeypatch that ``CudaDouble.install`` makes, undone by ``undo``."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, Any, Any]] = []

    def setitem(self, mapping: Any, key: Any, value: Any) -> None:
        self._undo.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def undo(self) -> None:
        for mapping, key, value in reversed(self._undo):
            if value is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = value
        self._undo.clear()


_MISSING = object()


@contextmanager
def cuda_double() -> Iterator[Any]:
    """tests/cuda_double.py as ``cuda.bindings`` for the block (the dry run's GPU)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from cuda_double import CudaDouble
    finally:
        sys.path.remove(str(ROOT / "tests"))
    double, patches = CudaDouble(), _Patches()
    double.install(patches)
    try:
        yield double
    finally:
        patches.undo()


# -- engines and their sidecars ------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "frame" (uint8 NHWC) or "tensor" (float32 NCHW)
    engine_shape: tuple[int, ...]  # -1: dynamic
    shapes: tuple[tuple[int, ...], ...]  # the batch shapes sent, in order
    graph: bool  # a static engine: replayed as one CUDA graph

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.uint8 if self.kind == "frame" else np.float32)

    def profile(self) -> tuple[list[int], list[int]]:
        if -1 not in self.engine_shape:
            return list(self.engine_shape), list(self.engine_shape)
        return [min(s[i] for s in self.shapes) for i in range(4)], [max(s[i] for s in self.shapes) for i in range(4)]


def cases(dry: bool) -> list[Case]:
    """Static and dynamic engines, uint8 frames and float tensors: toy sizes in a dry run."""
    frames: tuple[tuple[int, ...], ...]
    if dry:
        frames = ((1, 16, 24, 3), (2, 16, 24, 3), (1, 32, 48, 3))
        return [
            Case("frame-dynamic", "frame", (-1, -1, -1, 3), frames, False),
            Case("frame-static", "frame", (2, 16, 24, 3), ((2, 16, 24, 3),), True),
            Case("tensor-static", "tensor", (1, 3, 16, 16), ((1, 3, 16, 16),), True),
        ]
    frames = ((1, 360, 640, 3), (2, 360, 640, 3), (1, 720, 1280, 3), (1, 1088, 1920, 3))
    return [
        Case("frame-dynamic", "frame", (-1, -1, -1, 3), frames, False),
        Case("frame-static", "frame", (2, 720, 1280, 3), ((2, 720, 1280, 3),), True),
        Case("tensor-static", "tensor", (1, 3, 256, 256), ((1, 3, 256, 256),), True),
    ]


def write_engine(folder: Path, case: Case, gpu: Any) -> Path:
    """An engine file for the stand-in and its sidecar, as ``i2i-export --engine trt`` writes one."""
    from i2i.runtime.backends.tensorrt import SIDECAR_FORMAT, sidecar_path

    engine = folder / f"{case.name}.engine"
    data = ENGINE_MAGIC + json.dumps({"shape": list(case.engine_shape), "dtype": _trt_dtype(case)}).encode()
    engine.write_bytes(data)
    low, high = case.profile()
    io = {"kind": case.kind, "dtype": case.dtype.name, "channels": 3}
    sidecar = {
        "format": SIDECAR_FORMAT,
        "card": {"format": "i2i-card/2", "io": io, "size_multiple": 4, "precision": "fp32"},
        "engine": {"name": engine.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
        "source_onnx": {"name": f"{case.name}.onnx"},
        "tensorrt": STANDIN_VERSION,
        "gpu": gpu.as_json(),
        "profiles": [{"input": "input", "min": low, "opt": high, "max": high, "max_batch": high[0]}],
        "precision": "fp32",
    }
    sidecar_path(engine).write_text(json.dumps(sidecar))
    return engine


def _trt_dtype(case: Case) -> str:
    return "UINT8" if case.kind == "frame" else "FLOAT"


def _batch(shape: tuple[int, ...], dtype: np.dtype[Any], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.uniform(-1, 1, shape).astype(np.float32)


# -- the check ---------------------------------------------------------------------------------------
def _drive(backend: Any, case: Case, calls: int, seed: int) -> tuple[int, list[float]]:
    """``calls`` batches through ``backend`` cycling over the case's shapes, each compared bit for
    bit; (frames checked, seconds per call). Raises AssertionError on the first wrong frame."""
    checked, seconds = 0, []
    for i in range(calls):
        shape = case.shapes[i % len(case.shapes)]
        batch = _batch(shape, case.dtype, seed + i)
        started = time.perf_counter()
        out = backend(batch)
        seconds.append(time.perf_counter() - started)
        if out.dtype != case.dtype or out.shape != batch.shape or not np.array_equal(out, expected(batch)):
            wrong = int(np.count_nonzero(out != expected(batch))) if out.shape == batch.shape else -1
            raise AssertionError(
                f"{case.name}: call {i} shape {shape} came back {out.dtype} {out.shape}, {wrong} values wrong"
            )
        checked += shape[0]
    return checked, seconds


def _row(case: Case, what: str, **extra: Any) -> dict[str, Any]:
    return {"model": "trt-cuda-path", "height": case.shapes[0][1 if case.kind == "frame" else 2],
            "width": case.shapes[0][2 if case.kind == "frame" else 3], "batch": case.shapes[0][0],
            "precision": case.dtype.name, "engine": "trt backend", "what": f"{case.name}: {what}", **extra}  # fmt: skip


def run_check(folder: Path, kernel: Kernel, calls: int, dry: bool, device: int = 0) -> list[dict[str, Any]]:
    """Open each case's engine through the TensorRT backend on ``device`` and check its frames:
    alone, then two backends at once from two threads, then one opened here and called from a
    worker thread. One row per check; a failure is a row with ``failed`` (the rest still run)."""
    from i2i.runtime.backends import open_backend
    from i2i.runtime.backends.cuda import Cuda

    cuda = Cuda()
    gpu = cuda.identity(device)
    rows: list[dict[str, Any]] = []
    with installed(standin_tensorrt(kernel, cuda.current)):
        engines = {case.name: (case, write_engine(folder, case, gpu)) for case in cases(dry)}
        for case, engine in engines.values():
            rows.append(_alone(open_backend, case, engine, device, calls))
            kernel.forget()  # its buffers are freed: no view may outlive them
        rows.append(_two_threads(open_backend, list(engines.values()), device, calls))
        kernel.forget()
        case, engine = engines["frame-dynamic"]
        rows.append(_from_another_thread(open_backend, case, engine, device, calls))
        kernel.forget()
    return rows


def _alone(open_backend: Any, case: Case, engine: Path, device: int, calls: int) -> dict[str, Any]:
    try:
        with open_backend("trt", engine, device=f"cuda:{device}") as backend:
            if backend.use_graph != case.graph:
                raise AssertionError(f"{case.name}: CUDA graph {backend.use_graph}, expected {case.graph}")
            checked, seconds = _drive(backend, case, calls, seed=1)
            shapes = len(backend._buffers)  # buffer sets held: one per input shape seen
            if shapes != len(set(case.shapes)):
                raise AssertionError(f"{case.name}: {shapes} buffer sets for {len(set(case.shapes))} shapes")
            what = backend.describe()
    except Exception as exc:  # recorded, and the next check runs
        return _row(case, "one thread", failed=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    ms = np.asarray(seconds) * 1e3
    return _row(case, f"{what}; one thread", frames_checked=checked, buffer_sets=shapes,
                median_ms=float(np.median(ms)), bit_exact=True)  # fmt: skip


def _two_threads(open_backend: Any, engines: list[tuple[Case, Path]], device: int, calls: int) -> dict[str, Any]:
    """A static and a dynamic engine, each driven from its own thread at the same time."""
    (static, static_engine), (dynamic, dynamic_engine) = engines[1], engines[0]
    results: dict[str, Any] = {}

    def work(case: Case, backend: Any, seed: int) -> None:
        try:
            results[case.name] = _drive(backend, case, calls, seed)[0]
        except BaseException as exc:
            results[case.name] = exc

    try:
        with (
            open_backend("trt", static_engine, device=f"cuda:{device}") as first,
            open_backend("trt", dynamic_engine, device=f"cuda:{device}") as second,
        ):
            threads = [
                threading.Thread(target=work, args=(static, first, 10)),
                threading.Thread(target=work, args=(dynamic, second, 20)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        errors = [r for r in results.values() if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
    except Exception as exc:
        return _row(dynamic, "two threads", failed=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    return _row(dynamic, f"two threads: {static.name} and {dynamic.name} at once",
                frames_checked=sum(results.values()), bit_exact=True)  # fmt: skip


def _from_another_thread(open_backend: Any, case: Case, engine: Path, device: int, calls: int) -> dict[str, Any]:
    result: list[Any] = []
    try:
        with open_backend("trt", engine, device=f"cuda:{device}") as backend:

            def work() -> None:
                try:
                    result.append(_drive(backend, case, calls, seed=30)[0])
                except BaseException as exc:
                    result.append(exc)

            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        if isinstance(result[0], BaseException):
            raise result[0]
    except Exception as exc:
        return _row(case, "opened here, called from a worker thread", failed=f"{type(exc).__name__}: {exc}"[:300])
    return _row(case, "opened here, called from a worker thread", frames_checked=result[0], bit_exact=True)
