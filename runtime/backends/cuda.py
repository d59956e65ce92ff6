"""The CUDA runtime calls of the TensorRT backend and builder, through NVIDIA's cuda-python
(``cuda.bindings.runtime``, in the ``trt`` extra): device identity and selection, a non-blocking
stream, device and page-locked host memory, asynchronous copies and stream capture into CUDA graphs.

Every call's status is checked; a failure is one line naming the call. Importable without
cuda-python: ``cuda.bindings`` is imported when a ``Cuda`` is made.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from i2i.errors import I2IError, MissingDependencyError


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


def _native_handle_getter() -> Callable[[Any], int]:
    """``cuda.bindings.utils.get_cuda_native_handle`` (cuda-bindings >= 12.9.1, where ``int(obj)`` is
    deprecated), else ``int`` (older releases, whose objects convert with ``__int__``)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int
    return lambda obj: int(get_cuda_native_handle(obj))


class Cuda:
    """The CUDA runtime calls, with cuda-python's ``(status, *values)`` convention checked."""

    def __init__(self, runtime: Any = None, native_handle: Callable[[Any], int] | None = None) -> None:
        self.rt = _cudart() if runtime is None else runtime
        self._handle = native_handle or (_native_handle_getter() if runtime is None else int)

    def check(self, what: str, result: Any) -> Any:
        """cuda-python returns (status, *values): raise on a bad status, return the value(s)."""
        status, *values = result if isinstance(result, tuple) else (result,)
        if status != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(status)
            detail = text.decode() if isinstance(text, bytes) else str(text or status)
            raise I2IError(f"CUDA {what} failed: {detail}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def handle(self, obj: Any) -> int:
        """The native handle of a cuda-python object (a stream: what TensorRT's ``execute_async_v3`` takes)."""
        return self._handle(obj)

    def identity(self, index: int = 0) -> GpuIdentity:
        props = self.check(f"cudaGetDeviceProperties({index})", self.rt.cudaGetDeviceProperties(index))
        name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
        return GpuIdentity(name, f"{props.major}.{props.minor}", index)

    def activate(self, index: int) -> None:
        """Make the device current in this thread (its primary context: the one TensorRT and the
        runtime share). The current device is per thread."""
        self.check(f"cudaSetDevice({index})", self.rt.cudaSetDevice(index))

    def current(self) -> int:
        return int(self.check("cudaGetDevice", self.rt.cudaGetDevice()))

    @contextmanager
    def on_device(self, index: int) -> Iterator[None]:
        """Run the block with device ``index`` current in this thread, and give the thread back the
        device it had (other libraries in the same thread, torch or OpenCV, keep theirs)."""
        before = self.current()
        if before != index:
            self.activate(index)
        try:
            yield
        finally:
            if before != index:
                self.activate(before)

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

    def capture(self, stream: Any, work: Callable[[], Any]) -> Any:
        """Run ``work()`` under stream capture and return the instantiated graph.

        The capture is always ended (a stream left capturing refuses all later work) and the graph
        it returns always destroyed. When ``work`` fails, its error is the one raised: a failing
        ``cudaStreamEndCapture`` after it (the usual consequence, the capture being invalidated)
        is only added as a note."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check("cudaStreamBeginCapture", self.rt.cudaStreamBeginCapture(stream, mode))
        try:
            work()
        except BaseException as exc:
            status, *graph = self.rt.cudaStreamEndCapture(stream)
            if status == self.rt.cudaError_t.cudaSuccess and graph and graph[0] is not None:
                self.rt.cudaGraphDestroy(graph[0])
            elif status != self.rt.cudaError_t.cudaSuccess:
                exc.add_note(f"(cudaStreamEndCapture then returned {status})")
            raise
        graph = self.check("cudaStreamEndCapture", self.rt.cudaStreamEndCapture(stream))
        try:
            return self.check("cudaGraphInstantiate", self.rt.cudaGraphInstantiate(graph, 0))
        finally:
            self.check("cudaGraphDestroy", self.rt.cudaGraphDestroy(graph))

    def launch(self, graph: Any, stream: Any) -> None:
        self.check("cudaGraphLaunch", self.rt.cudaGraphLaunch(graph, stream))

    def destroy_graph(self, graph: Any) -> None:
        self.check("cudaGraphExecDestroy", self.rt.cudaGraphExecDestroy(graph))


def gpu_identity(index: int = 0) -> GpuIdentity:
    return Cuda().identity(index)
