"""TensorRT builder and backend: everything that does not need TensorRT or a GPU, the whole
``--engine trt`` build through a TensorRT test double (tests/tensorrt_double.py, 10.x and 11.x
flavours), and a mypy check of both modules against tensorrt-stubs, as published and less what
TensorRT 11 removed (so API misuse fails here, not on a GPU box)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tensorrt_double import REMOVED_IN_11, install, onnx_tensorrt_problems

from i2i.errors import I2IError, MissingDependencyError, Terminated, install_hint
from i2i.export.frame import wrap_frame_io
from i2i.export.tensorrt import (
    BuildMonitor,
    Built,
    EngineConfig,
    PhaseBars,
    Profile,
    build_engine,
    check_engine_config,
    make_sidecar,
    network_flags,
    parse_onnx,
    parse_shape,
    resolve_profile,
    tensorrt_major,
    timing_cache_key,
    timing_cache_path,
    write_engine,
)
from i2i.runtime.backends.tensorrt import (
    GpuIdentity,
    TensorRTBackend,
    check_engine_file,
    parse_device,
    read_sidecar,
    sidecar_path,
    tensorrt_status,
)
from i2i.runtime.card import ModelCard, ModelIO

REPO = Path(__file__).resolve().parents[1]
H100 = GpuIdentity("NVIDIA H100 80GB HBM3", "9.0")


def card(kind: str = "tensor", precision: str = "fp32", multiple: int = 4, **extra: object) -> ModelCard:
    io = ModelIO(kind=kind, dtype="uint8" if kind == "frame" else "float32", size_multiple=multiple)
    static_size = extra.pop("static_size", None)
    if static_size is not None:
        io = ModelIO(kind=kind, dtype=io.dtype, size_multiple=multiple, static_size=tuple(static_size))
    return ModelCard(io=io, precision=precision, **extra)


def _graph(kind: str, precision: str) -> onnx.ModelProto:
    """The smallest graph of each kind TensorRT would see: Identity, its fp16 island, its int8 Q/DQ."""
    dims: list[int | str] = ["batch", 3, "height", "width"]
    nodes = [helper.make_node("Identity", ["image"], ["output"], name="core")]
    inits: list[onnx.TensorProto] = []
    if precision == "fp16":
        nodes = [
            helper.make_node("Cast", ["image"], ["half"], to=TensorProto.FLOAT16, name="to_half"),
            helper.make_node("Cast", ["half"], ["output"], to=TensorProto.FLOAT, name="to_float"),
        ]
    elif precision == "int8":
        scale, zero = (
            numpy_helper.from_array(np.array(0.01, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z"),
        )
        inits = [scale, zero]
        nodes = [
            helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"], name="q"),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["output"], name="dq"),
        ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if kind == "frame":
        model = wrap_frame_io(model, size_multiple=4, static_size=None, batch=None)
    return model


def carded_onnx(path: Path, the_card: ModelCard) -> Path:
    """A tiny graph carrying an i2i card: what the builder reads."""
    model = _graph(the_card.io.kind, the_card.precision)
    entry = model.metadata_props.add()
    entry.key, entry.value = "i2i", the_card.to_json()
    onnx.save(model, str(path))
    return path


# -- profiles ----------------------------------------------------------------------------------
def test_parse_shape() -> None:
    assert parse_shape("2x256x512") == (2, 256, 512)
    assert parse_shape("256x512") == (1, 256, 512)
    with pytest.raises(I2IError, match="NxHxW"):
        parse_shape("256")


def test_default_profile_rounds_up_to_the_size_multiple() -> None:
    profile = resolve_profile(card(multiple=256), "image")
    assert profile.input == "image"
    assert profile.min == (1, 3, 256, 256) and profile.opt == (1, 3, 512, 512) and profile.max == (1, 3, 1280, 2048)
    assert profile.max_batch == 1


def test_partial_profile_and_frame_layout() -> None:
    profile = resolve_profile(card("frame"), "frame", opt_shape=(2, 720, 1280))
    assert profile.input == "frame"
    assert profile.min == profile.opt == profile.max == (2, 720, 1280, 3)  # NHWC
    profile = resolve_profile(card(), "image", min_shape=(1, 64, 64), max_shape=(4, 1088, 1920))
    assert profile.opt == (4, 3, 1088, 1920)  # a missing opt is the max
    assert profile.as_json()["max_batch"] == 4


def test_static_model_profile() -> None:
    static = card(static_size=[512, 512], static_batch=2)
    assert resolve_profile(static, "image").opt == (2, 3, 512, 512)
    with pytest.raises(I2IError, match="static size of 512x512"):
        resolve_profile(static, "image", opt_shape=(2, 256, 256))
    with pytest.raises(I2IError, match="static batch of 2"):
        resolve_profile(static, "image", opt_shape=(1, 512, 512))


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        ({"opt_shape": (1, 250, 256)}, "multiples of 4"),
        ({"min_shape": (1, 512, 512), "opt_shape": (1, 256, 256)}, "--min 1x512x512 exceeds --opt"),
        ({"opt_shape": (1, 512, 512), "max_shape": (1, 256, 1024)}, "--opt 1x512x512 exceeds --max"),
        ({"opt_shape": (0, 256, 256)}, ">= 1"),
        ({"max_shape": (1, 8192, 256)}, "at most"),
    ],
)
def test_profile_errors(shapes: dict, match: str) -> None:
    with pytest.raises(I2IError, match=match):
        resolve_profile(card(), "image", **shapes)


@pytest.mark.parametrize(
    ("wanted", "graph", "match"),
    [
        ("fp16", "fp32", r"re-export with `i2i-export model.pt --precision fp16`"),
        ("int8", "fp16", r"re-export with `i2i-export model.pt --precision int8`"),
        ("fp32", "int8", r"m.onnx is int8: for a fp32 engine re-export"),
        ("bf16", "fp32", "TensorRT builds the graph's own precision, one of fp32, fp16, int8"),
        ("fp8", "fp32", "TensorRT builds the graph's own precision"),
    ],
)
def test_engine_precision_is_the_graphs(wanted: str, graph: str, match: str) -> None:
    """Strongly typed: an engine precision other than the graph's is an error naming the export to run."""
    with pytest.raises(I2IError, match=match):
        check_engine_config(EngineConfig(onnx="m.onnx", precision=wanted), card(precision=graph))
    assert check_engine_config(EngineConfig(onnx="m.onnx"), card(precision=graph)) == graph
    assert check_engine_config(EngineConfig(onnx="m.onnx", precision=graph), card(precision=graph)) == graph


def test_engine_config_removed_the_weak_typing_options() -> None:
    fields = set(EngineConfig.__dataclass_fields__)
    assert not fields & {"norm_fp32", "calibration_data", "calibrator", "calibration_batches", "calibration_cache"}


# -- cache keys ----------------------------------------------------------------------------------
def test_timing_cache_is_keyed_by_tensorrt_and_gpu(tmp_path: Path) -> None:
    key = timing_cache_key("10.13.0.35", H100)
    assert key == "trt10.13.0.35-nvidia-h100-80gb-hbm3-sm90"
    assert key != timing_cache_key("10.14.1", H100)
    assert key != timing_cache_key("10.13.0.35", GpuIdentity("NVIDIA L4", "8.9"))
    assert timing_cache_path(str(tmp_path), "10.13.0.35", H100) == tmp_path / f"timing-{key}.cache"
    assert timing_cache_path(str(tmp_path / "mine.cache"), "10.13.0.35", H100) == tmp_path / "mine.cache"


# -- progress and Ctrl-C ---------------------------------------------------------------------------
def test_progress_bars_nest() -> None:
    bars = PhaseBars(enabled=False)
    monitor = BuildMonitor(bars)
    monitor.phase_start("Building", "", 3)
    monitor.phase_start("Tactics", "Building", 10)
    assert bars.depth == {"Building": 0, "Tactics": 1}
    assert monitor.step_complete("Tactics", 4) is True and bars.bars["Tactics"].n == 5
    monitor.phase_finish("Tactics")
    bars.close()
    assert not bars.bars
    monitor.reraise()  # nothing recorded: nothing raised


# -- sidecar ---------------------------------------------------------------------------------------
def _sidecar(tmp_path: Path, gpu: GpuIdentity = H100, version: str = "10.13.0.35") -> Path:
    the_card = card(precision="fp16")
    onnx_path = carded_onnx(tmp_path / "model.onnx", the_card)
    engine = tmp_path / "model.engine"
    profile = Profile("image", (1, 3, 64, 64), (1, 3, 256, 256), (2, 3, 512, 512))
    data = make_sidecar(
        card=the_card,
        engine=engine,
        engine_bytes=b"engine-bytes",
        onnx_path=onnx_path,
        tensors=("image", "output"),
        profile=profile,
        config=EngineConfig(onnx=str(onnx_path)),
        built=Built(version, gpu, tf32=True, network_flags=2),
    )
    assert write_engine(engine, b"engine-bytes", data) == sidecar_path(engine)
    return engine


# -- when TensorRT is missing ----------------------------------------------------------------------
needs_no_tensorrt = pytest.mark.skipif(tensorrt_status()[0], reason="TensorRT is installed here")


@needs_no_tensorrt
def test_backend_says_why_it_is_unavailable(tmp_path: Path) -> None:
    ok, why = TensorRTBackend.available()
    assert not ok and why.endswith(install_hint("trt"))
    engine = _sidecar(tmp_path)
    with pytest.raises(MissingDependencyError, match=r"TensorRT is not available .*") as info:
        TensorRTBackend.open(engine, device="cuda")
    assert str(info.value.message).endswith(install_hint("trt"))
    with pytest.raises(I2IError, match="not found: .*none.engine"):
        TensorRTBackend.open(tmp_path / "none.engine")
    with pytest.raises(I2IError, match="--device cuda"):
        parse_device("cpu")
    assert parse_device("cuda:1") == 1 and parse_device("cuda") == 0


@needs_no_tensorrt
def test_build_engine_and_cli_name_the_trt_extra(tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.export.cli import main

    onnx_path = carded_onnx(tmp_path / "model.onnx", card())
    with pytest.raises(MissingDependencyError) as info:
        build_engine(EngineConfig(onnx=str(onnx_path), opt_shape=(1, 64, 64)))
    assert str(info.value.message).endswith(install_hint("trt"))
    with pytest.raises(I2IError, match="multiples of 4"):  # validated before TensorRT is looked for
        build_engine(EngineConfig(onnx=str(onnx_path), opt_shape=(1, 62, 64)))
    result = invoke(main, [onnx_path, "--engine", "trt", "--opt", "1x64x64"])
    assert result.exit_code == 1
    assert re.fullmatch(r"Error: TensorRT is not available [^\n]*\n", result.output)
    assert result.output.endswith(install_hint("trt") + "\n")
    assert not (tmp_path / "model.engine").exists()


@needs_no_tensorrt
def test_fp16_export_with_engine_fails_with_one_line_without_tensorrt(tiny_run: Path, tmp_path: Path) -> None:
    """``i2i-export model.pt --fp16 --engine trt`` here: one line naming the extra, before any export."""
    from conftest import invoke

    from i2i.export.cli import main

    out = tmp_path / "model.onnx"
    result = invoke(main, [tiny_run / "model.pt", "--fp16", "--engine", "trt", "-o", out, "--no-progress"])
    assert result.exit_code == 1
    assert re.fullmatch(r"Error: TensorRT is not available [^\n]*\n", result.output)
    assert result.output.endswith(install_hint("trt") + "\n")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_inspect_engine_reads_the_sidecar_without_tensorrt(tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.export.cli import main

    result = invoke(main, ["inspect", _sidecar(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "TensorRT 10.13.0.35, NVIDIA H100 80GB HBM3 (sm 9.0)" in result.output
    assert "profile:    image min [1, 3, 64, 64]" in result.output


# -- the whole build through the TensorRT double (10.x and 11.x) -----------------------------------
FLAVOURS = ("10", "11")


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> GpuIdentity:
    """The GPU seam: CUDA is not TensorRT's to double, so the build is told which GPU it is on."""
    monkeypatch.setattr("i2i.export.tensorrt.select_gpu", lambda index: H100)
    return H100


def _build(tmp_path: Path, flavour: str, monkeypatch: pytest.MonkeyPatch, **card_args: object) -> tuple:
    record = install(monkeypatch, flavour)
    onnx_path = carded_onnx(tmp_path / "model.onnx", card(**card_args))
    config = EngineConfig(onnx=str(onnx_path), timing_cache=str(tmp_path / "timing.cache"), progress=False)
    return record, onnx_path, config


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(("kind", "precision"), [("tensor", "fp32"), ("tensor", "fp16"), ("frame", "int8")])
def test_strongly_typed_build_through_the_double(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu: GpuIdentity, flavour: str, kind: str, precision: str
) -> None:
    """Parse, strongly typed build, timing cache, sidecar: no weak-typing flag, calibrator or
    per-layer precision on 10; nothing TensorRT 11 removed is touched (the 11 double lacks it)."""
    record, onnx_path, config = _build(tmp_path, flavour, monkeypatch, kind=kind, precision=precision)
    result = build_engine(config)
    (network,) = record.networks
    assert network.flags == (1 << 1 if flavour == "10" else 0)  # STRONGLY_TYPED on 10; 11 has no other mode
    (build,) = record.builds
    assert build["strongly_typed"] and build["flags"] == ["TF32"] and not build["cancelled"]
    assert record.weak_typing == [] and record.swallowed == []
    io_name = "frame" if kind == "frame" else "image"
    layout = [[1, 256, 256, 3], [1, 512, 512, 3], [1, 1088, 1920, 3]] if kind == "frame" else None
    assert list(build["profiles"][0]) == [io_name] and (layout is None or build["profiles"][0][io_name] == layout)
    sidecar = read_sidecar(result.engine)
    assert sidecar["tensorrt"] == ("10.13.0.35" if flavour == "10" else "11.4.0.106")
    assert sidecar["gpu"]["name"] == H100.name and sidecar["precision"] == precision
    assert sidecar["card"] == card(kind=kind, precision=precision).to_dict()
    assert sidecar["profiles"][0]["max_batch"] == 1 and sidecar["builder"]["network_flags"] == network.flags
    assert result.engine.read_bytes().startswith(b"tensorrt-double-engine:")
    check_engine_file(result.engine, sidecar)
    assert result.timing_cache == tmp_path / "timing.cache" and result.timing_cache.read_bytes().startswith(b"timing")
    assert not list(tmp_path.glob(".*tmp"))


def test_a_corrupt_timing_cache_is_replaced_by_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu: GpuIdentity, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 6: TensorRT's create_timing_cache returns None for bytes it cannot read, and
    set_timing_cache(None) raised TypeError: a truncated cache file stopped every build."""
    record, onnx_path, config = _build(tmp_path, "10", monkeypatch)
    (tmp_path / "timing.cache").write_bytes(b"\x00truncated")
    result = build_engine(config)
    assert result.timing_cache is not None and result.timing_cache.read_bytes().startswith(b"timing-double:")
    assert "timing cache cannot be used here; starting a fresh one" in capsys.readouterr().err
    assert len(record.builds) == 1


def test_pybind11_classes_refuse_new_attributes_so_the_parser_is_held_beside_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 1: ``network._i2i_parser = parser`` raised AttributeError on every build. The parser
    is held in ``Parsed`` until the build returns; a network whose parser is gone cannot build."""
    install(monkeypatch, "10")
    import tensorrt as trt

    onnx_path = carded_onnx(tmp_path / "model.onnx", card())
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    parsed = parse_onnx(logger, builder, onnx_path, network_flags("10.13.0.35"))
    with pytest.raises(AttributeError):
        parsed.network._i2i_parser = parsed.parser  # what the old builder did
    settings = builder.create_builder_config()
    assert builder.build_serialized_network(parsed.network, settings) is not None
    orphan = parse_onnx(logger, builder, onnx_path, 0).network  # the parser is dropped at once
    with pytest.raises(RuntimeError, match="freed with its parser"):
        builder.build_serialized_network(orphan, settings)


def test_tensorrt_11_has_no_weak_typing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 2: what the old builder set (FP16/INT8 flags, precision constraints, calibrators,
    per-layer precision) does not exist on TensorRT 11, and the double says so the same way."""
    install(monkeypatch, "11")
    import tensorrt as trt

    for flag in ("FP16", "BF16", "INT8", "OBEY_PRECISION_CONSTRAINTS"):
        with pytest.raises(AttributeError):
            getattr(trt.BuilderFlag, flag)
    settings = trt.Builder(trt.Logger()).create_builder_config()
    with pytest.raises(AttributeError):
        settings.int8_calibrator = None
    assert not hasattr(settings, "set_calibration_profile") and not hasattr(trt, "IInt8EntropyCalibrator2")
    assert not hasattr(trt.ILayer, "set_output_type") and not hasattr(trt.ILayer, "precision")
    assert set(REMOVED_IN_11["BuilderFlag"]) <= _flags("10")  # the 10 double still has them


def _flags(flavour: str) -> set[str]:
    from tensorrt_double import make_module

    return {f.name for f in make_module(flavour)[0].BuilderFlag}


@pytest.mark.parametrize("terminated", [False, True])
def test_ctrl_c_during_the_build_cancels_it_and_is_raised_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu: GpuIdentity, terminated: bool
) -> None:
    """Defect 10: Ctrl-C lands in a progress callback, which the bindings swallow (printing it and
    cancelling): the build came back as "TensorRT failed". Now the monitor records it, tells
    TensorRT to stop, and the same KeyboardInterrupt (or Terminated) is raised; nothing is written."""
    record, onnx_path, config = _build(tmp_path, "11", monkeypatch)
    raised = Terminated if terminated else KeyboardInterrupt

    def step(self: PhaseBars, phase: str, step: int) -> None:
        if step == 1:
            raise raised()

    monkeypatch.setattr(PhaseBars, "step", step)
    with pytest.raises(raised):
        build_engine(config)
    (build,) = record.builds
    assert build["cancelled"] and record.swallowed == []  # cancelled by step_complete's False, not by an error
    assert not (tmp_path / "model.engine").exists() and not (tmp_path / "model.engine.json").exists()
    assert not (tmp_path / "timing.cache").exists() and not list(tmp_path.glob(".*tmp"))


def test_the_double_swallows_callback_exceptions_like_the_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the monitor guards against is real in the double: an exception escaping a callback is
    printed and the build is cancelled (None), with no exception for the caller."""
    install(monkeypatch, "10")
    import tensorrt as trt

    class Raising(trt.IProgressMonitor):
        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            pass

        def step_complete(self, phase_name: str, step: int) -> bool:
            raise KeyboardInterrupt

        def phase_finish(self, phase_name: str) -> None:
            pass

    builder = trt.Builder(trt.Logger())
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt.Logger())
    network._parser = lambda: parser
    settings = builder.create_builder_config()
    settings.progress_monitor = Raising()
    assert builder.build_serialized_network(network, settings) is None


def test_version_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    for flavour, flags in (("10", 2), ("11", 0)):
        install(monkeypatch, flavour)
        import tensorrt as trt

        assert network_flags(trt.__version__) == flags
    assert tensorrt_major("10.0.1.6") == 10 and tensorrt_major("11.4.0.106") == 11
    for version in ("8.6.1", "9.3.0", "12.0.0", "unknown"):
        with pytest.raises(I2IError, match=f"TensorRT {version} is not supported: .* 10.x or 11.x"):
            tensorrt_major(version)


def test_unsupported_tensorrt_is_refused_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu: GpuIdentity
) -> None:
    record, onnx_path, config = _build(tmp_path, "11", monkeypatch)
    monkeypatch.setattr("tensorrt.__version__", "12.0.0")
    with pytest.raises(I2IError, match="TensorRT 12.0.0 is not supported"):
        build_engine(config)
    assert record.networks == [] and not (tmp_path / "model.engine").exists()


def test_engine_precision_other_than_the_graphs_is_refused_before_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu: GpuIdentity
) -> None:
    record, onnx_path, config = _build(tmp_path, "10", monkeypatch)
    with pytest.raises(I2IError, match=r"re-export with `i2i-export model.pt --precision fp16`"):
        build_engine(EngineConfig(onnx=str(onnx_path), precision="fp16"))
    assert record.networks == []


def test_frame_io_reads_its_shape_after_the_cast() -> None:
    """Defect 9: onnx-tensorrt has no uint8 Shape; the wrapper's dynamic padding read the uint8 frame."""
    framed = onnx.shape_inference.infer_shapes(_graph("frame", "fp32"))
    assert onnx_tensorrt_problems(framed.graph) == []
    types = {v.name: v.type.tensor_type.elem_type for v in (*framed.graph.input, *framed.graph.value_info)}
    shapes = [n for n in framed.graph.node if n.op_type == "Shape"]
    assert shapes and all(types[n.input[0]] == TensorProto.FLOAT for n in shapes)
    old = onnx.ModelProto()  # the old wrapper's node: Shape(frame)
    old.CopyFrom(framed)
    next(n for n in old.graph.node if n.op_type == "Shape").input[0] = "frame"
    assert any("Shape" in p and "UINT8" in p for p in onnx_tensorrt_problems(old.graph))


def test_asymmetric_qdq_does_not_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu: GpuIdentity) -> None:
    """Defect 6, as the parser sees it: a uint8 zero point (the old activations) is refused."""
    record, onnx_path, config = _build(tmp_path, "10", monkeypatch, precision="int8")
    model = onnx.load(str(onnx_path))
    zero = next(i for i in model.graph.initializer if i.name == "z")
    zero.CopyFrom(numpy_helper.from_array(np.array(128, np.uint8), "z"))
    onnx.save(model, str(onnx_path))
    with pytest.raises(I2IError, match="TensorRT cannot parse model.onnx: .*zero point must be 0"):
        build_engine(config)


def test_export_cli_builds_engine_and_triton_repository_through_the_double(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu: GpuIdentity
) -> None:
    """``i2i-export model.onnx --engine trt --triton DIR``: every step after the ONNX export."""
    from conftest import invoke
    from test_export_triton import parse_pbtxt

    from i2i.export.cli import main

    record, onnx_path, _ = _build(tmp_path, "11", monkeypatch, precision="fp16")
    shapes = ["--min", "1x256x256", "--max", "2x512x512"]
    options = ["--triton", tmp_path / "repo", "--timing-cache", tmp_path / "t.cache", "--no-progress"]
    result = invoke(main, [onnx_path, "--engine", "trt", *shapes, *options])
    assert result.exit_code == 0, result.output
    assert read_sidecar(tmp_path / "model.engine")["profiles"][0]["max_batch"] == 2
    config = parse_pbtxt((tmp_path / "repo" / "model" / "config.pbtxt").read_text())
    assert config["platform"] == "tensorrt_plan" and config["max_batch_size"] == 2
    assert len(record.builds) == 1
