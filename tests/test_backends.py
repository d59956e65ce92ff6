"""Backends: the registry, the card contract, ORT provider selection, --backend auto, and parity.

``test_backend_matches_ort_cpu`` is parametrised over the whole registry: a backend is tested by
being registered, and one that cannot run here is skipped with the reason it gives.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from i2i.errors import I2IError
from i2i.runtime.backends import BACKEND_MODULES, backend_status, get_backend, open_backend
from i2i.runtime.backends import base as backends_base
from i2i.runtime.backends.auto import Candidate, open_auto, plan_auto
from i2i.runtime.backends.onnxruntime import BoundRunner, OrtSession, plan_providers
from i2i.runtime.card import ModelCard, ModelIO, find_onnx_card

ALL_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_ONLY = ["CPUExecutionProvider"]


# --- tiny ONNX models for every kind of card --------------------------------------------------


def make_model(
    path: Path,
    kind: str = "tensor",
    dtype: str = "float32",
    static: tuple[int, int] | None = None,
    multiple: int = 8,
    card: dict[str, Any] | None = None,
    graph_dtype: str | None = None,
) -> Path:
    """An 'invert' model: tensor I/O y = -x (so frames come out as 255 - v), frame I/O y = 255 - x.

    Exact in every precision, so pipeline tests can compare pixels exactly.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    h, w = static if static else ("H", "W")
    if kind == "frame":
        shape: list[Any] = ["N", h, w, 3]
        elem = TensorProto.UINT8
        nodes = [
            helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Sub", ["c255", "f"], ["inv"]),
            helper.make_node("Cast", ["inv"], ["output"], to=TensorProto.UINT8),
        ]
        inits = [helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0])]
    else:
        shape = ["N", 3, h, w]
        elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[graph_dtype or dtype]
        nodes = [helper.make_node("Neg", ["image"], ["output"])]
        inits = []
    graph = helper.make_graph(
        nodes,
        "invert",
        [helper.make_tensor_value_info("image", elem, shape)],
        [helper.make_tensor_value_info("output", elem, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    full_card: dict[str, Any] = {
        "format": "i2i-card/1",
        "arch": "invert",
        "io": {"kind": kind, "dtype": dtype, "channels": 3},
        "size_multiple": multiple,
        "precision": "fp16" if dtype == "float16" else "fp32",
        "static_size": list(static) if static else None,
    }
    full_card.update(card or {})
    entry = model.metadata_props.add()
    entry.key, entry.value = "i2i", json.dumps(full_card)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def invert_expected(batch: np.ndarray, kind: str) -> np.ndarray:
    return 255 - batch if kind == "frame" else -batch


def sample_batch(kind: str, dtype: str, n: int = 2, h: int = 16, w: int = 24) -> np.ndarray:
    rng = np.random.default_rng(1)
    if kind == "frame":
        return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    return rng.uniform(-1, 1, (n, 3, h, w)).astype(dtype)


# --- the registry -------------------------------------------------------------------------------


def test_registry_names_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"ort", "openvino", "trt", "torch"} <= set(BACKEND_MODULES)
    with pytest.raises(I2IError, match=r"unknown backend 'nope'; valid: .*openvino.*ort.*torch.*trt"):
        get_backend("nope")
    monkeypatch.setitem(backends_base.BACKEND_MODULES, "ghost", "no_such_module")
    ok, why = backend_status("ghost")
    assert not ok and "not part of this install" in why
    with pytest.raises(I2IError, match="backend 'ghost' is not part of this install"):
        open_backend("ghost", "model.onnx")


def test_torch_peers_precision_and_options(tiny_run: Path) -> None:
    """The torch baseline runs bf16 under autocast (close to fp32, not equal) and refuses what it cannot run."""
    checkpoint = tiny_run / "model.pt"
    batch = np.random.default_rng(1).uniform(-1, 1, (1, 3, 32, 64)).astype(np.float32)
    with open_backend("torch", checkpoint) as fp32, open_backend("torch", checkpoint, precision="bf16") as bf16:
        assert bf16.precision == "bf16" and bf16.card.precision == "bf16"
        reference, reduced = fp32(batch), bf16(batch)
    error = np.abs(reduced - reference)
    assert 0 < error.max() < 0.1  # bf16 keeps 8 mantissa bits: visibly different, never wildly off
    with pytest.raises(I2IError, match="precision 'fp16' is not supported on cpu"):
        open_backend("torch", checkpoint, precision="fp16")
    with pytest.raises(I2IError, match="precision 'int8' is not supported"):
        open_backend("torch", checkpoint, precision="int8")
    with pytest.raises(I2IError, match="unknown mode 'fastest'"):
        open_backend("torch-compile", checkpoint, mode="fastest")
    with pytest.raises(I2IError, match="has no option mode"):
        open_backend("torch", checkpoint, mode="default")


@pytest.mark.parametrize("name", sorted(BACKEND_MODULES))
def test_every_backend_refuses_what_it_does_not_declare(name: str, tmp_path: Path) -> None:
    """The base class owns open: unknown options, devices, precisions and suffixes are errors on
    every backend, before any library or model is loaded (TensorRT's open used to ignore them)."""
    cls = get_backend(name)
    model = tmp_path / f"m{cls.suffixes[0]}"
    with pytest.raises(I2IError, match=rf"backend '{name}' has no option bogus; valid options: "):
        cls.open(model, bogus=1)
    with pytest.raises(I2IError, match=rf"{name} backend: unknown device 'tpu'"):
        cls.open(model, device="tpu")
    with pytest.raises(I2IError, match=rf"{name} backend: precision 'int4' is not supported"):
        cls.open(model, precision="int4")
    with pytest.raises(I2IError, match=rf"{name} backend opens .* files, not m\.xyz"):
        cls.open(tmp_path / "m.xyz")
    with pytest.raises(I2IError, match="model not found"):
        cls.open(model)
    assert cls.resolve_device(None) == cls.default_device and cls.default_device.partition(":")[0] in cls.devices
    assert set(cls.options) == set(cls.options) and all(isinstance(h, str) and h for h in cls.options.values())


def test_open_reads_the_card_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_model(tmp_path / "m.onnx")
    calls: list[Path] = []
    real = backends_base.read_model_card

    def counting(p: Path) -> Any:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(backends_base, "read_model_card", counting)
    with open_backend("ort", path) as backend:
        assert backend.io.size_multiple == 8
    assert calls == [path]


def test_trt_missing_or_unavailable_is_reported_not_raised() -> None:
    ok, why = backend_status("trt")
    if importlib.util.find_spec("tensorrt") is None:
        assert not ok and why  # module absent, or tensorrt not installed: either way a reason


@pytest.mark.parametrize("name", sorted(BACKEND_MODULES))
def test_backend_matches_ort_cpu(name: str, tiny_onnx: Path, tiny_run: Path) -> None:
    """Every available backend gives ORT CPU's output on the tiny trained model."""
    ok, why = backend_status(name)
    if not ok:
        pytest.skip(f"backend {name!r} unavailable: {why}")
    checkpoint = tiny_run / "model.pt"
    path = {"torch": checkpoint, "torch-compile": checkpoint, "trt": tiny_onnx.with_suffix(".engine")}.get(
        name, tiny_onnx
    )
    if not path.is_file():
        pytest.skip(f"backend {name!r} needs {path.name} (build it with i2i-export --engine trt on a GPU)")
    rng = np.random.default_rng(0)
    with open_backend("ort", tiny_onnx, device="cpu") as reference:
        m = reference.size_multiple
        batch = rng.uniform(-1, 1, (2, 3, m, 2 * m)).astype(np.float32)
        expected = reference(batch)
        with open_backend(name, path) as backend:
            assert backend.io == reference.io
            assert backend.inputs and backend.outputs and backend.describe()
            out = np.asarray(backend(batch))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.astype(np.float32), expected, atol=2e-3)
    with pytest.raises(I2IError, match="closed"):
        backend(batch)


@pytest.mark.parametrize("name", ["ort", "openvino"])
@pytest.mark.parametrize(
    "kind,dtype,static",
    [
        ("tensor", "float32", None),
        ("tensor", "float16", None),
        ("frame", "uint8", None),
        ("tensor", "float32", (16, 24)),
    ],
    ids=["tensor-fp32", "tensor-fp16", "frame", "static"],
)
def test_backend_runs_every_card_kind(
    name: str, kind: str, dtype: str, static: tuple[int, int] | None, tmp_path: Path
) -> None:
    ok, why = backend_status(name)
    if not ok:
        pytest.skip(f"backend {name!r} unavailable: {why}")
    path = make_model(tmp_path / "m.onnx", kind=kind, dtype=dtype, static=static)
    batch = sample_batch(kind, dtype)
    with open_backend(name, path, device="cpu") as backend:
        assert backend.io.kind == kind and backend.io.static_size == static
        out = np.asarray(backend(batch))
        assert out.dtype == batch.dtype
        np.testing.assert_array_equal(out, invert_expected(batch, kind))
        wrong = batch.astype(np.float32) if kind == "frame" else (batch * 100).astype(np.uint8)
        with pytest.raises(I2IError, match=r"expected (uint8|float32|float16) input"):
            backend(wrong)
        if static is None:
            with pytest.raises(I2IError, match="multiples of 8"):
                backend(sample_batch(kind, dtype, h=12))
        else:
            with pytest.raises(I2IError, match="takes 16x24 inputs only"):
                backend(sample_batch(kind, dtype, h=8))


# --- the card contract --------------------------------------------------------------------------


def _io(card: dict[str, Any], where: str = "model") -> ModelIO:
    return ModelCard.from_dict(card, where=where).io


def test_card_io_defaults_and_errors() -> None:
    io = _io({"size_multiple": 4})
    assert (io.kind, io.dtype, io.static_size, io.size_multiple) == ("tensor", "float32", None, 4)
    frame = _io({"io": {"kind": "frame", "dtype": "float16"}, "static_size": [64, 96], "size_multiple": 32})
    assert frame.dtype == "uint8" and frame.layout == "NHWC" and frame.static_size == (64, 96)
    for card, message in [
        ({"io": {"kind": "video"}}, "io.kind 'video'"),
        ({"io": {"dtype": "int8"}}, "io.dtype 'int8'"),
        ({"static_size": [64]}, "static_size must be"),
        ({"static_size": [64, 100], "size_multiple": 32}, "not a multiple of 32"),
        ({"size_multiple": 0}, "size_multiple"),
        ({"io": {"channels": 1}}, "3-channel"),
    ]:
        with pytest.raises(I2IError, match=message):
            _io(card, where="m.onnx")


def test_card_must_agree_with_graph(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", dtype="float16", graph_dtype="float32")
    with pytest.raises(I2IError, match="card says tensor I/O in float16 but input 'image' is float32"):
        open_backend("ort", path, device="cpu")
    frame_card_on_tensor = make_model(tmp_path / "f.onnx", card={"io": {"kind": "frame"}})
    with pytest.raises(I2IError, match="frame I/O in uint8 but input 'image' is float32"):
        open_backend("ort", frame_card_on_tensor, device="cpu")


def test_read_onnx_card(tmp_path: Path, tiny_onnx: Path) -> None:
    card = find_onnx_card(tiny_onnx)
    assert card is not None and card.arch == "unet" and card.size_multiple == 32
    with OrtSession(tiny_onnx) as session:
        assert session.card == card  # same bytes, read without onnxruntime
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx at all" * 10)
    with pytest.raises(I2IError, match="cannot load ONNX model .*garbage.onnx"):
        find_onnx_card(garbage)
    with pytest.raises(I2IError, match="model not found"):
        find_onnx_card(tmp_path / "missing.onnx")


def test_model_without_card(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    path = make_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    assert find_onnx_card(path) is None
    for name in ("ort", "openvino"):
        if backend_status(name)[0]:
            with pytest.raises(I2IError, match="has no i2i model card"):
                open_backend(name, path, device="cpu")


# --- ONNX Runtime: provider selection (pure logic) and the CPU path -----------------------------


def test_plan_cpu() -> None:
    plan = plan_providers("cpu", CPU_ONLY)
    assert plan.providers == [("CPUExecutionProvider", {})]
    assert (plan.device, plan.io_binding, plan.cuda_graph, plan.precision) == ("cpu", False, False, "fp32")
    assert plan_providers("auto", CPU_ONLY).provider == "cpu"


def test_plan_cuda_with_io_binding_and_graphs_for_static_shapes() -> None:
    dynamic = plan_providers("cuda:1", ALL_PROVIDERS)
    # Issue 20 item 1: CPU fallback stays on (the CUDA provider hands shape arithmetic to the CPU);
    # ORT records where each node went, and compute left on the CPU is refused from that record.
    assert [p for p, _ in dynamic.providers] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert dynamic.session_config == {"session.record_ep_graph_assignment_info": "1"} and not dynamic.cpu_compute
    options = dynamic.providers[0][1]
    assert options["device_id"] == "1" and options["enable_cuda_graph"] == "0"
    assert options["cudnn_conv_algo_search"] == "HEURISTIC"
    assert dynamic.io_binding and not dynamic.cuda_graph and dynamic.device == "cuda:1"
    static = plan_providers("cuda", ALL_PROVIDERS, static=True)
    assert static.cuda_graph and static.providers[0][1]["enable_cuda_graph"] == "1"
    assert static.providers[0][1]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    off = plan_providers("cuda", ALL_PROVIDERS, static=True, cuda_graph="false")
    assert not off.cuda_graph and off.io_binding
    assert plan_providers("auto", ALL_PROVIDERS).provider == "cuda"


def test_plan_tensorrt(tmp_path: Path) -> None:
    plan = plan_providers("cuda", ALL_PROVIDERS, provider="tensorrt", precision="fp16", static=True, trt_cache=tmp_path)
    assert [p for p, _ in plan.providers] == ALL_PROVIDERS
    trt = plan.providers[0][1]
    assert trt["trt_fp16_enable"] == "1" and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_cuda_graph_enable"] == "1" and plan.precision == "fp16"
    assert "enable_cuda_graph" not in plan.providers[1][1]  # one graph owner: TensorRT
    fallback = plan_providers("cuda", ALL_PROVIDERS, provider="tensorrt", cpu_fallback="true")
    assert [p for p, _ in fallback.providers] == ALL_PROVIDERS and fallback.cpu_compute


@pytest.mark.parametrize(
    ("model", "asked", "fp16", "int8"),
    [("fp32", "auto", "0", None), ("fp32", "fp16", "1", None), ("fp16", "auto", "1", None), ("int8", "auto", "0", "1")],
)
def test_tensorrt_provider_precision_flags_follow_the_card(model: str, asked: str, fp16: str, int8: str | None) -> None:
    """Issue 20 item 3: the TensorRT provider builds weakly typed networks. An int8 Q/DQ export needs
    trt_int8_enable (without it: "int8 precision has been set ... but int8 is not configured in the
    builder", onnxruntime issue 13381) and no calibration table (the graph's Q/DQ scales are the
    quantisation); fp16 layers need trt_fp16_enable."""
    plan = plan_providers("cuda", ALL_PROVIDERS, provider="tensorrt", model_precision=model, precision=asked)
    trt = plan.providers[0][1]
    assert trt["trt_fp16_enable"] == fp16 and trt.get("trt_int8_enable") == int8
    assert "trt_int8_calibration_table_name" not in trt
    if int8:
        assert trt["trt_int8_use_native_calibration_table"] == "0" and plan.precision == "int8"
    with pytest.raises(I2IError, match="exported in int8"):
        plan_providers("cuda", ALL_PROVIDERS, model_precision="int8", precision="fp16")


def test_tensorrt_provider_gets_profile_shapes_and_a_cache(tmp_path: Path) -> None:
    """Without profile shapes the TensorRT provider rebuilds its engine for every new resolution."""
    from i2i.runtime.backends.onnxruntime import profile_shapes
    from i2i.runtime.card import ModelIO

    dynamic = profile_shapes(ModelIO(size_multiple=8), "image")
    assert dynamic == {
        "trt_profile_min_shapes": "image:1x3x64x64",
        "trt_profile_opt_shapes": "image:1x3x720x1280",
        "trt_profile_max_shapes": "image:8x3x1080x1920",
    }
    frame = profile_shapes(ModelIO(kind="frame", dtype="uint8", size_multiple=32), "frame", static_batch=2)
    assert frame["trt_profile_opt_shapes"] == "frame:2x736x1280x3"  # NHWC, rounded up to the multiple
    static = profile_shapes(ModelIO(size_multiple=4, static_size=(256, 256)), "image")
    assert static["trt_profile_min_shapes"] == static["trt_profile_opt_shapes"] == "image:1x3x256x256"
    assert static["trt_profile_max_shapes"] == "image:8x3x256x256"  # the size is fixed, the batch is not
    plan = plan_providers("cuda", ALL_PROVIDERS, provider="tensorrt", trt_cache=tmp_path, trt_profile=dynamic)
    options = plan.providers[0][1]
    assert options["trt_profile_opt_shapes"] == "image:1x3x720x1280"
    assert options["trt_engine_cache_enable"] == "1" and options["trt_engine_cache_path"] == str(tmp_path)


def test_gpu_session_whose_provider_did_not_start_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 7: a CUDA session whose provider cannot start (here: this onnxruntime has none) ends
    on the CPU provider; that is refused, and the pip-installed CUDA libraries are preloaded first."""
    import onnxruntime

    from i2i.runtime.backends.onnxruntime import OnnxRuntimeBackend

    path = make_model(tmp_path / "m.onnx")
    preloaded: list[bool] = []
    monkeypatch.setattr(OnnxRuntimeBackend, "available_providers", staticmethod(lambda: list(ALL_PROVIDERS)))
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda *a, **k: preloaded.append(True), raising=False)
    with pytest.raises(I2IError, match="CUDAExecutionProvider failed to start .*runs CPUExecutionProvider"):
        open_backend("ort", path, device="cuda")
    assert preloaded == [True]


def test_node_placement_is_read_from_the_profile(tmp_path: Path) -> None:
    from i2i.runtime.backends.onnxruntime import node_placement
    from i2i.runtime.backends.ort_placement import PlacedNode, profiled_placement

    path = make_model(tmp_path / "m.onnx")
    with OrtSession(path, profile_dir=str(tmp_path)) as session:
        assert session.session.get_session_options().log_severity_level == 2  # ORT's warnings are shown
        session.run(sample_batch("tensor", "float32"))
        profile = session.session.end_profiling()
    assert node_placement(profile) == {"CPUExecutionProvider": 1}  # the one Neg node, where it actually ran
    (node,) = profiled_placement(profile)
    assert node.provider == "CPUExecutionProvider" and node.op_type == "Neg" and isinstance(node, PlacedNode)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"device": "cuda", "available": CPU_ONLY}, r"no CUDAExecutionProvider.*-m pip install [^`]*\[gpu\]'"),
        (
            {"device": "cuda", "available": CPU_ONLY[:0] + ["CUDAExecutionProvider"], "provider": "tensorrt"},
            "no TensorrtExecutionProvider",
        ),
        ({"device": "cpu", "available": ALL_PROVIDERS, "provider": "tensorrt"}, "does not run on device 'cpu'"),
        ({"device": "gpu", "available": ALL_PROVIDERS}, "unknown device 'gpu'"),
        ({"device": "cpu", "available": CPU_ONLY, "cuda_graph": True}, "CUDA graphs need a CUDA device"),
        ({"device": "cuda", "available": ALL_PROVIDERS, "cuda_graph": "true"}, "CUDA graphs need a fixed input size"),
        (
            {"device": "cuda", "available": ALL_PROVIDERS, "static": True, "cuda_graph": True, "io_binding": False},
            "need IO binding",
        ),
        ({"device": "cpu", "available": CPU_ONLY, "precision": "fp16"}, "exported in fp32"),
        ({"device": "cpu", "available": CPU_ONLY, "precision": "bf16"}, "precision 'bf16' is not supported"),
        ({"device": "cpu", "available": CPU_ONLY, "cuda_graph": "maybe"}, "cuda_graph='maybe'"),
    ],
)
def test_plan_rejects_impossible_requests(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(I2IError, match=message):
        plan_providers(**kwargs)


def test_ort_cuda_request_on_this_machine_is_a_clear_error(tiny_onnx: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(I2IError, match=r"no CUDAExecutionProvider.*-m pip install [^`]*\[gpu\]'"):
        open_backend("ort", tiny_onnx, device="cuda")
    with pytest.raises(I2IError, match="has no option bogus; valid options: threads, spin, provider"):
        open_backend("ort", tiny_onnx, device="cpu", bogus=1)


def test_ort_io_binding_path_on_cpu(tmp_path: Path) -> None:
    """The GPU code path (IO binding, fixed buffers updated in place) run for real on the CPU."""
    path = make_model(tmp_path / "m.onnx")
    batch = sample_batch("tensor", "float32", n=3)
    with open_backend("ort", path, device="cpu", io_binding="true") as backend:
        assert "IO binding" in backend.describe()
        np.testing.assert_array_equal(backend(batch), -batch)
    with OrtSession(path) as session:
        runner = BoundRunner(session, "cpu", 0, fixed=True)
        np.testing.assert_array_equal(runner(batch), -batch)
        (first,) = runner._buffers.values()
        short = batch[:2] * 0.5
        np.testing.assert_array_equal(runner(short), -short)  # padded to 3, sliced back to 2
        assert list(runner._buffers.values()) == [first]  # same buffers: the addresses a CUDA graph captured
        with pytest.raises(I2IError, match="CUDA graph captured for batches of shape"):
            runner(sample_batch("tensor", "float32", n=4))


def test_ort_io_binding_preallocates_buffers_per_shape(tmp_path: Path) -> None:
    """Without CUDA graphs, each batch shape gets device buffers once, reused by later calls of that shape."""
    path = make_model(tmp_path / "m.onnx")
    with OrtSession(path) as session:
        runner = BoundRunner(session, "cpu", 0, fixed=False)
        a, b = sample_batch("tensor", "float32", n=2), sample_batch("tensor", "float32", n=1, h=8, w=8)
        np.testing.assert_array_equal(runner(a), -a)
        buffers = runner._buffers[a.shape]
        np.testing.assert_array_equal(runner(b), -b)
        np.testing.assert_array_equal(runner(a * 0.25), -a * 0.25)  # new values through the same buffers
        assert runner._buffers[a.shape] is buffers and set(runner._buffers) == {a.shape, b.shape}


# --- OpenVINO -----------------------------------------------------------------------------------


def test_openvino_precision_is_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, why = backend_status("openvino")
    if not ok:
        pytest.skip(f"openvino unavailable: {why}")
    from i2i.runtime import precision_auto

    path = make_model(tmp_path / "m.onnx")
    # auto on a CPU without native bf16 (tests/test_precision_auto.py covers the others)
    monkeypatch.setattr(precision_auto, "cpu_capabilities", lambda: ("FP32", "INT8"))
    with open_backend("openvino", path) as backend:
        assert backend.precision == "fp32"
        assert backend._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    with pytest.raises(I2IError, match="no native bf16"):
        open_backend("openvino", path, precision="bf16")
    with pytest.raises(I2IError, match="unknown device 'cuda'; valid: cpu"):
        open_backend("openvino", path, device="cuda")
    with pytest.raises(I2IError, match=r"opens \.onnx files, not model\.pt"):
        open_backend("openvino", tmp_path / "model.pt")


# --- --backend auto -----------------------------------------------------------------------------


def _status(unavailable: set[str]) -> Any:
    return lambda name: (name not in unavailable, f"{name} missing")


def _providers(monkeypatch: pytest.MonkeyPatch, providers: list[str]) -> None:
    from i2i.runtime.backends.onnxruntime import OnnxRuntimeBackend

    monkeypatch.setattr(OnnxRuntimeBackend, "available_providers", staticmethod(lambda: list(providers)))


def test_plan_auto_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    _providers(monkeypatch, ALL_PROVIDERS)
    everything = plan_auto("m.onnx", status=_status(set()))
    assert [c.label.split(" (")[0] for c in everything] == ["TensorRT", "ORT CUDA", "OpenVINO CPU", "ORT CPU"]
    assert all(c.skip is None for c in everything)
    assert everything[0].opts == {"provider": "tensorrt"}
    cpu = plan_auto("m.onnx", "cpu", status=_status(set()))
    assert cpu[0].skip == "--device cpu" and cpu[2].skip is None
    gpu = plan_auto("m.onnx", "cuda:1", status=_status(set()))
    assert gpu[0].device == "cuda:1" and gpu[3].skip == "--device cuda:1"
    assert plan_auto("m.pt", status=_status(set()))[0].backend == "torch"
    engine = plan_auto("m.engine", status=_status({"trt"}))
    assert engine[0].backend == "trt" and engine[0].skip == "trt missing"
    _providers(monkeypatch, CPU_ONLY)
    bare = plan_auto("m.onnx", status=_status({"openvino"}))
    assert [c.skip is None for c in bare] == [False, False, False, True]
    assert "no TensorrtExecutionProvider" in (bare[0].skip or "") and bare[2].skip == "openvino missing"
    # The reason names the command that fixes it, for this environment (here: the CPU wheel is installed).
    from i2i.errors import install_hint

    fix = f"-m pip uninstall -y onnxruntime && {install_hint('gpu')}`"
    assert fix in (bare[1].skip or "")


def test_auto_ranking_comes_from_the_backend_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new backend is its module plus one registry line: --backend auto reads its class attributes."""
    from i2i.runtime.backends.base import AutoTier, Backend, register_backend

    class Quick(Backend):
        suffixes = (".onnx",)
        auto_rank = (AutoTier(25, "Quick CPU", "cpu"),)

        @classmethod
        def available(cls) -> tuple[bool, str]:
            return True, "quick 1.0"

        def _infer(self, batch: np.ndarray) -> np.ndarray:
            return batch

    monkeypatch.setitem(backends_base.BACKEND_MODULES, "quick", "quick")
    monkeypatch.setitem(backends_base.BACKENDS, "quick", register_backend("quick")(Quick))
    _providers(monkeypatch, ALL_PROVIDERS)
    labels = [c.label.split(" (")[0] for c in plan_auto("m.onnx", status=_status(set()))]
    assert labels == ["TensorRT", "ORT CUDA", "Quick CPU", "OpenVINO CPU", "ORT CPU"]
    assert "quick" in backends_base.backend_names() and "quick" not in backends_base.backends_for("m.engine")
    backends_base.BACKENDS.pop("quick")


def test_open_auto_falls_through_and_says_why(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx")
    candidates = [
        Candidate("ORT CUDA", "ort", "cuda"),  # looks available, fails to start here
        Candidate("OpenVINO CPU", "openvino", "cpu", skip="openvino missing"),
        Candidate("ORT CPU", "ort", "cpu"),
    ]
    backend, why = open_auto(path, candidates=candidates)
    with backend:
        assert backend.name == "ort" and backend.device == "cpu"
    assert why.startswith("auto: ORT CPU is the fastest available here")
    assert "ORT CUDA: ort backend: this onnxruntime has no CUDAExecutionProvider" in why
    assert "OpenVINO CPU: openvino missing" in why
    with pytest.raises(I2IError, match="has no i2i model card|cannot load ONNX model"):
        (tmp_path / "bad.onnx").write_bytes(b"\x08\x08")
        open_auto(tmp_path / "bad.onnx")


def test_open_auto_on_this_machine(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx")
    backend, why = open_auto(path)
    with backend:
        expected = "openvino" if backend_status("openvino")[0] else "ort"
        assert backend.name == expected and "fastest available" in why


# --- torch stays out of the runtime --------------------------------------------------------------


def test_every_backend_module_imports_without_torch() -> None:
    modules = [
        f"i2i.runtime.backends.{module}"
        for module in BACKEND_MODULES.values()
        if importlib.util.find_spec(f"i2i.runtime.backends.{module}") is not None
    ]
    code = (
        "import importlib, sys\n"
        "import i2i.runtime, i2i.runtime.cli, i2i.runtime.pipeline, i2i.runtime.web, i2i.runtime.live\n"
        "import i2i.runtime.backends.auto\n"
        f"for m in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ImportError as e:\n"
        "        print('unimportable', m, e)\n"
        "from i2i.runtime.backends import available_backends\n"
        "available_backends()\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
    assert "i2i.runtime.backends.torch" in modules


def test_a_provider_that_did_not_register_is_refused() -> None:
    """ORT drops a provider that fails to initialise (TensorRT without its libraries) and carries on
    with the next one: a TensorRT-provider plan that ends up on plain CUDA is an error, not a silent swap."""
    from types import SimpleNamespace

    from i2i.runtime.backends.onnxruntime import _check_registered

    plan = plan_providers("cuda", ALL_PROVIDERS, provider="tensorrt")
    closed: list[bool] = []
    session = SimpleNamespace(
        session=SimpleNamespace(get_providers=lambda: ["CUDAExecutionProvider"]), close=lambda: closed.append(True)
    )
    with pytest.raises(I2IError, match="TensorrtExecutionProvider failed to start .*runs CUDAExecutionProvider"):
        _check_registered(cast(Any, session), plan)
    assert closed == [True]
    ok = SimpleNamespace(session=SimpleNamespace(get_providers=lambda: ["TensorrtExecutionProvider"]))
    _check_registered(cast(Any, ok), plan)
