"""Precision converters of exported graphs (the rows of ``i2i.runtime.precisions``), and the fp16 pass.

fp16 halves weights and activations, but a few ops are numerically fragile in half precision
and stay fp32 by default (``FP32_OPS``):

* InstanceNormalization computes a mean and a variance over H×W. In fp16 the squared deviations
  overflow past |x - mean| > 256 and the sum loses precision on large frames: the known
  "InstanceNorm in fp16 gives black / NaN frames" failure of exported CycleGAN/pix2pix models.
  The fp32 island costs two Casts per norm layer and keeps the statistics exact.
* Reductions (ReduceMean/Sum/...) and the pieces of a decomposed norm (Pow, Sqrt) for the same
  reason; Layer/GroupNormalization likewise.

The pass runs on the ONNX graph (after tracing, before the frame wrapper), so one traced graph
serves every precision and the uint8 pre/post-processing added afterwards stays fp32. It uses
ONNX Runtime's float16 converter (``onnxruntime.transformers.float16``; onnxruntime is a base
dependency of i2i), which inserts the Casts around blocked ops and at the graph I/O.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from i2i.errors import I2IError, install_hint
from i2i.runtime.precisions import export_precisions, get_precision

# Ops kept in fp32 inside an fp16 graph unless the caller overrides the list.
FP32_OPS: tuple[str, ...] = (
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "Pow",
    "Sqrt",
)


@dataclass(frozen=True)
class Conversion:
    """What a precision converter may need besides the fp32 graph (see the precision table,
    ``i2i.runtime.precisions``, whose rows name their converter)."""

    size_multiple: int = 1
    keep_fp32_ops: tuple[str, ...] | None = None  # fp16: ops kept fp32; None = FP32_OPS
    fp16_io: bool = False  # fp16: float16 graph input/output (default: fp32 I/O)
    calibration_dir: Path | None = None  # int8: real images like the ones to translate
    calibrator: str = "minmax"  # int8: minmax | entropy | percentile


def fp32_ops_of(precision: str, keep: Sequence[str] | None) -> tuple[str, ...]:
    """The op types a graph of ``precision`` keeps in fp32 (recorded in the card)."""
    if precision != "fp16":
        return ()
    return tuple(keep) if keep is not None else FP32_OPS


def convert(model: onnx.ModelProto, precision: str, conversion: Conversion) -> onnx.ModelProto:
    """An fp32 graph converted to ``precision`` by the converter its table row names."""
    row = get_precision(precision)
    if not row.exportable:
        exportable = ", ".join(export_precisions())
        raise I2IError(f"{precision} is a run-time precision, not an export one (export: {exportable})")
    if row.converter is None:
        return model
    module_name, function = row.converter.split(":")
    converter = getattr(importlib.import_module(module_name), function)
    converted: onnx.ModelProto = converter(model, conversion)
    return converted


def convert_fp16(model: onnx.ModelProto, conversion: Conversion) -> onnx.ModelProto:
    """The fp16 row's converter."""
    return to_fp16(model, keep_fp32_ops=fp32_ops_of("fp16", conversion.keep_fp32_ops), fp16_io=conversion.fp16_io)


def convert_int8(model: onnx.ModelProto, conversion: Conversion) -> onnx.ModelProto:
    """The int8 row's converter: symmetric Q/DQ calibrated on ``conversion.calibration_dir``."""
    from i2i.export.quantize import calibration_batches, to_int8

    if conversion.calibration_dir is None:
        raise I2IError("int8 needs calibration images: --calib-data DIR (real frames like the ones to translate)")
    batches = calibration_batches(conversion.calibration_dir, conversion.size_multiple)
    return to_int8(model, batches, conversion.calibrator)


def to_fp16(model: onnx.ModelProto, *, keep_fp32_ops: Sequence[str], fp16_io: bool) -> onnx.ModelProto:
    """Convert a float32 graph to float16, keeping ``keep_fp32_ops`` (and by default the I/O) fp32.

    Initialisers that only feed fp32 ops stay fp32; values outside fp16's range are clamped to
    ±65504 by the converter (the parity check then decides whether the result is acceptable).
    """
    try:
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    except ImportError as exc:  # onnxruntime comes with the cpu (or gpu) extra
        raise I2IError(
            f"the fp16 pass needs onnxruntime's float16 converter ({exc}); install it with: {install_hint('cpu')}"
        ) from None
    # The converter's own block list (ML ops without fp16 kernels) still applies; ours adds to it.
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    try:
        converted = convert_float_to_float16(model, keep_io_types=not fp16_io, op_block_list=block)
    except Exception as exc:
        raise I2IError(f"fp16 conversion failed: {' '.join(str(exc).split())[:300]}") from None
    toposort(converted.graph)  # the converter appends the input Casts at the end of the node list
    return converted


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs
    (the ONNX checker requires it; ONNX Runtime does not, which is why converters forget)."""
    available = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(range(len(graph.node)))
    order: list[int] = []
    while pending:
        ready = [i for i in pending if all(name in available for name in graph.node[i].input)]
        if not ready:
            raise I2IError(f"graph has a cycle or a dangling input near node {graph.node[pending[0]].name!r}")
        for i in ready:
            available.update(graph.node[i].output)
        order += ready
        taken = set(ready)
        pending = [i for i in pending if i not in taken]
    ordered = [graph.node[i] for i in order]
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def emulate_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """An fp32 graph that computes what an fp16 engine computes, for parity checks on a CPU.

    ONNX Runtime's CPU provider has fp16 kernels for few ops: for the others it silently inserts
    Casts and runs whole chains of "fp16" nodes in fp32, so an fp16 graph run on a CPU says little
    about fp16 on a GPU. This rendition makes the fp16 storage explicit instead: weights hold
    their fp16 values, every op computes in fp32 (as GPU kernels accumulate) and every tensor the
    fp16 graph stores in fp16 is rounded to fp16 (a Cast pair, which overflows to ±Inf past
    65504 exactly like fp16 storage). InstanceNormalizations that the graph computes in fp16 are
    spelled out in primitive ops (mean, x − mean, (x − mean)², mean, √(var + ε), divide, scale,
    shift), each rounded to fp16: TensorRT without an fp32 constraint on the layer does the same,
    and that is where (x − mean)² overflows into flat or NaN frames. Ops kept fp32 in the graph
    (``FP32_OPS``) are left alone. Returns the graph and how many norms were spelled out.
    """
    emulation = _Fp16Emulation(model)
    return emulation.build(), emulation.expanded


_F16, _F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


class _Fp16Emulation:
    """The pieces of ``emulate_fp16``: one pass over the graph's nodes with fresh names for the
    rounding Casts it inserts."""

    def __init__(self, model: onnx.ModelProto) -> None:
        inferred = onnx.shape_inference.infer_shapes(model)
        graph = inferred.graph
        self.types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
        self.types.update({t.name: t.data_type for t in graph.initializer})
        self.out = onnx.ModelProto()
        self.out.CopyFrom(model)
        self.counter = 0
        self.expanded = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"i2i_emu{self.counter}_{stem}"

    def rounded(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        """``node`` computing in fp32, then each of its outputs rounded to fp16 (kept in fp32)."""
        from onnx import helper

        tail = []
        for k, name in enumerate(node.output):
            raw, half = self.fresh("raw"), self.fresh("half")
            node.output[k] = raw
            tail += [
                helper.make_node("Cast", [raw], [half], to=_F16),
                helper.make_node("Cast", [half], [name], to=_F32),
            ]
        return [node, *tail]

    def build(self) -> onnx.ModelProto:
        graph = self.out.graph
        del graph.value_info[:]
        for init in graph.initializer:
            if init.data_type == _F16:
                init.CopyFrom(_as_fp32(init))
        nodes = self._fp32_inputs(graph)
        for original in graph.node:
            nodes += self._emulate(original, graph)
        nodes += self._fp16_outputs(graph, nodes)
        del graph.node[:]
        graph.node.extend(nodes)
        toposort(graph)
        return self.out

    def _fp32_inputs(self, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
        """fp16 graph inputs (--fp16-io): the graph computes from an fp32 copy."""
        from onnx import helper

        nodes = []
        for value in graph.input:
            if value.type.tensor_type.elem_type == _F16:
                inner = self.fresh("in")
                for node in graph.node:
                    node.input[:] = [inner if i == value.name else i for i in node.input]
                nodes.append(helper.make_node("Cast", [value.name], [inner], to=_F32))
        return nodes

    def _emulate(self, original: onnx.NodeProto, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
        node = onnx.NodeProto()
        node.CopyFrom(original)
        for attr in node.attribute:  # Constant / ConstantOfShape values
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == _F16:
                attr.t.CopyFrom(_as_fp32(attr.t))
        if node.op_type == "Cast":
            to = next(a for a in node.attribute if a.name == "to")
            if to.i != _F16:
                return [node]
            to.i = _F32  # storing into fp16: round, stay fp32
            return self.rounded(node)
        if node.op_type == "InstanceNormalization" and self.types.get(node.input[0]) == _F16:
            self.expanded += 1
            return _spelled_out_instance_norm(node, self.rounded, self.fresh, graph)
        if any(self.types.get(o) == _F16 for o in node.output):
            return self.rounded(node)
        return [node]

    def _fp16_outputs(self, graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """--fp16-io outputs: the graph returns fp16."""
        from onnx import helper

        tail = []
        for name in {v.name for v in graph.output if v.type.tensor_type.elem_type == _F16}:
            inner = self.fresh("out")
            for node in nodes:
                node.output[:] = [inner if o == name else o for o in node.output]
            tail.append(helper.make_node("Cast", [inner], [name], to=_F16))
        return tail


def _as_fp32(tensor: onnx.TensorProto) -> onnx.TensorProto:
    from onnx import numpy_helper

    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def _spelled_out_instance_norm(node: onnx.NodeProto, rounded: Any, fresh: Any, graph: onnx.GraphProto) -> list[Any]:
    from onnx import helper, numpy_helper

    eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    axes, eps_name, cshape = fresh("axes"), fresh("eps"), fresh("cshape")
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), axes),
            numpy_helper.from_array(np.array(np.float16(eps), dtype=np.float32), eps_name),
            numpy_helper.from_array(np.array([1, -1, 1, 1], dtype=np.int64), cshape),
        ]
    )
    x, scale, bias = node.input
    names = ("mean", "d", "d2", "var", "ve", "sd", "n", "s", "b", "ns")
    mean, d, d2, var, ve, sd, n, s, b, ns = (fresh(k) for k in names)
    steps = [
        helper.make_node("ReduceMean", [x, axes], [mean], keepdims=1),
        helper.make_node("Sub", [x, mean], [d]),
        helper.make_node("Mul", [d, d], [d2]),
        helper.make_node("ReduceMean", [d2, axes], [var], keepdims=1),
        helper.make_node("Add", [var, eps_name], [ve]),
        helper.make_node("Sqrt", [ve], [sd]),
        helper.make_node("Div", [d, sd], [n]),
        helper.make_node("Reshape", [scale, cshape], [s]),
        helper.make_node("Reshape", [bias, cshape], [b]),
        helper.make_node("Mul", [n, s], [ns]),
        helper.make_node("Add", [ns, b], [node.output[0]]),
    ]
    return [piece for step in steps for piece in rounded(step)]
