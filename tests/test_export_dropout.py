"""``i2i-export model.pt --test-dropout`` writes its model: parity with every dropout unit kept on
both sides, plus a statistical check of the dropout the graph draws (``i2i.export.dropout``)."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from conftest import invoke

from i2i.export.dropout import (
    dropout_statistics,
    keep_every_unit,
    statistics_input,
    torch_keep_every_unit,
)
from i2i.train.checkpoint import ActiveDropout, atomic_save, build_generator, make_checkpoint
from i2i.train.nets import build_net

pytest.importorskip("onnxruntime")

UNET = dict(ngf=4, num_downs=6)  # the smallest pix2pix U-Net with a dropout block (64-pixel multiple)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / "model.pt"
    atomic_save(
        make_checkpoint(build_net("unet", **UNET).eval(), arch="unet", arch_kwargs=UNET, method="pix2pix"), path
    )
    return path


def _session(model: onnx.ModelProto | Path) -> Any:  # onnxruntime has no types
    import onnxruntime as ort

    data = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _run(model: onnx.ModelProto | Path) -> Callable[[np.ndarray], np.ndarray]:
    session = _session(model)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _traced(module: torch.nn.Module, x: torch.Tensor) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes: it is quick
        path = Path(folder) / "net.onnx"
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17, input_names=["image"])
        return onnx.load(str(path))


def test_export_with_test_dropout_writes_its_model_and_checks_the_draw(tmp_path: Path) -> None:
    """Through the command, end to end: the model is written, its card says dropout is on, the
    report holds the parity with every unit kept and the dropout statistics, and two runs of the
    written model differ as two runs of the torch model do."""
    from i2i.export.cli import main

    checkpoint = _checkpoint(tmp_path)
    out = tmp_path / "dropout.onnx"
    result = invoke(main, [checkpoint, "--test-dropout", "--no-progress", "-o", out])
    assert result.exit_code == 0, result.output  # was: "parity check failed: max abs diff 0.36 ... no model written"
    assert out.is_file()
    model = onnx.load(str(out))
    card = json.loads(next(p.value for p in model.metadata_props if p.key == "i2i"))
    assert card["test_dropout"] is True
    report = json.loads(out.with_suffix(".parity.json").read_text())
    assert report["passed"] and report["max_abs"] <= 1e-4  # the fp32 bar, every unit kept on both sides
    stats = report["dropout"]
    assert stats["passed"] and stats["random_ops"] == 1 and stats["pairs"] == 8
    assert stats["torch_mean_abs_change"] > 0.01  # the draw is real ...
    assert stats["gap"] <= stats["bound"]  # ... and the graph's is torch's, within the sampling bound
    run = _run(out)
    x = statistics_input(64, None, None)
    assert np.abs(run(x) - run(x)).mean() > 0.01  # a fresh mask per run of the written model


@pytest.mark.slow
def test_frame_io_export_with_test_dropout_passes_its_frame_parity(tmp_path: Path) -> None:
    """The frame wrapper's parity (uint8 in and out) also compares with every unit kept."""
    from i2i.export.cli import main

    out = tmp_path / "frame.onnx"
    result = invoke(main, [_checkpoint(tmp_path), "--test-dropout", "--io", "frame", "--no-progress", "-o", out])
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".parity.json").read_text())
    assert report["passed"] and report["frame"]["max_level_diff"] <= 1 and report["dropout"]["passed"]


def test_keep_every_unit_makes_the_graph_deterministic_and_equal_to_torch() -> None:
    module = _unet()
    x = torch.from_numpy(statistics_input(64, None, None))
    model = _traced(module, x)
    kept, replaced = keep_every_unit(model)
    assert replaced == 1 and not any(n.op_type.startswith("Random") for n in kept.graph.node)
    kept_module, swapped = torch_keep_every_unit(module)
    assert swapped == 1 and not any(isinstance(m, ActiveDropout) for m in kept_module.modules())
    assert any(isinstance(m, ActiveDropout) for m in module.modules())  # the original is left alone
    run = _run(kept)
    with torch.no_grad():
        expected = kept_module(x).numpy()
    assert np.array_equal(run(x.numpy()), run(x.numpy()))
    # float32: the same convolutions summed in possibly another order, outputs in [-1, 1] after tanh;
    # 1e-4 is the fp32 export bar, ~800 spacings of 1.2e-7 at 1.
    assert np.abs(run(x.numpy()) - expected).max() < 1e-4


def _unet(test_dropout: bool = True) -> torch.nn.Module:
    torch.manual_seed(1)
    ckpt = make_checkpoint(build_net("unet", **UNET), arch="unet", arch_kwargs=UNET, method="pix2pix")
    return build_generator(ckpt, test_dropout=test_dropout)


@pytest.mark.parametrize("graph_p", [None, 0.25])
def test_the_statistical_check_catches_a_graph_whose_dropout_is_not_torchs(graph_p: float | None) -> None:
    """torch drops with p = 0.5; a graph of the same weights without dropout (None) or with p = 0.25 fails,
    a graph of the module itself passes."""
    module = _unet()
    x = torch.from_numpy(statistics_input(64, None, None))
    other = _unet(test_dropout=graph_p is not None)
    for m in other.modules():
        if isinstance(m, ActiveDropout) and graph_p is not None:
            m.p = graph_p
    own = _traced(module, x)
    kept = _run(keep_every_unit(own)[0])  # the precision's own error: none here (fp32)
    wrong = dropout_statistics(module, _run(_traced(other, x)), kept, x.numpy())
    assert not wrong["passed"], wrong
    right = dropout_statistics(module, _run(own), kept, x.numpy())
    assert right["passed"], right
    assert right["precision_mean_abs"] < 1e-5 and right["gap"] <= right["bound"] < 0.1 * right["torch_mean_abs_change"]
