"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers.

Provider choice is explicit (``plan_providers``): a requested GPU provider that onnxruntime lacks
is an error naming the exact command that installs it, and a GPU session never computes on the
CPU behind the user's back. CPU fallback stays on (the CUDA provider itself gives the CPU small
shape arithmetic, e.g. the padding of ``--io frame`` models), and ORT's own placement record says
where every node went (``ort_placement``: recorded at session creation on onnxruntime 1.24+, from
the profile of the first run before): a node that computes on the image (a convolution, a norm, an
element-wise op on activations) placed on the CPU is refused, or, with ``-O cpu_fallback=true``,
reported. ``get_providers()`` lists the providers registered, not where nodes were placed.

Every new InferenceSession gets its own random seed (``onnxruntime.set_seed`` before it is made):
ORT seeds the random operators of every session in a process from one global seed, so the
RandomUniformLike dropout masks of ``--test-dropout`` exports repeated from session to session.

On a GPU the batch goes through IO binding into device buffers allocated once per batch shape and
updated in place (one host-to-device copy in, one device-to-host copy out, no per-call device
allocation). For models with a fixed input size (``static_size`` in the card) CUDA graphs are
enabled and cuDNN searches its convolution algorithms exhaustively once: the whole network is
replayed as one graph launch, which needs the buffers at fixed addresses; a last, short batch is
padded to the captured batch size and the padding is sliced off the output. The TensorRT provider
gets optimisation-profile shapes (so it does not rebuild its engine for every new resolution) and
an engine cache folder.
"""

from __future__ import annotations

import importlib.metadata
import re
import secrets
import shlex
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2i.common import round_up
from i2i.errors import I2IError, install_hint
from i2i.runtime.backends.base import AutoTier, Backend, Card, TensorSpec, register_backend, required_card
from i2i.runtime.backends.ort_binding import ORT_TYPES, BoundRunner
from i2i.runtime.backends.ort_placement import (
    RECORD_OPTION,
    PlacedNode,
    check_gpu_placement,
    profiled_placement,
    recorded_placement,
)
from i2i.runtime.card import CARD_KEY, ModelCard, ModelIO

_ORT_TYPES = ORT_TYPES
__all__ = ["BoundRunner", "OnnxRuntimeBackend", "OrtSession", "plan_providers"]
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
OPTIONS = {
    "threads": "intra-op threads (0: ORT's default)",
    "spin": "let ORT's worker threads busy-wait between operators (default false)",
    "provider": "cpu, cuda or tensorrt (default: the device's own)",
    "cuda_graph": "true, false or auto (auto: on for static-size models on CUDA)",
    "io_binding": "true, false or auto (auto: on for CUDA)",
    "trt_cache": "folder for the TensorRT provider's engine and timing caches",
    "cpu_fallback": "run a GPU session whose compute nodes ORT places on the CPU, with a warning (default "
    "false: refused; shape arithmetic on the CPU is always allowed)",
}
TRT_CACHE = Path.home() / ".cache" / "i2i" / "ort-trt"
# TensorRT-provider profile for dynamic models: from small crops to 1080p, optimised for 720p.
PROFILE_MIN, PROFILE_OPT, PROFILE_MAX = (1, 64, 64), (1, 720, 1280), (8, 1080, 1920)


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise I2IError(f"onnxruntime is not installed ({exc}); {install_command('cpu')}") from None
    return onnxruntime


# -- which onnxruntime is installed, and the command that gets the GPU one ------------------------
def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def install_command(extra: str) -> str:
    """The pip command that installs i2i's ``extra`` into this interpreter's environment."""
    return install_hint(extra)


def gpu_fix_command() -> str:
    """The exact command that gives this environment onnxruntime's GPU providers.

    ``onnxruntime`` and ``onnxruntime-gpu`` install the same ``onnxruntime/`` package, so the CPU
    distribution must go before the GPU one is (re)installed, or its files win again.
    """
    pip = f"{shlex.quote(sys.executable or 'python3')} -m pip"
    cpu, gpu = _installed("onnxruntime"), _installed("onnxruntime-gpu")
    if cpu is None:
        if gpu is None:
            return install_hint("gpu")
        return f"{pip} install --force-reinstall --no-deps 'onnxruntime-gpu=={gpu}'"
    remove = "onnxruntime onnxruntime-gpu" if gpu else "onnxruntime"
    return f"{pip} uninstall -y {remove} && {install_hint('gpu')}"


def _gpu_hint() -> str:
    return f"run `{gpu_fix_command()}` on a machine with an NVIDIA driver"


def parse_device(device: str) -> tuple[str, int]:
    """'cpu' -> ('cpu', 0); 'cuda' / 'cuda:1' -> ('cuda', 1)."""
    match = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", device)
    if not match or (match.group(1) == "cpu" and match.group(2)):
        raise I2IError(f"ort backend: unknown device {device!r}; use cpu, cuda or cuda:N")
    return match.group(1), int(match.group(2) or 0)


@dataclass(frozen=True)
class ProviderPlan:
    """What ``OnnxRuntimeBackend`` asks onnxruntime for, decided before any session exists."""

    provider: str  # "cpu" | "cuda" | "tensorrt"
    device_id: int
    precision: str  # what the model will run at: "fp32" | "fp16" | "int8" (a QDQ export runs as exported)
    providers: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    io_binding: bool = False
    cuda_graph: bool = False
    session_config: dict[str, str] = field(default_factory=dict)  # SessionOptions config entries
    cpu_compute: bool = False  # a GPU session may leave compute nodes on the CPU (warned, not refused)

    @property
    def device(self) -> str:
        return "cpu" if self.provider == "cpu" else f"cuda:{self.device_id}"


def _flag(value: Any, name: str) -> bool | None:
    """Option values from the command line are strings; 'auto' is None."""
    if value is None or value == "auto":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise I2IError(f"ort backend: option {name}={value!r} must be true, false or auto")


def _choose_provider(device: str, available: list[str], provider: str | None) -> tuple[str, str, int]:
    """(provider, device kind, device id); a provider this onnxruntime lacks names the fix."""
    if device == "auto":
        device = "cuda" if PROVIDER_NAMES["cuda"] in available else "cpu"
    kind, device_id = parse_device(device)
    provider = kind if provider is None else provider
    if provider not in PROVIDER_NAMES:
        raise I2IError(f"ort backend: unknown provider {provider!r}; valid: {', '.join(PROVIDER_NAMES)}")
    if (provider == "cpu") != (kind == "cpu"):
        raise I2IError(f"ort backend: provider {provider!r} does not run on device {device!r}")
    wanted = PROVIDER_NAMES[provider]
    if wanted not in available:
        have = ", ".join(available) or "none"
        raise I2IError(f"ort backend: this onnxruntime has no {wanted} (it has {have}); {_gpu_hint()}")
    return provider, kind, device_id


def _choose_precision(precision: str, model_precision: str, provider: str) -> str:
    """Precision is the model's own, except that the TensorRT provider can build fp16 from fp32."""
    if precision == "auto":
        precision = model_precision
    if precision not in ("fp32", "fp16", "int8"):
        raise I2IError(f"ort backend: precision {precision!r} is not supported (fp32, fp16, or an int8 export)")
    if precision != model_precision and not (provider == "tensorrt" and precision == "fp16"):
        raise I2IError(
            f"ort backend: the model was exported in {model_precision}; ORT runs it as exported "
            f"(export with --fp16 for fp16, or use the TensorRT provider, which can build fp16 from fp32)"
        )
    return precision


def _choose_graph(kind: str, static: bool, cuda_graph: Any, io_binding: Any) -> tuple[bool, bool]:
    """(CUDA graph, IO binding): graphs need a CUDA device, a fixed input size and IO binding."""
    graph = _flag(cuda_graph, "cuda_graph")
    if graph and kind == "cpu":
        raise I2IError("ort backend: CUDA graphs need a CUDA device (--device cuda)")
    if graph and not static:
        raise I2IError(
            "ort backend: CUDA graphs need a fixed input size; this model is dynamic (no static_size in its card)"
        )
    use_graph = static and kind == "cuda" if graph is None else graph
    binding = _flag(io_binding, "io_binding")
    if binding is False and use_graph:
        raise I2IError("ort backend: CUDA graphs need IO binding; drop io_binding=false")
    return use_graph, (kind == "cuda") if binding is None else binding


def profile_shapes(io: ModelIO, input_name: str, static_batch: int | None = None) -> dict[str, str]:
    """TensorRT-provider profile options: min/opt/max input shapes (the static shape when fixed)."""

    def shape(n: int, h: int, w: int) -> str:
        if io.static_size is not None:
            h, w = io.static_size
        else:
            h, w = round_up(h, io.size_multiple), round_up(w, io.size_multiple)
        dims = io.batch_shape(static_batch or n, h, w)
        return f"{input_name}:{'x'.join(str(d) for d in dims)}"

    return {
        "trt_profile_min_shapes": shape(*PROFILE_MIN),
        "trt_profile_opt_shapes": shape(*PROFILE_OPT),
        "trt_profile_max_shapes": shape(*PROFILE_MAX),
    }


def trt_precision_options(precision: str) -> dict[str, str]:
    """The TensorRT provider's precision flags. It builds weakly typed networks: fp16 layers need
    ``trt_fp16_enable`` (an fp16 export, or fp16 built from fp32), and an int8 Q/DQ export needs
    ``trt_int8_enable`` (onnx-tensorrt gives Q/DQ layers int8 outputs, which an int8-less builder
    refuses: onnxruntime issue 13381) with no calibration table: the graph's own Q/DQ scales are
    the quantisation (a table is for implicit quantisation, and TensorRT refuses dynamic ranges in
    a network with Q/DQ)."""
    options = {"trt_fp16_enable": "1" if precision == "fp16" else "0"}
    if precision == "int8":
        options.update({"trt_int8_enable": "1", "trt_int8_use_native_calibration_table": "0"})
    return options


def _gpu_providers(
    provider: str, device_id: int, precision: str, static: bool, use_graph: bool, trt: dict[str, str]
) -> list[tuple[str, dict[str, str]]]:
    # The CPU provider is always last: ORT gives it what the GPU providers leave (shape arithmetic
    # the CUDA provider prefers on the CPU); check_gpu_placement refuses compute left there.
    cpu: list[tuple[str, dict[str, str]]] = [(PROVIDER_NAMES["cpu"], {})]
    cuda_options = {
        "device_id": str(device_id),
        # Exhaustive cuDNN search is worth it once per shape; with dynamic shapes it would re-run
        # for every new frame size, so fall back to heuristics there.
        "cudnn_conv_algo_search": "EXHAUSTIVE" if static else "HEURISTIC",
        "do_copy_in_default_stream": "1",
    }
    if provider == "cuda":
        cuda_options["enable_cuda_graph"] = "1" if use_graph else "0"
        return [(PROVIDER_NAMES["cuda"], cuda_options), *cpu]
    trt_options = {
        "device_id": str(device_id),
        **trt_precision_options(precision),
        # Engine building takes minutes; the cache makes it a one-time cost per model and profile.
        "trt_engine_cache_enable": "1",
        "trt_timing_cache_enable": "1",
        "trt_cuda_graph_enable": "1" if use_graph else "0",
        **trt,
    }
    return [(PROVIDER_NAMES["tensorrt"], trt_options), (PROVIDER_NAMES["cuda"], cuda_options), *cpu]


def plan_providers(
    device: str,
    available: list[str],
    *,
    model_precision: str = "fp32",
    precision: str = "auto",
    static: bool = False,
    provider: str | None = None,
    cuda_graph: Any = "auto",
    io_binding: Any = "auto",
    trt_cache: str | Path | None = None,
    trt_profile: dict[str, str] | None = None,
    cpu_fallback: Any = False,
) -> ProviderPlan:
    """Choose execution providers and their options; every impossible request is an I2IError.

    ``device='auto'`` takes CUDA when this onnxruntime has it, else the CPU; ``provider`` picks
    the TensorRT provider over plain CUDA on a GPU.
    """
    provider, kind, device_id = _choose_provider(device, available, provider)
    precision = _choose_precision(precision, model_precision, provider)
    use_graph, use_binding = _choose_graph(kind, static, cuda_graph, io_binding)
    if provider == "cpu":
        return ProviderPlan(provider, device_id, precision, [(PROVIDER_NAMES["cpu"], {})], use_binding, use_graph)
    cache = str(trt_cache or TRT_CACHE)
    trt = {"trt_engine_cache_path": cache, "trt_timing_cache_path": cache, **(trt_profile or {})}
    allow = bool(_flag(cpu_fallback, "cpu_fallback"))
    providers = _gpu_providers(provider, device_id, precision, static, use_graph, trt)
    config = {RECORD_OPTION: "1"}  # where ORT put each node, read back by check_gpu_placement
    return ProviderPlan(provider, device_id, precision, providers, use_binding, use_graph, config, allow)


def node_placement(profile: str | Path) -> Counter[str]:
    """Execution provider -> number of graph nodes it ran, from an ORT profile (``enable_profiling``).

    This is where nodes were actually placed; ``session.get_providers()`` only lists the
    providers that were registered.
    """
    return Counter(node.provider for node in profiled_placement(profile))


_SEED_LOCK = threading.Lock()


@contextmanager
def _seed_new_session(ort: Any) -> Iterator[None]:
    """Give the session made in the block its own seed for random operators (RandomUniformLike's
    dropout masks): ORT seeds each new session's random kernels from one process-wide value, which
    ``onnxruntime.set_seed`` sets, so every new session repeated the previous one's masks. The lock
    keeps two sessions made at once in two threads from taking the same seed."""
    with _SEED_LOCK:
        set_seed = getattr(ort, "set_seed", None)
        if set_seed is not None:
            set_seed(secrets.randbits(62))
        yield


class OrtSession:
    """A thin InferenceSession wrapper that turns load errors into one line."""

    def __init__(
        self,
        path: str | Path,
        providers: list[str] | list[tuple[str, dict[str, str]]] | None = None,
        threads: int = 0,
        spin: bool = False,
        config: dict[str, str] | None = None,
        profile_dir: str | None = None,
    ) -> None:
        ort = _import_ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise I2IError(f"model not found: {self.path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # ORT's worker threads busy-wait between operators by default. In the pipeline the capture
        # thread and pre/post-processing need the same cores, and on a shared or small CPU the
        # spinning starves them: measured 1.5-2x lower throughput on a loaded 2-core machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        for key, value in (config or {}).items():
            options.add_session_config_entry(key, value)
        if profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(profile_dir) / "ort")
        options.log_severity_level = 2  # warnings stay visible (a provider that falls back says so)
        try:
            with _seed_new_session(ort):
                self.session = ort.InferenceSession(
                    str(self.path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
                )
        except Exception as exc:
            detail = " ".join(str(exc).split())[:300]
            raise I2IError(f"cannot load ONNX model {self.path}: {detail}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    @property
    def card(self) -> ModelCard | None:
        """The card as ONNX Runtime reads the metadata (the same bytes ``ModelCard.from_onnx`` parses)."""
        meta = self.session.get_modelmeta().custom_metadata_map
        return ModelCard.from_json(meta[CARD_KEY], where=str(self.path)) if CARD_KEY in meta else None

    def specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(arg: Any) -> TensorSpec:
            return TensorSpec(arg.name, tuple(arg.shape), _ORT_TYPES.get(arg.type, arg.type))

        return [spec(a) for a in self.session.get_inputs()], [spec(a) for a in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def close(self) -> None:
        self.session = None

    def __enter__(self) -> OrtSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@register_backend("ort")
class OnnxRuntimeBackend(Backend):
    label = "ONNX Runtime"
    suffixes = (".onnx",)
    devices = ("cpu", "cuda")
    default_device = "cpu"
    precisions = ("fp32", "fp16", "int8")  # plan_providers refines: ORT runs a graph as exported
    options = OPTIONS
    precision_choice: str  # one line: the precision it runs at and why
    auto_rank = (
        AutoTier(10, "TensorRT (ONNX Runtime's TensorRT provider)", "cuda", {"provider": "tensorrt"}),
        AutoTier(20, "ORT CUDA", "cuda"),
        AutoTier(40, "ORT CPU", "cpu"),
    )
    _session: OrtSession
    _runner: BoundRunner | None
    _profile_dir: tempfile.TemporaryDirectory[str] | None = None
    plan: ProviderPlan

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime
        except ImportError as exc:
            return False, f"onnxruntime does not import ({exc}); {install_command('cpu')}"
        return True, f"onnxruntime {onnxruntime.__version__}"

    @staticmethod
    def available_providers() -> list[str]:
        return list(_import_ort().get_available_providers())

    @classmethod
    def auto_device(cls) -> str:
        return "cuda" if PROVIDER_NAMES["cuda"] in cls.available_providers() else "cpu"

    @classmethod
    def tier_skip(cls, tier: AutoTier) -> str | None:
        provider = PROVIDER_NAMES[tier.opts.get("provider", tier.device)]
        if provider not in cls.available_providers():
            return f"onnxruntime has no {provider} ({_gpu_hint()})"
        return None

    @classmethod
    def _open(cls, path: Path, card: Card, device: str, precision: str, **opts: Any) -> Backend:
        card = required_card(card, path)
        io = card.io
        trt_profile = (
            profile_shapes(io, _input_name(path), card.static_batch) if opts.get("provider") == "tensorrt" else None
        )
        plan = plan_providers(
            device,
            cls.available_providers(),
            model_precision=card.precision,
            precision=precision,
            static=io.static_size is not None,
            provider=opts.get("provider"),
            cuda_graph=opts.get("cuda_graph", "auto"),
            io_binding=opts.get("io_binding", "auto"),
            trt_cache=opts.get("trt_cache"),
            trt_profile=trt_profile,
            cpu_fallback=opts.get("cpu_fallback", False),
        )
        gpu = plan.provider != "cpu"
        if gpu:
            _preload_gpu_libraries()
        # Where ORT placed the nodes: recorded at creation (onnxruntime 1.24+), else profiled on the first run.
        recorded = "get_provider_graph_assignment_info" in dir(_import_ort().InferenceSession)
        profile_dir = tempfile.TemporaryDirectory(prefix="i2i-ort-") if gpu and not recorded else None
        spin = bool(_flag(opts.get("spin", False), "spin"))
        session = _start_session(path, plan, int(opts.get("threads", 0)), spin, profile_dir)
        _check_registered(session, plan)
        if gpu and recorded:
            placed = recorded_placement(session.session)
            if placed is None:
                print(f"ort backend: onnxruntime kept no placement record for {path.name}; unchecked", file=sys.stderr)
            try:
                _check_placement(session, path, plan, placed or [])
            except I2IError:
                session.close()
                raise
        inputs, outputs = session.specs()
        backend = cls(path, card, inputs, outputs, plan.device, plan.precision)
        backend._session, backend.plan, backend._profile_dir = session, plan, profile_dir
        as_exported = f"the model's own: ORT runs a {card.precision} export as exported"
        why = "asked for explicitly" if precision != "auto" else as_exported
        backend.precision_choice = f"precision: {plan.precision} ({why})"
        backend._runner = (
            BoundRunner(session, "cpu" if plan.provider == "cpu" else "cuda", plan.device_id, plan.cuda_graph)
            if plan.io_binding
            else None
        )
        return backend

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        result = self._runner(batch) if self._runner is not None else self._session.run(batch)
        if self._profile_dir is not None:
            self._report_placement()
        return result

    def _report_placement(self) -> None:
        """After the first run (onnxruntime before 1.24): check where the profile says nodes ran."""
        assert self._profile_dir is not None
        placed = profiled_placement(self._session.session.end_profiling())
        self._profile_dir.cleanup()
        self._profile_dir = None
        _check_placement(self._session, self.path, self.plan, placed)

    def _close(self) -> None:
        self._runner = None
        self._session.close()
        if self._profile_dir is not None:
            self._profile_dir.cleanup()

    def describe(self) -> str:
        plan: ProviderPlan = self.plan
        extras = [e for e, on in (("IO binding", plan.io_binding), ("CUDA graph", plan.cuda_graph)) if on]
        suffix = f", {', '.join(extras)}" if extras else ""
        return f"ort {PROVIDER_NAMES[plan.provider]} ({self.device}, {self.precision}{suffix})"


def _input_name(path: Path) -> str:
    """The graph's first input name, which the TensorRT provider's profile options are keyed by
    (read through a CPU session without graph optimisation: a small cost beside an engine build)."""
    ort = _import_ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise I2IError(f"cannot load ONNX model {path}: {' '.join(str(exc).split())[:200]}") from None
    return str(session.get_inputs()[0].name)


def _preload_gpu_libraries() -> None:
    """Load pip-installed CUDA/cuDNN libraries before a CUDA session (onnxruntime >= 1.21);
    without it they are found only if torch happened to be imported first."""
    ort = _import_ort()
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


def _check_registered(session: OrtSession, plan: ProviderPlan) -> None:
    """The provider asked for must have registered (ORT drops one that fails to initialise, e.g. the
    TensorRT provider without TensorRT's libraries, and carries on with the next). Where the
    registered provider's nodes went is another question, answered by the fallback setting."""
    active = session.session.get_providers()
    wanted = PROVIDER_NAMES[plan.provider]
    if not active or active[0] != wanted:
        session.close()
        raise I2IError(
            f"ort backend: {wanted} failed to start (onnxruntime runs {', '.join(active) or 'nothing'}); "
            "check the CUDA/cuDNN/TensorRT libraries match this onnxruntime-gpu"
        )


def _check_placement(session: OrtSession, path: Path, plan: ProviderPlan, placed: list[PlacedNode]) -> None:
    """Refuse (or, with cpu_fallback=true, report) compute nodes the GPU providers left on the CPU."""

    def warn(message: str) -> None:
        print(message, file=sys.stderr)

    check_gpu_placement(placed, path, PROVIDER_NAMES[plan.provider], allow=plan.cpu_compute, warn=warn)


def _start_session(
    path: Path, plan: ProviderPlan, threads: int, spin: bool, profile: tempfile.TemporaryDirectory[str] | None
) -> OrtSession:
    return OrtSession(
        path,
        providers=plan.providers,
        threads=threads,
        spin=spin,
        config=plan.session_config,
        profile_dir=profile.name if profile else None,
    )
