"""``i2i-export inspect``: what an exported model is, without running it.

ONNX models: the card, graph I/O, precision, static size, op histogram (and which ops compute in
fp16 / fp32), and the parity figures (from the card and the ``.parity.json`` report beside it).
Engines: the sidecar (card, TensorRT version, GPU, profiles); TensorRT itself is not needed.
Checkpoints (``model.pt``): the card they yield (arch, test-time mode and why, a student's teacher,
training metrics), read without running the network.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from i2i.errors import I2IError


def _dims(value: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def describe_onnx(path: Path) -> dict[str, Any]:
    import onnx

    from i2i.runtime.card import find_onnx_card

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise I2IError(f"cannot read ONNX model {path}: {' '.join(str(exc).split())[:160]}") from None
    card = find_onnx_card(path)
    names = {v: k for k, v in onnx.TensorProto.DataType.items()}
    io = {
        role: [
            {"name": v.name, "dtype": names.get(v.type.tensor_type.elem_type, "?").lower(), "shape": _dims(v)}
            for v in values
        ]
        for role, values in (("inputs", model.graph.input), ("outputs", model.graph.output))
    }
    report = path.with_suffix(".parity.json")
    return {
        "path": str(path),
        "kind": "onnx",
        "card": card.to_dict() if card else None,
        **io,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "ops": dict(Counter(n.op_type for n in model.graph.node).most_common()),
        "initializer_bytes": sum(len(t.raw_data) for t in model.graph.initializer),
        "parity_report": json.loads(report.read_text()) if report.is_file() else None,
    }


def describe_engine(path: Path) -> dict[str, Any]:
    from i2i.runtime.backends.tensorrt import read_sidecar
    from i2i.runtime.formats import FORMATS

    sidecar = read_sidecar(path)
    return {
        "path": str(path),
        "kind": "engine",
        "card": FORMATS["engine"].read_card(path).to_dict(),
        "sidecar": sidecar,
        "bytes": path.stat().st_size if path.is_file() else None,
    }


def describe_checkpoint(path: Path) -> dict[str, Any]:
    from i2i.runtime.formats import FORMATS

    card = FORMATS["checkpoint"].read_card(path)
    return {"path": str(path), "kind": "checkpoint", "card": card.to_dict(), "bytes": path.stat().st_size}


# What inspect reads per format (the format table's rows; Triton folders are not inspected).
DESCRIBERS = {"onnx": describe_onnx, "engine": describe_engine, "checkpoint": describe_checkpoint}


def describe(path: str | Path) -> dict[str, Any]:
    from i2i.runtime.formats import format_of

    path = Path(path)
    fmt = format_of(path)
    if fmt.name not in DESCRIBERS:
        raise I2IError(f"inspect takes model.pt, model.onnx or model.engine, not {path.name}")
    if not path.is_file():
        raise I2IError(f"model not found: {path}")
    return DESCRIBERS[fmt.name](path)


def format_text(info: dict[str, Any]) -> str:
    from i2i.runtime.card import ModelCard

    lines = [f"model:      {info['path']} ({info['kind']})"]
    card = ModelCard.from_dict(info["card"]) if info.get("card") else None
    if card is None:
        lines.append("card:       none (not exported by i2i-export)")
    else:
        lines += _card_lines(card)
    for role in ("inputs", "outputs"):
        for value in info.get(role, []):
            lines.append(f"{role[:-1]:6s}      {value['name']}: {value['dtype']} {value['shape']}")
    if info.get("ops"):
        lines.append(f"ops:        {sum(info['ops'].values())} nodes, opset {info.get('opset')}")
        lines += [f"  {op:24s} {n}" for op, n in info["ops"].items()]
    flops = card.flops if card else None
    if flops:
        lines.append(
            f"compute:    {flops['per_frame'] / 1e9:.2f} GFLOP per {flops['height']}x{flops['width']} frame "
            "(torch flop counter, 2 per multiply-add)"
        )
    parity = card.parity if card else None
    if parity:
        text = f"parity:     {parity.get('precision')} {'pass' if parity.get('passed') else 'FAIL'}"
        text += f", max abs {parity.get('max_abs')}, min PSNR {parity.get('min_psnr_db')} dB"
        if "frame_max_level_diff" in parity:
            text += f", frame I/O within {parity['frame_max_level_diff']} level(s)"
        lines.append(text)
        for name in ("bf16", "fp16"):  # run-time precisions measured at export (OpenVINO)
            record = card.runtime_parity(name) if card else None
            if record is not None:
                verdict = "pass" if record.get("passed") else "FAIL"
                lines.append(
                    f"  {name} (run-time, {record.get('reference')}): {verdict}, min PSNR "
                    f"{record.get('min_psnr_db')} dB, bar {record.get('bar_psnr_db')} dB, "
                    f"openvino {record.get('openvino')}"
                )
    report = info.get("parity_report")
    if report:
        for case in report.get("cases", []):
            lines.append(f"  {case['input']:32s} max abs {case['max_abs']}  PSNR {case['psnr_db']} dB")
    sidecar = info.get("sidecar")
    if sidecar:
        gpu = sidecar["gpu"]
        lines += [
            f"engine:     {card.precision if card else '?'}, TensorRT {sidecar['tensorrt']}, {gpu['name']} "
            f"(sm {gpu['compute_capability']})",
            *(f"profile:    {p['input']} min {p['min']} opt {p['opt']} max {p['max']}" for p in sidecar["profiles"]),
            f"rebuild:    {sidecar['rebuild']}",
        ]
    return "\n".join(lines)


def _card_lines(card: Any) -> list[str]:
    io, size = card.io, card.static_size
    color = "BGR" if io.kind == "frame" else "RGB"
    test = f"test-time BatchNorm {card.test_norm} statistics" + (", dropout on" if card.test_dropout else "")
    why = [f"            why: {card.test_norm_reason or 'not recorded'}"]
    teacher = [f"teacher:    {card.teacher.describe()}"] if card.teacher else []
    metrics = card.metrics or {}
    shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("psnr_db", "ssim", "fid", "kid") if k in metrics)
    trained = [f"metrics:    step {metrics.get('step', '?')}: {shown}"] if shown else []
    return [
        f"arch:       {card.arch}  method {card.method}" + (f"  refiner {card.refiner.kind}" if card.refiner else ""),
        f"precision:  {card.precision}" + (f" (kept fp32: {', '.join(card.fp32_ops)})" if card.fp32_ops else ""),
        f"io:         {io.kind} {io.layout} {io.dtype} {color}",
        f"size:       {'static ' + 'x'.join(map(str, size)) if size else 'dynamic'}, multiple "
        f"{card.size_multiple}, batch {card.static_batch or 'dynamic'}",
        f"test mode:  {test}",
        *why,
        *teacher,
        *trained,
    ]
