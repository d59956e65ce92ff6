"""Post-training int8 quantisation of the ONNX graph with ONNX Runtime's static quantiser.

Weights are quantised per output channel (int8, symmetric), activations per tensor (uint8) from
ranges observed on calibration images, in the QDQ format (QuantizeLinear/DequantizeLinear pairs
around each op), which ONNX Runtime, OpenVINO and TensorRT all read. The calibration images should
be real frames of the kind the model will see; i2i takes the training split by default and checks
parity on the test split, so the parity figure is not measured on the images that set the ranges.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from i2i.errors import I2IError

CALIBRATORS = ("minmax", "entropy", "percentile")


def calibration_batches(image_dir: Path, size_multiple: int, side: int = 256, max_images: int = 64) -> list[np.ndarray]:
    """NCHW float32 [-1, 1] batches of one image each, resized to ``side`` (rounded to the multiple)."""
    import cv2

    from i2i.runtime.frames import preprocess

    exts = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
    if not image_dir.is_dir():
        raise I2IError(f"--calib-data: not a folder: {image_dir}")
    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in exts)[:max_images]
    m = max(1, size_multiple)
    side = m * max(1, -(-side // m))
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
    """The QDQ int8 version of ``model``, calibrated on ``batches``."""
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

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self._items, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="i2i-int8-") as tmp:
        source, prepared, quantised = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
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
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=methods[calibrator],
                    extra_options={"CalibTensorRangeSymmetric": False},
                )
        except Exception as exc:  # noqa: BLE001 - the quantiser raises many kinds
            raise I2IError(f"int8 quantisation failed: {' '.join(str(exc).split())[:300]}") from None
        return onnx.load(str(quantised))
