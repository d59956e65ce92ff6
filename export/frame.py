"""``--io frame``: wrap a tensor graph so it takes and returns OpenCV frames.

Input ``frame``: uint8 (N, H, W, 3) BGR, exactly what ``cv2.imread`` / ``VideoCapture.read``
give (stacked). Output ``output_frame``: the same layout. Inside the graph, around the
generator's float NCHW RGB [-1, 1] graph, the same steps as the host-side
``i2i.runtime.frames.preprocess`` / ``postprocess``:

    pre:  Cast(float) → x / 127.5 − 1 → BGR→RGB (Gather) → NHWC→NCHW → Pad bottom/right (reflect)
    post: crop → RGB→BGR → NCHW→NHWC → x·127.5 + 127.5 → Clip(0, 255) → Round (half to even) → Cast(uint8)

so a GPU engine does the whole frame and the host copies bytes only. Padding to the size
multiple is in the graph too (mirror, like the host's reflect-101), so any H×W larger than the
padding is accepted and the output has the input's size. The wrapper is added on the ONNX graph
after the precision pass: one traced graph serves both I/O kinds, and the pre/post-processing is
fp32 whatever the generator's precision.

Limit: the mirror padding needs each padded axis to be longer than its padding (a frame at
least ``size_multiple`` pixels per side is always fine); the host falls back to edge
replication for such tiny frames, the graph does not.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FRAME_INPUT = "frame"
FRAME_OUTPUT = "output_frame"
_P = "i2i_frame_"  # prefix of every name the wrapper adds, so it cannot clash with the generator's


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, _P + name)


def _node(op: str, inputs: list[str], output: str, **attrs: int | list[int]) -> onnx.NodeProto:
    """One wrapper node; its output and node name carry the wrapper's prefix unless already named."""
    node = helper.make_node(op, inputs, [output], name=_P + op.lower() + "_" + output.removeprefix(_P))
    node.attribute.extend(helper.make_attribute(key, value) for key, value in sorted(attrs.items()))  # as make_node
    return node


def _check_core_io(graph: onnx.GraphProto) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError("wrap_frame_io expects a graph with one input and one output")
    core_in, core_out = graph.input[0], graph.output[0]
    for value in (core_in, core_out):
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise ValueError(f"wrap_frame_io needs float32 graph I/O, {value.name} is not (use fp32 I/O)")
    return core_in, core_out


def _pre_nodes() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """uint8 NHWC BGR frame -> float NCHW RGB in [-1, 1] (before padding).

    The Cast comes first and everything after it reads the float tensor: TensorRT takes uint8
    only as network I/O feeding a Cast (onnx-tensorrt has no UINT8 Shape, Gather or Div)."""
    n = _P
    inits = [
        _const("scale", np.array(127.5, dtype=np.float32)),
        _const("one", np.array(1.0, dtype=np.float32)),
        _const("bgr", np.array([2, 1, 0], dtype=np.int64)),
    ]
    nodes = [
        _node("Cast", [FRAME_INPUT], n + "f", to=TensorProto.FLOAT),
        _node("Div", [n + "f", n + "scale"], n + "div"),
        _node("Sub", [n + "div", n + "one"], n + "unit"),
        _node("Gather", [n + "unit", n + "bgr"], n + "rgb", axis=3),
        _node("Transpose", [n + "rgb"], n + "nchw", perm=[0, 3, 1, 2]),
    ]
    return nodes, inits


def _pad_nodes(
    m: int, static_size: tuple[int, int] | None
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], bool]:
    """Nodes that compute ``pads`` and the frame's H, W (``hw``, for the crop); whether padding is needed.

    A static size gives constants; a dynamic one reads H, W from the shape of the float frame
    (after the Cast, see ``_pre_nodes``): pads = [0]*6 + [(m - H % m) % m, (m - W % m) % m]."""
    n = _P
    if static_size is not None:
        h, w = static_size
        pad_h, pad_w = -h % m, -w % m
        inits = [
            _const("pads", np.array([0, 0, 0, 0, 0, 0, pad_h, pad_w], dtype=np.int64)),
            _const("hw", np.array([h, w], dtype=np.int64)),
        ]
        return [], inits, bool(pad_h or pad_w)
    inits = [_const("m", np.array([m, m], dtype=np.int64)), _const("zeros6", np.zeros(6, dtype=np.int64))]
    nodes = [
        _node("Shape", [n + "f"], n + "hw", start=1, end=3),
        _node("Mod", [n + "hw", n + "m"], n + "rem"),
        _node("Sub", [n + "m", n + "rem"], n + "gap"),
        _node("Mod", [n + "gap", n + "m"], n + "pad_hw"),
        _node("Concat", [n + "zeros6", n + "pad_hw"], n + "pads", axis=0),
    ]
    return nodes, inits, m > 1


def _post_nodes(core_out: str, crop: bool) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """float NCHW RGB [-1, 1] -> uint8 NHWC BGR: crop the padding, x*127.5 + 127.5, clip, round half to even."""
    n = _P
    inits = [
        _const("zero", np.array(0.0, dtype=np.float32)),
        _const("max", np.array(255.0, dtype=np.float32)),
        _const("hw_axes", np.array([2, 3], dtype=np.int64)),
        _const("hw_starts", np.array([0, 0], dtype=np.int64)),
    ]
    nodes = []
    source = core_out
    if crop:
        nodes.append(_node("Slice", [core_out, n + "hw_starts", n + "hw", n + "hw_axes"], n + "cropped"))
        source = n + "cropped"
    nodes += [
        _node("Gather", [source, n + "bgr"], n + "bgr_out", axis=1),
        _node("Transpose", [n + "bgr_out"], n + "nhwc", perm=[0, 2, 3, 1]),
        _node("Mul", [n + "nhwc", n + "scale"], n + "mul"),
        _node("Add", [n + "mul", n + "scale"], n + "levels"),
        _node("Clip", [n + "levels", n + "zero", n + "max"], n + "clipped"),
        _node("Round", [n + "clipped"], n + "rounded"),
        _node("Cast", [n + "rounded"], FRAME_OUTPUT, to=TensorProto.UINT8),
    ]
    return nodes, inits


def wrap_frame_io(
    model: onnx.ModelProto,
    *,
    size_multiple: int,
    static_size: tuple[int, int] | None,
    batch: int | None,
) -> onnx.ModelProto:
    """Return a copy of ``model`` (one float32 NCHW input/output) with uint8 NHWC BGR frame I/O.

    ``static_size`` is the frame size of a static export (a multiple of ``size_multiple``, so
    no padding is needed); None keeps H and W dynamic and pads in the graph.
    """
    core_in, core_out = _check_core_io(model.graph)
    pre, inits = _pre_nodes()
    pad, pad_inits, needs_pad = _pad_nodes(int(size_multiple), static_size)
    if needs_pad:
        pre += [
            *pad,
            helper.make_node("Pad", [_P + "nchw", _P + "pads"], [core_in.name], mode="reflect", name=_P + "pad"),
        ]
    else:
        pre.append(helper.make_node("Identity", [_P + "nchw"], [core_in.name], name=_P + "no_pad"))
    post, post_inits = _post_nodes(core_out.name, crop=needs_pad)
    dims: list[int | str] = [
        batch if batch is not None else "batch",
        static_size[0] if static_size else "height",
        static_size[1] if static_size else "width",
        3,
    ]
    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    g = wrapped.graph
    del g.input[:]
    del g.output[:]
    g.input.append(helper.make_tensor_value_info(FRAME_INPUT, TensorProto.UINT8, dims))
    g.output.append(helper.make_tensor_value_info(FRAME_OUTPUT, TensorProto.UINT8, dims))
    core_nodes = list(g.node)
    del g.node[:]
    g.node.extend([*pre, *core_nodes, *post])
    g.initializer.extend([*inits, *(pad_inits if needs_pad else []), *post_inits])
    # The generator's old I/O are now internal tensors: keep their types for shape inference.
    g.value_info.extend([core_in, core_out])
    return wrapped
