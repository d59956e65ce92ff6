"""ONNX Runtime GPU sessions keep CPU fallback on and refuse only compute left on the CPU (issue 20
item 1), judged from ORT's own placement record. The record here is ORT's, taken from a real
``--io frame`` model exported from the repository (its padding is the Shape -> Mod -> Sub -> Mod ->
Concat chain): a CPU session records every node's real name and operator after ORT's optimisation,
and the CUDA provider's choice is applied to it as ORT makes it (``GetCpuPreferredNodes``: the
nodes computing small int64 shape tensors go to the CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from i2i.errors import I2IError
from i2i.runtime.backends.ort_placement import (
    RECORD_OPTION,
    PlacedNode,
    activation_readers,
    check_gpu_placement,
    compute_off_gpu,
    read_graph,
    recorded_placement,
)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.fixture(scope="module")
def frame_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real-time student architecture, narrowed, exported with dynamic-size frame I/O."""
    import torch

    from i2i.export.onnx import ExportConfig, export_checkpoint
    from i2i.train.checkpoint import make_checkpoint
    from i2i.train.nets import build_net

    work = tmp_path_factory.mktemp("placement")
    kwargs = {"input_nc": 3, "output_nc": 3, "ngf": 8, "n_blocks": 1, "norm": "instance"}
    torch.manual_seed(0)
    net = build_net("fast", **kwargs).eval()
    torch.save(make_checkpoint(net, arch="fast", arch_kwargs=kwargs, method="none", test_norm="frame"), work / "m.pt")
    config = ExportConfig(checkpoint=str(work / "m.pt"), output=str(work / "frame.onnx"), io="frame", progress=False)
    return export_checkpoint(config).onnx


def _recorded(model: Path) -> list[PlacedNode]:
    """ORT's placement record of a CPU session (onnxruntime 1.24+)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry(RECORD_OPTION, "1")
    session = ort.InferenceSession(str(model), options, providers=[CPU])
    if not hasattr(session, "get_provider_graph_assignment_info"):
        pytest.skip(f"onnxruntime {ort.__version__} keeps no placement record (1.24+)")
    placed = recorded_placement(session)
    assert placed is not None
    return placed


def _int64_only(model: Path) -> set[str]:
    """Nodes whose every output is an int64 tensor (onnx's type inference): what the CUDA provider
    prefers to leave on the CPU."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(model))).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.output)}
    return {n.name for n in graph.node if n.output and all(types.get(o) == onnx.TensorProto.INT64 for o in n.output)}


def _on_cuda(placed: list[PlacedNode], cpu: set[str]) -> list[PlacedNode]:
    return [PlacedNode(CPU if n.name in cpu else CUDA, n.op_type, n.name) for n in placed]


def test_shape_arithmetic_of_a_frame_model_may_run_on_the_cpu(frame_model: Path) -> None:
    recorded = _recorded(frame_model)
    assert {n.provider for n in recorded} == {CPU} and len(recorded) > 30
    shape_nodes = _int64_only(frame_model)
    placed = _on_cuda(recorded, shape_nodes)
    on_cpu = [n for n in placed if n.provider == CPU]
    assert {"Shape", "Mod", "Sub", "Concat"} <= {n.op_type for n in on_cpu}  # the padding chain
    warned: list[str] = []
    assert check_gpu_placement(placed, frame_model, CUDA, allow=False, warn=warned.append) == []
    assert not warned


def test_compute_placed_on_the_cpu_is_refused_or_reported(frame_model: Path) -> None:
    recorded = _recorded(frame_model)
    conv = next(n.name for n in recorded if n.op_type == "Conv")
    norm = next(n.name for n in recorded if n.op_type == "InstanceNormalization")
    # Element-wise ops that share operator types with the shape chain, but work on the image:
    # the frame input's Cast and Div, and the residual Add.
    cast = next(n.name for n in recorded if n.op_type == "Cast")
    residual = next(n.name for n in recorded if n.op_type == "Add" and not n.name.startswith("i2i_frame"))
    moved = {conv, norm, cast, residual}
    placed = _on_cuda(recorded, _int64_only(frame_model) | moved)
    with pytest.raises(I2IError, match=r"CUDAExecutionProvider leaves compute on the CPU: 4 of \d+ nodes") as info:
        check_gpu_placement(placed, frame_model, CUDA, allow=False, warn=print)
    message = str(info.value)
    assert all(name in message for name in moved) and "cpu_fallback=true" in message
    assert "Shape" not in message and "Mod" not in message  # the shape chain is not listed
    warned: list[str] = []
    work = check_gpu_placement(placed, frame_model, CUDA, allow=True, warn=warned.append)
    assert {n.name for n in work} == moved and len(warned) == 1 and "cpu_fallback=true" in warned[0]


def test_nodes_ort_made_itself_are_judged_by_their_operator() -> None:
    placed = [
        PlacedNode(CPU, "FusedConv", "fused_conv_token_3"),
        PlacedNode(CPU, "Shape", "shape_token_1"),
        PlacedNode(CPU, "Concat", "concat_token_2"),
        PlacedNode(CUDA, "Conv", "conv"),
    ]
    assert compute_off_gpu(placed, {"conv": True}) == placed[:1]


def test_the_graph_reader_agrees_with_onnx(frame_model: Path) -> None:
    """The runtime reads the graph without the onnx package (a minimal protobuf reader)."""
    model = onnx.load(str(frame_model))
    nodes, inputs, initializers = read_graph(frame_model)
    assert [(n.name, n.op_type, list(n.inputs), list(n.outputs)) for n in nodes] == [
        (n.name, n.op_type, list(n.input), list(n.output)) for n in model.graph.node
    ]
    assert inputs == {"frame"} and initializers == {i.name for i in model.graph.initializer}
    reads = activation_readers(nodes, inputs)
    assert not reads["i2i_frame_shape_hw"] and reads["i2i_frame_pad"]  # Shape reads metadata, Pad the image


def test_a_file_that_is_not_onnx_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x3a\xff\xff\xff\xff\x0f")  # field 7, length past the end
    with pytest.raises(I2IError, match="cannot read the ONNX graph of .*bad.onnx"):
        read_graph(bad)


def test_each_new_session_draws_its_own_dropout_masks(tmp_path: Path) -> None:
    """Issue 23 item 3: ORT seeds each new session's random operators from one process-wide value,
    so every new InferenceSession repeated the same RandomUniformLike masks; each gets its own seed."""
    from onnx import TensorProto, helper

    from i2i.runtime.backends.onnxruntime import OrtSession

    graph = helper.make_graph(
        [helper.make_node("RandomUniformLike", ["x"], ["y"])],
        "noise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "noise.onnx"
    onnx.save(model, str(path))
    x = np.zeros(64, np.float32)
    draws = []
    for _ in range(3):
        with OrtSession(path) as session:
            draws.append(session.run(x))
    # Two sessions repeating a draw of 64 uniform floats by chance: probability ~2^-1500.
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
    assert all(0 <= d.min() and d.max() < 1 for d in draws)
