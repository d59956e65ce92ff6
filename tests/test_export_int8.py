"""int8 (QDQ) export: calibrated on the training split, parity on the test split, runs in the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from i2i.errors import I2IError
from i2i.export.onnx import ExportConfig, export_checkpoint


def test_int8_export_parity_and_runtime(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    result = export_checkpoint(ExportConfig(checkpoint=str(tiny_run / "model.pt"), output=str(out),
                                            precision="int8", progress=False))
    assert result.card["precision"] == "int8"
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantised
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
    ckpt = atomic_save(make_checkpoint(build_net("fast", **kwargs), arch="fast", arch_kwargs=kwargs, method="x"),
                       tmp_path / "model.pt")
    with pytest.raises(I2IError, match="int8 needs calibration images"):
        export_checkpoint(ExportConfig(checkpoint=str(ckpt), precision="int8", progress=False))
    assert not (tmp_path / "model.onnx").exists()
