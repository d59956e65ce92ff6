"""int8 (QDQ) export: symmetric Q/DQ (what TensorRT builds), calibrated on the training split,
parity on the test split, runs in the runtime (ONNX Runtime on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from i2i.errors import I2IError
from i2i.export.onnx import ExportConfig, export_checkpoint


def test_int8_export_parity_and_runtime(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    result = export_checkpoint(
        ExportConfig(checkpoint=str(tiny_run / "model.pt"), output=str(out), precision="int8", progress=False)
    )
    assert result.card.precision == "int8"
    model = onnx.load(str(out))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantised
    _assert_symmetric_per_channel(model)
    from tensorrt_double import onnx_tensorrt_problems  # onnx-tensorrt's Q/DQ rules

    assert onnx_tensorrt_problems(onnx.shape_inference.infer_shapes(model).graph) == []
    report = json.loads(out.with_suffix(".parity.json").read_text())
    assert report["passed"] and report["min_psnr_db"] >= 30
    assert report["cases"] and all(c["input"].startswith("image ") for c in report["cases"])  # real images only

    from i2i.runtime.backends import open_backend

    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    with open_backend("ort", out) as backend:
        assert backend.precision == "int8"
        y = backend(x)
    assert y.shape == x.shape and np.isfinite(y).all()


def test_int8_needs_calibration_images(tmp_path: Path) -> None:
    from i2i.train.checkpoint import atomic_save, make_checkpoint
    from i2i.train.nets import build_net

    kwargs = {"ngf": 8, "n_blocks": 1}
    ckpt = atomic_save(
        make_checkpoint(build_net("fast", **kwargs), arch="fast", arch_kwargs=kwargs, method="x"), tmp_path / "model.pt"
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(I2IError, match="int8 needs calibration images"):
        export_checkpoint(ExportConfig(checkpoint=str(ckpt), precision="int8", parity_data=str(photos), progress=False))
    assert not (tmp_path / "model.onnx").exists()


def _assert_symmetric_per_channel(model: onnx.ModelProto) -> None:
    """TensorRT's rules for Q/DQ: int8 with zero point 0 everywhere; weights per channel on the axis
    its kernels take (0 for Conv and ConvTranspose); no int32 bias dequantization."""
    from onnx import numpy_helper

    constants = {init.name: init for init in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for node in qdq:
        zero = constants[node.input[2]]
        assert zero.data_type == onnx.TensorProto.INT8, node.name
        assert not numpy_helper.to_array(zero).any(), node.name
    consumers = {i: n for n in model.graph.node for i in n.input}
    weights = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in constants]
    assert weights and all(constants[n.input[0]].data_type == onnx.TensorProto.INT8 for n in weights)
    for node in weights:
        layer = consumers[node.output[0]]
        assert layer.op_type in ("Conv", "ConvTranspose") and layer.input[1] == node.output[0]
        scale = numpy_helper.to_array(constants[node.input[1]])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        assert scale.size > 1 and axis == 0, f"{node.name}: per-channel weights on axis 0"


def test_quantiser_output_is_checked_for_symmetry() -> None:
    """A Q/DQ with a uint8 or non-zero zero point (the old asymmetric activations) is refused."""
    from onnx import TensorProto, helper, numpy_helper

    from i2i.export.quantize import check_symmetric

    def model(zero: np.ndarray) -> onnx.ModelProto:
        graph = helper.make_graph(
            [
                helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
                helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
            ],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
            [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(zero, "z")],
        )
        return helper.make_model(graph)

    check_symmetric(model(np.array(0, np.int8)))
    for zero in (np.array(128, np.uint8), np.array(3, np.int8)):
        with pytest.raises(I2IError, match="asymmetric or non-int8"):
            check_symmetric(model(zero))
