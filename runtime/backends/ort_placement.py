"""Where ONNX Runtime placed a GPU session's nodes, and whether the CPU got real work.

A GPU session keeps ORT's CPU fallback on: the CUDA provider itself hands small shape arithmetic
to the CPU (``GetCpuPreferredNodes``: the Shape -> Mod -> Sub -> Concat chain of an ``--io frame``
model's padding), and refusing every CPU node refuses those models. What must not run on the CPU
is work on activations: a convolution, a norm, an element-wise op on the image. ``compute_off_gpu``
tells the two apart from ORT's own placement record and the model's data flow:

* the record: ``InferenceSession.get_provider_graph_assignment_info()`` with the session option
  ``session.record_ep_graph_assignment_info=1`` (onnxruntime 1.24+, microsoft/onnxruntime#26781;
  taken after ORT's basic graph optimisations, read right after the session is made); older
  releases only say where nodes ran in a profile of the first run (``enable_profiling``);
* the flow: a node works on activations when one of its inputs derives from a graph input other
  than through ``Shape``/``Size`` (which read only metadata). The graph is read straight from the
  ``.onnx`` protobuf (the runtime does not depend on the ``onnx`` package); a node ORT made itself
  (fusions) is judged by its operator type.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2i.errors import I2IError

RECORD_OPTION = "session.record_ep_graph_assignment_info"
CPU_PROVIDER = "CPUExecutionProvider"
METADATA_OPS = frozenset({"Shape", "Size"})  # read a tensor's shape, never its values
# Operators that carry shape arithmetic as well as image arithmetic: judged by the flow; a node
# ORT created itself with one of these types is taken for shape arithmetic (it is CPU-preferred
# only when its inputs are).
SHAPE_CAPABLE_OPS = frozenset(
    {
        "Add", "Cast", "Ceil", "Concat", "Constant", "ConstantOfShape", "Div", "Equal", "Expand", "Floor",
        "Gather", "Greater", "Identity", "Less", "Max", "Min", "Mod", "Mul", "Neg", "Range", "ReduceProd",
        "Reshape", "Shape", "Size", "Slice", "Squeeze", "Sub", "Unsqueeze", "Where",
    }
)  # fmt: skip


@dataclass(frozen=True)
class PlacedNode:
    provider: str
    op_type: str
    name: str

    def describe(self) -> str:
        return f"{self.op_type} {self.name}"


# -- ORT's record ---------------------------------------------------------------------------------
def recorded_placement(session: Any) -> list[PlacedNode] | None:
    """The placement ORT recorded while making ``session`` (None: this onnxruntime cannot say;
    an empty list: the session was made without ``RECORD_OPTION``)."""
    get = getattr(session, "get_provider_graph_assignment_info", None)
    if get is None:
        return None
    try:  # ORT_FAIL when the session was made without RECORD_OPTION
        subgraphs = get()
    except Exception:
        return None
    return [PlacedNode(str(sub.ep_name), str(n.op_type), str(n.name)) for sub in subgraphs for n in sub.get_nodes()]


def profiled_placement(profile: str | Path) -> list[PlacedNode]:
    """Where each node ran, from an ORT profile (``enable_profiling``): onnxruntime before 1.24."""
    try:
        events = json.loads(Path(profile).read_text())
    except (OSError, ValueError) as exc:
        raise I2IError(f"cannot read the ONNX Runtime profile {profile}: {exc}") from None
    placed: dict[str, PlacedNode] = {}
    for event in events:
        args = event.get("args") or {}
        name, provider = str(event.get("name", "")), args.get("provider")
        if event.get("cat") == "Node" and provider and name.endswith("_kernel_time"):
            node = name.removesuffix("_kernel_time")
            placed.setdefault(node, PlacedNode(str(provider), str(args.get("op_name", "")), node))
    return list(placed.values())


# -- the model's data flow --------------------------------------------------------------------------
def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; value is a memoryview for
    length-delimited fields, an int otherwise."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = 0, at + 8
        elif wire == 5:
            value, at = 0, at + 4
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ValueError("truncated field")
            value, at = data[at : at + size], at + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _strings(message: memoryview, wanted: dict[int, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {name: [] for name in wanted.values()}
    for number, wire, value in _fields(message):
        if wire == 2 and number in wanted:
            out[wanted[number]].append(bytes(value).decode("utf-8", "replace"))
    return out


@dataclass(frozen=True)
class GraphNode:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def read_graph(path: str | Path) -> tuple[list[GraphNode], set[str], set[str]]:
    """(nodes, graph input names, initializer names) of an ``.onnx`` file's main graph.

    ModelProto.graph is field 7; GraphProto: node 1, initializer 5, input 11; NodeProto: input 1,
    output 2, name 3, op_type 4; TensorProto.name 8; ValueInfoProto.name 1 (onnx.proto3)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return _parse_model(memoryview(mapped))
    except (OSError, ValueError) as exc:
        raise I2IError(f"cannot read the ONNX graph of {path}: {exc}") from None


def _parse_model(data: memoryview) -> tuple[list[GraphNode], set[str], set[str]]:
    nodes: list[GraphNode] = []
    inputs: set[str] = set()
    initializers: set[str] = set()
    try:
        for number, wire, graph in _fields(data):
            if number != 7 or wire != 2:
                continue
            for field, kind, value in _fields(graph):
                if kind != 2:
                    continue
                if field == 1:
                    s = _strings(value, {1: "in", 2: "out", 3: "name", 4: "op"})
                    name = s["name"][0] if s["name"] else ""
                    nodes.append(GraphNode(name, s["op"][0] if s["op"] else "", tuple(s["in"]), tuple(s["out"])))
                elif field == 5:
                    initializers.update(_strings(value, {8: "name"})["name"])
                elif field == 11:
                    inputs.update(_strings(value, {1: "name"})["name"])
    finally:
        data.release()
    return nodes, inputs - initializers, initializers


def activation_readers(nodes: list[GraphNode], graph_inputs: set[str]) -> dict[str, bool]:
    """Node name -> whether it reads a tensor derived from the graph's (non-initializer) inputs.
    ONNX nodes are stored in topological order."""
    derived = set(graph_inputs)
    reads: dict[str, bool] = {}
    for node in nodes:
        touches = any(name in derived for name in node.inputs if name)
        reads[node.name] = touches and node.op_type not in METADATA_OPS
        if reads[node.name]:
            derived.update(node.outputs)
    return reads


# -- the verdict ------------------------------------------------------------------------------------
def compute_off_gpu(placed: list[PlacedNode], reads_activations: dict[str, bool]) -> list[PlacedNode]:
    """The CPU-placed nodes that do real work: those reading activations, and nodes ORT made
    itself whose operator is not shape arithmetic."""
    work = []
    for node in placed:
        if node.provider != CPU_PROVIDER:
            continue
        known = reads_activations.get(node.name)
        if known is None:
            known = node.op_type not in SHAPE_CAPABLE_OPS
        if known:
            work.append(node)
    return work


def placement_summary(placed: list[PlacedNode]) -> str:
    counts: dict[str, int] = {}
    for node in placed:
        counts[node.provider] = counts.get(node.provider, 0) + 1
    return ", ".join(f"{n} on {provider.removesuffix('ExecutionProvider')}" for provider, n in sorted(counts.items()))


def check_gpu_placement(
    placed: list[PlacedNode], model: str | Path, provider: str, *, allow: bool, warn: Any
) -> list[PlacedNode]:
    """Refuse (``allow=False``) or warn about compute nodes ``provider`` left on the CPU; return them."""
    cpu = [n for n in placed if n.provider == CPU_PROVIDER]
    if not cpu:
        return []
    nodes, inputs, _ = read_graph(model)
    work = compute_off_gpu(placed, activation_readers(nodes, inputs))
    if not work:
        return []
    shown = ", ".join(n.describe() for n in work[:4]) + (f" and {len(work) - 4} more" if len(work) > 4 else "")
    what = f"{len(work)} of {len(placed)} nodes of {Path(model).name} that compute on the image run on the CPU"
    if allow:
        warn(f"ort backend: {what} ({shown}; cpu_fallback=true): expect host copies on every frame")
        return work
    raise I2IError(
        f"ort backend: {provider} leaves compute on the CPU: {what} ({shown}); this onnxruntime-gpu's "
        "CUDA/cuDNN/TensorRT libraries may not match it, or the provider lacks these operators; pass "
        "-O cpu_fallback=true to run it anyway"
    )
