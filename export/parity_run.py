"""Stages 5-6 of the export, the runs: the exported graph in ONNX Runtime (CPU) against the torch
module on the parity inputs (``i2i.export.parity`` makes the inputs and the figures)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from i2i.errors import I2IError
from i2i.export.frame import FRAME_INPUT
from i2i.export.parity import compare, compare_frames, frame_inputs, parity_inputs, summarize, summarize_frames
from i2i.export.precision import emulate_fp16


def session_of(model: onnx.ModelProto, optimize: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise I2IError(f"ONNX Runtime cannot load the exported graph: {' '.join(str(exc).split())[:300]}") from None


def tensor_parity(
    module: torch.nn.Module,
    model: onnx.ModelProto,
    size_multiple: int,
    image_dir: Path | None,
    precision: str,
    *,
    batch: int | None = None,
    shape: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The tensor graph (any precision) against the torch fp32 module.

    fp16 graphs run as their fp16 emulation (``emulate_fp16``): ONNX Runtime's CPU provider would
    run most of an fp16 graph in fp32 and hide fp16 overflow; the emulation shows what an fp16
    engine computes.
    """
    expanded = 0
    if precision == "fp16":
        model, expanded = emulate_fp16(model)
    session = session_of(model)
    input_dtype = np.float16 if model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else None
    cases = []
    inputs = parity_inputs(size_multiple, image_dir, batch=batch, size=shape)
    if precision == "int8":  # calibrated on real images: noise inputs lie outside the observed ranges
        inputs = [(name, x) for name, x in inputs if name.startswith("image ")]
    for name, batch_in in inputs:
        reference, value_range = _reference_and_range(module, batch_in)
        feed = batch_in.astype(input_dtype) if input_dtype is not None else batch_in
        case = compare(reference, session.run(None, {model.graph.input[0].name: feed})[0], value_range)
        case["input"] = name
        cases.append(case)
    report = summarize(cases, precision)
    report["fp16_norms_expanded"] = expanded
    return report


_BOUNDED_ACTIVATIONS = (torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.Hardtanh)


def _reference_and_range(module: torch.nn.Module, batch: np.ndarray) -> tuple[np.ndarray, float]:
    """The torch output and the peak-to-peak range of what it is computed from: the input of a
    final tanh/sigmoid module (a net with large activations computes those in float32, and its
    round-off scales with them), else the output itself. Scales the absolute parity bar."""
    last: dict[str, Any] = {}

    def remember(layer: torch.nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        last["layer"], last["input"] = layer, inputs[0] if inputs else None

    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(remember) for m in leaves]
    try:
        with torch.no_grad():
            out = module(torch.from_numpy(batch))
    finally:
        for handle in handles:
            handle.remove()
    before = last.get("input")
    basis = out
    if isinstance(last.get("layer"), _BOUNDED_ACTIVATIONS) and isinstance(before, torch.Tensor):
        basis = before if before.shape == out.shape else out
    return out.numpy(), float((basis.max() - basis.min()).item())


def run_parity(
    generator: torch.nn.Module, onnx_path: Path, size_multiple: int, image_dir: str | Path | None
) -> dict[str, Any]:
    """fp32 tensor parity of an exported file (kept for callers of the first version)."""
    image = Path(image_dir) if image_dir else None
    return tensor_parity(generator, onnx.load(str(onnx_path)), size_multiple, image, "fp32")


def frame_parity(
    tensor_model: onnx.ModelProto,
    frame_model: onnx.ModelProto,
    size_multiple: int,
    image_dir: Path | None,
    *,
    batch: int | None = None,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The frame graph against the tensor graph + host-side preprocess/postprocess, on uint8 frames."""
    from i2i.runtime.frames import postprocess, preprocess

    tensor_session, frame_session = session_of(tensor_model), session_of(frame_model)
    tensor_in = tensor_model.graph.input[0].name
    cases = []
    for name, frames in frame_inputs(size_multiple, image_dir, batch=batch, size=size):
        tensors, hw = preprocess(list(frames), size_multiple)
        reference = np.stack(postprocess(tensor_session.run(None, {tensor_in: tensors})[0], hw))
        case = compare_frames(reference, frame_session.run(None, {FRAME_INPUT: frames})[0])
        case["input"] = name
        cases.append(case)
    return summarize_frames(cases)


def runner(model: onnx.ModelProto, precision: str) -> Callable[[np.ndarray], np.ndarray]:
    """The graph as ``tensor_parity`` runs it (fp16 as its emulation): float32 NCHW in, out."""
    session = session_of(emulate_fp16(model)[0] if precision == "fp16" else model)
    fp16_in = model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    name = model.graph.input[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x.astype(np.float16) if fp16_in else x})[0])

    return run
