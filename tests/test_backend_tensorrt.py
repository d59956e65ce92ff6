"""The TensorRT backend's device path, run on the CPU through two strict doubles: cuda-python's
runtime (``cuda.bindings.runtime``: memory is host memory, copies are memmoves, stream capture
records the work and a graph launch replays it) and TensorRT's runtime classes (an engine that
inverts its input). Both refuse attributes they do not define, as the real bindings do.

What it pins down: copies go through page-locked staging buffers on a non-blocking stream, buffers
are allocated once per input shape, uint8 frames reach the device as uint8, a static-shape engine
is replayed as one CUDA graph, and a fixed-batch profile on a dynamic ONNX is a fixed batch that
the pipeline pads (defect 8)."""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from i2i.common import file_sha256
from i2i.errors import I2IError

GPU = ("NVIDIA H200", "9.0")
VERSION = "10.13.0"


# -- cuda.bindings.runtime ------------------------------------------------------------------------
class Status(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2


class CudaDouble:
    """Just the calls the backend makes, with cuda-python's (status, value) return convention."""

    cudaStreamNonBlocking = 1

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}  # address -> backing array (keeps it alive)
        self.pinned: set[int] = set()
        self.calls: list[str] = []
        self.capturing: list[Any] | None = None
        self.stream_flags: list[int] = []
        self.launched = 0

    # Names and signatures are cuda-python's (cuda.bindings.runtime), which the backend calls.
    class cudaError_t:
        cudaSuccess = Status.cudaSuccess

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStreamCaptureMode(enum.IntEnum):
        cudaStreamCaptureModeThreadLocal = 1

    class Stream:
        __slots__ = ("handle",)

        def __init__(self, handle: int) -> None:
            self.handle = handle

        def __int__(self) -> int:
            return self.handle

    def _alloc(self, nbytes: int) -> int:
        block = np.zeros(nbytes, dtype=np.uint8)
        self.memory[block.ctypes.data] = block
        return int(block.ctypes.data)

    def cudaGetErrorString(self, status: Status) -> tuple[Status, bytes]:
        return Status.cudaSuccess, b"out of memory"

    def cudaGetDeviceProperties(self, index: int) -> tuple[Status, Any]:
        return Status.cudaSuccess, types.SimpleNamespace(name=GPU[0].encode() + b"\0\0", major=9, minor=0)

    def cudaSetDevice(self, index: int) -> tuple[Status]:
        return (Status.cudaSuccess,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[Status, Any]:
        self.stream_flags.append(flags)
        return Status.cudaSuccess, self.Stream(7)

    def cudaStreamDestroy(self, stream: Any) -> tuple[Status]:
        return (Status.cudaSuccess,)

    def cudaStreamSynchronize(self, stream: Any) -> tuple[Status]:
        return (Status.cudaSuccess,)

    def cudaMalloc(self, nbytes: int) -> tuple[Status, int]:
        self.calls.append("cudaMalloc")
        return Status.cudaSuccess, self._alloc(nbytes)

    def cudaMallocHost(self, nbytes: int) -> tuple[Status, int]:
        self.calls.append("cudaMallocHost")
        address = self._alloc(nbytes)
        self.pinned.add(address)
        return Status.cudaSuccess, address

    def cudaFree(self, address: int) -> tuple[Status]:
        self.memory.pop(address)
        return (Status.cudaSuccess,)

    def cudaFreeHost(self, address: int) -> tuple[Status]:
        self.pinned.remove(address)
        self.memory.pop(address)
        return (Status.cudaSuccess,)

    def enqueue(self, work: Any) -> None:
        """Run now, or record into the graph being captured."""
        if self.capturing is not None:
            self.capturing.append(work)
        else:
            work()

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple[Status]:
        host = src if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else dst
        assert host in self.pinned, "copies must go through page-locked staging memory"
        assert int(stream) == 7
        self.calls.append(f"memcpy {kind.name}")
        self.enqueue(lambda: ctypes.memmove(dst, src, count))
        return (Status.cudaSuccess,)

    def cudaStreamBeginCapture(self, stream: Any, mode: Any) -> tuple[Status]:
        self.capturing = []
        return (Status.cudaSuccess,)

    def cudaStreamEndCapture(self, stream: Any) -> tuple[Status, list[Any]]:
        graph, self.capturing = self.capturing, None
        return Status.cudaSuccess, graph or []

    def cudaGraphInstantiate(self, graph: list[Any], flags: int) -> tuple[Status, list[Any]]:
        return Status.cudaSuccess, list(graph)

    def cudaGraphDestroy(self, graph: Any) -> tuple[Status]:
        return (Status.cudaSuccess,)

    def cudaGraphExecDestroy(self, graph: Any) -> tuple[Status]:
        return (Status.cudaSuccess,)

    def cudaGraphLaunch(self, graph: list[Any], stream: Any) -> tuple[Status]:
        self.launched += 1
        for work in graph:
            work()
        return (Status.cudaSuccess,)


# -- tensorrt (runtime side) ------------------------------------------------------------------------
def tensorrt_double(cuda: CudaDouble, dtype: np.dtype[Any], engine_shape: tuple[int, ...]) -> types.ModuleType:
    """An engine with one input and one output of ``shape`` (-1 = dynamic) that computes 255 - x
    (uint8) or -x (float), on the double's memory."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = VERSION

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1
        UINT8 = 5

    class TensorIOMode(enum.IntEnum):
        INPUT = 1
        OUTPUT = 2

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

    trt_dtype = {np.dtype(np.uint8): DataType.UINT8, np.dtype(np.float32): DataType.FLOAT}[np.dtype(dtype)]

    class IExecutionContext:
        __slots__ = ("shape", "addresses", "executed")

        def __init__(self) -> None:
            self.shape: tuple[int, ...] | None = None
            self.addresses: dict[str, int] = {}
            self.executed = 0

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            assert name == "image"
            ok = len(shape) == len(ICudaEngine.shape) and all(d in (-1, s) for d, s in zip(ICudaEngine.shape, shape))
            self.shape = tuple(shape) if ok else self.shape
            return ok

        def get_tensor_shape(self, name: str) -> Dims:
            assert self.shape is not None
            return Dims(self.shape)

        def set_tensor_address(self, name: str, address: int) -> bool:
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            assert isinstance(stream_handle, int) and stream_handle == 7
            shape, src, dst = self.shape, self.addresses["image"], self.addresses["output"]
            assert shape is not None
            self.executed += 1

            def run() -> None:
                n = int(np.prod(shape)) * np.dtype(dtype).itemsize
                x = np.frombuffer((ctypes.c_uint8 * n).from_address(src), dtype=dtype)
                y = np.frombuffer((ctypes.c_uint8 * n).from_address(dst), dtype=dtype)
                y[:] = 255 - x if np.dtype(dtype) == np.uint8 else -x

            cuda.enqueue(run)
            return True

    class ICudaEngine:
        __slots__ = ("context",)
        shape = engine_shape
        num_io_tensors = 2

        def __init__(self) -> None:
            self.context = IExecutionContext()

        def get_tensor_name(self, i: int) -> str:
            return ("image", "output")[i]

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self.shape)

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return TensorIOMode.INPUT if name == "image" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> DataType:
            return trt_dtype

        def create_execution_context(self) -> IExecutionContext:
            return self.context

    class Runtime:
        __slots__ = ("logger", "engine")

        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine:
            assert data == b"engine bytes"
            self.engine = ICudaEngine()
            return self.engine

    def nptype(kind: DataType) -> Any:
        return {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.UINT8: np.uint8}[kind]

    for name, value in dict(
        Builder=object, Logger=Logger, Runtime=Runtime, TensorIOMode=TensorIOMode, DataType=DataType, nptype=nptype
    ).items():
        setattr(trt, name, value)
    return trt


def write_engine(tmp_path: Path, kind: str, shape: tuple[int, ...], profile: tuple[list[int], list[int]]) -> Path:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine bytes")
    io = {"kind": kind, "dtype": "uint8" if kind == "frame" else "float32", "channels": 3}
    sidecar = {
        "format": "i2i-engine/1",
        "card": {"format": "i2i-card/2", "io": io, "size_multiple": 4, "precision": "fp16"},
        "engine": {"name": engine.name, "sha256": file_sha256(engine)},
        "tensorrt": VERSION,
        "gpu": {"name": GPU[0], "compute_capability": GPU[1]},
        "profiles": [{"input": "image", "min": profile[0], "opt": profile[1], "max": profile[1]}],
        "precision": "fp16",
        "rebuild": "i2i-export model.onnx --engine trt",
    }
    (tmp_path / "model.engine.json").write_text(json.dumps(sidecar))
    return engine


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> Any:
    cuda = CudaDouble()
    bindings = types.ModuleType("cuda.bindings")
    setattr(bindings, "runtime", cuda)  # noqa: B010 - a module attribute mypy cannot see
    package = types.ModuleType("cuda")
    setattr(package, "bindings", bindings)  # noqa: B010
    monkeypatch.setitem(sys.modules, "cuda", package)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)

    def install(dtype: Any, shape: tuple[int, ...]) -> CudaDouble:
        monkeypatch.setitem(sys.modules, "tensorrt", tensorrt_double(cuda, np.dtype(dtype), shape))
        return cuda

    return install


def test_frames_stay_uint8_and_buffers_are_allocated_once_per_shape(doubles: Any, tmp_path: Path) -> None:
    from i2i.runtime.backends import open_backend

    cuda = doubles(np.uint8, (-1, -1, -1, 3))
    engine = write_engine(tmp_path, "frame", (-1, -1, -1, 3), ([1, 8, 8, 3], [2, 64, 64, 3]))
    frames = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    with open_backend("trt", engine) as backend:
        assert backend.device == "cuda:0" and backend.precision == "fp16" and not backend.use_graph
        assert cuda.stream_flags == [cuda.cudaStreamNonBlocking]
        for scale in (1, 2, 3):
            batch = (frames // scale).astype(np.uint8)
            out = backend(batch)
            assert out.dtype == np.uint8 and np.array_equal(out, 255 - batch)
        assert cuda.calls.count("cudaMalloc") == 2 and cuda.calls.count("cudaMallocHost") == 2  # one shape
        backend(frames[:1])  # a new shape: its own buffers
        assert cuda.calls.count("cudaMalloc") == 4
    assert not cuda.memory  # everything freed on close
    with pytest.raises(I2IError, match="built for fp16"):
        open_backend("trt", engine, precision="fp32")
    with pytest.raises(I2IError, match="cuda_graph=true needs a static-shape engine"):
        open_backend("trt", engine, cuda_graph="true")


def test_static_engine_replays_one_cuda_graph(doubles: Any, tmp_path: Path) -> None:
    from i2i.runtime.backends import open_backend

    cuda = doubles(np.float32, (2, 3, 16, 16))
    engine = write_engine(tmp_path, "tensor", (2, 3, 16, 16), ([2, 3, 16, 16], [2, 3, 16, 16]))
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    with open_backend("trt", engine) as backend:
        assert backend.use_graph and "CUDA graph" in backend.describe()
        np.testing.assert_array_equal(backend(batch), -batch)
        context = backend._context
        executed = context.executed  # the warm-up enqueue and the captured one
        for k in (2.0, 3.0):
            np.testing.assert_array_equal(backend(batch / k), -batch / k)  # new data through the graph
        assert context.executed == executed and cuda.launched == 3  # replays, no new enqueue


def test_fixed_batch_profile_on_a_dynamic_onnx_is_a_fixed_batch(doubles: Any, tmp_path: Path) -> None:
    """Defect 8: the engine reports batch -1 (dynamic ONNX) but its profile is min = max = 2; the
    backend must say batch 2, so the pipeline pads the last, short batch instead of failing."""
    from i2i.runtime.backends import open_backend
    from i2i.runtime.pipeline import run_pipeline
    from i2i.runtime.sinks import NullSink

    sys.path.insert(0, str(Path(__file__).parent))
    from test_runtime_pipeline import ListSource

    doubles(np.uint8, (-1, -1, -1, 3))
    engine = write_engine(tmp_path, "frame", (-1, -1, -1, 3), ([2, 8, 8, 3], [2, 64, 64, 3]))
    with open_backend("trt", engine) as backend:
        assert backend.inputs[0].shape[0] == 2 and backend.outputs[0].shape[0] == 2
        frames = [np.full((16, 24, 3), v, np.uint8) for v in (10, 20, 30)]  # 3 frames, batches of 2
        stats = run_pipeline(ListSource(frames), backend, NullSink(), batch_size=2)
    assert stats.frames == 3
