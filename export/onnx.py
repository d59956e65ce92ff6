"""Checkpoint → ONNX: dynamic N/H/W, model card in metadata, checker + shape inference, parity.

Opset ≥ 18 uses the dynamo exporter (``torch.export`` with derived dims H = m·h, W = m·w, where
m is the generator's size multiple); opset 17 falls back to the TorchScript exporter, which is
deprecated but is the only one that lowers Pad to opset 17.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from i2i import __version__
from i2i.errors import I2IError
from i2i.export.parity import compare, json_safe, parity_inputs, summarize
from i2i.train.checkpoint import build_generator, file_sha256, load_checkpoint

CARD_KEY = "i2i"
CARD_FORMAT = "i2i-card/1"
INPUT_NAME = "image"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str
    output: str | None = None  # default: the checkpoint's path with .onnx
    opset: int = 18
    parity_data: str | None = None  # folder of images for the parity check
    progress: bool = True


@dataclass
class ExportResult:
    onnx: Path
    parity_report: Path
    parity: dict[str, Any]
    card: dict[str, Any]


def _example_input(size_multiple: int) -> torch.Tensor:
    # Batch 2 and 2-3 blocks per side: an example size of 1 would be specialised as a constant.
    m = size_multiple
    return torch.randn(2, 3, 2 * m, 3 * m)


def _export_graph(generator: torch.nn.Module, size_multiple: int, path: Path, opset: int) -> None:
    example = _example_input(size_multiple)
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        if opset >= 18:
            batch = torch.export.Dim("batch", min=1, max=1024)
            h_blocks = torch.export.Dim("h_blocks", min=1, max=4096 // size_multiple)
            w_blocks = torch.export.Dim("w_blocks", min=1, max=4096 // size_multiple)
            dims = {0: batch, 2: size_multiple * h_blocks, 3: size_multiple * w_blocks}
            try:
                torch.onnx.export(
                    generator,
                    (example,),
                    str(path),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes={"x": dims},
                    external_data=False,
                    verbose=False,
                )
            except Exception as exc:
                log = quiet.getvalue().strip().splitlines()
                raise I2IError(
                    f"ONNX export failed: {' '.join(str(exc).split())[:300]}" + (f" | {log[-1][:200]}" if log else "")
                ) from None
        else:
            torch.onnx.export(
                generator,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                    OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                },
            )


def make_card(ckpt: dict[str, Any], checkpoint_path: Path, opset: int, parity: dict[str, Any]) -> dict[str, Any]:
    import onnx

    io_spec = dict(ckpt["io"])
    io_spec.update(input=INPUT_NAME, output=OUTPUT_NAME, dtype="float32", kind="tensor")
    return {
        "format": CARD_FORMAT,
        "arch": ckpt["arch"],
        "arch_kwargs": ckpt["arch_kwargs"],
        "method": ckpt.get("method"),
        "direction": ckpt.get("direction"),
        "io": io_spec,
        "size_multiple": int(io_spec["size_multiple"]),
        "precision": "fp32",
        "opset": opset,
        "source_checkpoint": {"name": checkpoint_path.name, "sha256": file_sha256(checkpoint_path)},
        "exporter": {
            "i2i": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
        "parity": {k: parity[k] for k in ("precision", "passed", "max_abs", "min_psnr_db")},
        "metrics": ckpt.get("metrics", {}),
    }


def _finalise(tmp_path: Path, card: dict[str, Any], out_path: Path) -> None:
    """Embed the card, run the checker and shape inference, then move into place atomically."""
    import onnx

    model = onnx.load(str(tmp_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(json_safe(card), sort_keys=True)
    model.producer_name, model.producer_version = "i2i", __version__
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(tmp_path))
    os.replace(tmp_path, out_path)


def run_parity(
    generator: torch.nn.Module, onnx_path: Path, size_multiple: int, image_dir: str | Path | None
) -> dict[str, Any]:
    from i2i.runtime.backends.onnxruntime import OrtSession

    cases = []
    with OrtSession(onnx_path, providers=["CPUExecutionProvider"]) as session:
        for name, batch in parity_inputs(size_multiple, image_dir):
            with torch.no_grad():
                reference = generator(torch.from_numpy(batch)).numpy()
            case = compare(reference, session.run(batch))
            case["input"] = name
            cases.append(case)
    return summarize(cases, "fp32")


def default_parity_dir(ckpt: dict[str, Any]) -> Path | None:
    """Real images for parity: the test split of the dataset the model was trained on, if present."""
    data = ckpt.get("train_config", {}).get("train", {}).get("data")
    if not data:
        return None
    source = "A" if ckpt.get("direction", "AtoB") == "AtoB" else "B"
    for candidate in (Path(data) / "test" / source, Path(data) / f"test{source}"):
        if candidate.is_dir():
            return candidate
    return None


def export_checkpoint(config: ExportConfig) -> ExportResult:
    checkpoint_path = Path(config.checkpoint)
    if config.opset < 17:
        raise I2IError(f"--opset {config.opset}: i2i exports opset 17 or newer")
    out_path = Path(config.output) if config.output else checkpoint_path.with_suffix(".onnx")
    if out_path.suffix != ".onnx":
        raise I2IError(f"output must end in .onnx: {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)

    if config.parity_data and not Path(config.parity_data).is_dir():
        raise I2IError(f"--parity-data: not a folder: {config.parity_data}")
    ckpt = load_checkpoint(checkpoint_path)
    generator = build_generator(ckpt)
    multiple = int(ckpt["io"]["size_multiple"])
    steps = tqdm(total=4, initial=1, desc="export", unit="step", disable=not config.progress, dynamic_ncols=True)

    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp.onnx", dir=out_path.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        steps.set_postfix_str(f"trace + convert (opset {config.opset})")
        _export_graph(generator, multiple, tmp_path, config.opset)
        steps.update(1)
        steps.set_postfix_str("parity vs torch")
        image_dir = Path(config.parity_data) if config.parity_data else default_parity_dir(ckpt)
        parity = run_parity(generator, tmp_path, multiple, image_dir)
        parity["image_dir"] = str(image_dir) if image_dir else None
        steps.update(1)
        report_path = out_path.with_suffix(".parity.json")
        report_path.write_text(json.dumps(json_safe(parity), indent=2))
        if not parity["passed"]:
            raise I2IError(
                f"parity check failed: max abs diff {parity['max_abs']:.3g}, min PSNR {parity['min_psnr_db']:.1f} dB "
                f"(bar: max abs ≤ {parity['bar']['max_abs']}, PSNR ≥ {parity['bar']['psnr_db']} dB); "
                f"no model written, see {report_path}"
            )
        steps.set_postfix_str("card + checker")
        card = make_card(ckpt, checkpoint_path, config.opset, parity)
        _finalise(tmp_path, card, out_path)
        steps.update(1)
    finally:
        steps.close()
        tmp_path.unlink(missing_ok=True)
    return ExportResult(onnx=out_path, parity_report=report_path, parity=parity, card=card)
