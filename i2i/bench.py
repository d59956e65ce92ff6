"""``i2i-bench``: latency and throughput of a model on each backend, torch baseline in the same run.

Each backend gets the same input; after warm-up, every call is timed individually
(``time.perf_counter`` around a synchronous call), and the table reports median and p95 latency,
frames per second at the median, speed relative to torch eager, and output parity (PSNR vs torch)
so that a fast-but-wrong row is visible.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from i2i import __version__
from i2i._cli import Command, debug_option
from i2i._files import write_text
from i2i.benchsuite import psnr_db
from i2i.errors import I2IError


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "i2i": __version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }
    return info


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


def find_checkpoint(model: Path, card: dict[str, Any]) -> Path | None:
    name = card.get("source_checkpoint", {}).get("name")
    candidate = model.parent / name if name else None
    return candidate if candidate is not None and candidate.is_file() else None


def run_bench(
    model: Path,
    checkpoint: Path | None,
    backends: list[str],
    size: tuple[int, int],
    batch: int,
    warmup: int,
    iters: int,
) -> dict[str, Any]:
    from i2i.runtime.backends import open_backend

    if warmup < 0 or iters < 1:
        raise I2IError("--iters must be >= 1 and --warmup >= 0")
    rows: list[dict[str, Any]] = []
    outputs: dict[str, np.ndarray] = {}
    batch_input: np.ndarray | None = None
    card: dict[str, Any] = {}
    for name in backends:
        path = model
        if name == "torch":
            if checkpoint is None:
                click.echo("torch baseline skipped: no checkpoint (pass --checkpoint model.pt)", err=True)
                continue
            path = checkpoint
        with open_backend(name, path) as backend:
            card = card or backend.card
            if batch_input is None:
                m = backend.size_multiple
                h, w = (m * max(1, math.ceil(s / m)) for s in size)
                rng = np.random.default_rng(0)
                batch_input = rng.uniform(-1, 1, (batch, 3, h, w)).astype(np.float32)
            samples, out = time_backend(backend, batch_input, warmup, iters)
            ms = np.asarray(samples) * 1e3
            outputs[name] = out
            rows.append(
                {
                    "backend": name,
                    "precision": backend.precision,
                    "device": backend.device,
                    "batch": batch,
                    "height": batch_input.shape[2],
                    "width": batch_input.shape[3],
                    "iters": iters,
                    "median_ms": float(np.median(ms)),
                    "p95_ms": float(np.percentile(ms, 95)),
                    "mean_ms": float(ms.mean()),
                    "min_ms": float(ms.min()),
                    "fps": float(batch * 1e3 / np.median(ms)),
                }
            )
    if not rows:
        raise I2IError("no backend ran")
    base = next((r for r in rows if r["backend"] == "torch"), None)
    for row in rows:
        row["speedup_vs_torch"] = base["median_ms"] / row["median_ms"] if base else None
        ref = outputs.get("torch")
        row["psnr_vs_torch_db"] = psnr_db(ref, outputs[row["backend"]]) if ref is not None else None
    return {
        "model": str(model),
        "arch": card.get("arch"),
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }


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
    lines.append(f"\n{m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}")
    return "\n".join(lines)


def _parse_size(value: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in value.lower().replace("x", " ").split()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: use N or HxW, e.g. 256 or 720x1280", param_hint="--size") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise click.BadParameter(f"{value!r}: use N or HxW, e.g. 256 or 720x1280", param_hint="--size")
    return parts[0], parts[1]


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="model.pt for the torch baseline [default: the checkpoint named in the model card, beside MODEL].",
)
@click.option("--backends", default="ort,torch", show_default=True, help="Comma-separated backends.")
@click.option(
    "--size", default="256", show_default=True, help="Input size, N or HxW (rounded up to the model's multiple)."
)
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1, 1024))
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
    backends: str,
    size: str,
    batch: int,
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
      i2i-bench model.onnx                       # ORT CPU vs torch, 256x256, batch 1
      i2i-bench model.onnx --size 720x1280 --iters 10 --json bench.json
    """
    if model.suffix == ".toml":
        from i2i.benchsuite import format_markdown, load_suite, run_suite, write_results

        result = run_suite(load_suite(model), work_dir, progress=progress)
        click.echo(format_markdown(result))
        for path in write_results(result, results_dir):
            click.echo(f"wrote {path}")
        return
    from i2i.runtime.backends.base import BACKEND_MODULES
    from i2i.runtime.backends.onnxruntime import OrtSession

    names = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = [n for n in names if n not in BACKEND_MODULES]
    if unknown or not names:
        valid = ", ".join(BACKEND_MODULES)
        raise click.BadParameter(
            f"{backends!r}: unknown backend(s) {', '.join(unknown)}; valid: {valid}", param_hint="--backends"
        )
    if checkpoint is None and "torch" in names:
        with OrtSession(model) as session:
            checkpoint = find_checkpoint(model, session.card or {})
    result = run_bench(model, checkpoint, names, _parse_size(size), batch, warmup, iters)
    table = format_table(result)
    click.echo(table)
    if json_path:
        write_text(json_path, json.dumps(result, indent=2, default=str), "JSON")
        click.echo(f"json: {json_path}")
    if md_path:
        write_text(md_path, table + "\n", "Markdown")
        click.echo(f"markdown: {md_path}")
