"""Triton model repository: written from the card, parsed back, matching the ONNX model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx
import pytest

from i2i.errors import I2IError
from i2i.export.triton import (
    ModelFacts,
    TritonConfig,
    config_dict,
    parse_pbtxt,
    to_pbtxt,
    tritonclient_parse,
    write_repository,
)
from i2i.runtime.card import ModelCard, ModelIO

read_card = ModelCard.from_onnx

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


FRAME_FACTS = ModelFacts("frame", "output_frame")


def test_static_frame_model_config() -> None:
    card = ModelCard(io=ModelIO(kind="frame", dtype="uint8", static_size=(480, 640)), static_batch=2)
    data = config_dict(card, Path("cam.onnx"), TritonConfig(repository="r", instances=2, kind="cpu"), FRAME_FACTS)
    assert data["max_batch_size"] == 0 and "dynamic_batching" not in data  # static batch: no Triton batching
    assert data["input"] == [{"name": "frame", "data_type": "TYPE_UINT8", "dims": [2, 480, 640, 3]}]
    assert parse_pbtxt(to_pbtxt(data)) == data


@needs_tritonclient
def test_tritonclient_schema_accepts_what_we_write() -> None:
    card = ModelCard(io=ModelIO(dtype="float16"), precision="fp16")
    facts = ModelFacts("image", "output", min_batch=1, max_batch=4)
    text = to_pbtxt(
        config_dict(card, Path("m.engine"), TritonConfig(repository="r", preferred_batch_sizes=(2, 4)), facts)
    )
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
    with pytest.raises(I2IError, match=r"m/1 already exists: refusing to replace .* --triton-overwrite"):
        write_repository(tiny_onnx, card, TritonConfig(repository=str(repo), name="m", version=1, instances=2))
    assert (repo / "m" / "1" / "stale.txt").is_file()  # untouched without the overwrite option
    assert parse_pbtxt((repo / "m" / "config.pbtxt").read_text())["instance_group"][0]["count"] == 1
    config = TritonConfig(repository=str(repo), name="m", version=1, instances=2, overwrite=True)
    write_repository(tiny_onnx, card, config)
    assert sorted(p.name for p in (repo / "m").iterdir()) == ["1", "2", "config.pbtxt"]
    assert sorted(p.name for p in (repo / "m" / "1").iterdir()) == ["model.onnx"]  # the version is replaced whole
    assert parse_pbtxt((repo / "m" / "config.pbtxt").read_text())["instance_group"][0]["count"] == 2


@pytest.mark.parametrize(
    "name", ["../../escaped", "..", ".", "", "/abs/olute", "a/b", "a\\b", ".hidden", "-opt", "x" * 129, "sp ace"]
)
def test_a_model_name_must_be_a_plain_folder_name(tiny_onnx: Path, tmp_path: Path, name: str) -> None:
    repo = tmp_path / "deep" / "repo"
    repo.mkdir(parents=True)
    with pytest.raises(I2IError, match="is not a plain folder name"):
        write_repository(tiny_onnx, read_card(tiny_onnx), TritonConfig(repository=str(repo), name=name))
    assert list(tmp_path.rglob("*")) == [tmp_path / "deep", repo]  # nothing written, inside or outside


def test_a_model_file_whose_stem_is_dotdot_does_not_escape(tiny_onnx: Path, tmp_path: Path) -> None:
    """``...onnx`` has the stem ``..``: as a default name it would write beside the repository."""
    model = tmp_path / "models" / "...onnx"
    model.parent.mkdir()
    model.write_bytes(tiny_onnx.read_bytes())
    repo = tmp_path / "out" / "repo"
    with pytest.raises(I2IError, match=r"'\.\.' \(from the model file's stem \(\.\.\.onnx\)\).*--triton-name"):
        write_repository(model, read_card(tiny_onnx), TritonConfig(repository=str(repo)))
    assert not (tmp_path / "out").exists()
    config = write_repository(model, read_card(tiny_onnx), TritonConfig(repository=str(repo), name="sketch.v2"))
    assert config == repo / "sketch.v2" / "config.pbtxt" and (repo / "sketch.v2" / "1" / "model.onnx").is_file()
    assert parse_pbtxt(config.read_text())["name"] == "sketch.v2"


def test_cli_refuses_an_escaping_name_and_an_existing_version(tiny_onnx: Path, tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.export.cli import main

    repo = tmp_path / "repo"
    result = invoke(main, [tiny_onnx, "--triton", repo, "--triton-name", "../../escaped"])
    assert result.exit_code == 1 and "not a plain folder name" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "escaped").exists() and not repo.exists()
    assert invoke(main, [tiny_onnx, "--triton", repo, "--triton-name", "m"]).exit_code == 0
    before = (repo / "m" / "1" / "model.onnx").stat().st_mtime_ns
    result = invoke(main, [tiny_onnx, "--triton", repo, "--triton-name", "m"])
    assert result.exit_code == 1 and "already exists: refusing to replace" in result.output, result.output
    assert (repo / "m" / "1" / "model.onnx").stat().st_mtime_ns == before
    (repo / "m" / "1" / "stale.txt").write_text("from the old version")
    result = invoke(main, [tiny_onnx, "--triton", repo, "--triton-name", "m", "--triton-overwrite"])
    assert result.exit_code == 0, result.output
    assert not (repo / "m" / "1" / "stale.txt").exists() and (repo / "m" / "1" / "model.onnx").is_file()


# -- TensorRT plans: max_batch_size from the engine's profile ---------------------------------------
def _engine(tmp_path: Path, tiny_onnx: Path, min_batch: int, max_batch: int) -> tuple[Path, ModelCard]:
    """An engine file and its sidecar as the builder writes them (the bytes are a stand-in: Triton's
    config only needs the sidecar's tensors and profile)."""
    from i2i.export.tensorrt import Built, EngineConfig, Profile, graph_io, make_sidecar, write_engine
    from i2i.runtime.backends.tensorrt import GpuIdentity

    card = read_card(tiny_onnx)
    engine = tmp_path / "model.engine"
    profile = Profile("image", (min_batch, 3, 64, 64), (min_batch, 3, 256, 256), (max_batch, 3, 512, 512))
    sidecar = make_sidecar(
        card=card,
        engine=engine,
        engine_bytes=b"plan",
        onnx_path=tiny_onnx,
        tensors=graph_io(tiny_onnx),
        profile=profile,
        config=EngineConfig(onnx=str(tiny_onnx)),
        built=Built("10.13.0.35", GpuIdentity("NVIDIA H100", "9.0"), tf32=True, network_flags=2),
    )
    write_engine(engine, b"plan", sidecar)
    return engine, card


def test_plan_config_takes_max_batch_from_the_engine_profile(tiny_onnx: Path, tmp_path: Path) -> None:
    """The default engine profile has max batch 1: Triton refuses a plan whose config says 8."""
    engine, card = _engine(tmp_path, tiny_onnx, 1, 1)
    config = write_repository(engine, card, TritonConfig(repository=str(tmp_path / "repo")))
    parsed = parse_pbtxt(config.read_text())
    assert parsed["platform"] == "tensorrt_plan" and parsed["max_batch_size"] == 1
    assert (config.parent / "1" / "model.plan").read_bytes() == b"plan"
    assert (config.parent / "1" / "model.plan.json").is_file()  # the sidecar travels with the plan
    assert parsed["input"][0]["name"] == onnx.load(str(tiny_onnx)).graph.input[0].name


def test_plan_config_refuses_a_batch_above_the_profile(tiny_onnx: Path, tmp_path: Path) -> None:
    engine, card = _engine(tmp_path, tiny_onnx, 1, 4)
    repo = tmp_path / "repo"
    with pytest.raises(I2IError, match="--triton-max-batch 8 exceeds the engine profile's max batch 4"):
        write_repository(engine, card, TritonConfig(repository=str(repo), max_batch_size=8))
    assert not repo.exists()
    config = write_repository(engine, card, TritonConfig(repository=str(repo), max_batch_size=2))
    assert parse_pbtxt(config.read_text())["max_batch_size"] == 2


def test_plan_with_one_batch_size_is_served_unbatched(tiny_onnx: Path, tmp_path: Path) -> None:
    engine, card = _engine(tmp_path, tiny_onnx, 4, 4)
    parsed = parse_pbtxt(write_repository(engine, card, TritonConfig(repository=str(tmp_path / "r"))).read_text())
    assert parsed["max_batch_size"] == 0 and "dynamic_batching" not in parsed
    assert parsed["input"][0]["dims"][0] == 4  # the batch axis is in the dims
    engine, card = _engine(tmp_path, tiny_onnx, 2, 4)
    with pytest.raises(I2IError, match="Triton batches from 1"):
        write_repository(engine, card, TritonConfig(repository=str(tmp_path / "r2")))


def test_a_plan_whose_bytes_differ_from_its_sidecar_is_not_copied(tiny_onnx: Path, tmp_path: Path) -> None:
    engine, card = _engine(tmp_path, tiny_onnx, 1, 8)
    engine.write_bytes(b"swapped")  # the sidecar's sha256 describes b"plan"
    repo = tmp_path / "repo"
    with pytest.raises(I2IError, match="does not match its sidecar"):
        write_repository(engine, card, TritonConfig(repository=str(repo), name="m"))
    assert not repo.exists()
