"""ModelCard, the precision table and the format table: the one source of truth for every artefact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2i.errors import I2IError
from i2i.runtime.card import CARD_FORMAT, LEGACY_CHECKPOINT_TEST_NORM_REASON, ModelCard, ModelIO, Refiner, Teacher
from i2i.runtime.formats import FORMATS, format_of, read_card
from i2i.runtime.precisions import PRECISIONS, export_precisions, get_precision, runtime_precisions

# A card exactly as the i2i-card/1 exporter wrote it (frame I/O, fp16, static 64x96).
LEGACY_CARD = {
    "format": "i2i-card/1",
    "arch": "unet",
    "arch_kwargs": {"num_downs": 5, "ngf": 8, "norm": "batch"},
    "method": "pix2pix",
    "direction": "AtoB",
    "io": {
        "channels": 3,
        "out_channels": 3,
        "range": [0, 255],
        "color": "BGR",
        "layout": "NHWC",
        "size_multiple": 32,
        "kind": "frame",
        "input": "frame",
        "output": "frame_out",
        "dtype": "uint8",
        "pads_to_multiple": True,
    },
    "size_multiple": 32,
    "static_size": [64, 96],
    "static_batch": 2,
    "precision": "fp16",
    "fp32_ops": ["InstanceNormalization", "ReduceMean"],
    "opset": 18,
    "refine": None,
    "source_checkpoint": {"name": "model.pt", "sha256": "ab" * 32},
    "exporter": {"i2i": "0.1.0", "torch": "2.13.0"},
    "export": {"precision": "fp16", "io": "frame"},
    "parity": {"precision": "fp16", "passed": True, "max_abs": 0.01, "min_psnr_db": 48.2},
    "flops": {"height": 256, "width": 256, "per_frame": 123, "per_pixel": 0.5},
    "metrics": {},
}


def test_legacy_card_loads_with_typed_fields() -> None:
    card = ModelCard.from_dict(LEGACY_CARD, where="old.onnx")
    assert card.io == ModelIO(kind="frame", dtype="uint8", size_multiple=32, static_size=(64, 96))
    assert (card.precision, card.static_batch, card.opset) == ("fp16", 2, 18)
    assert card.fp32_ops == ("InstanceNormalization", "ReduceMean")
    assert card.source == {"name": "model.pt", "sha256": "ab" * 32}
    assert card.refiner is None and card.baked_refine is None
    assert card.test_norm == "running"  # what every export before test-time options computed
    assert card.format == "i2i-card/1"


def test_round_trip_writes_the_current_format() -> None:
    card = ModelCard.from_dict(LEGACY_CARD)
    again = ModelCard.from_json(card.to_json())
    assert again.format == CARD_FORMAT
    assert again.replace(format=card.format) == card


def test_legacy_stig_card_becomes_a_typed_refiner() -> None:
    old = {"format": "i2i-card/1", "method": "stig", "arch_kwargs": {"spectrum_size": 64}, "size_multiple": 4}
    assert ModelCard.from_dict(old).refiner == Refiner("stig", 64)
    # A v2 card says so explicitly; its method alone does not make it a refiner.
    assert ModelCard.from_dict({"format": CARD_FORMAT, "method": "stig"}).refiner is None


def test_checkpoint_card() -> None:
    ckpt = {"arch": "fast", "method": "distill", "io": {"channels": 3, "size_multiple": 4}, "direction": "AtoB"}
    card = ModelCard.from_checkpoint(ckpt)
    assert (card.io.kind, card.io.dtype, card.size_multiple, card.test_norm) == ("tensor", "float32", 4, "frame")
    with pytest.raises(I2IError, match="'io' is missing"):
        ModelCard.from_checkpoint({"arch": "fast"})


def test_checkpoint_card_carries_the_test_norm_reason_and_the_teacher() -> None:
    base = {"arch": "fast", "method": "distill", "io": {"channels": 3, "size_multiple": 4}}
    # A model.pt older than the test_norm key: per-frame, and the card says the mode was not recorded.
    assert ModelCard.from_checkpoint(base).test_norm_reason == LEGACY_CHECKPOINT_TEST_NORM_REASON
    # One with the key but written before reasons were: no reason invented.
    assert ModelCard.from_checkpoint({**base, "test_norm": "running"}).test_norm_reason is None
    teacher = {"name": "t.pt", "sha256": "cd" * 32, "arch": "unet", "test_norm": "running", "test_dropout": False}
    ckpt = {**base, "test_norm": "running", "test_norm_reason": "trained at batch size 8", "teacher": teacher}
    card = ModelCard.from_checkpoint(ckpt)
    assert card.test_norm_reason == "trained at batch size 8"
    assert card.teacher == Teacher("t.pt", "cd" * 32, "unet", "running", False)
    again = ModelCard.from_json(card.to_json())  # the exporter writes what from_checkpoint gave
    assert (again.test_norm_reason, again.teacher) == (card.test_norm_reason, card.teacher)


def test_cards_without_the_newer_fields_still_load() -> None:
    """test_norm_reason and teacher were added within i2i-card/2: a card without them loads as before."""
    card = ModelCard.from_dict({"format": CARD_FORMAT, "test_norm": "frame"})
    assert (card.test_norm, card.test_norm_reason, card.teacher) == ("frame", None, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "i2i-card/9"}, "card format 'i2i-card/9'"),
        ({"precision": "fp8"}, "'precision' must be one of"),
        ({"static_batch": 0}, "'static_batch' must be a positive integer"),
        ({"test_norm": "batch"}, "'test_norm' must be one of frame, running"),
        ({"test_dropout": "yes"}, "'test_dropout' must be true or false"),
        ({"fp32_ops": "InstanceNormalization"}, "'fp32_ops' must be a list of strings"),
        ({"test_norm_reason": 3}, "'test_norm_reason' must be a string or null"),
        ({"teacher": "t.pt"}, "'teacher' must be an object or null"),
        ({"teacher": {"test_norm": "batch"}}, "'teacher.test_norm' must be one of frame, running"),
        ({"parity": [1]}, "'parity' must be an object"),
        ({"refiner": {"kind": "magic"}}, "'refiner' must be an object with kind one of stig"),
        ({"refiner": {"kind": "stig", "spectrum_size": -3}}, "refiner.spectrum_size must be a positive integer"),
        ({"io": {"kind": "video"}}, "io.kind 'video'"),
        ({"size_multiple": 0}, "size_multiple must be a positive integer"),
        ({"static_size": [64, 90]}, "static_size \\[64, 90\\] is not a multiple of 32"),
    ],
)
def test_each_bad_field_is_one_clear_error(change: dict[str, object], message: str) -> None:
    with pytest.raises(I2IError, match=message) as info:
        ModelCard.from_dict({**LEGACY_CARD, **change}, where="m.onnx")
    assert info.value.message.startswith("m.onnx: ")


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(I2IError, match="not valid JSON"):
        ModelCard.from_json("{", where="m.onnx")
    with pytest.raises(I2IError, match="must be a JSON object"):
        ModelCard.from_json("[1, 2]", where="m.onnx")


def test_onnx_card_round_trip(tiny_onnx: Path) -> None:
    card = read_card(tiny_onnx)
    assert card == ModelCard.from_onnx(tiny_onnx)
    assert card.format == CARD_FORMAT and card.source is not None and card.parity is not None
    assert json.loads(card.to_json())["io"]["kind"] == card.io.kind


def test_precision_table() -> None:
    assert set(export_precisions()) == {"fp32", "fp16", "int8"}
    assert runtime_precisions()[0] == "auto" and "bf16" in runtime_precisions()
    assert get_precision("fp16").graph_dtype == "float16"
    assert get_precision("int8").bar.real_images_only
    with pytest.raises(I2IError, match="unknown precision 'fp8'; valid: fp32, fp16, int8, bf16"):
        get_precision("fp8")
    for row in PRECISIONS.values():  # every converter names a module:function
        assert row.converter is None or row.converter.count(":") == 1


def test_format_table(tmp_path: Path) -> None:
    assert format_of("a/model.onnx") is FORMATS["onnx"]
    assert format_of("model.ENGINE") is FORMATS["engine"]
    assert format_of("model.pt") is FORMATS["checkpoint"]
    assert format_of(tmp_path) is FORMATS["triton"]
    with pytest.raises(I2IError, match="unknown model format '.h5'"):
        format_of("weights.h5")
    with pytest.raises(I2IError, match="model not found"):
        read_card(tmp_path / "missing.onnx")
    with pytest.raises(I2IError, match="no Triton model"):
        read_card(tmp_path)
