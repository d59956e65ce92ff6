"""TensorRT builder and backend: everything that does not need TensorRT or a GPU, plus a mypy
check of both modules against tensorrt-stubs (so API misuse fails here, not on a GPU box)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from i2i.errors import I2IError, MissingDependencyError
from i2i.export.tensorrt import (
    CalibrationBatches,
    CalibrationCache,
    CalibrationFeeder,
    EngineConfig,
    PhaseBars,
    Profile,
    build_engine,
    calibration_cache_key,
    check_engine_config,
    make_sidecar,
    parse_shape,
    resolve_profile,
    timing_cache_key,
    timing_cache_path,
    write_engine,
)
from i2i.runtime.backends.tensorrt import (
    GpuIdentity,
    TensorRTBackend,
    check_compatible,
    check_engine_file,
    parse_device,
    read_sidecar,
    sidecar_path,
    tensorrt_status,
)

REPO = Path(__file__).resolve().parents[1]
H100 = GpuIdentity("NVIDIA H100 80GB HBM3", "9.0")


def card(kind: str = "tensor", precision: str = "fp32", multiple: int = 4, **extra: object) -> dict:
    io = {"kind": kind, "channels": 3, "size_multiple": multiple}
    io.update(
        {"input": "frame", "output": "output_frame", "dtype": "uint8"}
        if kind == "frame"
        else {"input": "image", "output": "output", "dtype": "float32"}
    )
    return {"io": io, "size_multiple": multiple, "precision": precision, "static_size": None, "static_batch": None} | (
        extra
    )


def carded_onnx(path: Path, the_card: dict) -> Path:
    """A tiny Identity graph carrying an i2i card: enough for everything before TensorRT."""
    dims = ["batch", 3, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["output"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    entry = model.metadata_props.add()
    entry.key, entry.value = "i2i", json.dumps(the_card)
    onnx.save(model, str(path))
    return path


# -- profiles ----------------------------------------------------------------------------------
def test_parse_shape() -> None:
    assert parse_shape("2x256x512") == (2, 256, 512)
    assert parse_shape("256x512") == (1, 256, 512)
    with pytest.raises(I2IError, match="NxHxW"):
        parse_shape("256")


def test_default_profile_rounds_up_to_the_size_multiple() -> None:
    profile = resolve_profile(card(multiple=256))
    assert profile.input == "image"
    assert profile.min == (1, 3, 256, 256) and profile.opt == (1, 3, 512, 512) and profile.max == (1, 3, 1280, 2048)


def test_partial_profile_and_frame_layout() -> None:
    profile = resolve_profile(card("frame"), opt_shape=(2, 720, 1280))
    assert profile.input == "frame"
    assert profile.min == profile.opt == profile.max == (2, 720, 1280, 3)  # NHWC
    profile = resolve_profile(card(), min_shape=(1, 64, 64), max_shape=(4, 1088, 1920))
    assert profile.opt == (4, 3, 1088, 1920)  # a missing opt is the max


def test_static_model_profile() -> None:
    static = card(static_size=[512, 512], static_batch=2)
    assert resolve_profile(static).opt == (2, 3, 512, 512)
    with pytest.raises(I2IError, match="static size of 512x512"):
        resolve_profile(static, opt_shape=(2, 256, 256))
    with pytest.raises(I2IError, match="static batch of 2"):
        resolve_profile(static, opt_shape=(1, 512, 512))


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
        resolve_profile(card(), **shapes)


@pytest.mark.parametrize(
    ("options", "graph", "match"),
    [
        ({"precision": "fp8"}, "fp32", "unknown engine precision"),
        ({"precision": "bf16"}, "fp16", "cannot be built from an fp16 ONNX graph"),
        ({"precision": "fp32"}, "fp16", "cannot be built from an fp16"),
        ({"precision": "int8"}, "fp32", "int8 needs calibration images"),
        ({"precision": "fp16", "calibration_data": "x"}, "fp32", "apply to int8 engines"),
        ({"precision": "int8", "calibration_data": "/no/such/dir"}, "fp32", "not a folder"),
        ({"calibrator": "percentile"}, "fp32", "unknown calibrator"),
    ],
)
def test_engine_config_errors(options: dict, graph: str, match: str) -> None:
    with pytest.raises(I2IError, match=match):
        check_engine_config(EngineConfig(onnx="m.onnx", **options), card(precision=graph))


def test_engine_precision_defaults_to_the_graphs() -> None:
    assert check_engine_config(EngineConfig(onnx="m.onnx"), card(precision="fp16")).name == "fp16"
    assert check_engine_config(EngineConfig(onnx="m.onnx"), card()).flags == ()


# -- cache keys ----------------------------------------------------------------------------------
def test_timing_cache_is_keyed_by_tensorrt_and_gpu(tmp_path: Path) -> None:
    key = timing_cache_key("10.13.0.35", H100)
    assert key == "trt10.13.0.35-nvidia-h100-80gb-hbm3-sm90"
    assert key != timing_cache_key("10.14.1", H100)
    assert key != timing_cache_key("10.13.0.35", GpuIdentity("NVIDIA L4", "8.9"))
    assert timing_cache_path(str(tmp_path), "10.13.0.35", H100) == tmp_path / f"timing-{key}.cache"
    assert timing_cache_path(str(tmp_path / "mine.cache"), "10.13.0.35", H100) == tmp_path / "mine.cache"


def test_calibration_cache_key_follows_model_images_and_shape(tmp_path: Path) -> None:
    images = _images(tmp_path, 3)
    key = calibration_cache_key("a" * 64, "entropy", (1, 3, 64, 64), images)
    assert key == calibration_cache_key("a" * 64, "entropy", (1, 3, 64, 64), images)
    assert key != calibration_cache_key("b" * 64, "entropy", (1, 3, 64, 64), images)
    assert key != calibration_cache_key("a" * 64, "minmax", (1, 3, 64, 64), images)
    assert key != calibration_cache_key("a" * 64, "entropy", (2, 3, 64, 64), images)
    assert key != calibration_cache_key("a" * 64, "entropy", (1, 3, 64, 64), images[:2])


# -- calibration feeding -------------------------------------------------------------------------
def _images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_calibration_batches_match_the_runtime_preprocessing(tmp_path: Path) -> None:
    from i2i.runtime.frames import preprocess

    images = _images(tmp_path, 5)
    batches = CalibrationBatches(images, card(), (2, 3, 32, 48), max_batches=10)
    assert len(batches) == 2  # 5 images -> two full batches of 2, the partial one dropped
    arrays = list(batches)
    assert [a.shape for a in arrays] == [(2, 3, 32, 48)] * 2 and arrays[0].dtype == np.float32
    first = cv2.resize(cv2.imread(str(images[0])), (48, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(arrays[0][0], preprocess([first], 4)[0][0])
    frames = list(CalibrationBatches(images, card("frame"), (1, 32, 48, 3), max_batches=3))
    assert len(frames) == 3 and frames[0].dtype == np.uint8 and frames[0].shape == (1, 32, 48, 3)
    with pytest.raises(I2IError, match="at least 8 images"):
        CalibrationBatches(images, card(), (8, 3, 32, 48), max_batches=1)


def test_calibration_feeder_uploads_each_batch_then_ends(tmp_path: Path) -> None:
    batches = CalibrationBatches(_images(tmp_path, 4), card(), (2, 3, 32, 32), max_batches=10)
    uploads: list[tuple[int, tuple[int, ...]]] = []
    allocated: list[int] = []

    def alloc(nbytes: int) -> int:
        allocated.append(nbytes)
        return 0xDEAD

    feeder = CalibrationFeeder(batches, 2, alloc, lambda ptr, array: uploads.append((ptr, array.shape)))
    assert allocated == [2 * 3 * 32 * 32 * 4]
    assert feeder.next(["image"]) == [0xDEAD] and feeder.next(["image"]) == [0xDEAD]
    assert feeder.next(["image"]) is None and feeder.fed == 2
    assert uploads == [(0xDEAD, (2, 3, 32, 32))] * 2
    with pytest.raises(I2IError, match="one input"):
        feeder.next(["a", "b"])
    freed: list[int] = []
    feeder.release(freed.append)
    assert freed == [0xDEAD]
    cache_only = CalibrationFeeder(None, 1, alloc, lambda p, a: None)
    assert cache_only.next(["image"]) is None


def test_calibration_cache_round_trip(tmp_path: Path) -> None:
    cache = CalibrationCache(tmp_path / "c.cache")
    assert cache.read() is None
    cache.write(b"TRT-100-EntropyCalibration2\n")
    assert cache.read() == b"TRT-100-EntropyCalibration2\n"


def test_progress_bars_nest_and_cancel() -> None:
    bars = PhaseBars(enabled=False)
    bars.start("Building", None, 3)
    bars.start("Tactics", "Building", 10)
    assert bars.depth == {"Building": 0, "Tactics": 1}
    assert bars.step("Tactics", 4) is True and bars.bars["Tactics"].n == 5
    bars.cancelled = True
    assert bars.step("Tactics", 5) is False  # TensorRT stops the build
    bars.close()
    assert not bars.bars


# -- sidecar ---------------------------------------------------------------------------------------
def _sidecar(tmp_path: Path, gpu: GpuIdentity = H100, version: str = "10.13.0.35") -> Path:
    onnx_path = carded_onnx(tmp_path / "model.onnx", card())
    engine = tmp_path / "model.engine"
    profile = Profile("image", (1, 3, 64, 64), (1, 3, 256, 256), (2, 3, 512, 512))
    data = make_sidecar(
        card=card(),
        engine=engine,
        engine_bytes=b"engine-bytes",
        onnx_path=onnx_path,
        tensorrt_version=version,
        gpu=gpu,
        profile=profile,
        precision="fp16",
        config=EngineConfig(onnx=str(onnx_path)),
    )
    assert write_engine(engine, b"engine-bytes", data) == sidecar_path(engine)
    return engine


def test_sidecar_round_trip(tmp_path: Path) -> None:
    engine = _sidecar(tmp_path)
    assert sidecar_path(engine).name == "model.engine.json"
    sidecar = read_sidecar(engine)
    assert sidecar["tensorrt"] == "10.13.0.35" and sidecar["gpu"]["compute_capability"] == "9.0"
    assert sidecar["profiles"] == [
        {"input": "image", "min": [1, 3, 64, 64], "opt": [1, 3, 256, 256], "max": [2, 3, 512, 512]}
    ]
    assert sidecar["card"]["io"]["kind"] == "tensor" and sidecar["precision"] == "fp16"
    assert sidecar["rebuild"].startswith("i2i-export model.onnx --engine trt --engine-precision fp16 --min 1x64x64")
    check_compatible(sidecar, "10.13.0.35", H100)
    check_engine_file(engine, sidecar)
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


@pytest.mark.parametrize(
    ("version", "gpu", "match"),
    [
        ("10.14.1.48", H100, r"TensorRT 10\.13\.0\.35 \(this machine has 10\.14\.1\.48\)"),
        ("10.13.0.35", GpuIdentity("NVIDIA L4", "8.9"), r"sm 9\.0; this machine has NVIDIA L4, sm 8\.9"),
        ("10.13.0.35", GpuIdentity("NVIDIA H200", "9.0"), "NVIDIA H100 80GB HBM3"),
    ],
)
def test_mismatched_engine_is_refused_with_a_rebuild_command(
    tmp_path: Path, version: str, gpu: GpuIdentity, match: str
) -> None:
    sidecar = read_sidecar(_sidecar(tmp_path))
    with pytest.raises(I2IError, match=match) as info:
        check_compatible(sidecar, version, gpu)
    assert "rebuild it here with `i2i-export model.onnx --engine trt" in str(info.value)


def test_swapped_engine_and_broken_sidecars(tmp_path: Path) -> None:
    engine = _sidecar(tmp_path)
    engine.write_bytes(b"another engine")
    with pytest.raises(I2IError, match="does not match its sidecar"):
        check_engine_file(engine, read_sidecar(engine))
    sidecar_path(engine).write_text(json.dumps({"format": "i2i-engine/1", "card": {}}))
    with pytest.raises(I2IError, match="lacks engine"):
        read_sidecar(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(I2IError, match="has no sidecar model.engine.json"):
        read_sidecar(engine)


# -- when TensorRT is missing ----------------------------------------------------------------------
needs_no_tensorrt = pytest.mark.skipif(tensorrt_status()[0], reason="TensorRT is installed here")


@needs_no_tensorrt
def test_backend_says_why_it_is_unavailable(tmp_path: Path) -> None:
    ok, why = TensorRTBackend.available()
    assert not ok and "i2i[trt]" in why
    engine = _sidecar(tmp_path)
    with pytest.raises(MissingDependencyError, match=r"TensorRT is not available .*pip install 'i2i\[trt\]'"):
        TensorRTBackend.open(engine, device="cuda")
    with pytest.raises(I2IError, match="engine not found"):
        TensorRTBackend.open(tmp_path / "none.engine")
    with pytest.raises(I2IError, match="--device cuda"):
        parse_device("cpu")
    assert parse_device("cuda:1") == 1 and parse_device("cuda") == 0


@needs_no_tensorrt
def test_build_engine_and_cli_name_the_trt_extra(tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.export.cli import main

    onnx_path = carded_onnx(tmp_path / "model.onnx", card())
    with pytest.raises(MissingDependencyError, match=r"pip install 'i2i\[trt\]'"):
        build_engine(EngineConfig(onnx=str(onnx_path), opt_shape=(1, 64, 64)))
    result = invoke(main, [onnx_path, "--engine", "trt", "--opt", "1x64x64"])
    assert result.exit_code == 1
    assert re.search(r"Error: TensorRT is not available .*pip install 'i2i\[trt\]'", result.output)
    result = invoke(main, [onnx_path, "--engine", "trt", "--opt", "1x62x64"])  # validated before TensorRT
    assert result.exit_code == 1 and "multiples of 4" in result.output
    assert not (tmp_path / "model.engine").exists()


def test_inspect_engine_reads_the_sidecar_without_tensorrt(tmp_path: Path) -> None:
    from conftest import invoke

    from i2i.export.cli import main

    result = invoke(main, ["inspect", _sidecar(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "TensorRT 10.13.0.35, NVIDIA H100 80GB HBM3 (sm 9.0)" in result.output
    assert "profile:    image min [1, 3, 64, 64]" in result.output


# -- mypy against tensorrt-stubs -------------------------------------------------------------------
TRT_MODULES = ("export/tensorrt.py", "runtime/backends/tensorrt.py")
# tensorrt-stubs 10.13.0.35.1 is generated by pybind11-stubgen and has syntax errors: parameters
# named `in`, and a required parameter after defaulted ones. Patch them in a staged copy.
STUB_FIXES = [(re.compile(r"([(,] ?)in: "), r"\1in_: "), (re.compile(r"(, channel_axis: int)\)"), r"\1 = ...)")]


def _stubs_dir() -> Path | None:
    try:
        files = importlib.metadata.files("tensorrt-stubs") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    stub = next((f for f in files if str(f).endswith("tensorrt/__init__.pyi")), None)
    return Path(str(stub.locate())).parents[1] if stub else None


def _stage(tmp_path: Path) -> tuple[Path, Path]:
    """A package tree i2i/{export,runtime,train} (setuptools maps them at install time; mypy needs
    them on disk) and a stubs folder mypy reads through MYPYPATH (the stubs ship no py.typed)."""
    import ast

    site = _stubs_dir()
    assert site is not None
    stubs = tmp_path / "stubs"
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / package, stubs / package, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for pyi in stubs.rglob("*.pyi"):
        text = pyi.read_text()
        for pattern, replacement in STUB_FIXES:
            text = pattern.sub(replacement, text)
        ast.parse(text)  # the staged stubs must at least parse
        pyi.write_text(text)
    tree = tmp_path / "tree" / "i2i"
    shutil.copytree(REPO / "i2i", tree, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("export", "runtime", "train"):
        shutil.copytree(REPO / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.11\nignore_missing_imports = True\nfollow_imports = silent\n"
        "[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]\nignore_errors = True\n"
        # Heavy libraries these modules only touch lazily: skipped (Any), or mypy spends minutes in torch.
        "[mypy-torch,torch.*,onnx,onnx.*,onnxruntime,onnxruntime.*,onnxscript,onnxscript.*,cv2,cv2.*]\n"
        "follow_imports = skip\n"
    )
    return tree, stubs


def _mypy(tmp_path: Path, tree: Path, stubs: Path, files: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {"MYPYPATH": f"{tree.parent}:{stubs}", "PATH": "/usr/bin:/bin"}
    cache = REPO / ".mypy_cache" / "tensorrt-stubs-check"  # ignored by git; keeps numpy's analysis warm
    command = [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir", str(cache)]
    return subprocess.run([*command, *map(str, files)], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(_stubs_dir() is None, reason="tensorrt-stubs is not installed (pip install tensorrt-stubs)")
def test_mypy_checks_the_tensorrt_modules_against_the_stubs(tmp_path: Path) -> None:
    tree, stubs = _stage(tmp_path)
    result = _mypy(tmp_path, tree, stubs, [tree / "export" / "tensorrt.py", tree / "runtime/backends/tensorrt.py"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout

    # The check is real: the stubs resolve, so a misspelt flag or a wrong argument type fails.
    bad = tree / "export" / "tensorrt.py"
    bad.write_text(
        bad.read_text()
        + "\n\ndef _misuse(network: trt.INetworkDefinition) -> None:\n"
        + "    import tensorrt as trt\n\n"
        + "    trt.Builder(trt.Logger()).create_builder_config().set_flag(trt.BuilderFlag.FP17)\n"
        + '    network.get_layer("first")\n'
    )
    result = _mypy(tmp_path, tree, stubs, [bad])
    assert result.returncode == 1, result.stdout
    assert 'has no attribute "FP17"' in result.stdout
    assert 'Argument 1 to "get_layer" of "INetworkDefinition" has incompatible type "str"' in result.stdout
