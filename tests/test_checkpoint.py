"""The model.pt contract: round trip, weights_only loading, and one clear error per bad file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from i2i.train.checkpoint import (
    FORMAT,
    CheckpointError,
    atomic_save,
    build_generator,
    load_checkpoint,
    load_generator,
    make_checkpoint,
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
