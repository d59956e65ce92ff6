"""``i2i-bench``: latency and throughput of a model on each backend, torch baseline in the same run.

Each backend gets the same input; after warm-up, every call is timed individually
(``time.perf_counter`` around a synchronous call), and the table reports median and p95 latency,
frames per second at the median, speed relative to torch eager, and output parity (PSNR vs torch)
so that a fast-but-wrong row is visible.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from i2i._cli import Command, debug_option
from i2i._files import write_text
from i2i.common import parse_hw, psnr_db, round_up
from i2i.errors import I2IError
from i2i.machine import machine_info
from i2i.runtime.card import ModelCard

# Without --backends: ONNX Runtime and the torch baseline, each where it is installed.
DEFAULT_BACKENDS = ("ort", "torch")


def time_backend(backend: Any, batch: np.ndarray, warmup: int, iters: int) -> tuple[list[float], np.ndarray]:
    out = None
    for _ in range(warmup):
        out = backend(batch)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        out = backend(batch)
        samples.append(time.perf_counter() - t0)
    assert out is not None
    return samples, np.asarray(out)


def find_checkpoint(model: Path, card: ModelCard | None) -> Path | None:
    """The checkpoint an exported model came from, when it lies beside it (the torch baseline runs it);
    None for a model without a card (nothing records where it came from)."""
    name = (card.source or {}).get("name") if card is not None else None
    candidate = model.parent / name if name else None
    return candidate if candidate is not None and candidate.is_file() else None


def make_input(size: tuple[int, int], batch: int, multiple: int) -> np.ndarray:
    """The bench input: a float NCHW RGB batch in [-1, 1], rounded up to the model's size multiple."""
    h, w = (round_up(s, multiple) for s in size)
    return np.random.default_rng(0).uniform(-1, 1, (batch, 3, h, w)).astype(np.float32)


def to_model(tensor: np.ndarray, io: Any) -> np.ndarray:
    """The bench input in the layout the model takes: uint8 NHWC BGR frames for frame I/O."""
    if io.kind == "frame":
        frames = np.rint((tensor + 1) * 127.5).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(frames.transpose(0, 2, 3, 1)[..., ::-1])
    return tensor.astype(io.dtype)


def from_model(output: np.ndarray, io: Any) -> np.ndarray:
    """A model output as float NCHW RGB in [-1, 1], so every backend's output compares alike."""
    if io.kind == "frame":
        return output[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    return output.astype(np.float32)


def _bench_one(backend: Any, tensor: np.ndarray, warmup: int, iters: int) -> tuple[dict[str, Any], np.ndarray]:
    samples, out = time_backend(backend, to_model(tensor, backend.io), warmup, iters)
    ms = np.asarray(samples) * 1e3
    batch = tensor.shape[0]
    row = {
        "backend": backend.name,
        "precision": backend.precision,
        "device": backend.device,
        "describe": backend.describe(),
        "batch": batch,
        "height": tensor.shape[2],
        "width": tensor.shape[3],
        "iters": iters,
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "fps": float(batch * 1e3 / np.median(ms)),
    }
    return row, from_model(out, backend.io)


def _relate_to_baseline(rows: list[dict[str, Any]], outputs: dict[str, np.ndarray]) -> None:
    from i2i.runtime.backends.base import BASELINE

    base = next((r for r in rows if r["backend"] == BASELINE), None)
    ref = outputs.get(BASELINE)
    for row in rows:
        row["speedup_vs_torch"] = base["median_ms"] / row["median_ms"] if base else None
        out = outputs[row["backend"]]
        row["psnr_vs_torch_db"] = psnr_db(ref, out, 2.0) if ref is not None and ref.shape == out.shape else None


def run_bench(
    model: Path,
    checkpoint: Path | None,
    backends: list[str],
    size: tuple[int, int],
    batch: int,
    warmup: int,
    iters: int,
    device: str = "auto",
) -> dict[str, Any]:
    """Time MODEL on each backend (a backend that opens checkpoints gets ``checkpoint``)."""
    from i2i.runtime.backends import get_backend, open_backend

    if warmup < 0 or iters < 1:
        raise I2IError("--iters must be >= 1 and --warmup >= 0")
    rows: list[dict[str, Any]] = []
    outputs: dict[str, np.ndarray] = {}
    tensor: np.ndarray | None = None
    card: ModelCard | None = None
    skipped: dict[str, str] = {}
    for name in backends:
        path = model if model.suffix.lower() in get_backend(name).suffixes else checkpoint
        if path is None:
            skipped[name] = "it runs checkpoints and there is none (pass --checkpoint model.pt)"
            continue
        with open_backend(name, path, device=device) as backend:
            card = card if card is not None else backend.card
            tensor = make_input(size, batch, backend.size_multiple) if tensor is None else tensor
            row, outputs[name] = _bench_one(backend, tensor, warmup, iters)
            rows.append(row)
    if not rows:
        raise I2IError(f"no backend ran: {format_skipped(skipped)}" if skipped else "no backend ran")
    _relate_to_baseline(rows, outputs)
    arch = card.arch if card is not None else None
    return {
        "model": str(model),
        "arch": arch,
        "machine": machine_info(gpu=any(r["device"].startswith("cuda") for r in rows)),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
        "skipped": skipped,
    }


def installed_backends(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """``names`` split into those whose library is installed here and {name: why not} for the rest."""
    from i2i.runtime.backends.base import backend_status

    ready: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        ok, why = backend_status(name)
        if ok:
            ready.append(name)
        else:
            skipped[name] = why
    return ready, skipped


def format_skipped(skipped: dict[str, str]) -> str:
    """One line: every skipped backend and why."""
    return "; ".join(f"{name} ({why})" for name, why in skipped.items())


def format_table(result: dict[str, Any]) -> str:
    head = "| backend | precision | batch | size | median ms | p95 ms | FPS | vs torch | PSNR vs torch |"
    lines = [head, "|" + "---|" * 9]
    for r in result["rows"]:
        speed = f"{r['speedup_vs_torch']:.2f}x" if r["speedup_vs_torch"] else "-"
        psnr = r["psnr_vs_torch_db"]
        psnr_s = "-" if psnr is None else ("identical" if math.isinf(psnr) else f"{psnr:.1f} dB")
        lines.append(
            f"| {r['backend']} | {r['precision']} | {r['batch']} | {r['height']}x{r['width']} | "
            f"{r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['fps']:.1f} | {speed} | {psnr_s} |"
        )
    m = result["machine"]
    gpu = f"{m['gpu']} (driver {m.get('gpu_driver') or '?'}, CUDA {m.get('cuda') or '?'}); " if m.get("gpu") else ""
    lines.append(f"\n{gpu}{m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}")
    return "\n".join(lines)


def _chosen_backends(backends: str | None) -> tuple[list[str], dict[str, str]]:
    """--backends as names to run and {name: why} skipped: named backends must run (opening one that
    is not installed says why); without the option, the defaults that are installed here."""
    from i2i.runtime.backends.base import backend_names

    names = list(DEFAULT_BACKENDS) if backends is None else [b.strip() for b in backends.split(",") if b.strip()]
    unknown = [n for n in names if n not in backend_names()]
    if unknown or not names:
        valid = ", ".join(backend_names())
        raise click.BadParameter(
            f"{backends!r}: unknown backend(s) {', '.join(unknown)}; valid: {valid}", param_hint="--backends"
        )
    if backends is not None:
        return names, {}
    names, absent = installed_backends(names)
    if not names:
        raise I2IError(f"none of the default backends is installed: {format_skipped(absent)}")
    return names, absent


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="model.pt for the torch baseline [default: the checkpoint named in the model card, beside MODEL].",
)
@click.option(
    "--backends",
    default=None,
    help=f"Comma-separated backends [default: {','.join(DEFAULT_BACKENDS)}, those installed here; the others "
    "are skipped, saying why].",
)
@click.option(
    "--size", default="256", show_default=True, help="Input size, N or HxW (rounded up to the model's multiple)."
)
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1, 1024))
@click.option(
    "--device", default="auto", show_default=True, help="cpu, cuda or cuda:N (auto: each backend's best device here)."
)
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0))
@click.option("--iters", default=20, show_default=True, type=click.IntRange(1))
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write results as JSON.")
@click.option(
    "--markdown", "md_path", type=click.Path(path_type=Path), default=None, help="Write the table as Markdown."
)
@click.option(
    "--results",
    "results_dir",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/results"),
    show_default=True,
    help="Suite mode: where results go (a subfolder per machine).",
)
@click.option(
    "--work",
    "work_dir",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/.work"),
    show_default=True,
    help="Suite mode: where prepared models are kept between runs.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@debug_option
def main(
    model: Path,
    checkpoint: Path | None,
    backends: str | None,
    size: str,
    batch: int,
    device: str,
    warmup: int,
    iters: int,
    json_path: Path | None,
    md_path: Path | None,
    results_dir: Path,
    work_dir: Path,
    progress: bool,
) -> None:
    """Measure MODEL (an i2i ONNX export) on each backend, with torch eager as the baseline;
    or run a suite (a .toml file under benchmarks/) and write JSON + Markdown + PNG results.

    \b
    Examples:
      i2i-bench benchmarks/cpu.toml              # the CPU suite -> benchmarks/results/<machine>/
      i2i-bench model.onnx                       # ORT CPU vs torch (where installed), 256x256, batch 1
      i2i-bench model.onnx --size 720x1280 --iters 10 --json bench.json
    """
    if model.suffix == ".toml":
        from i2i.benchsuite import format_markdown, load_suite, run_suite, write_results

        result = run_suite(load_suite(model), work_dir, progress=progress)
        click.echo(format_markdown(result))
        for path in write_results(result, results_dir):
            click.echo(f"wrote {path}")
        return
    from i2i.runtime.backends.base import BASELINE, read_model_card

    names, absent = _chosen_backends(backends)
    if checkpoint is None and BASELINE in names and model.is_file():
        checkpoint = find_checkpoint(model, read_model_card(model))
    try:
        hw = parse_hw(size, "--size")
    except I2IError as exc:
        raise click.BadParameter(exc.message, param_hint="--size") from None
    result = run_bench(model, checkpoint, names, hw, batch, warmup, iters, device=device)
    result["skipped"] = {**absent, **result["skipped"]}
    if result["skipped"]:
        click.echo(f"skipped: {format_skipped(result['skipped'])}", err=True)
    table = format_table(result)
    click.echo(table)
    if json_path:
        write_text(json_path, json.dumps(result, indent=2, default=str), "JSON")
        click.echo(f"json: {json_path}")
    if md_path:
        write_text(md_path, table + "\n", "Markdown")
        click.echo(f"markdown: {md_path}")
