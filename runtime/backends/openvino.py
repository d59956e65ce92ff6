"""OpenVINO backend (CPU): reads the ONNX file directly, no conversion step.

The inference precision is always set explicitly with ``INFERENCE_PRECISION_HINT``: on CPUs with
AMX/AVX512-BF16 OpenVINO otherwise picks bf16 by itself, which is fast but drifts visibly from
the exported model (max abs diff ~0.04 on a [-1, 1] image). ``precision="auto"`` therefore picks
bf16 (or fp16) only where the CPU runs it natively *and* its parity for this model, measured on
the card's parity inputs, clears the precision table's bar (``i2i.runtime.precision_auto``; the
choice and its reason are ``backend.precision_choice``); otherwise f32, the precision the parity
report was measured at, and an int8 export as int8. Asked for explicitly, bf16/fp16 are refused
where the CPU has no native support (emulation would be slower than f32, defeating the point). The
compiled model is asked back for its precision, so a plugin that overrides the hint is caught.

Shape specialisation: the CPU plugin runs a model compiled for one fixed shape about twice as
fast as the dynamic-shape model (measured 40 vs 79 ms on the tiny U-Net at 256x320), but a
compile costs ~0.3 s. A stream repeats one shape, a folder of photos may not, so the dynamic
model serves a shape until it has been seen ``specialise`` times (default 3), then a model
compiled for exactly that shape takes over (the last few are kept).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from i2i.errors import I2IError, MissingDependencyError, install_hint
from i2i.runtime.backends.base import (
    AutoTier,
    Backend,
    Card,
    TensorSpec,
    check_graph,
    register_backend,
    required_card,
)

OPTIONS = {
    "threads": "inference threads (0: OpenVINO's default)",
    "specialise": "compile a fixed-shape model after a shape was seen this many times (0: never; default 3)",
}
_KEEP_SPECIALISED = 4
# i2i precision -> (OpenVINO hint, the CPU capability it needs, or None for always available)
# int8: a QDQ-quantised export; the hint then only governs the ops left unquantised.
_PRECISIONS = {"fp32": ("f32", None), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16"), "int8": ("f32", None)}
_OV_TYPES = {"f32": "float32", "f16": "float16", "u8": "uint8"}


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise MissingDependencyError("openvino", "openvino", str(exc)) from None
    return openvino


def _spec(port: Any) -> TensorSpec:
    shape = tuple(
        d.get_length() if d.is_static else None  # dynamic axes -> None
        for d in port.get_partial_shape()
    )
    element = port.get_element_type().get_type_name()
    return TensorSpec(port.get_any_name(), shape, _OV_TYPES.get(element, element))


@register_backend("openvino")
class OpenVinoBackend(Backend):
    label = "OpenVINO"
    suffixes = (".onnx",)
    devices = ("cpu",)
    default_device = "cpu"
    precisions = tuple(_PRECISIONS)
    options = OPTIONS
    auto_rank = (AutoTier(30, "OpenVINO CPU", "cpu"),)
    precision_choice: str  # one line: the precision it runs at and why ("precision: bf16 (CPU has ...)")
    _request: Any
    _compiled: Any
    _model: Any
    _compile: Any
    specialise: int
    _seen: Counter[tuple[int, ...]]
    _specialised: OrderedDict[tuple[int, ...], Any]

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import openvino
        except ImportError as exc:
            return False, f"openvino does not import ({exc}); {install_hint('openvino')}"
        return True, f"openvino {openvino.get_version()}"

    @classmethod
    def _open(cls, path: Path, card: Card, device: str, precision: str, **opts: Any) -> Backend:
        from i2i.runtime import precision_auto

        card = required_card(card, path)
        quantised = card.precision == "int8"
        ov = _import_openvino()
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            detail = " ".join(str(exc).split())[:200]
            raise I2IError(f"openvino backend: cannot read {path}: {detail}") from None
        # The graph against its card (as every backend at open) before auto runs any parity input through it.
        check_graph(path, card.io, [_spec(p) for p in model.inputs], [_spec(p) for p in model.outputs])
        choice = precision_auto.choose(path, card) if precision == "auto" else None
        precision = choice.precision if choice is not None else precision
        if (precision == "int8") != quantised:
            raise I2IError(
                "openvino backend: int8 runs int8 exports (i2i-export --int8), and an int8 export runs as int8"
            )
        hint, capability = _PRECISIONS[precision]

        if capability is not None:
            capabilities = precision_auto.cpu_capabilities()
            if capability not in capabilities:
                raise I2IError(
                    f"openvino backend: this CPU has no native {precision} ({', '.join(capabilities)}); use fp32"
                )
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if int(opts.get("threads", 0)) > 0:
            config["INFERENCE_NUM_THREADS"] = int(opts["threads"])

        def compile_model(model: Any) -> Any:
            try:
                compiled = core.compile_model(model, "CPU", config)
            except Exception as exc:
                detail = " ".join(str(exc).split())[:200]
                raise I2IError(f"openvino backend: cannot compile {path}: {detail}") from None
            chosen = compiled.get_property("INFERENCE_PRECISION_HINT")
            actual = chosen.get_type_name() if hasattr(chosen, "get_type_name") else str(chosen)
            if actual != hint:
                raise I2IError(f"openvino backend: asked for {hint} inference but the CPU plugin chose {actual}")
            return compiled

        compiled = compile_model(model)
        inputs = [_spec(port) for port in compiled.inputs]
        outputs = [_spec(port) for port in compiled.outputs]
        backend = cls(path, card, inputs, outputs, "cpu", precision)
        backend.precision_choice = (choice or precision_auto.Choice(precision, "asked for explicitly")).describe()
        backend._model = model
        backend._compile = compile_model
        backend._compiled = compiled
        backend._request = compiled.create_infer_request()
        backend.specialise = int(opts.get("specialise", 3))
        backend._seen = Counter()
        backend._specialised = OrderedDict()
        return backend

    def _request_for(self, shape: tuple[int, ...]) -> Any:
        """The infer request for this batch shape: a specialised one once the shape keeps coming."""
        if shape in self._specialised:
            self._specialised.move_to_end(shape)
            return self._specialised[shape]
        self._seen[shape] += 1
        if not self.specialise or self._seen[shape] < self.specialise:
            return self._request
        self._model.reshape(list(shape))  # compile_model copies the model: reshaping it later is safe
        request = self._compile(self._model).create_infer_request()
        self._specialised[shape] = request
        if len(self._specialised) > _KEEP_SPECIALISED:
            self._specialised.popitem(last=False)
        return request

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        # share_inputs avoids copying the batch into OpenVINO's tensor; the output is copied out
        # (share_outputs=False) because the next request overwrites it.
        result = self._request_for(batch.shape).infer({0: batch}, share_inputs=True)
        return np.asarray(result[0])

    def _close(self) -> None:
        self._request = None
        self._compiled = None
        self._specialised.clear()
