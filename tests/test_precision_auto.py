"""``--precision auto`` on OpenVINO: the fastest native precision whose parity for this model clears
its bar, with the choice and its reason in one line.

The capability probe is replaced by a fake list, so every test behaves the same on an AVX2-only
CPU and on one with AVX-512 BF16 or AMX; parity measurement is replaced where a test is about
where the record comes from rather than about OpenVINO's arithmetic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_backends import make_model

from i2i.runtime import precision_auto
from i2i.runtime.backends import backend_status, open_backend
from i2i.runtime.card import ModelCard

NO_BF16 = ("WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT")  # what OpenVINO lists on an AVX2-only CPU
WITH_BF16 = ("BF16", *NO_BF16)


def _record(psnr: float, passed: bool) -> dict[str, Any]:
    return {
        "min_psnr_db": psnr,
        "bar_psnr_db": 30.0,
        "passed": passed,
        "reference": "openvino f32",
        "openvino": precision_auto.openvino_version(),
    }


@pytest.fixture(autouse=True)
def _openvino() -> None:
    ok, why = backend_status("openvino")
    if not ok:
        pytest.skip(f"openvino unavailable: {why}")
    precision_auto._MEMORY.clear()


def _no_measuring(*args: Any, **kwargs: Any) -> dict[str, Any]:
    raise AssertionError("parity was measured although it was known")


def test_a_cpu_without_bf16_stays_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_model(tmp_path / "m.onnx", card={"parity": {"runtime": {"bf16": _record(60.0, True)}}})
    monkeypatch.setattr(precision_auto, "cpu_capabilities", lambda: NO_BF16)
    monkeypatch.setattr(precision_auto, "measure", _no_measuring)
    with open_backend("openvino", path) as backend:
        assert backend.precision == "fp32"
        assert backend._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
        assert backend.precision_choice == (
            "precision: fp32 (CPU has no native bf16 or fp16 (OpenVINO lists WINOGRAD, FP32, INT8, BIN, EXPORT_IMPORT))"
        )


def test_bf16_is_picked_where_native_and_its_recorded_parity_clears_the_bar(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", card={"parity": {"runtime": {"bf16": _record(48.94, True)}}})
    choice = precision_auto.choose(path, ModelCard.from_onnx(path), WITH_BF16)
    assert choice.describe() == (
        "precision: bf16 (CPU has AVX-512 BF16 or AMX; parity 48.9 dB >= 30 dB bar, measured at export)"
    )


def test_bf16_below_its_bar_stays_fp32_and_says_why(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", card={"parity": {"runtime": {"bf16": _record(27.2, False)}}})
    choice = precision_auto.choose(path, ModelCard.from_onnx(path), WITH_BF16)
    assert choice == precision_auto.Choice("fp32", "bf16 parity 27.2 dB < 30 dB bar, measured at export")


def test_an_int8_export_runs_as_int8() -> None:
    card = ModelCard(precision="int8", parity={"precision": "int8", "min_psnr_db": 34.56, "passed": True})
    choice = precision_auto.choose("unused.onnx", card, WITH_BF16)
    assert (
        choice.describe()
        == "precision: int8 (an int8 (Q/DQ) export runs as int8; parity 34.6 dB >= 30 dB bar at export)"
    )


def test_unrecorded_parity_is_measured_once_and_cached_beside_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_model(tmp_path / "m.onnx")
    calls: list[str] = []

    def fake_measure(model: Path, card: ModelCard, precision: str, image_dir: Any = None) -> dict[str, Any]:
        calls.append(precision)
        return _record(41.0, True)

    monkeypatch.setattr(precision_auto, "measure", fake_measure)
    first = precision_auto.choose(path, ModelCard.from_onnx(path), WITH_BF16)
    assert first.reason == "CPU has AVX-512 BF16 or AMX; parity 41.0 dB >= 30 dB bar, measured now"
    cache = precision_auto.cache_path(path)
    assert cache.name == "m.onnx.precision-parity.json"
    (key,) = json.loads(cache.read_text())
    from i2i.common import file_sha256

    assert key == f"{file_sha256(path)}:{precision_auto.openvino_version()}:bf16"
    second = precision_auto.choose(path, ModelCard.from_onnx(path), WITH_BF16)
    assert second.reason.endswith("measured at first load") and calls == ["bf16"]
    # Another OpenVINO version computes bf16 its own way: measured again.
    monkeypatch.setattr(precision_auto, "openvino_version", lambda: "0.0-other")
    precision_auto.choose(path, ModelCard.from_onnx(path), WITH_BF16)
    assert calls == ["bf16", "bf16"]


def test_a_read_only_folder_keeps_the_measurement_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import i2i._files

    folder = tmp_path / "ro"
    folder.mkdir()
    path = make_model(folder / "m.onnx")
    calls: list[str] = []
    monkeypatch.setattr(precision_auto, "measure", lambda *a, **k: calls.append("x") or _record(41.0, True))

    def read_only(target: Any, *args: Any) -> Any:  # what writing into a read-only folder raises (root ignores 0o555)
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(i2i._files, "write_text", read_only)
    for _ in range(2):
        assert precision_auto.choose(path, ModelCard.from_onnx(path), WITH_BF16).precision == "bf16"
    assert calls == ["x"] and sorted(p.name for p in folder.iterdir()) == ["m.onnx"]


def test_measured_parity_of_the_invert_model(tmp_path: Path) -> None:
    """The real measurement: -x in bf16 keeps 8 significant bits, a relative error <= 2**-9 per value,
    so PSNR (peak-to-peak 2) on inputs in [-1, 1] is above 20*log10(2 / 2**-9) - a few dB ~ 60 dB;
    on a CPU without bf16 OpenVINO computes f32 and the outputs agree exactly."""
    path = make_model(tmp_path / "m.onnx")
    record = precision_auto.measure(path, ModelCard.from_onnx(path), "bf16")
    assert record["passed"] is True and record["cases"] == 2 and record["reference"] == "openvino f32"
    assert record["min_psnr_db"] == "inf" or float(record["min_psnr_db"]) > 50.0


@pytest.mark.parametrize("capabilities", [WITH_BF16, NO_BF16])
def test_export_records_bf16_parity_where_the_cpu_has_it(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capabilities: tuple[str, ...]
) -> None:
    import i2i

    measured: list[tuple[str, ModelCard]] = []

    def fake_measure(model: Path, card: ModelCard, precision: str, image_dir: Any = None) -> dict[str, Any]:
        measured.append((precision, card))
        return _record(45.5, True)

    monkeypatch.setattr(precision_auto, "cpu_capabilities", lambda: capabilities)
    monkeypatch.setattr(precision_auto, "measure", fake_measure)
    result = i2i.export(tiny_run / "model.pt", tmp_path / "m.onnx", progress=False)
    card = ModelCard.from_onnx(tmp_path / "m.onnx")
    report = json.loads((tmp_path / "m.parity.json").read_text())
    if "BF16" in capabilities:
        assert [p for p, _ in measured] == ["bf16"] and measured[0][1].size_multiple == card.size_multiple
        assert card.runtime_parity("bf16") == _record(45.5, True) == report["runtime"]["bf16"]
        assert result.card == card and card.parity is not None and card.parity["precision"] == "fp32"
        from i2i.export.inspect import describe, format_text

        shown = format_text(describe(tmp_path / "m.onnx"))
        assert "  bf16 (run-time, openvino f32): pass, min PSNR 45.5 dB, bar 30.0 dB, openvino " in shown
        chosen = precision_auto.choose(tmp_path / "m.onnx", card)
        assert chosen.reason == "CPU has AVX-512 BF16 or AMX; parity 45.5 dB >= 30 dB bar, measured at export"
    else:
        assert measured == [] and card.runtime_parity("bf16") is None and "runtime" not in report


def test_ort_says_its_precision_in_one_line(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx")
    with open_backend("ort", path) as backend:
        assert backend.precision_choice == "precision: fp32 (the model's own: ORT runs a fp32 export as exported)"
