"""A TensorRT test double: the part of TensorRT's Python API that ``i2i.export.tensorrt`` uses.

It behaves like the real pybind11 bindings where the export side has gone wrong before:

* every class refuses attributes it does not define (``__slots__``), as pybind11 classes do;
  Python subclasses (the progress monitor) get a ``__dict__``, as they do with pybind11;
* method names and parameters follow ``tensorrt-stubs`` (10.13), called as TensorRT's docs call them;
* two flavours: ``"10"`` (10.13) and ``"11"`` (11.4). The 11 flavour lacks every member TensorRT 11
  removed (``REMOVED_IN_11``, taken from the bindings' sources, 10.16 -> 11.1), so code that
  touches weak typing fails under it exactly as it would on a TensorRT 11 machine;
* the ONNX parser applies onnx-tensorrt's documented limits that i2i graphs meet (uint8 only as
  network I/O through a Cast; Q/DQ int8 with zero point 0), and the network keeps only a weak
  reference to its parser: a build after the parser was dropped fails (in TensorRT it reads freed
  weights);
* the progress monitor is driven as TensorRT's trampoline drives it: an exception raised in a
  callback is printed and swallowed, and ``step_complete`` then counts as False (cancel); between
  callbacks the build is "in C" (the callbacks are called from libc's qsort), so a signal's Python
  handler runs inside a callback as it does under the real bindings (``Builder.step_seconds``
  makes a build last long enough to be signalled).

Nothing here computes an engine: ``build_serialized_network`` returns bytes that describe the
build (flavour, flags, profile), never a result that could pass for TensorRT's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import errno
import importlib.machinery
import json
import os
import signal
import sys
import threading
import time
import types
import weakref
from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import TensorProto

VERSIONS = {"10": "10.13.0.35", "11": "11.4.0.106"}

# Members TensorRT 11 removed from the classes i2i's builder touches (python/src/infer/*.cpp,
# v10.16 -> v11.1), plus the calibrator classes.
REMOVED_IN_11: dict[str, tuple[str, ...]] = {
    "BuilderFlag": (
        "FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
        "PREFER_PRECISION_CONSTRAINTS", "REJECT_EMPTY_ALGORITHMS", "WEIGHTLESS",
    ),
    "NetworkDefinitionCreationFlag": ("EXPLICIT_BATCH",),
    "IBuilderConfig": (
        "int8_calibrator", "set_calibration_profile", "get_calibration_profile", "algorithm_selector",
        "quantization_flags", "set_quantization_flag", "clear_quantization_flag", "get_quantization_flag",
    ),
    "Builder": ("platform_has_fast_fp16", "platform_has_fast_int8", "platform_has_tf32"),
    "ILayer": (
        "precision", "precision_is_set", "reset_precision", "set_output_type", "output_type_is_set",
        "reset_output_type",
    ),
    "INormalizationLayer": ("compute_precision",),
    "ITensor": ("dynamic_range", "set_dynamic_range", "reset_dynamic_range"),
    "tensorrt": (
        "IInt8Calibrator", "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator",
        "IInt8LegacyCalibrator", "CalibrationAlgoType", "QuantizationFlag",
    ),
}  # fmt: skip

_BUILDER_FLAGS = (
    "FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE",
    "TF32", "SPARSE_WEIGHTS", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO",
    "REJECT_EMPTY_ALGORITHMS", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "WEIGHTLESS", "STRIP_PLAN",
)  # fmt: skip
_WEAK_TYPING_FLAGS = frozenset(REMOVED_IN_11["BuilderFlag"])


def _enum(name: str, members: tuple[str, ...], flavour: str) -> type[enum.IntEnum]:
    kept = [m for m in members if not (flavour == "11" and m in REMOVED_IN_11.get(name, ()))]
    return enum.IntEnum(name, [(m, i) for i, m in enumerate(kept)])


@dataclass
class Record:
    """What the code under test asked of the double (for assertions)."""

    flavour: str
    networks: list[Any] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    swallowed: list[str] = field(default_factory=list)  # exceptions the trampoline printed
    weak_typing: list[str] = field(default_factory=list)  # weak-typing members used (10 flavour)


def make_module(flavour: str) -> tuple[types.ModuleType, Record]:
    """A fresh ``tensorrt`` module of the flavour ("10" or "11") and the record of its use."""
    if flavour not in VERSIONS:
        raise ValueError(f"flavour {flavour!r}; valid: {', '.join(VERSIONS)}")
    record = Record(flavour)
    eleven = flavour == "11"
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = VERSIONS[flavour]

    BuilderFlag = _enum("BuilderFlag", _BUILDER_FLAGS, flavour)
    # The real values (1 << value is the create_network bit): EXPLICIT_BATCH 0, STRONGLY_TYPED 1.
    creation = [("EXPLICIT_BATCH", 0), ("STRONGLY_TYPED", 1)][1 if eleven else 0 :]
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", creation)
    MemoryPoolType = _enum("MemoryPoolType", ("WORKSPACE", "DLA_MANAGED_SRAM", "TACTIC_DRAM"), flavour)
    OnnxParserFlag = _enum("OnnxParserFlag", ("NATIVE_INSTANCENORM",), flavour)
    LayerType = _enum("LayerType", ("CONVOLUTION", "NORMALIZATION", "CAST", "OTHER"), flavour)

    class ILogger:
        __slots__ = ("min_severity",)
        Severity = _enum("Severity", ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"), flavour)

        def __init__(self) -> None:
            self.min_severity = ILogger.Severity.WARNING

        def log(self, severity: Any, msg: str) -> None:
            if severity <= self.min_severity:
                print(f"[TensorRT double] {msg}", file=sys.stderr)

    class Logger(ILogger):
        __slots__ = ()
        WARNING = ILogger.Severity.WARNING
        ERROR = ILogger.Severity.ERROR
        INFO = ILogger.Severity.INFO

        def __init__(self, min_severity: Any = ILogger.Severity.WARNING) -> None:
            self.min_severity = min_severity

    class Dims:
        __slots__ = ("_shape",)

        def __init__(self, shape: list[int] | None = None) -> None:
            self._shape = tuple(int(v) for v in (shape or []))

        def __len__(self) -> int:
            return len(self._shape)

        def __getitem__(self, index: int) -> int:
            return self._shape[index]

    class ILayer:
        __slots__ = ("name", "type", "_precision")

        def __init__(self, name: str, kind: Any) -> None:
            self.name, self.type, self._precision = name, kind, None

    if not eleven:

        def _set_precision(layer: Any, value: Any) -> None:
            record.weak_typing.append("ILayer.precision")
            layer._precision = value

        def _set_output_type(layer: Any, index: int, dtype: Any) -> None:
            record.weak_typing.append("ILayer.set_output_type")

        ILayer.precision = property(lambda layer: layer._precision, _set_precision)
        ILayer.set_output_type = _set_output_type

    class INetworkDefinition:
        __slots__ = ("flags", "_parser", "layers", "inputs", "__weakref__")

        def __init__(self, flags: int) -> None:
            self.flags, self._parser, self.layers, self.inputs = flags, None, [], []

        @property
        def num_layers(self) -> int:
            return len(self.layers)

        def get_layer(self, index: int) -> ILayer:
            return self.layers[index]

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_flag(self, flag: Any) -> bool:
            return bool(self.flags & (1 << int(flag))) or (eleven and flag.name == "STRONGLY_TYPED")

    class ParserError:
        __slots__ = ("_desc",)

        def __init__(self, desc: str) -> None:
            self._desc = desc

        def desc(self) -> str:
            return self._desc

    class OnnxParser:
        __slots__ = ("network", "logger", "_errors", "_flags", "__weakref__")

        def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
            self.network, self.logger, self._errors, self._flags = network, logger, [], set()

        def set_flag(self, flag: Any) -> None:
            self._flags.add(flag)

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> ParserError:
            return self._errors[index]

        def parse_from_file(self, model: str) -> bool:
            graph = onnx.shape_inference.infer_shapes(onnx.load(model)).graph
            self._errors = [ParserError(e) for e in onnx_tensorrt_problems(graph)]
            if self._errors:
                return False
            kinds = {"Conv": LayerType.CONVOLUTION, "InstanceNormalization": LayerType.NORMALIZATION}
            for node in graph.node:
                self.network.layers.append(ILayer(node.name, kinds.get(node.op_type, LayerType.OTHER)))
            self.network.inputs = [(v.name, len(v.type.tensor_type.shape.dim)) for v in graph.input]
            self.network._parser = weakref.ref(self)  # the network points into the parser's weights
            return True

    class IOptimizationProfile:
        __slots__ = ("shapes",)

        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, input: str, min: Dims, opt: Dims, max: Dims) -> None:
            self.shapes[input] = tuple(tuple(d[i] for i in range(len(d))) for d in (min, opt, max))

        def get_shape(self, input: str) -> list[Dims]:
            return [Dims(list(s)) for s in self.shapes[input]]

    class IHostMemory(bytes):
        __slots__ = ()

        @property
        def nbytes(self) -> int:
            return len(self)

    class ITimingCache:
        __slots__ = ("data",)

        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> IHostMemory:
            return IHostMemory(b"timing-double:" + self.data.removeprefix(b"timing-double:"))

    class IProgressMonitor:
        __slots__ = ()

        def __init__(self) -> None:
            pass

    class IBuilderConfig:
        __slots__ = ("flags", "profiles", "pools", "timing_cache", "_monitor", "__weakref__")

        def __init__(self) -> None:
            self.flags = {BuilderFlag.TF32}  # TensorRT's default
            self.profiles: list[IOptimizationProfile] = []
            self.pools: dict[Any, int] = {}
            self.timing_cache: ITimingCache | None = None
            self._monitor: IProgressMonitor | None = None

        def set_flag(self, flag: Any) -> None:
            if flag.name in _WEAK_TYPING_FLAGS:
                record.weak_typing.append(f"BuilderFlag.{flag.name}")
            self.flags.add(flag)

        def get_flag(self, flag: Any) -> bool:
            return flag in self.flags

        def clear_flag(self, flag: Any) -> None:
            self.flags.discard(flag)

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            self.pools[pool] = pool_size

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache | None:
            data = bytes(serialized_timing_cache)
            if data and not data.startswith(b"timing-double:"):
                return None  # TensorRT logs "corrupted" and returns nullptr: None in Python
            return ITimingCache(data)

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if not isinstance(cache, ITimingCache):  # pybind11 refuses None for a reference argument
                raise TypeError("set_timing_cache(): incompatible function arguments")
            self.timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache:
            return self.timing_cache or ITimingCache(b"")

        @property
        def progress_monitor(self) -> IProgressMonitor | None:
            return self._monitor

        @progress_monitor.setter
        def progress_monitor(self, monitor: IProgressMonitor) -> None:
            self._monitor = monitor

    if not eleven:

        def _set_calibrator(settings: Any, calibrator: Any) -> None:
            record.weak_typing.append("IBuilderConfig.int8_calibrator")

        IBuilderConfig.int8_calibrator = property(lambda s: None, _set_calibrator)
        IBuilderConfig.set_calibration_profile = lambda s, profile: (
            record.weak_typing.append("IBuilderConfig.set_calibration_profile") or True
        )

    class Builder:
        __slots__ = ("logger",)
        build_steps = 4  # steps of the one phase the double reports
        step_seconds = 0.0  # time each step takes
        callbacks_on_worker = False  # True: callbacks on a TensorRT thread, the caller waiting in C
        on_build: Any = None  # called as the build starts (a test waits for it before signalling)

        def __init__(self, logger: ILogger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            network = INetworkDefinition(flags)
            record.networks.append(network)
            return network

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
            if network._parser is None or network._parser() is None:
                raise RuntimeError("the network's weights were freed with its parser (TensorRT reads freed memory)")
            strongly_typed = network.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            build = {
                "flavour": flavour,
                "strongly_typed": strongly_typed,
                "flags": sorted(f.name for f in config.flags),
                "profiles": [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in config.profiles],
                "cancelled": False,
            }
            record.builds.append(build)
            if Builder.on_build is not None:
                Builder.on_build()
            finished = _run_monitor(config._monitor, build)
            if not finished:
                return None
            return IHostMemory(b"tensorrt-double-engine:" + json.dumps(build, sort_keys=True).encode())

    def _run_monitor(monitor: Any, build: dict[str, Any]) -> bool:
        """Drive the monitor as TensorRT's trampoline does, from C (``from_cxx``): exceptions are
        printed and swallowed, and a Python signal handler runs only inside a callback."""
        outcome = {"finished": True}

        def swallow(name: str, exc: BaseException) -> None:  # pybind11 turns any Python exception into a C++ one
            record.swallowed.append(f"{name}: {type(exc).__name__}")
            print(f"[ERROR] Exception caught in {name}()", file=sys.stderr)

        def callbacks() -> Any:
            """One callback per tick of the C loop; the steps' work happens between them."""
            if monitor is None:
                _work(Builder.build_steps * Builder.step_seconds)
                return
            monitor.phase_start("Building engine", "", Builder.build_steps)
            yield
            for step in range(Builder.build_steps):
                _work(Builder.step_seconds)
                if not monitor.step_complete("Building engine", step):
                    outcome["finished"] = False
                    break
                yield
            monitor.phase_finish("Building engine")

        def tick(pending: Any) -> None:
            try:
                next(pending)
            except StopIteration:
                pass
            except BaseException as exc:
                swallow("progress monitor", exc)
                outcome["finished"] = False
                pending.close()

        (from_worker if Builder.callbacks_on_worker else from_cxx)(callbacks(), tick, Builder.build_steps + 2)
        build["cancelled"] = not outcome["finished"]
        return outcome["finished"]

    members = dict(
        Builder=Builder, BuilderFlag=BuilderFlag, Dims=Dims, IBuilderConfig=IBuilderConfig, IHostMemory=IHostMemory,
        ILayer=ILayer, ILogger=ILogger, INetworkDefinition=INetworkDefinition,
        IOptimizationProfile=IOptimizationProfile,
        IProgressMonitor=IProgressMonitor, ITimingCache=ITimingCache, LayerType=LayerType, Logger=Logger,
        MemoryPoolType=MemoryPoolType, NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag,
        OnnxParser=OnnxParser, OnnxParserFlag=OnnxParserFlag, ParserError=ParserError,
    )  # fmt: skip
    for name, value in members.items():
        setattr(trt, name, value)
    if not eleven:
        for name in ("IInt8Calibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator"):
            setattr(trt, name, type(name, (), {"__slots__": (), "__init__": lambda self: None}))
    return trt, record


# -- "C++": where Python signal handlers cannot run ------------------------------------------------
# TensorRT builds in C++ with the GIL released: a signal only marks its Python handler pending, and
# the handler runs when the main thread next executes bytecode, i.e. inside a progress callback
# (whose trampoline swallows what it raises) or after the build has returned. The double gets the
# same by calling its callbacks from C: libc's qsort with a ctypes comparator, one callback per
# comparison (a sort of n elements compares at least n - 1 times), so that no bytecode runs in
# the main thread between two callbacks.
def _work(seconds: float) -> None:
    """Time a build step takes."""
    if seconds > 0:
        time.sleep(seconds)


def _libc_qsort() -> Any:
    name = ctypes.util.find_library("c") or ctypes.util.find_library("msvcrt")
    try:
        return ctypes.CDLL(name).qsort if name else ctypes.CDLL(None).qsort
    except (OSError, AttributeError):
        return None


def from_cxx(pending: Any, tick: Any, ticks: int) -> None:
    """Call ``tick(pending)`` at least ``ticks`` times from C (a plain loop where libc is not found)."""
    qsort = _libc_qsort()
    if qsort is None:
        for _ in range(ticks):
            tick(pending)
        return
    compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(lambda a, b: tick(pending) or 0)
    items = (ctypes.c_int * (ticks + 1))()
    qsort.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, type(compare)]
    qsort.restype = None
    qsort(items, len(items), ctypes.sizeof(ctypes.c_int), compare)


_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def from_worker(pending: Any, tick: Any, ticks: int) -> None:
    """Call ``tick(pending)`` ``ticks`` times on another thread, as TensorRT may call its monitor
    from its own threads (NvInfer.h), while the calling thread waits in C: a read(2) on a pipe,
    with SIGINT and SIGTERM blocked there so that they are delivered to some other thread. No
    Python signal handler can run meanwhile (they run in the main thread only); what a signal
    leaves behind at delivery is the byte Python's C-level handler writes to the wakeup fd."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        for _ in range(ticks):
            tick(pending)
        return
    read, write = os.pipe()

    def work() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        try:
            for _ in range(ticks):
                tick(pending)
        finally:
            os.write(write, b"x")

    libc = ctypes.CDLL(None, use_errno=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        worker = threading.Thread(target=work, name="tensorrt-builder")
        worker.start()
        done = ctypes.create_string_buffer(1)
        while libc.read(read, done, 1) < 0 and ctypes.get_errno() == errno.EINTR:
            pass
        worker.join()
    finally:
        os.close(read)
        os.close(write)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # back in Python: pending handlers run


# -- onnx-tensorrt's limits that i2i graphs meet (docs/operators.md) -------------------------------
_UINT8_OK = {"Cast"}  # "UINT8 is only supported as network input or output tensor types" (through a Cast)
_QUANTIZED_OK = {TensorProto.INT8}  # Q/DQ: "zero point must be 0"; quantized types INT8, FP8, INT4


def onnx_tensorrt_problems(graph: onnx.GraphProto) -> list[str]:
    """The parser errors onnx-tensorrt would report for ``graph`` (after ONNX type inference)."""
    types_ = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.value_info, *graph.output)}
    types_.update({i.name: i.data_type for i in graph.initializer})
    constants = {i.name: i for i in graph.initializer}
    problems = []
    for node in graph.node:
        for name in node.input:
            if name and types_.get(name) == TensorProto.UINT8 and node.op_type not in _UINT8_OK:
                problems.append(f"{node.op_type} {node.name}: UNSUPPORTED_NODE_DATATYPE UINT8 input {name}")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            zero_type = zero.data_type if zero is not None else TensorProto.UINT8
            nonzero = zero is not None and onnx.numpy_helper.to_array(zero).any()
            if zero_type not in _QUANTIZED_OK or nonzero:
                problems.append(f"{node.op_type} {node.name}: zero point must be 0 and int8")
            if node.op_type == "DequantizeLinear" and types_.get(node.input[0]) not in _QUANTIZED_OK:
                problems.append(f"DequantizeLinear {node.name}: input must be INT8, FP8 or INT4")
    return problems


def install(monkeypatch: Any, flavour: str) -> Record:
    """Put a fresh double in ``sys.modules['tensorrt']`` for one test (undone by ``monkeypatch``)."""
    module, record = make_module(flavour)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return record
