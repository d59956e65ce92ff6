"""Triton model repository: written from the card, parsed back, matching the ONNX model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx
import pytest

from i2i.errors import I2IError
from i2i.export.onnx import read_card
from i2i.export.triton import TritonConfig, config_dict, parse_pbtxt, to_pbtxt, tritonclient_parse, write_repository

needs_tritonclient = pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is None, reason="tritonclient is not installed"
)


def _onnx_io(path: Path) -> dict[str, tuple[int, list[int | str]]]:
    model = onnx.load(str(path))
    return {
        v.name: (v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
        for v in (*model.graph.input, *model.graph.output)
    }


def test_repository_round_trips_and_matches_the_onnx_model(tiny_onnx: Path, tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.export.cli import main

    result = invoke(main, [tiny_onnx, "--triton", tmp_path / "repo", "--triton-name", "sketch"])
    assert result.exit_code == 0, result.output
    config = tmp_path / "repo" / "sketch" / "config.pbtxt"
    assert (tmp_path / "repo" / "sketch" / "1" / "model.onnx").read_bytes() == tiny_onnx.read_bytes()
    parsed = parse_pbtxt(config.read_text())
    assert parsed["platform"] == "onnxruntime_onnx" and parsed["max_batch_size"] == 8
    assert parsed["dynamic_batching"] == {"max_queue_delay_microseconds": 100}
    assert parsed["instance_group"] == [{"count": 1, "kind": "KIND_GPU"}]
    io = _onnx_io(tiny_onnx)
    for role in ("input", "output"):
        (tensor,) = parsed[role]
        elem, dims = io[tensor["name"]]  # the names are the graph's own
        assert elem == onnx.TensorProto.FLOAT and tensor["data_type"] == "TYPE_FP32"
        assert tensor["dims"] == [d if isinstance(d, int) else -1 for d in dims[1:]]  # batch axis left to Triton
    official = tritonclient_parse(config.read_text())
    if official is not None:
        assert official["input"][0]["name"] == parsed["input"][0]["name"]
        assert [int(d) for d in official["output"][0]["dims"]] == parsed["output"][0]["dims"]


def test_static_frame_model_config() -> None:
    card = {
        "io": {"kind": "frame", "input": "frame", "output": "output_frame", "dtype": "uint8", "channels": 3},
        "static_size": [480, 640],
        "static_batch": 2,
    }
    data = config_dict(card, Path("cam.onnx"), TritonConfig(repository="r", instances=2, kind="cpu"))
    assert data["max_batch_size"] == 0 and "dynamic_batching" not in data  # static batch: no Triton batching
    assert data["input"] == [{"name": "frame", "data_type": "TYPE_UINT8", "dims": [2, 480, 640, 3]}]
    assert parse_pbtxt(to_pbtxt(data)) == data


@needs_tritonclient
def test_tritonclient_schema_accepts_what_we_write() -> None:
    card = {"io": {"kind": "tensor", "input": "image", "output": "output", "dtype": "float16"}}
    text = to_pbtxt(config_dict(card, Path("m.engine"), TritonConfig(repository="r", preferred_batch_sizes=(2, 4))))
    parsed = tritonclient_parse(text)
    assert parsed is not None and parsed["platform"] == "tensorrt_plan"
    assert parsed["input"][0]["data_type"] == "TYPE_FP16"
    assert parsed["dynamic_batching"]["preferred_batch_size"] == [2, 4]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('name: "m"\nplatfrom: "onnxruntime_onnx"', "unknown field 'platfrom'"),
        ("max_batch_size: eight", "needs an integer"),
        ('name: "a"\nname: "b"', "given twice"),
        ('input [ { name: "x" data_type: TYPE_FP99 } ]', "must be one of"),
        ("instance_group [ { count: 1 kind: KIND_GPU }", "unexpected end"),
    ],
)
def test_strict_parser_rejects_what_triton_would(text: str, match: str) -> None:
    with pytest.raises(I2IError, match=match):
        parse_pbtxt(text)


def test_repository_errors(tiny_onnx: Path, tmp_path: Path) -> None:
    card = read_card(tiny_onnx)
    with pytest.raises(I2IError, match="onnx or .engine"):
        write_repository(tmp_path / "model.pt", card, TritonConfig(repository=str(tmp_path)))
    with pytest.raises(I2IError, match="within 1..8"):
        write_repository(tiny_onnx, card, TritonConfig(repository=str(tmp_path), preferred_batch_sizes=(16,)))


@pytest.mark.parametrize("raised", [KeyboardInterrupt, OSError])
def test_interrupted_repository_write_leaves_the_repository_as_it_was(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: type[BaseException]
) -> None:
    card = read_card(tiny_onnx)
    repo = tmp_path / "repo"
    write_repository(tiny_onnx, card, TritonConfig(repository=str(repo), name="m", version=2))
    before = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))

    def fail(self: Path, *args: object, **kwargs: object) -> int:  # the config is the last file staged
        raise raised(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", fail)
    expected, match = (I2IError, "cannot write Triton repository .*No space") if raised is OSError else (raised, None)
    for name in ("m", "new"):  # into an existing model folder, and a new one
        with pytest.raises(expected, match=match):
            write_repository(tiny_onnx, card, TritonConfig(repository=str(repo), name=name, version=1))
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == before  # no temp folder, no half model


def test_rewriting_a_version_keeps_the_others(tiny_onnx: Path, tmp_path: Path) -> None:
    card = read_card(tiny_onnx)
    repo = tmp_path / "repo"
    for version in (1, 2):
        write_repository(tiny_onnx, card, TritonConfig(repository=str(repo), name="m", version=version))
    (repo / "m" / "1" / "stale.txt").write_text("from the previous export")
    write_repository(tiny_onnx, card, TritonConfig(repository=str(repo), name="m", version=1, instances=2))
    assert sorted(p.name for p in (repo / "m").iterdir()) == ["1", "2", "config.pbtxt"]
    assert sorted(p.name for p in (repo / "m" / "1").iterdir()) == ["model.onnx"]  # the version is replaced whole
    assert parse_pbtxt((repo / "m" / "config.pbtxt").read_text())["instance_group"][0]["count"] == 2
