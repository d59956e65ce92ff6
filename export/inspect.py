"""``i2i-export inspect``: what an exported model is, without running it.

ONNX models: the card, graph I/O, precision, static size, op histogram (and which ops compute in
fp16 / fp32), and the parity figures (from the card and the ``.parity.json`` report beside it).
Engines: the sidecar (card, TensorRT version, GPU, profiles); TensorRT itself is not needed.
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

    from i2i.export.onnx import CARD_KEY

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise I2IError(f"cannot read ONNX model {path}: {' '.join(str(exc).split())[:160]}") from None
    meta = {p.key: p.value for p in model.metadata_props}
    card = json.loads(meta[CARD_KEY]) if CARD_KEY in meta else None
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
        "card": card,
        **io,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "ops": dict(Counter(n.op_type for n in model.graph.node).most_common()),
        "initializer_bytes": sum(len(t.raw_data) for t in model.graph.initializer),
        "parity_report": json.loads(report.read_text()) if report.is_file() else None,
    }


def describe_engine(path: Path) -> dict[str, Any]:
    from i2i.runtime.backends.tensorrt import read_sidecar

    sidecar = read_sidecar(path)
    return {
        "path": str(path),
        "kind": "engine",
        "card": sidecar["card"],
        "sidecar": sidecar,
        "bytes": path.stat().st_size if path.is_file() else None,
    }


def describe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.suffix == ".engine":
        return describe_engine(path)
    if not path.is_file():
        raise I2IError(f"model not found: {path}")
    if path.suffix != ".onnx":
        raise I2IError(f"inspect takes model.onnx or model.engine, not {path.name}")
    return describe_onnx(path)


def format_text(info: dict[str, Any]) -> str:
    card = info.get("card") or {}
    io = card.get("io", {})
    lines = [f"model:      {info['path']} ({info['kind']})"]
    if not card:
        lines.append("card:       none (not exported by i2i-export)")
    else:
        size = card.get("static_size")
        lines += [
            f"arch:       {card.get('arch')} {card.get('arch_kwargs', {})}  method {card.get('method')}",
            f"precision:  {card.get('precision')}"
            + (f" (kept fp32: {', '.join(card['fp32_ops'])})" if card.get("fp32_ops") else ""),
            f"io:         {io.get('kind', 'tensor')} {io.get('layout', 'NCHW')} {io.get('dtype', 'float32')} "
            f"{io.get('color', 'RGB')}  in {io.get('input')!r} -> out {io.get('output')!r}",
            f"size:       {'static ' + 'x'.join(map(str, size)) if size else 'dynamic'}, multiple "
            f"{card.get('size_multiple')}, batch {card.get('static_batch') or 'dynamic'}",
        ]
    for role in ("inputs", "outputs"):
        for value in info.get(role, []):
            lines.append(f"{role[:-1]:6s}      {value['name']}: {value['dtype']} {value['shape']}")
    if info.get("ops"):
        lines.append(f"ops:        {sum(info['ops'].values())} nodes, opset {info.get('opset')}")
        lines += [f"  {op:24s} {n}" for op, n in info["ops"].items()]
    flops = card.get("flops")
    if flops:
        lines.append(
            f"compute:    {flops['per_frame'] / 1e9:.2f} GFLOP per {flops['height']}x{flops['width']} frame "
            "(torch flop counter, 2 per multiply-add)"
        )
    parity = card.get("parity")
    if parity:
        text = f"parity:     {parity.get('precision')} {'pass' if parity.get('passed') else 'FAIL'}"
        text += f", max abs {parity.get('max_abs')}, min PSNR {parity.get('min_psnr_db')} dB"
        if "frame_max_level_diff" in parity:
            text += f", frame I/O within {parity['frame_max_level_diff']} level(s)"
        lines.append(text)
    report = info.get("parity_report")
    if report:
        for case in report.get("cases", []):
            lines.append(f"  {case['input']:32s} max abs {case['max_abs']}  PSNR {case['psnr_db']} dB")
    sidecar = info.get("sidecar")
    if sidecar:
        gpu = sidecar["gpu"]
        lines += [
            f"engine:     {sidecar['precision']}, TensorRT {sidecar['tensorrt']}, {gpu['name']} "
            f"(sm {gpu['compute_capability']})",
            *(f"profile:    {p['input']} min {p['min']} opt {p['opt']} max {p['max']}" for p in sidecar["profiles"]),
            f"rebuild:    {sidecar['rebuild']}",
        ]
    return "\n".join(lines)
