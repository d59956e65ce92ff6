"""A cuda-python test double: the calls of ``cuda.bindings.runtime`` the TensorRT backend makes, on
the CPU, with cuda-python's ``(status, *values)`` return convention.

Memory is host memory (device and page-locked allocations are numpy blocks at real addresses),
copies are memmoves, a stream runs its work at once (or records it while it is being captured)
and a graph launch replays what was captured. It keeps what the real runtime keeps per device and
per thread, so device selection bugs show here as they would on a machine with two GPUs:

* the current device is per thread (``cudaSetDevice``/``cudaGetDevice``; a new thread starts on 0);
* streams and device memory belong to the device current when they were made; a copy or a graph
  launch on a stream of another device than the current one fails (cudaErrorInvalidResourceHandle),
  and so does a copy whose device pointer lives on another device than its stream;
* copies must come from page-locked memory (an assertion: the backend's design, not a CUDA rule);
* streams are objects whose native handle is read with ``utils.get_cuda_native_handle`` (cuda-bindings
  12.9.1+); ``legacy=True`` gives the older objects, read with ``int()`` and without ``utils``.
"""

from __future__ import annotations

import ctypes
import enum
import sys
import threading
import types
from typing import Any

import numpy as np

GPU = ("NVIDIA H200", "9.0")


class Status(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevice = 101
    cudaErrorStreamCaptureInvalidated = 901
    cudaErrorInvalidResourceHandle = 400


_MESSAGES = {
    Status.cudaErrorMemoryAllocation: b"out of memory",
    Status.cudaErrorInvalidDevice: b"invalid device ordinal",
    Status.cudaErrorStreamCaptureInvalidated: b"operation failed due to a previous error during capture",
    Status.cudaErrorInvalidResourceHandle: b"invalid resource handle",
}


class Stream:
    """cudaStream_t of cuda-bindings 12.9.1+: its native handle is read with ``utils.get_cuda_native_handle``."""

    __slots__ = ("_handle",)

    def __init__(self, handle: int) -> None:
        self._handle = handle


class LegacyStream(Stream):
    """cudaStream_t of older cuda-python, read with ``int()``."""

    __slots__ = ()

    def __int__(self) -> int:
        return self._handle


class CudaDouble:
    """Just the calls the backend makes; ``devices`` GPUs of the same model."""

    cudaStreamNonBlocking = 1

    class cudaError_t:
        cudaSuccess = Status.cudaSuccess

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStreamCaptureMode(enum.IntEnum):
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self, devices: int = 1, legacy: bool = False) -> None:
        self.devices = devices
        self.legacy = legacy
        self.memory: dict[int, np.ndarray] = {}  # address -> backing array (keeps it alive)
        self.owner: dict[int, int] = {}  # device address -> device
        self.pinned: set[int] = set()
        self.calls: list[str] = []
        self.capturing: dict[int, list[Any]] = {}  # stream handle -> work recorded
        self.stream_flags: list[int] = []
        self.stream_device: dict[int, int] = {}
        self.launched = 0
        self.fail_end_capture = False
        self._local = threading.local()
        self._next_stream = 7
        self._lock = threading.Lock()

        self.Stream: type[Stream] = LegacyStream if legacy else Stream

    # -- cuda.bindings.utils --------------------------------------------------------------------
    @staticmethod
    def get_cuda_native_handle(obj: Any) -> int:
        return int(obj._handle)

    def install(self, monkeypatch: Any) -> None:
        """Put the double where ``from cuda.bindings import runtime`` (and ``utils``, unless legacy)
        finds it; undone by ``monkeypatch``. Plain namespaces: ``from X import y`` only needs the
        attribute on ``sys.modules['X']``."""
        utils = None if self.legacy else types.SimpleNamespace(get_cuda_native_handle=self.get_cuda_native_handle)
        bindings = types.SimpleNamespace(runtime=self, **({"utils": utils} if utils else {}))
        monkeypatch.setitem(sys.modules, "cuda", types.SimpleNamespace(bindings=bindings))
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", self)
        if utils is None:
            monkeypatch.setitem(sys.modules, "cuda.bindings.utils", None)  # import raises ImportError
        else:
            monkeypatch.setitem(sys.modules, "cuda.bindings.utils", utils)

    # -- devices ----------------------------------------------------------------------------------
    @property
    def current(self) -> int:
        return int(getattr(self._local, "device", 0))

    def _handle_of(self, stream: Any) -> int:
        return int(stream._handle)

    def _on_current(self, stream: Any) -> bool:
        return self.stream_device[self._handle_of(stream)] == self.current

    def cudaGetErrorString(self, status: Status) -> tuple[Status, bytes]:
        return Status.cudaSuccess, _MESSAGES.get(Status(status), b"unknown error")

    def cudaGetDeviceProperties(self, index: int) -> tuple[Status, Any]:
        if not 0 <= index < self.devices:
            return Status.cudaErrorInvalidDevice, None
        return Status.cudaSuccess, types.SimpleNamespace(name=GPU[0].encode() + b"\0\0", major=9, minor=0)

    def cudaSetDevice(self, index: int) -> tuple[Status]:
        if not 0 <= index < self.devices:
            return (Status.cudaErrorInvalidDevice,)
        self.calls.append(f"cudaSetDevice({index})")
        self._local.device = index
        return (Status.cudaSuccess,)

    def cudaGetDevice(self) -> tuple[Status, int]:
        return Status.cudaSuccess, self.current

    # -- streams and memory -------------------------------------------------------------------------
    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[Status, Any]:
        with self._lock:
            handle, self._next_stream = self._next_stream, self._next_stream + 1
        self.stream_flags.append(flags)
        self.stream_device[handle] = self.current
        return Status.cudaSuccess, self.Stream(handle)

    def cudaStreamDestroy(self, stream: Any) -> tuple[Status]:
        self.stream_device.pop(self._handle_of(stream))
        return (Status.cudaSuccess,)

    def cudaStreamSynchronize(self, stream: Any) -> tuple[Status]:
        return (Status.cudaSuccess,)

    def _alloc(self, nbytes: int) -> int:
        block = np.zeros(nbytes, dtype=np.uint8)
        with self._lock:
            self.memory[block.ctypes.data] = block
        return int(block.ctypes.data)

    def cudaMalloc(self, nbytes: int) -> tuple[Status, int]:
        self.calls.append("cudaMalloc")
        address = self._alloc(nbytes)
        self.owner[address] = self.current
        return Status.cudaSuccess, address

    def cudaMallocHost(self, nbytes: int) -> tuple[Status, int]:
        self.calls.append("cudaMallocHost")
        address = self._alloc(nbytes)
        self.pinned.add(address)
        return Status.cudaSuccess, address

    def cudaFree(self, address: int) -> tuple[Status]:
        self.owner.pop(address)
        with self._lock:
            self.memory.pop(address)
        return (Status.cudaSuccess,)

    def cudaFreeHost(self, address: int) -> tuple[Status]:
        self.pinned.remove(address)
        with self._lock:
            self.memory.pop(address)
        return (Status.cudaSuccess,)

    def enqueue(self, stream_handle: int, work: Any) -> None:
        """Run now, or record into the graph being captured on that stream."""
        recording = self.capturing.get(stream_handle)
        if recording is not None:
            recording.append(work)
        else:
            work()

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple[Status]:
        to_device = kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice
        host, device = (src, dst) if to_device else (dst, src)
        assert host in self.pinned, "copies must go through page-locked staging memory"
        handle = self._handle_of(stream)
        if not self._on_current(stream) or self.owner.get(device) != self.stream_device[handle]:
            return (Status.cudaErrorInvalidResourceHandle,)
        self.calls.append(f"memcpy {kind.name}")
        self.enqueue(handle, lambda: ctypes.memmove(dst, src, count))
        return (Status.cudaSuccess,)

    # -- graphs -----------------------------------------------------------------------------------
    def cudaStreamBeginCapture(self, stream: Any, mode: Any) -> tuple[Status]:
        self.capturing[self._handle_of(stream)] = []
        return (Status.cudaSuccess,)

    def cudaStreamEndCapture(self, stream: Any) -> tuple[Status, list[Any] | None]:
        graph = self.capturing.pop(self._handle_of(stream))
        if self.fail_end_capture:
            return Status.cudaErrorStreamCaptureInvalidated, None
        return Status.cudaSuccess, graph

    def cudaGraphInstantiate(self, graph: list[Any], flags: int) -> tuple[Status, list[Any]]:
        return Status.cudaSuccess, list(graph)

    def cudaGraphDestroy(self, graph: Any) -> tuple[Status]:
        self.calls.append("cudaGraphDestroy")
        return (Status.cudaSuccess,)

    def cudaGraphExecDestroy(self, graph: Any) -> tuple[Status]:
        return (Status.cudaSuccess,)

    def cudaGraphLaunch(self, graph: list[Any], stream: Any) -> tuple[Status]:
        if not self._on_current(stream):
            return (Status.cudaErrorInvalidResourceHandle,)
        self.launched += 1
        for work in graph:
            work()
        return (Status.cudaSuccess,)
