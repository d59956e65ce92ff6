"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers.

Provider choice is explicit (``plan_providers``): a requested GPU provider that onnxruntime lacks
is an error naming the ``i2i[gpu]`` extra, and a session that silently fell back to the CPU (ORT
does that when a provider fails to initialise) is refused rather than run 50x slower unnoticed.

On a GPU the batch goes through IO binding: ORT copies the host batch straight to the device and
the output straight back (one copy each way, no intermediate host OrtValue). For models with a
fixed input size (``static_size`` in the card) CUDA graphs are enabled: the whole network is
replayed as one graph launch, which needs device buffers at fixed addresses, so the input and
output are allocated once and updated in place; a last, short batch is padded to the captured
batch size and the padding is sliced off the output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.backends.base import Backend, TensorSpec, check_options, register_backend
from i2i.runtime.card import CARD_KEY, require_card

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
OPTIONS = ("threads", "spin", "provider", "cuda_graph", "io_binding", "trt_cache")
_GPU_HINT = "pip install 'i2i[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA driver"


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a base dependency
        raise I2IError(f"onnxruntime is not installed ({exc}); pip install i2i") from None
    return onnxruntime


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
) -> ProviderPlan:
    """Choose execution providers and their options; every impossible request is an I2IError.

    ``device='auto'`` takes CUDA when this onnxruntime has it, else the CPU; ``provider`` picks
    the TensorRT provider over plain CUDA on a GPU. Precision is the model's own except with the
    TensorRT provider, which can build fp16 kernels from an fp32 graph.
    """
    if device == "auto":
        device = "cuda" if PROVIDER_NAMES["cuda"] in available else "cpu"
    kind, device_id = parse_device(device)
    if provider is None:
        provider = kind
    if provider not in PROVIDER_NAMES:
        raise I2IError(f"ort backend: unknown provider {provider!r}; valid: {', '.join(PROVIDER_NAMES)}")
    if (provider == "cpu") != (kind == "cpu"):
        raise I2IError(f"ort backend: provider {provider!r} does not run on device {device!r}")
    wanted = PROVIDER_NAMES[provider]
    if wanted not in available:
        have = ", ".join(available) or "none"
        raise I2IError(f"ort backend: this onnxruntime has no {wanted} (it has {have}); {_GPU_HINT}")

    if precision == "auto":
        precision = model_precision
    if precision not in ("fp32", "fp16", "int8"):
        raise I2IError(f"ort backend: precision {precision!r} is not supported (fp32, fp16, or an int8 export)")
    if precision != model_precision and not (provider == "tensorrt" and precision == "fp16"):
        raise I2IError(
            f"ort backend: the model was exported in {model_precision}; ORT runs it as exported "
            f"(export with --fp16 for fp16, or use the TensorRT provider, which can build fp16 from fp32)"
        )

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
    use_binding = (kind == "cuda") if binding is None else binding

    cpu: tuple[str, dict[str, str]] = (PROVIDER_NAMES["cpu"], {})
    providers: list[tuple[str, dict[str, str]]]
    if provider == "cpu":
        providers = [cpu]
    else:
        cuda_options = {
            "device_id": str(device_id),
            # Exhaustive cuDNN search is worth it once per shape; with dynamic shapes it would re-run
            # for every new frame size, so fall back to heuristics there.
            "cudnn_conv_algo_search": "EXHAUSTIVE" if static else "HEURISTIC",
            "do_copy_in_default_stream": "1",
        }
        if provider == "cuda":
            cuda_options["enable_cuda_graph"] = "1" if use_graph else "0"
            providers = [(PROVIDER_NAMES["cuda"], cuda_options), cpu]
        else:
            cache = str(trt_cache or Path.home() / ".cache" / "i2i" / "ort-trt")
            trt_options = {
                "device_id": str(device_id),
                "trt_fp16_enable": "1" if precision == "fp16" else "0",
                # Engine building takes minutes; the cache makes it a one-time cost per model and shape.
                "trt_engine_cache_enable": "1",
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": "1",
                "trt_timing_cache_path": cache,
                "trt_cuda_graph_enable": "1" if use_graph else "0",
            }
            providers = [(PROVIDER_NAMES["tensorrt"], trt_options), (PROVIDER_NAMES["cuda"], cuda_options), cpu]
    return ProviderPlan(provider, device_id, precision, providers, io_binding=use_binding, cuda_graph=use_graph)


class OrtSession:
    """A thin InferenceSession wrapper that reads the i2i card and turns load errors into one line."""

    def __init__(
        self,
        path: str | Path,
        providers: list[str] | list[tuple[str, dict[str, str]]] | None = None,
        threads: int = 0,
        spin: bool = False,
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
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:
            detail = " ".join(str(exc).split())[:200]
            raise I2IError(f"cannot load ONNX model {self.path}: {detail}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        import json

        self.card: dict[str, Any] | None = json.loads(meta[CARD_KEY]) if CARD_KEY in meta else None

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


class BoundRunner:
    """Runs a session through IO binding on ``device_type`` ('cuda' or 'cpu').

    ``fixed=True`` keeps input and output in buffers allocated on the first call and updated in
    place afterwards: CUDA graphs replay kernels with the addresses they captured, so the buffers
    must never move. The first call fixes the batch size; shorter batches are padded.
    """

    def __init__(self, session: OrtSession, device_type: str, device_id: int, fixed: bool) -> None:
        self.ort = _import_ort()
        self.session = session
        self.device_type = device_type
        self.device_id = device_id
        self.fixed = fixed
        self.binding = session.session.io_binding()
        self._input: Any = None  # OrtValue, fixed mode only
        self._output: Any = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.fixed:
            return self._run_fixed(batch)
        self.binding.bind_cpu_input(self.session.input_name, batch)  # one host -> device copy
        self.binding.bind_output(self.session.output_name, self.device_type, self.device_id)
        self.binding.synchronize_inputs()
        self.session.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()
        return self.binding.copy_outputs_to_cpu()[0]  # one device -> host copy

    def _run_fixed(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if self._input is None:
            ort, where = self.ort, (self.device_type, self.device_id)
            self._input = ort.OrtValue.ortvalue_from_numpy(batch, *where)
            # Image translation keeps the spatial size and the I/O layout, so the output has the
            # input's shape; its dtype is the graph output's.
            out_type = self.session.session.get_outputs()[0].type
            out_dtype = np.dtype(_ORT_TYPES.get(out_type, "float32"))
            self._output = ort.OrtValue.ortvalue_from_shape_and_type(list(batch.shape), out_dtype, *where)
            self.binding.bind_ortvalue_input(self.session.input_name, self._input)
            self.binding.bind_ortvalue_output(self.session.output_name, self._output)
        else:
            captured = tuple(self._input.shape())
            if batch.shape[1:] != captured[1:] or n > captured[0]:
                raise I2IError(
                    f"ort backend: CUDA graph captured for batches of shape {captured}; got {batch.shape} "
                    "(use a fixed --batch, or pass -O cuda_graph=false)"
                )
            if n < captured[0]:  # last, short batch: repeat the last frame to the captured size
                pad = np.repeat(batch[-1:], captured[0] - n, axis=0)
                batch = np.concatenate([batch, pad])
            self._input.update_inplace(batch)
        self.session.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()
        return self._output.numpy()[:n]


@register_backend("ort")
class OnnxRuntimeBackend(Backend):
    _session: OrtSession
    _runner: BoundRunner | None
    plan: ProviderPlan

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime
        except ImportError as exc:
            return False, f"onnxruntime does not import: {exc}"
        return True, f"onnxruntime {onnxruntime.__version__}"

    @staticmethod
    def available_providers() -> list[str]:
        return list(_import_ort().get_available_providers())

    @classmethod
    def open(cls, path: str | Path, device: str = "auto", precision: str = "auto", **opts: Any) -> Backend:
        from i2i.runtime.card import parse_io, read_onnx_card

        check_options("ort", opts, OPTIONS)
        # Read the card before building a session: provider options depend on it (static shapes).
        card = require_card(read_onnx_card(path), path)
        io = parse_io(card, where=str(path))
        plan = plan_providers(
            device,
            cls.available_providers(),
            model_precision=str(card.get("precision", "fp32")),
            precision=precision,
            static=io.static_size is not None,
            provider=opts.get("provider"),
            cuda_graph=opts.get("cuda_graph", "auto"),
            io_binding=opts.get("io_binding", "auto"),
            trt_cache=opts.get("trt_cache"),
        )
        spin = bool(_flag(opts.get("spin", False), "spin"))
        session = OrtSession(path, providers=plan.providers, threads=int(opts.get("threads", 0)), spin=spin)
        active = session.session.get_providers()
        wanted = PROVIDER_NAMES[plan.provider]
        if not active or active[0] != wanted:
            session.close()
            raise I2IError(
                f"ort backend: {wanted} failed to start (onnxruntime fell back to {', '.join(active)}); "
                "check the CUDA/cuDNN/TensorRT libraries match this onnxruntime-gpu"
            )
        inputs, outputs = session.specs()
        backend = cls(Path(path), card, inputs, outputs, plan.device, plan.precision)
        backend._session = session
        backend.plan = plan
        backend._runner = (
            BoundRunner(session, "cpu" if plan.provider == "cpu" else "cuda", plan.device_id, plan.cuda_graph)
            if plan.io_binding
            else None
        )
        return backend

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self._runner is not None:
            return self._runner(batch)
        return self._session.run(batch)

    def _close(self) -> None:
        self._runner = None
        self._session.close()

    def describe(self) -> str:
        plan: ProviderPlan = self.plan
        extras = [e for e, on in (("IO binding", plan.io_binding), ("CUDA graph", plan.cuda_graph)) if on]
        suffix = f", {', '.join(extras)}" if extras else ""
        return f"ort {PROVIDER_NAMES[plan.provider]} ({self.device}, {self.precision}{suffix})"
