"""Post-training int8 quantisation of the ONNX graph with ONNX Runtime's static quantiser.

The result is explicit, symmetric Q/DQ (QuantizeLinear/DequantizeLinear pairs), the only int8 that
TensorRT builds (strongly typed, 10.x and 11.x: no calibrator at engine build time) and one that
ONNX Runtime and OpenVINO run as well:

* activations int8 per tensor, zero point 0, scales from ranges observed on calibration images;
* weights int8 per channel, zero point 0: Conv along its output channels (axis 0); ConvTranspose
  along axis 0 too, the axis TensorRT's deconvolution kernels take (its weights are C_in x C_out);
* only Conv and ConvTranspose are quantised (the placement TensorRT recommends: the inputs and
  outputs of the weighted layers), and biases stay float: onnx-tensorrt dequantizes only int8,
  fp8 and int4, not the int32 bias ONNX Runtime would write.

onnx-tensorrt refuses a QuantizeLinear/DequantizeLinear whose zero point is not 0, and has no
uint8 inside the network: the asymmetric uint8 activations the quantiser writes by default would
not build. The calibration images should be real frames of the kind the model will see; i2i takes
the training split by default and checks parity on the test split, so the parity figure is not
measured on the images that set the ranges.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from i2i._files import scratch_dir
from i2i.errors import I2IError

CALIBRATORS = ("minmax", "entropy", "percentile")


# What the quantiser writes: the Q/DQ TensorRT accepts (see the module docstring).
QUANTISED_OPS = ("Conv", "ConvTranspose")
SYMMETRIC_OPTIONS: dict[str, Any] = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
    "QDQDisableWeightAdjustForInt32Bias": True,  # the bias stays float: no int32 range to fit
}


def _weight_axes(path: Path) -> dict[str, list[dict[str, int]]]:
    """Per-tensor overrides putting every ConvTranspose weight's channel axis at 0 (the quantiser's
    default there is 1, its output channels, which TensorRT's deconvolution kernels do not take)."""
    model = onnx.load(str(path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    return {
        n.input[1]: [{"axis": 0}] for n in model.graph.node if n.op_type == "ConvTranspose" and n.input[1] in weights
    }


def calibration_batches(image_dir: Path, size_multiple: int, side: int = 256, max_images: int = 64) -> list[np.ndarray]:
    """NCHW float32 [-1, 1] batches of one image each, resized to ``side`` (rounded to the multiple)."""
    import cv2

    from i2i.common import list_images, round_up
    from i2i.runtime.frames import preprocess

    if not image_dir.is_dir():
        raise I2IError(f"--calib-data: not a folder: {image_dir}")
    files = list_images(image_dir)[:max_images]
    m = max(1, size_multiple)
    side = round_up(side, m)
    batches = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        batches.append(preprocess([cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)], m)[0])
    if not batches:
        raise I2IError(f"--calib-data: no readable images in {image_dir}")
    return batches


@contextlib.contextmanager
def _root_log_level(level: int) -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(before)


def to_int8(model: onnx.ModelProto, batches: list[np.ndarray], calibrator: str = "minmax") -> onnx.ModelProto:
    """The symmetric Q/DQ int8 version of ``model``, calibrated on ``batches``."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:  # pragma: no cover - onnxruntime is a base dependency
        raise I2IError(f"int8 needs onnxruntime's quantisation tools ({exc})") from None
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if calibrator not in methods:
        raise I2IError(f"unknown calibrator {calibrator!r}; valid: {', '.join(CALIBRATORS)}")
    input_name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self._items, None)
            return None if batch is None else {input_name: batch}

    with scratch_dir("i2i-int8-") as tmp:
        source, prepared, quantised = (tmp / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(model, str(source))
        try:
            # The quantiser prints progress to stdout and per-tensor notes to the root logger.
            with contextlib.redirect_stdout(io.StringIO()), _root_log_level(logging.ERROR):
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
                quantize_static(
                    str(prepared),
                    str(quantised),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=methods[calibrator],
                    op_types_to_quantize=list(QUANTISED_OPS),
                    extra_options={**SYMMETRIC_OPTIONS, "TensorQuantOverrides": _weight_axes(prepared)},
                )
        except Exception as exc:  # noqa: BLE001 - the quantiser raises many kinds
            raise I2IError(f"int8 quantisation failed: {' '.join(str(exc).split())[:300]}") from None
        result = onnx.load(str(quantised))
    check_symmetric(result)
    return result


def check_symmetric(model: onnx.ModelProto) -> None:
    """Every Q/DQ is int8 with zero point 0 (what TensorRT builds); an I2IError names the first that is not."""
    from onnx import numpy_helper

    constants = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zero is None:
            raise I2IError(f"int8 quantisation wrote {node.op_type} {node.name!r} without an int8 zero point")
        if zero.data_type != onnx.TensorProto.INT8 or numpy_helper.to_array(zero).any():
            raise I2IError(f"int8 quantisation wrote an asymmetric or non-int8 {node.op_type} {node.name!r}")
