"""ONNX → TensorRT engine: profiles, fp16/bf16/int8, norm precision, timing cache, sidecar.

``i2i-export model.onnx --engine trt`` (or ``model.pt --engine trt``, which exports ONNX first).
Designed against the field problems of exported GAN generators:

* dynamic shapes: one optimisation profile from ``--min/--opt/--max`` (N×H×W), validated
  against the card (size multiple, static batch/size) before TensorRT sees it;
* fp16 flat/NaN frames: InstanceNorm layers (and reductions) get an fp32 precision constraint and
  fp32 compute precision (``--norm-fp32``, default on), obeyed by the builder;
* int8 without explained calibration: an entropy or min-max calibrator fed real images from a
  folder through ``i2i.runtime.frames.preprocess`` (the runtime's own pre-processing), with a
  calibration cache whose file name is keyed by the model, the images and the shape;
* stale caches: the timing cache file name is keyed by TensorRT version and GPU, and the engine
  gets a sidecar ``model.engine.json`` (card, TensorRT version, GPU name, compute capability,
  profiles, sha256, the command that rebuilds it) that the runtime checks before loading;
* silent long builds: TensorRT's progress monitor drives tqdm bars, one per build phase.

TensorRT is imported only inside ``build_engine`` (``require_tensorrt`` names the ``trt`` extra
when it is missing); everything else here is plain Python and unit-tested without it. The module
is type-checked with mypy against ``tensorrt-stubs`` (tests/test_export_tensorrt.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from i2i import __version__
from i2i._files import atomic_file
from i2i.errors import I2IError
from i2i.runtime.backends.tensorrt import (
    SIDECAR_FORMAT,
    GpuIdentity,
    file_sha256,
    require_tensorrt,
    sidecar_path,
    validate_sidecar,
)

if TYPE_CHECKING:
    import tensorrt as trt


# -- what each engine precision is --------------------------------------------------------------
@dataclass(frozen=True)
class EnginePrecision:
    name: str
    flags: tuple[str, ...]  # trt.BuilderFlag member names
    onnx_precisions: tuple[str, ...]  # ONNX graph precisions it can be built from
    calibrated: bool = False


ENGINE_PRECISIONS: dict[str, EnginePrecision] = {
    "fp32": EnginePrecision("fp32", (), ("fp32",)),
    "fp16": EnginePrecision("fp16", ("FP16",), ("fp32", "fp16")),
    "bf16": EnginePrecision("bf16", ("BF16",), ("fp32",)),
    # int8 keeps fp16 as the fallback for layers without int8 kernels (norms, the output tanh).
    "int8": EnginePrecision("int8", ("INT8", "FP16"), ("fp32", "fp16"), calibrated=True),
}
CALIBRATORS = ("entropy", "minmax")
MAX_BATCH, MAX_SIDE = 1024, 4096
DEFAULT_SHAPES = {"min": (1, 256, 256), "opt": (1, 512, 512), "max": (1, 1088, 1920)}
CACHE_DIR_ENV = "I2I_CACHE_DIR"


@dataclass(frozen=True)
class EngineConfig:
    onnx: str  # an i2i-exported ONNX model (its card drives everything)
    output: str | None = None  # default: the ONNX path with .engine
    precision: str | None = None  # None: the ONNX model's own precision
    min_shape: tuple[int, int, int] | None = None  # (N, H, W)
    opt_shape: tuple[int, int, int] | None = None
    max_shape: tuple[int, int, int] | None = None
    norm_fp32: bool = True  # keep normalisation/reduction layers in fp32
    calibration_data: str | None = None  # image folder for int8
    calibrator: str = "entropy"
    calibration_batches: int = 32  # at most this many batches of the opt shape
    calibration_cache: str | None = None  # default: keyed file beside the engine
    timing_cache: str | None = None  # a file, or a folder for keyed files; default: the user cache
    workspace_gib: float | None = None
    device: int = 0
    progress: bool = True


@dataclass(frozen=True)
class Profile:
    """One optimisation profile, as full tensor shapes in the model's layout."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass
class EngineResult:
    engine: Path
    sidecar: Path
    sidecar_data: dict[str, Any] = field(repr=False)
    timing_cache: Path | None = None
    calibration_cache: Path | None = None


# -- validation (no TensorRT needed) ------------------------------------------------------------
def parse_shape(text: str) -> tuple[int, int, int]:
    """ "NxHxW" or "HxW" (batch 1) -> (N, H, W)."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (2, 3) or not all(p.strip().isdigit() for p in parts):
        raise I2IError(f"shape {text!r}: expected NxHxW or HxW, e.g. 1x512x512")
    values = [int(p) for p in parts]
    n, h, w = values if len(values) == 3 else [1, *values]
    return n, h, w


def check_engine_config(config: EngineConfig, card: dict[str, Any]) -> EnginePrecision:
    """Unsupported combinations are errors; returns the engine precision to build."""
    name = config.precision or str(card.get("precision", "fp32"))
    if name not in ENGINE_PRECISIONS:
        raise I2IError(f"unknown engine precision {name!r}; valid: {', '.join(ENGINE_PRECISIONS)}")
    precision = ENGINE_PRECISIONS[name]
    graph = str(card.get("precision", "fp32"))
    if graph not in precision.onnx_precisions:
        raise I2IError(
            f"a {name} engine cannot be built from an {graph} ONNX graph; valid from {graph}: "
            + ", ".join(p.name for p in ENGINE_PRECISIONS.values() if graph in p.onnx_precisions)
        )
    if config.calibrator not in CALIBRATORS:
        raise I2IError(f"unknown calibrator {config.calibrator!r}; valid: {', '.join(CALIBRATORS)}")
    if precision.calibrated:
        cache = config.calibration_cache
        if config.calibration_data is None and not (cache and Path(cache).is_file()):
            raise I2IError("int8 needs calibration images: --calib-data DIR (or an existing --calib-cache FILE)")
    elif config.calibration_data or config.calibration_cache:
        raise I2IError(f"--calib-data / --calib-cache apply to int8 engines, not {name}")
    if config.calibration_data and not Path(config.calibration_data).is_dir():
        raise I2IError(f"--calib-data: not a folder: {config.calibration_data}")
    if config.calibration_batches < 1:
        raise I2IError("--calib-batches must be >= 1")
    if config.workspace_gib is not None and config.workspace_gib <= 0:
        raise I2IError("--workspace must be > 0 GiB")
    return precision


def resolve_profile(
    card: dict[str, Any],
    min_shape: tuple[int, int, int] | None = None,
    opt_shape: tuple[int, int, int] | None = None,
    max_shape: tuple[int, int, int] | None = None,
) -> Profile:
    """Turn --min/--opt/--max (N, H, W) into a validated profile in the model's layout.

    Missing shapes: none given → defaults (rounded up to the size multiple) or the model's static
    batch/size; some given → a missing min is the smallest given, a missing max the largest, a
    missing opt the max. Static axes must be given exactly as the model has them.
    """
    io = card.get("io", {})
    m = int(card.get("size_multiple") or io.get("size_multiple", 1))
    static_size = card.get("static_size")
    static_batch = card.get("static_batch")
    pairs = (("min", min_shape), ("opt", opt_shape), ("max", max_shape))
    given: dict[str, tuple[int, ...]] = {k: v for k, v in pairs if v is not None}
    shapes: dict[str, tuple[int, ...]]
    if not given:
        shapes = {k: _fit(v, m, static_batch, static_size) for k, v in DEFAULT_SHAPES.items()}
    else:
        low = tuple(min(v[i] for v in given.values()) for i in range(3))
        high = tuple(max(v[i] for v in given.values()) for i in range(3))
        shapes = {
            "min": given.get("min", low),
            "max": given.get("max", high),
            "opt": given.get("opt", given.get("max", high)),
        }
    for key, (n, h, w) in shapes.items():
        if n < 1 or h < 1 or w < 1:
            raise I2IError(f"--{key} {n}x{h}x{w}: every dimension must be >= 1")
        if n > MAX_BATCH or h > MAX_SIDE or w > MAX_SIDE:
            raise I2IError(f"--{key} {n}x{h}x{w}: at most {MAX_BATCH} x {MAX_SIDE} x {MAX_SIDE}")
        if h % m or w % m:
            raise I2IError(f"--{key} {n}x{h}x{w}: H and W must be multiples of {m} (the model's size multiple)")
        if static_batch is not None and n != static_batch:
            raise I2IError(f"--{key} {n}x{h}x{w}: the model has a static batch of {static_batch}")
        if static_size is not None and [h, w] != list(static_size):
            raise I2IError(f"--{key} {n}x{h}x{w}: the model has a static size of {static_size[0]}x{static_size[1]}")
    for lo, hi in (("min", "opt"), ("opt", "max")):
        if any(a > b for a, b in zip(shapes[lo], shapes[hi])):
            raise I2IError(f"--{lo} {_fmt(shapes[lo])} exceeds --{hi} {_fmt(shapes[hi])} in some dimension")
    channels = int(io.get("channels", 3))
    frame = io.get("kind", "tensor") == "frame"

    def layout(nhw: tuple[int, ...]) -> tuple[int, ...]:
        n, h, w = nhw
        return (n, h, w, channels) if frame else (n, channels, h, w)

    name = str(io.get("input", "image"))
    return Profile(name, layout(shapes["min"]), layout(shapes["opt"]), layout(shapes["max"]))


def _fit(nhw: tuple[int, int, int], m: int, static_batch: Any, static_size: Any) -> tuple[int, int, int]:
    n, h, w = nhw
    if static_size is not None:
        h, w = int(static_size[0]), int(static_size[1])
    else:
        h, w = m * math.ceil(h / m), m * math.ceil(w / m)
    return (int(static_batch) if static_batch is not None else n), h, w


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


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


def calibration_cache_key(onnx_sha256: str, calibrator: str, shape: tuple[int, ...], images: list[Path]) -> str:
    """Changes whenever the model, the calibrator, the calibration shape or the image set does."""
    digest = hashlib.sha256()
    digest.update(f"i2i-calib/1|{onnx_sha256}|{calibrator}|{_fmt(shape)}".encode())
    for path in images:
        stat = path.stat()
        digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def calibration_cache_path(option: str | None, engine: Path, key: str) -> Path:
    return Path(option) if option else engine.with_name(f"{engine.stem}.calib-{key}.cache")


# -- calibration data (no TensorRT needed) ------------------------------------------------------
def calibration_images(folder: str | Path) -> list[Path]:
    from i2i.export.parity import IMAGE_EXTS

    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)


class CalibrationBatches:
    """Fixed-shape batches in the model's input layout and dtype, from an image folder.

    Each image is resized to the calibration (opt) H×W and converted exactly as the runtime
    converts frames (``preprocess`` for tensor models, raw uint8 BGR for frame models), so int8
    ranges are measured on what the engine will really see. A trailing partial batch is dropped:
    TensorRT calibrates with one fixed batch size.
    """

    def __init__(self, images: list[Path], card: dict[str, Any], shape: tuple[int, ...], max_batches: int) -> None:
        io = card.get("io", {})
        self.frame = io.get("kind", "tensor") == "frame"
        self.dtype = np.dtype("uint8" if self.frame else io.get("dtype", "float32"))
        self.size_multiple = int(card.get("size_multiple") or io.get("size_multiple", 1))
        self.shape = tuple(shape)
        self.batch_size = int(shape[0])
        h, w = (shape[1], shape[2]) if self.frame else (shape[2], shape[3])
        self.hw = (int(h), int(w))
        usable = (len(images) // self.batch_size) * self.batch_size
        self.images = images[: min(usable, max_batches * self.batch_size)]
        if not self.images:
            raise I2IError(f"int8 calibration needs at least {self.batch_size} images (one batch of the opt shape)")

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        from i2i.runtime.frames import preprocess, to_bgr_uint8

        h, w = self.hw
        for start in range(0, len(self.images), self.batch_size):
            frames = []
            for path in self.images[start : start + self.batch_size]:
                image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if image is None:
                    raise I2IError(f"cannot read calibration image {path}")
                frames.append(cv2.resize(to_bgr_uint8(image), (w, h), interpolation=cv2.INTER_AREA))
            if self.frame:
                batch = np.stack(frames)
            else:
                batch = preprocess(frames, self.size_multiple)[0].astype(self.dtype, copy=False)
            if batch.shape != self.shape:  # pragma: no cover - guarded by the multiple check
                raise I2IError(f"calibration batch has shape {batch.shape}, expected {self.shape}")
            yield np.ascontiguousarray(batch)


class CalibrationFeeder:
    """The part of a TensorRT calibrator that moves batches to the GPU, TensorRT-free for tests.

    ``alloc(nbytes) -> pointer`` and ``upload(pointer, array)`` are injected (the CUDA driver in
    production, fakes in tests). ``next(names)`` returns one device pointer per input name, or
    None when the data is exhausted, which is how TensorRT's ``get_batch`` ends calibration.
    ``batches=None`` is a cache-only calibration: TensorRT reads the cache and asks for nothing.
    """

    def __init__(
        self,
        batches: CalibrationBatches | None,
        batch_size: int,
        alloc: Callable[[int], int],
        upload: Callable[[int, np.ndarray], None],
    ) -> None:
        self.batches = batches
        self.batch_size = batch_size
        self._iter: Iterator[np.ndarray] = iter(batches) if batches is not None else iter(())
        self._upload = upload
        self.pointer = alloc(batches.nbytes) if batches is not None else 0
        self.fed = 0

    def next(self, names: list[str]) -> list[int] | None:
        if len(names) != 1:
            raise I2IError(f"calibration feeds one input, TensorRT asked for {names}")
        batch = next(self._iter, None)
        if batch is None:
            return None
        self._upload(self.pointer, batch)
        self.fed += 1
        return [self.pointer]

    def release(self, free: Callable[[int], None]) -> None:
        if self.pointer:
            free(self.pointer)
            self.pointer = 0


class CalibrationCache:
    """Read/write the calibration cache file (atomically), as TensorRT's calibrator asks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> bytes | None:
        return self.path.read_bytes() if self.path.is_file() else None

    def write(self, data: bytes) -> None:
        atomic_write(self.path, data)


# -- progress (no TensorRT needed) --------------------------------------------------------------
class PhaseBars:
    """tqdm bars for TensorRT's nested build phases; ``cancelled`` stops the build at the next step."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}
        self.depth: dict[str, int] = {}
        self.cancelled = False

    def start(self, phase: str, parent: str | None, steps: int) -> None:
        from tqdm.auto import tqdm

        depth = self.depth.get(parent, -1) + 1 if parent else 0
        self.depth[phase] = depth
        self.bars[phase] = tqdm(
            total=steps, desc=("  " * depth) + phase, position=depth, leave=depth == 0, disable=not self.enabled
        )

    def step(self, phase: str, step: int) -> bool:
        bar = self.bars.get(phase)
        if bar is not None:
            bar.n = step + 1
            bar.refresh()
        return not self.cancelled

    def finish(self, phase: str) -> None:
        bar = self.bars.pop(phase, None)
        self.depth.pop(phase, None)
        if bar is not None:
            bar.close()

    def close(self) -> None:
        for phase in list(self.bars):
            self.finish(phase)


# -- files ----------------------------------------------------------------------------------------
def atomic_write(path: Path, data: bytes | str) -> None:
    """Temp file beside ``path``, fsync, rename (``i2i._files.atomic_file``): never a half-written
    engine or cache; the temp file goes on any exception, Ctrl-C and SIGTERM included."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def rebuild_command(config: EngineConfig, precision: str, profile: Profile, card: dict[str, Any]) -> str:
    """The command that rebuilds this engine on another machine (quoted in load errors)."""
    frame = card.get("io", {}).get("kind") == "frame"

    def nhw(shape: tuple[int, ...]) -> str:
        return _fmt((shape[0], shape[1], shape[2]) if frame else (shape[0], shape[2], shape[3]))

    parts = [
        "i2i-export",
        Path(config.onnx).name,
        "--engine trt",
        f"--engine-precision {precision}",
        f"--min {nhw(profile.min)} --opt {nhw(profile.opt)} --max {nhw(profile.max)}",
    ]
    if not config.norm_fp32:
        parts.append("--no-norm-fp32")
    if precision == "int8":
        parts.append(f"--calibrator {config.calibrator} --calib-data DIR")
    return " ".join(parts)


def make_sidecar(
    *,
    card: dict[str, Any],
    engine: Path,
    engine_bytes: bytes,
    onnx_path: Path,
    tensorrt_version: str,
    gpu: GpuIdentity,
    profile: Profile,
    precision: str,
    config: EngineConfig,
    build_seconds: float | None = None,
) -> dict[str, Any]:
    sidecar = {
        "format": SIDECAR_FORMAT,
        "card": card,
        "engine": {
            "name": engine.name,
            "sha256": hashlib.sha256(engine_bytes).hexdigest(),
            "bytes": len(engine_bytes),
        },
        "source_onnx": {"name": onnx_path.name, "sha256": file_sha256(onnx_path)},
        "tensorrt": tensorrt_version,
        "gpu": gpu.as_json(),
        "profiles": [profile.as_json()],
        "precision": precision,
        "builder": {
            "norm_fp32": config.norm_fp32,
            "calibrator": config.calibrator if precision == "int8" else None,
            "workspace_gib": config.workspace_gib,
            "build_seconds": build_seconds,
        },
        "i2i": __version__,
        "rebuild": rebuild_command(config, precision, profile, card),
    }
    return validate_sidecar(sidecar)


def write_engine(engine: Path, engine_bytes: bytes, sidecar: dict[str, Any]) -> Path:
    """Engine first, then its sidecar, each atomically; the sidecar's sha256 ties the two."""
    atomic_write(engine, engine_bytes)
    path = sidecar_path(engine)
    atomic_write(path, json.dumps(sidecar, indent=2, sort_keys=True))
    return path


# -- the build (needs TensorRT) -----------------------------------------------------------------
_NORM_LAYER_TYPES = ("NORMALIZATION", "REDUCE")


def _constrain_norms(network: trt.INetworkDefinition) -> int:
    """Pin normalisation and reduction layers to fp32 (inputs, outputs, compute); returns how many."""
    import tensorrt as trt

    kinds = {getattr(trt.LayerType, name) for name in _NORM_LAYER_TYPES}
    count = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type not in kinds:
            continue
        layer.precision = trt.float32
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.float32)
        if layer.type == trt.LayerType.NORMALIZATION:
            layer.__class__ = trt.INormalizationLayer  # TensorRT's Python idiom for a layer's subtype
            cast(trt.INormalizationLayer, layer).compute_precision = trt.float32
        count += 1
    return count


def _parse_onnx(trt_logger: trt.ILogger, builder: trt.Builder, onnx_path: Path) -> trt.INetworkDefinition:
    import tensorrt as trt

    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, trt_logger)
    parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)  # a real layer that precision constraints reach
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise I2IError(f"TensorRT cannot parse {onnx_path.name}: {errors[:400]}")
    network._i2i_parser = parser  # type: ignore[attr-defined]  # the parser must outlive the network
    return network


def _progress_monitor(bars: PhaseBars) -> trt.IProgressMonitor:
    import tensorrt as trt

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            bars.start(phase_name, parent_phase or None, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return bars.step(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            bars.finish(phase_name)

    return Monitor()


def _calibrator(kind: str, feeder: CalibrationFeeder, store: CalibrationCache) -> trt.IInt8Calibrator:
    """An entropy (default; TensorRT's recommendation for CNNs) or min-max int8 calibrator."""
    import tensorrt as trt

    # TensorRT's docs: read_calibration_cache returns None when there is no cache (the stubs say
    # Buffer only), and get_batch returns an empty list when the data is exhausted. The methods are
    # shared through a mixin: TensorRT looks them up on the instance, whichever calibrator it is.
    class Feed:
        def get_batch_size(self) -> int:
            return feeder.batch_size

        def get_batch(self, names: list[str]) -> list[int]:
            return feeder.next(names) or []

        def read_calibration_cache(self) -> bytes | None:
            return store.read()

        def write_calibration_cache(self, cache: Any) -> None:
            store.write(bytes(memoryview(cache)))

    class Entropy(Feed, trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

    class MinMax(Feed, trt.IInt8MinMaxCalibrator):
        def __init__(self) -> None:
            trt.IInt8MinMaxCalibrator.__init__(self)

    calibrator: trt.IInt8Calibrator = Entropy() if kind == "entropy" else MinMax()
    return calibrator


def _dims(shape: tuple[int, ...]) -> trt.Dims:
    import tensorrt as trt

    return trt.Dims(list(shape))


def build_engine(config: EngineConfig) -> EngineResult:
    """Build ``config.onnx`` into an engine + sidecar (atomically) on GPU ``config.device``."""
    from i2i.export.onnx import read_card
    from i2i.runtime.backends.tensorrt import CudaDriver

    onnx_path = Path(config.onnx)
    if not onnx_path.is_file():
        raise I2IError(f"ONNX model not found: {onnx_path}")
    card = read_card(onnx_path)
    precision = check_engine_config(config, card)
    profile = resolve_profile(card, config.min_shape, config.opt_shape, config.max_shape)
    engine_path = Path(config.output) if config.output else onnx_path.with_suffix(".engine")
    version = require_tensorrt()

    import tensorrt as trt

    driver = CudaDriver()
    gpu = driver.identity(config.device)
    driver.activate(config.device)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = _parse_onnx(logger, builder, onnx_path)
    builder_config = builder.create_builder_config()
    for flag in precision.flags:
        builder_config.set_flag(getattr(trt.BuilderFlag, flag))
    if config.workspace_gib is not None:
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * (1 << 30)))

    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(profile.input, _dims(profile.min), _dims(profile.opt), _dims(profile.max))
    builder_config.add_optimization_profile(optimisation)

    if config.norm_fp32 and precision.name != "fp32":
        if _constrain_norms(network):
            builder_config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)

    calibration_path: Path | None = None
    feeder: CalibrationFeeder | None = None
    if precision.calibrated:
        images = calibration_images(config.calibration_data) if config.calibration_data else []
        key = calibration_cache_key(file_sha256(onnx_path), config.calibrator, profile.opt, images)
        calibration_path = calibration_cache_path(config.calibration_cache, engine_path, key)
        stream = driver.stream()
        batches = CalibrationBatches(images, card, profile.opt, config.calibration_batches) if images else None
        if batches is None and not calibration_path.is_file():
            raise I2IError(f"no calibration images and no calibration cache at {calibration_path}")
        feeder = CalibrationFeeder(
            batches, profile.opt[0], driver.alloc, lambda pointer, array: driver.to_device(pointer, array, stream)
        )
        builder_config.int8_calibrator = _calibrator(config.calibrator, feeder, CalibrationCache(calibration_path))
        calibration_profile = builder.create_optimization_profile()
        calibration_profile.set_shape(profile.input, _dims(profile.opt), _dims(profile.opt), _dims(profile.opt))
        builder_config.set_calibration_profile(calibration_profile)

    timing_path = timing_cache_path(config.timing_cache, version, gpu)
    timing = builder_config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    builder_config.set_timing_cache(timing, ignore_mismatch=False)

    bars = PhaseBars(config.progress)
    builder_config.progress_monitor = _progress_monitor(bars)
    started = time.monotonic()
    try:
        serialized = builder.build_serialized_network(network, builder_config)
    except KeyboardInterrupt:
        bars.cancelled = True
        raise
    finally:
        bars.close()
    if serialized is None:
        raise I2IError("TensorRT failed to build the engine (see the TensorRT messages above)")
    engine_bytes = bytes(memoryview(serialized))
    atomic_write(timing_path, bytes(memoryview(builder_config.get_timing_cache().serialize())))
    if feeder is not None:
        feeder.release(driver.free)

    sidecar = make_sidecar(
        card=card,
        engine=engine_path,
        engine_bytes=engine_bytes,
        onnx_path=onnx_path,
        tensorrt_version=version,
        gpu=gpu,
        profile=profile,
        precision=precision.name,
        config=config,
        build_seconds=round(time.monotonic() - started, 1),
    )
    sidecar_file = write_engine(engine_path, engine_bytes, sidecar)
    return EngineResult(engine_path, sidecar_file, sidecar, timing_path, calibration_path)
