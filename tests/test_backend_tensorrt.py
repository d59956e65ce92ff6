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
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cuda_double import GPU, CudaDouble

from i2i.common import file_sha256
from i2i.errors import I2IError

VERSION = "10.13.0"


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
        __slots__ = ("shape", "addresses", "executed", "device")

        def __init__(self, device: int) -> None:
            self.shape: tuple[int, ...] | None = None
            self.addresses: dict[str, int] = {}
            self.executed = 0
            self.device = device  # TensorRT runs on the context that was current at deserialisation

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
            assert type(stream_handle) is int and stream_handle in cuda.stream_device
            if cuda.current != self.device or cuda.stream_device[stream_handle] != self.device:
                return False  # TensorRT: "invalid resource handle" on another device's context
            shape, src, dst = self.shape, self.addresses["image"], self.addresses["output"]
            assert shape is not None
            self.executed += 1

            def run() -> None:
                n = int(np.prod(shape)) * np.dtype(dtype).itemsize
                x = np.frombuffer((ctypes.c_uint8 * n).from_address(src), dtype=dtype)
                y = np.frombuffer((ctypes.c_uint8 * n).from_address(dst), dtype=dtype)
                y[:] = 255 - x if np.dtype(dtype) == np.uint8 else -x

            cuda.enqueue(stream_handle, run)
            return True

    class ICudaEngine:
        __slots__ = ("context",)
        shape = engine_shape
        num_io_tensors = 2

        def __init__(self) -> None:
            self.context = IExecutionContext(cuda.current)

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
    def install(dtype: Any, shape: tuple[int, ...], devices: int = 1, legacy: bool = False) -> CudaDouble:
        cuda = CudaDouble(devices, legacy)
        cuda.install(monkeypatch)
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


def test_each_call_selects_the_engines_gpu(doubles: Any, tmp_path: Path) -> None:
    """Defect 5: the current device is per thread and was set only at open. Two backends on two GPUs
    in one thread, and a cuda:1 backend called from a new thread (which starts on device 0), ran on
    whichever device was current: the double fails such calls as CUDA does (invalid resource handle)."""
    from i2i.runtime.backends import open_backend

    cuda = doubles(np.uint8, (-1, -1, -1, 3), devices=2)
    engine = write_engine(tmp_path, "frame", (-1, -1, -1, 3), ([1, 8, 8, 3], [2, 64, 64, 3]))
    frames = np.random.default_rng(2).integers(0, 256, (1, 16, 24, 3), dtype=np.uint8)
    with open_backend("trt", engine, device="cuda:0") as first, open_backend("trt", engine, device="cuda:1") as second:
        assert cuda.current == 0  # opening gives the thread its device back
        for backend in (first, second, first, second):
            assert np.array_equal(backend(frames), 255 - frames)
            assert cuda.current == 0
        cuda.cudaSetDevice(1)  # another library in this thread moved to GPU 1
        assert np.array_equal(first(frames), 255 - frames) and cuda.current == 1
        cuda.cudaSetDevice(0)
        results: list[np.ndarray] = []
        errors: list[BaseException] = []

        def call() -> None:
            try:
                results.append(second(frames))
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=call)
        worker.start()
        worker.join()
        assert not errors and np.array_equal(results[0], 255 - frames)
    assert not cuda.memory and not cuda.stream_device  # closed on the right device, everything freed


@pytest.mark.parametrize("legacy", [False, True])
def test_stream_handle_for_tensorrt(doubles: Any, tmp_path: Path, legacy: bool) -> None:
    """``int(stream)`` is deprecated since cuda-bindings 12.9.1: the handle comes from
    ``cuda.bindings.utils.get_cuda_native_handle`` (the double's streams have no ``__int__`` then),
    and from ``int()`` on older bindings without ``utils``."""
    from i2i.runtime.backends import open_backend

    doubles(np.float32, (1, 3, 8, 8), legacy=legacy)
    engine = write_engine(tmp_path, "tensor", (1, 3, 8, 8), ([1, 3, 8, 8], [1, 3, 8, 8]))
    batch = np.linspace(-1, 1, 192, dtype=np.float32).reshape(1, 3, 8, 8)
    with open_backend("trt", engine, cuda_graph="false") as backend:
        assert np.array_equal(backend(batch), -batch)


def test_a_failed_capture_raises_its_own_error_and_ends_the_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 6: ``cudaStreamEndCapture`` in a ``finally`` replaced the error of the captured work
    with its own (a capture invalidated by that error fails to end) and leaked the graph."""
    from i2i.runtime.backends.cuda import Cuda

    double = CudaDouble()
    double.install(monkeypatch)
    cuda = Cuda()
    stream = cuda.stream()

    def work() -> None:
        raise I2IError("TensorRT execution failed")

    with pytest.raises(I2IError, match="TensorRT execution failed"):
        cuda.capture(stream, work)
    assert not double.capturing and double.calls.count("cudaGraphDestroy") == 1  # ended, graph freed
    double.fail_end_capture = True
    with pytest.raises(I2IError, match="TensorRT execution failed") as info:
        cuda.capture(stream, work)
    assert "cudaStreamEndCapture then returned" in " ".join(getattr(info.value, "__notes__", []))
    assert not double.capturing
    with pytest.raises(I2IError, match="CUDA cudaStreamEndCapture failed: operation failed due to a previous"):
        cuda.capture(stream, lambda: None)  # the work succeeded: the end's own failure is the error
