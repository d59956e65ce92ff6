"""The model.pt contract: round trip, weights_only loading, and one clear error per bad file."""

from __future__ import annotations

import copy
import errno
import os
import warnings
from pathlib import Path

import pytest
import torch
from float32_bounds import reorder_bound

from i2i.errors import I2IError
from i2i.train.checkpoint import (
    FORMAT,
    TEST_NORMS,
    ActiveDropout,
    CheckpointError,
    FrameBatchNorm,
    atomic_save,
    build_generator,
    load_checkpoint,
    load_generator,
    make_checkpoint,
    prepare_for_test,
    resolve_test_mode,
)
from i2i.train.nets import build_net


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    kwargs = dict(ngf=8, n_blocks=1)
    net = build_net("resnet", **kwargs)
    ckpt = make_checkpoint(net, arch="resnet", arch_kwargs=kwargs, method="cyclegan", train_config={"x": 1})
    return atomic_save(ckpt, tmp_path / "model.pt")


def test_round_trip_rebuilds_identical_generator(checkpoint: Path) -> None:
    raw = torch.load(checkpoint, weights_only=True)  # the contract: plain tensors and builtins only
    assert raw["format"] == FORMAT
    assert raw["io"] == {
        "channels": 3,
        "out_channels": 3,
        "range": [-1.0, 1.0],
        "color": "RGB",
        "layout": "NCHW",
        "size_multiple": 4,
    }
    assert {"method", "direction", "train_config", "metrics", "i2i_version"} <= set(raw)
    net, ckpt = load_generator(checkpoint)
    assert not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, ckpt["state_dict"][key])
    assert not list(checkpoint.parent.glob(".*tmp"))  # atomic write left no temp file


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01 not a checkpoint at all" * 10, "truncated or not a torch file"),
    ],
)
def test_bad_bytes(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint(checkpoint: Path) -> None:
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a torch file"):
        load_checkpoint(checkpoint)


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))

    marker = ""


def test_pickle_with_code_is_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    _Exploit.marker = str(marker)
    path = tmp_path / "model.pt"
    torch.save({"format": FORMAT, "payload": exploit}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()


class _ExecPayload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, ("raise SystemExit('executed')",))


@pytest.mark.parametrize(
    ("payload", "name"), [(_ExecPayload(), "exec"), (_Exploit(), f"{os.system.__module__}.system")]
)
def test_refusal_names_the_global_without_torch_advice(tmp_path: Path, payload: object, name: str) -> None:
    # torch's message goes on to suggest add_safe_globals([exec]): never pass that advice on.
    path = tmp_path / "model.pt"
    torch.save({"format": FORMAT, "payload": payload}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert f"(unsupported global {name})" in message
    assert "add_safe_globals" not in message and "weights_only" not in message
    assert "\n" not in message


def test_bare_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "latest_net_G.pth"
    torch.save(build_net("resnet", ngf=8, n_blocks=1).state_dict(), path)
    with pytest.raises(CheckpointError, match="not an i2i checkpoint"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_arch(checkpoint: Path) -> None:
    ckpt = load_checkpoint(checkpoint)
    ckpt["arch_kwargs"]["ngf"] = 16
    with pytest.raises(CheckpointError, match="weights do not fit arch 'resnet'"):
        build_generator(ckpt)


def test_write_failure_names_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed write (disk full) is an OSError naming model.pt, not the temp file or nothing."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "model.pt"
    with pytest.raises(OSError, match="No space left") as caught:
        atomic_save({"weights": torch.zeros(4)}, target)
    assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


# -- test-time normalisation and dropout ------------------------------------------------------------
_UNET = dict(num_downs=6, ngf=4)  # 64-pixel multiple, BatchNorm and one dropout (the pix2pix U-Net)


def _trained_unet() -> torch.nn.Module:
    """A U-Net whose BatchNorm layers hold non-trivial affine parameters and running statistics."""
    torch.manual_seed(0)
    net = build_net("unet", **_UNET)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-1.0, 1.0)
                m.running_var.uniform_(0.5, 2.0)
    return net


def _unet_checkpoint(**record: object) -> dict:
    ckpt = make_checkpoint(_trained_unet(), arch="unet", arch_kwargs=_UNET, method="pix2pix")
    ckpt.update(record)
    return ckpt


def test_frame_batchnorm_is_a_one_frame_train_mode_batchnorm() -> None:
    torch.manual_seed(1)
    bn = torch.nn.BatchNorm2d(5, momentum=0.7)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1.0, 1.0)
        assert bn.running_mean is not None
        bn.running_mean.fill_(3.0)
    reference = copy.deepcopy(bn).train()  # what the reference test.py runs: train mode, batch 1
    frame = FrameBatchNorm(bn)
    x = torch.randn(3, 5, 6, 7) * 2 + 1
    alone = torch.cat([reference(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(frame(x), alone, atol=1e-5)
    assert torch.equal(frame.running_mean, torch.full((5,), 3.0))  # statistics are never updated
    assert not torch.allclose(frame(x), bn.eval()(x), atol=1e-2)  # and differ from running ones


def test_frame_mode_generator_matches_reference_semantics_per_frame() -> None:
    ckpt = _unet_checkpoint()
    reference = _trained_unet()
    for m in reference.modules():  # train-mode BatchNorm (batch statistics), dropout off
        m.train(isinstance(m, torch.nn.BatchNorm2d))
    net = build_generator(ckpt)
    assert not net.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both = net(x)
        one_by_one = torch.cat([net(x[:1]), net(x[1:])])
        expected = torch.cat([reference(x[:1]), reference(x[1:])])
        running = build_generator(ckpt, test_norm="running")(x)
    # The batch and each image alone differ only in the order of the convolutions' sums (kernels are chosen
    # per batch size and CPU): within the float32 reordering bound of tests/float32_bounds.py for this net
    # and input (about 1.7e-3; the other test-time mode differs by more than 0.05).
    bound = max(reorder_bound(net, x[:1]), reorder_bound(net, x[1:]))
    assert (both - one_by_one).abs().max() <= bound
    assert torch.allclose(both, expected, atol=1e-5)
    assert (both - running).abs().max() > max(0.05, 10 * bound)  # the two modes really differ on this net
    assert set(net.state_dict()) == set(ckpt["state_dict"])  # same keys, same tensors


def test_running_mode_is_eval_mode() -> None:
    ckpt = _unet_checkpoint(test_norm="running")
    net = build_generator(ckpt)  # the checkpoint's record
    reference = _trained_unet().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_test_dropout_draws_a_mask_and_default_is_deterministic() -> None:
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain = build_generator(_unet_checkpoint())
        assert torch.equal(plain(x), plain(x))
        noisy = build_generator(_unet_checkpoint(), test_dropout=True)
        assert any(isinstance(m, ActiveDropout) for m in noisy.modules())
        assert not torch.equal(noisy(x), noisy(x))
        recorded = build_generator(_unet_checkpoint(test_dropout=True))
        assert any(isinstance(m, ActiveDropout) for m in recorded.modules())
    drop = ActiveDropout(0.5).eval()
    ones = torch.ones(10000)
    out = drop(ones)
    assert set(out.unique().tolist()) == {0.0, 2.0} and abs(out.mean().item() - 1.0) < 0.05


def test_nets_without_batchnorm_or_dropout_are_unchanged(checkpoint: Path) -> None:
    net, ckpt = load_generator(checkpoint, test_norm="frame", test_dropout=True)
    plain = build_net("resnet", ngf=8, n_blocks=1)
    assert [type(m) for m in net.modules()] == [type(m) for m in plain.modules()]
    assert ckpt["test_norm"] == "frame" and ckpt["test_dropout"] is False  # make_checkpoint records them


def test_prepare_for_test_leaves_the_training_net_alone() -> None:
    net = _trained_unet().train()
    ready = prepare_for_test(net, test_norm="frame")
    assert net.training and any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not ready.training and not any(isinstance(m, torch.nn.BatchNorm2d) for m in ready.modules())


def test_bad_test_mode_is_one_line_error() -> None:
    assert TEST_NORMS == ("frame", "running")
    with pytest.raises(I2IError, match=r"^test-time mode: test_norm 'eval' is not one of frame, running$"):
        build_generator(_unet_checkpoint(), test_norm="eval")
    with pytest.raises(I2IError, match=r"^checkpoint: test_norm 'batch'"):
        build_generator(_unet_checkpoint(test_norm="batch"))
    with pytest.raises(I2IError, match="test_dropout must be true or false"):
        build_generator(_unet_checkpoint(test_dropout="yes"))
    legacy = _unet_checkpoint()
    del legacy["test_norm"], legacy["test_dropout"]  # files written before the keys existed
    assert resolve_test_mode(legacy) == ("frame", False)


def _export(net: torch.nn.Module, path: Path, dynamo: bool) -> None:
    example = torch.randn(2, 3, 128, 192)  # 2-3 blocks a side: one block would be specialised
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {2: 64 * torch.export.Dim("h", min=1, max=8), 3: 64 * torch.export.Dim("w", min=1, max=8)}
            torch.onnx.export(
                net, (example,), str(path), dynamo=True, opset_version=18, dynamic_shapes=(dims,), verbose=False
            )
        else:
            torch.onnx.export(
                net, (example,), str(path), dynamo=False, opset_version=17,
                input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}},
            )  # fmt: skip


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo-opset18", "torchscript-opset17"])
def test_frame_mode_exports_to_onnx(tmp_path: Path, dynamo: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    net = build_generator(_unet_checkpoint())
    path = tmp_path / "frame.onnx"
    _export(net, path, dynamo)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "InstanceNormalization" in ops and "BatchNormalization" not in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for shape in [(2, 3, 128, 192), (2, 3, 64, 256)]:  # the traced size and another  # a size other than the traced one
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = net(x).numpy()
        (got,) = session.run(None, {name: x.numpy()})
        assert abs(got - expected).max() < 1e-4


def test_test_dropout_survives_onnx_export(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    net = build_generator(_unet_checkpoint(), test_dropout=True)
    path = tmp_path / "dropout.onnx"
    _export(net, path, dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 128, 192).numpy()
    name = session.get_inputs()[0].name
    (first,) = session.run(None, {name: x})
    (second,) = session.run(None, {name: x})
    assert abs(first - second).max() > 1e-3  # a fresh mask per run, as in torch
