"""ONNX → TensorRT engine, strongly typed (TensorRT 10.x and 11.x): profiles, timing cache, sidecar.

``i2i-export model.onnx --engine trt`` (or ``model.pt --engine trt``, which exports ONNX first).

The engine computes in exactly the precisions the ONNX graph spells out: fp32; fp16 with the fp32
normalisation islands of ``export/precision.py``; int8 as the symmetric Q/DQ of
``export/quantize.py``. The network is created strongly typed, so there are no weak-typing builder
flags (FP16/BF16/INT8), no precision constraints, no int8 calibrator and no per-layer precisions:
TensorRT 11 removed all of them, and on TensorRT 10 they let the builder pick other precisions than
the ones the parity check measured. A different engine precision means a different ONNX export.

Designed against the field problems of exported GAN generators:

* dynamic shapes: one optimisation profile from ``--min/--opt/--max`` (N×H×W), validated
  against the card (size multiple, static batch/size) before TensorRT sees it;
* stale caches: the timing cache file name is keyed by TensorRT version and GPU, and the engine
  gets a sidecar ``model.engine.json`` (card, TensorRT version, GPU name, compute capability,
  profiles with their max batch, tensor names, sha256, the command that rebuilds it) that the
  runtime and the Triton writer check;
* silent long builds: TensorRT's progress monitor drives tqdm bars, one per build phase
  (``export/tensorrt_progress.py``); Ctrl-C or SIGTERM during the build only sets a flag (a
  temporary handler: raised in a callback, the bindings would swallow it), the monitor's
  ``step_complete`` then cancels the build, and the interrupt is raised once TensorRT has
  returned, before anything is written;
* a corrupt timing cache file is replaced by a fresh cache instead of failing the build.

TensorRT is imported only inside the build (``require_tensorrt`` names the ``trt`` extra when it is
missing); everything else is plain Python. The module is type-checked with mypy against
``tensorrt-stubs`` and against the same stubs less what TensorRT 11 removed, and exercised on CPU
through a TensorRT test double (tests/tensorrt_double.py, tests/test_export_tensorrt.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from i2i import __version__
from i2i._files import atomic_file
from i2i.common import file_sha256, round_up
from i2i.errors import I2IError, install_hint
from i2i.export.tensorrt_progress import BuildMonitor, PhaseBars, interrupts_as_flag
from i2i.runtime.backends.cuda import GpuIdentity
from i2i.runtime.backends.tensorrt import (
    SIDECAR_FORMAT,
    require_tensorrt,
    sidecar_path,
    validate_sidecar,
)
from i2i.runtime.card import ModelCard

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["BuildMonitor", "PhaseBars", "build_engine", "interrupts_as_flag"]

# The graph precisions a strongly typed engine is built from (bf16 is a run-time precision of
# other backends: its graph is fp32).
ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
SUPPORTED_TENSORRT = (10, 11)  # major versions; the trt extra pins tensorrt>=10.0,<12
MAX_BATCH, MAX_SIDE = 1024, 4096
DEFAULT_SHAPES = {"min": (1, 256, 256), "opt": (1, 512, 512), "max": (1, 1088, 1920)}
CACHE_DIR_ENV = "I2I_CACHE_DIR"


@dataclass(frozen=True)
class EngineConfig:
    onnx: str  # an i2i-exported ONNX model (its card and graph drive everything)
    output: str | None = None  # default: the ONNX path with .engine
    precision: str | None = None  # None: the graph's; anything else must equal it (strongly typed)
    min_shape: tuple[int, int, int] | None = None  # (N, H, W)
    opt_shape: tuple[int, int, int] | None = None
    max_shape: tuple[int, int, int] | None = None
    timing_cache: str | None = None  # a file, or a folder for keyed files; default: the user cache
    workspace_gib: float | None = None
    device: int = 0
    progress: bool = True


@dataclass(frozen=True)
class Profile:
    """One optimisation profile, as full tensor shapes in the model's layout (batch first)."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def max_batch(self) -> int:
        return int(self.max[0])

    def as_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "min": list(self.min),
            "opt": list(self.opt),
            "max": list(self.max),
            "max_batch": self.max_batch,
        }


@dataclass
class EngineResult:
    engine: Path
    sidecar: Path
    sidecar_data: dict[str, Any] = field(repr=False)
    timing_cache: Path | None = None


# -- validation (no TensorRT needed) ------------------------------------------------------------
def parse_shape(text: str) -> tuple[int, int, int]:
    """ "NxHxW" or "HxW" (batch 1) -> (N, H, W)."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (2, 3) or not all(p.strip().isdigit() for p in parts):
        raise I2IError(f"shape {text!r}: expected NxHxW or HxW, e.g. 1x512x512")
    values = [int(p) for p in parts]
    n, h, w = values if len(values) == 3 else [1, *values]
    return n, h, w


def check_engine_config(config: EngineConfig, card: ModelCard) -> str:
    """The engine precision (the graph's); a request for another one is an error that says how to
    export the graph it needs."""
    graph = card.precision
    if graph not in ENGINE_PRECISIONS:
        raise I2IError(
            f"TensorRT builds strongly typed engines from {', '.join(ENGINE_PRECISIONS)} graphs; "
            f"{Path(config.onnx).name} is {graph}: re-export with "
            "`i2i-export model.pt --precision fp16` (or fp32, int8)"
        )
    wanted = config.precision
    if wanted is not None and wanted != graph:
        if wanted not in ENGINE_PRECISIONS:
            raise I2IError(
                f"engine precision {wanted!r}: TensorRT builds the graph's own precision, one of "
                f"{', '.join(ENGINE_PRECISIONS)} ({Path(config.onnx).name} is {graph})"
            )
        raise I2IError(
            f"a strongly typed engine computes in its ONNX graph's precision, and {Path(config.onnx).name} is "
            f"{graph}: for a {wanted} engine re-export with `i2i-export model.pt --precision {wanted}` "
            "and build from that"
        )
    if config.workspace_gib is not None and config.workspace_gib <= 0:
        raise I2IError("--workspace must be > 0 GiB")
    return graph


def resolve_profile(
    card: ModelCard,
    input_name: str,
    min_shape: tuple[int, int, int] | None = None,
    opt_shape: tuple[int, int, int] | None = None,
    max_shape: tuple[int, int, int] | None = None,
) -> Profile:
    """Turn --min/--opt/--max (N, H, W) into a validated profile in the model's layout.

    Missing shapes: none given → defaults (rounded up to the size multiple) or the model's static
    batch/size; some given → a missing min is the smallest given, a missing max the largest, a
    missing opt the max. Static axes must be given exactly as the model has them.
    """
    pairs = (("min", min_shape), ("opt", opt_shape), ("max", max_shape))
    given: dict[str, tuple[int, ...]] = {k: v for k, v in pairs if v is not None}
    shapes: dict[str, tuple[int, ...]]
    if not given:
        shapes = {k: _fit(v, card) for k, v in DEFAULT_SHAPES.items()}
    else:
        low = tuple(min(v[i] for v in given.values()) for i in range(3))
        high = tuple(max(v[i] for v in given.values()) for i in range(3))
        shapes = {
            "min": given.get("min", low),
            "max": given.get("max", high),
            "opt": given.get("opt", given.get("max", high)),
        }
    for key, shape in shapes.items():
        _check_shape(key, shape, card)
    for lo, hi in (("min", "opt"), ("opt", "max")):
        if any(a > b for a, b in zip(shapes[lo], shapes[hi])):
            raise I2IError(f"--{lo} {_fmt(shapes[lo])} exceeds --{hi} {_fmt(shapes[hi])} in some dimension")

    def layout(nhw: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(v) for v in card.io.batch_shape(*nhw))

    return Profile(input_name, layout(shapes["min"]), layout(shapes["opt"]), layout(shapes["max"]))


def _check_shape(key: str, shape: tuple[int, ...], card: ModelCard) -> None:
    n, h, w = shape
    m = card.size_multiple
    if n < 1 or h < 1 or w < 1:
        raise I2IError(f"--{key} {n}x{h}x{w}: every dimension must be >= 1")
    if n > MAX_BATCH or h > MAX_SIDE or w > MAX_SIDE:
        raise I2IError(f"--{key} {n}x{h}x{w}: at most {MAX_BATCH} x {MAX_SIDE} x {MAX_SIDE}")
    if h % m or w % m:
        raise I2IError(f"--{key} {n}x{h}x{w}: H and W must be multiples of {m} (the model's size multiple)")
    if card.static_batch is not None and n != card.static_batch:
        raise I2IError(f"--{key} {n}x{h}x{w}: the model has a static batch of {card.static_batch}")
    static = card.static_size
    if static is not None and (h, w) != tuple(static):
        raise I2IError(f"--{key} {n}x{h}x{w}: the model has a static size of {static[0]}x{static[1]}")


def _fit(nhw: tuple[int, int, int], card: ModelCard) -> tuple[int, int, int]:
    n, h, w = nhw
    if card.static_size is not None:
        h, w = card.static_size
    else:
        h, w = round_up(h, card.size_multiple), round_up(w, card.size_multiple)
    return (card.static_batch if card.static_batch is not None else n), h, w


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


def tensorrt_major(version: str) -> int:
    """The major version of an installed TensorRT, refused unless this module supports it."""
    match = re.match(r"(\d+)\.", version)
    major = int(match.group(1)) if match else None
    if major not in SUPPORTED_TENSORRT:
        raise I2IError(
            f"TensorRT {version} is not supported: i2i builds strongly typed engines with TensorRT "
            f"10.x or 11.x (`{install_hint('trt')}` installs one)"
        )
    assert major is not None
    return major


# -- cache keys ---------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def timing_cache_key(tensorrt_version: str, gpu: GpuIdentity) -> str:
    """Timing caches are only valid for one TensorRT version on one GPU model."""
    return f"trt{tensorrt_version}-{_slug(gpu.name)}-sm{gpu.compute_capability.replace('.', '')}"


def cache_dir() -> Path:
    root = os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "i2i")
    return Path(root) / "tensorrt"


def timing_cache_path(option: str | None, tensorrt_version: str, gpu: GpuIdentity) -> Path:
    """--timing-cache FILE is used as given; a folder (or the default cache folder) gets a keyed file."""
    name = f"timing-{timing_cache_key(tensorrt_version, gpu)}.cache"
    if option is None:
        return cache_dir() / name
    path = Path(option)
    return path / name if path.is_dir() or option.endswith(("/", os.sep)) else path


# -- files ----------------------------------------------------------------------------------------
def atomic_write(path: Path, data: bytes | str) -> None:
    """Temp file beside ``path``, fsync, rename (``i2i._files.atomic_file``): never a half-written
    engine or cache; the temp file goes on any exception, Ctrl-C and SIGTERM included."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def graph_io(onnx_path: Path) -> tuple[str, str]:
    """The ONNX graph's input and output tensor names (the engine's, and Triton's)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise I2IError(
            f"{onnx_path.name}: expected one input and one output, found {len(graph.input)} and {len(graph.output)}"
        )
    return graph.input[0].name, graph.output[0].name


def rebuild_command(config: EngineConfig, profile: Profile, card: ModelCard) -> str:
    """The command that rebuilds this engine on another machine (quoted in load errors)."""

    def nhw(shape: tuple[int, ...]) -> str:
        h, w = card.io.hw(shape)
        return _fmt((shape[0], h, w))

    return (
        f"i2i-export {Path(config.onnx).name} --engine trt "
        f"--min {nhw(profile.min)} --opt {nhw(profile.opt)} --max {nhw(profile.max)}"
    )


@dataclass(frozen=True)
class Built:
    """What a build produced, beside the engine bytes: for the sidecar."""

    tensorrt_version: str
    gpu: GpuIdentity
    tf32: bool  # whether fp32 layers may run in TF32 (TensorRT's default on Ampere and later)
    network_flags: int
    seconds: float | None = None


def make_sidecar(
    *,
    card: ModelCard,
    engine: Path,
    engine_bytes: bytes,
    onnx_path: Path,
    tensors: tuple[str, str],
    profile: Profile,
    config: EngineConfig,
    built: Built,
) -> dict[str, Any]:
    sidecar = {
        "format": SIDECAR_FORMAT,
        "card": card.to_dict(),
        "engine": {
            "name": engine.name,
            "sha256": hashlib.sha256(engine_bytes).hexdigest(),
            "bytes": len(engine_bytes),
        },
        "source_onnx": {"name": onnx_path.name, "sha256": file_sha256(onnx_path)},
        "tensors": {"input": tensors[0], "output": tensors[1]},
        "tensorrt": built.tensorrt_version,
        "gpu": built.gpu.as_json(),
        "profiles": [profile.as_json()],
        "precision": card.precision,
        "builder": {
            "strongly_typed": True,
            "network_flags": built.network_flags,
            "tf32": built.tf32,
            "workspace_gib": config.workspace_gib,
            "build_seconds": built.seconds,
        },
        "i2i": __version__,
        "rebuild": rebuild_command(config, profile, card),
    }
    return validate_sidecar(sidecar)


def write_engine(engine: Path, engine_bytes: bytes, sidecar: dict[str, Any]) -> Path:
    """Engine first, then its sidecar, each atomically; the sidecar's sha256 ties the two."""
    atomic_write(engine, engine_bytes)
    path = sidecar_path(engine)
    atomic_write(path, json.dumps(sidecar, indent=2, sort_keys=True))
    return path


# -- the build (needs TensorRT) -----------------------------------------------------------------
def network_flags(version: str) -> int:
    """``create_network`` flags for a strongly typed network: where TensorRT 10 and 11 differ.

    TensorRT 10 builds weakly typed networks unless asked; TensorRT 11 has only strong typing and
    keeps the flag as a deprecated no-op (a later release may drop it), so 11 passes no flag."""
    import tensorrt as trt

    if tensorrt_major(version) == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def select_gpu(index: int) -> GpuIdentity:
    """Make GPU ``index`` current (TensorRT builds on the current CUDA context) and say which it is."""
    from i2i.runtime.backends.cuda import Cuda

    cuda = Cuda()
    gpu = cuda.identity(index)
    cuda.activate(index)
    return gpu


class Parsed(NamedTuple):
    """A parsed network and its parser. The parser owns the weights the network points at: it must
    stay referenced until ``build_serialized_network`` returns (pybind11 classes take no new
    attributes, so it cannot ride on the network; Polygraphy keeps the pair the same way)."""

    network: trt.INetworkDefinition
    parser: trt.OnnxParser


def parse_onnx(logger: trt.ILogger, builder: trt.Builder, onnx_path: Path, flags: int) -> Parsed:
    import tensorrt as trt

    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)  # INormalizationLayer, computed as the graph types it
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise I2IError(f"TensorRT cannot parse {onnx_path.name}: {errors[:400]}")
    return Parsed(network, parser)


def _dims(shape: tuple[int, ...]) -> trt.Dims:
    import tensorrt as trt

    return trt.Dims(list(shape))


def builder_config(builder: trt.Builder, profile: Profile, config: EngineConfig, timing: bytes) -> trt.IBuilderConfig:
    """Profile, workspace and timing cache: no precision flags (the network is strongly typed)."""
    import tensorrt as trt

    settings = builder.create_builder_config()
    if config.workspace_gib is not None:
        settings.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * (1 << 30)))
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(profile.input, _dims(profile.min), _dims(profile.opt), _dims(profile.max))
    if settings.add_optimization_profile(optimisation) < 0:
        raise I2IError(f"TensorRT refused the profile {profile.as_json()}")
    # A corrupt cache file makes create_timing_cache return None (set_timing_cache(None) would raise
    # TypeError); a cache from another TensorRT build is refused by set_timing_cache. Either way the
    # build starts a fresh cache, and the file is rewritten after it.
    cache = settings.create_timing_cache(timing) if timing else None
    if cache is None or not settings.set_timing_cache(cache, ignore_mismatch=False):
        if timing:
            print("TensorRT: the timing cache cannot be used here; starting a fresh one", file=sys.stderr)
        fresh = settings.create_timing_cache(b"")
        if fresh is None or not settings.set_timing_cache(fresh, ignore_mismatch=False):
            raise I2IError("TensorRT could not create a timing cache")
    return settings


def _progress_monitor(monitor: BuildMonitor) -> trt.IProgressMonitor:
    import tensorrt as trt

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            monitor.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return monitor.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            monitor.phase_finish(phase_name)

    return Monitor()


def serialize(
    onnx_path: Path, profile: Profile, config: EngineConfig, version: str, gpu: GpuIdentity
) -> tuple[bytes, Built, Path]:
    """Parse and build on the current GPU (``gpu``): the engine bytes, what was built, the timing
    cache written. Ctrl-C cancels the build and is raised again once TensorRT has returned."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = network_flags(version)
    parsed = parse_onnx(logger, builder, onnx_path, flags)
    timing_path = timing_cache_path(config.timing_cache, version, gpu)
    timing = timing_path.read_bytes() if timing_path.is_file() else b""
    settings = builder_config(builder, profile, config, timing)
    monitor = BuildMonitor(PhaseBars(config.progress))
    settings.progress_monitor = _progress_monitor(monitor)
    started = time.monotonic()
    try:
        with interrupts_as_flag(monitor):
            serialized = builder.build_serialized_network(parsed.network, settings)
    finally:
        monitor.bars.close()
    monitor.reraise()  # before anything is written: an interrupted build leaves no engine or cache
    if serialized is None:
        raise I2IError("TensorRT failed to build the engine (see the TensorRT messages above)")
    engine_bytes = bytes(memoryview(serialized))
    atomic_write(timing_path, bytes(memoryview(settings.get_timing_cache().serialize())))
    seconds = round(time.monotonic() - started, 1)
    tf32 = settings.get_flag(trt.BuilderFlag.TF32)
    del parsed  # the parser (and the weights it owns) may go now
    return engine_bytes, Built(version, gpu, tf32, flags, seconds), timing_path


def build_engine(config: EngineConfig) -> EngineResult:
    """Build ``config.onnx`` into an engine + sidecar (atomically) on GPU ``config.device``."""
    onnx_path = Path(config.onnx)
    if not onnx_path.is_file():
        raise I2IError(f"ONNX model not found: {onnx_path}")
    card = ModelCard.from_onnx(onnx_path)
    check_engine_config(config, card)
    tensors = graph_io(onnx_path)
    profile = resolve_profile(card, tensors[0], config.min_shape, config.opt_shape, config.max_shape)
    engine_path = Path(config.output) if config.output else onnx_path.with_suffix(".engine")
    version = require_tensorrt()
    tensorrt_major(version)
    gpu = select_gpu(config.device)
    engine_bytes, built, timing_path = serialize(onnx_path, profile, config, version, gpu)
    sidecar = make_sidecar(
        card=card,
        engine=engine_path,
        engine_bytes=engine_bytes,
        onnx_path=onnx_path,
        tensors=tensors,
        profile=profile,
        config=config,
        built=built,
    )
    sidecar_file = write_engine(engine_path, engine_bytes, sidecar)
    return EngineResult(engine_path, sidecar_file, sidecar, timing_path)
