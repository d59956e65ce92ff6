"""``make gpu-check``: what i2i's generators cost on this GPU, in one short run (< 8 min on an H200).

First it checks the TensorRT backend's own CUDA path (pinned staging, non-blocking stream,
per-shape buffers, uint8 frame I/O, CUDA-graph capture and replay, per-call device selection, two
threads) with a torch kernel on the backend's stream in place of the engine (no TensorRT needed:
``benchmarks/trt_cuda_check.py``), every frame compared bit for bit; a failure makes the exit
status 1.

It builds its models itself from the repository — CycleGAN's ResNet-9 generator and the real-time
student (the ``fast`` architecture), both with seeded random weights (PyTorch's default init): speed
does not depend on the weights, and the GPU box gets only the working tree, no trained checkpoint.
Cells: 256x256, 720p and 1080p at batch 1; fp32 and fp16 (autocast); torch eager (NCHW, with
``cudnn.benchmark``), channels_last, CUDA graphs and ``torch.compile``; then whatever of ONNX Runtime
(CUDA provider) and TensorRT is installed. Everything missing is skipped with the reason. "fp32" is
true fp32 (TF32 off) and says so. Timings are model-only: one synchronised call on device tensors,
median over ``--iters`` after warm-up. Parity is PSNR against fp32 eager on the same input.

Results go where ``i2i-bench`` writes them, ``benchmarks/results/<gpu-name>/gpu-check.{json,md}``.
Without a GPU it refuses to run unless ``--dry-run`` (tiny sizes on the CPU, written to
``benchmarks/.work/``, labelled CPU): a GPU figure is never invented.

    python benchmarks/gpu_check.py                 # on the GPU box
    python benchmarks/gpu_check.py --dry-run       # anywhere: checks the script itself
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet9": ("resnet", {"ngf": 64, "n_blocks": 9, "norm": "instance"}),
    "student": ("fast", {"ngf": 16, "n_blocks": 6, "norm": "batch"}),
}
# A dry run checks the script, not the models: the same architectures, narrowed, at one toy size.
DRY_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet9": ("resnet", {"ngf": 8, "n_blocks": 2, "norm": "instance"}),
    "student": ("fast", {"ngf": 8, "n_blocks": 1, "norm": "batch"}),
}
GPU_SIZES = [(256, 256), (720, 1280), (1080, 1920)]
DRY_SIZES = [(32, 48)]
VARIANTS = ("eager", "channels_last", "cuda_graph", "compile")


@dataclass
class Plan:
    device: str
    sizes: list[tuple[int, int]]
    precisions: tuple[str, ...]
    iters: int
    warmup: int
    budget_s: float
    compile_mode: str | None  # None: max-autotune at 256², reduce-overhead above (to fit the slot)
    out: Path
    dry_run: bool
    started: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)


def psnr(reference: np.ndarray, other: np.ndarray) -> float:
    from i2i.common import psnr_db

    return psnr_db(reference, other, 2.0)


def model_spec(name: str, dry: bool) -> tuple[str, dict[str, Any]]:
    arch, kwargs = (DRY_MODELS if dry else MODELS)[name]
    return arch, {"input_nc": 3, "output_nc": 3, **kwargs}


def build_model(torch: Any, name: str, device: str, dry: bool) -> Any:
    from i2i.train.nets import build_net

    arch, kwargs = model_spec(name, dry)
    torch.manual_seed(0)
    net = build_net(arch, **kwargs)
    return net.to(device).eval()


def time_call(torch: Any, fn: Callable[[], Any], plan: Plan) -> tuple[list[float], Any]:
    cuda = plan.device.startswith("cuda")
    out = None
    for _ in range(plan.warmup):
        out = fn()
    if cuda:
        torch.cuda.synchronize()
    samples = []
    for _ in range(plan.iters):
        t0 = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    return samples, out


def torch_runner(
    torch: Any, net: Any, variant: str, precision: str, x: Any, plan: Plan
) -> tuple[Callable[[], Any], str]:
    """A zero-argument call running ``net`` on ``x`` the way ``variant`` says; and what it is."""
    from i2i.runtime.backends.torch import GraphRunner, autocast_for

    device, hw = plan.device, tuple(x.shape[2:])
    memory = torch.contiguous_format if variant == "eager" else torch.channels_last
    net = net.to(memory_format=memory)
    x = x.contiguous(memory_format=memory)
    if variant == "cuda_graph":
        graph = GraphRunner(torch, net, device, precision)
        return (lambda: graph(x)), "channels_last + CUDA graph"
    if variant == "compile":
        mode = plan.compile_mode or ("max-autotune" if hw == (256, 256) else "reduce-overhead")
        compiled = torch.compile(net, mode=None if mode == "default" else mode, dynamic=False)

        def run_compiled() -> Any:
            with torch.inference_mode(), autocast_for(torch, device, precision):
                return compiled(x)

        return run_compiled, f"channels_last + torch.compile({mode})"

    def run() -> Any:
        with torch.inference_mode(), autocast_for(torch, device, precision):
            return net(x)

    return run, "NCHW" if variant == "eager" else "channels_last"


def skip_reason(variant: str, plan: Plan) -> str | None:
    if variant == "cuda_graph" and not plan.device.startswith("cuda"):
        return "CUDA graphs need a CUDA device"
    if variant == "compile" and plan.dry_run:
        return "torch.compile is not run in a dry run (minutes of compilation)"
    # A compile cannot be interrupted: start one only with room left for it (max-autotune takes longest).
    needed = {"compile": 150.0 if plan.compile_mode in (None, "max-autotune") else 60.0}.get(variant, 0.0)
    if plan.left() <= needed:
        return f"time budget spent ({plan.budget_s:.0f} s; --budget raises it)"
    return None


def row(model: str, hw: tuple[int, int], precision: str, engine: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "height": hw[0],
        "width": hw[1],
        "batch": 1,
        "precision": precision,
        "engine": engine,
        **extra,
    }


def measured(samples: list[float], out: np.ndarray, ref: np.ndarray | None, what: str) -> dict[str, Any]:
    ms = np.asarray(samples) * 1e3
    return {
        "what": what,
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "fps": float(1e3 / np.median(ms)),
        "psnr_vs_fp32_db": None if ref is None else psnr(ref, out),
    }


def torch_cells(torch: Any, plan: Plan, variants: tuple[str, ...]) -> list[dict[str, Any]]:
    """The torch cells of ``variants``; fp32 eager output of each model and size is the parity reference."""
    rows: list[dict[str, Any]] = []
    for variant in variants:
        for name in MODELS:
            net = build_model(torch, name, plan.device, plan.dry_run)
            for hw in plan.sizes:
                x = torch.from_numpy(_input(hw)).to(plan.device)
                for precision in plan.precisions:
                    rows.append(_torch_cell(torch, net, name, hw, precision, variant, x, plan))
                    if plan.device.startswith("cuda"):
                        torch.cuda.empty_cache()
            del net
    return rows


_REFERENCES: dict[tuple[str, tuple[int, int]], np.ndarray] = {}


def _input(hw: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (1, 3, *hw)).astype(np.float32)


def _torch_cell(
    torch: Any, net: Any, name: str, hw: tuple[int, int], precision: str, variant: str, x: Any, plan: Plan
) -> dict[str, Any]:
    engine = f"torch {variant}"
    why = skip_reason(variant, plan)
    if why:
        return row(name, hw, precision, engine, skipped=why)
    try:
        fn, what = torch_runner(torch, net, variant, precision, x, plan)
        samples, out = time_call(torch, fn, plan)
    except Exception as exc:  # an op torch.compile cannot handle, out of memory: recorded, not fatal
        return row(name, hw, precision, engine, skipped=f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    result = out.float().cpu().numpy()
    key = (name, hw)
    if variant == "eager" and precision == "fp32":
        _REFERENCES[key] = result
    return row(name, hw, precision, engine, **measured(samples, result, _REFERENCES.get(key), what))


def ort_cells(torch: Any, plan: Plan) -> list[dict[str, Any]]:
    """ONNX Runtime on this device (its CUDA provider on a GPU) for each model exported by i2i in
    fp32 and fp16; timed through the backend, host copies included, as ``i2i-run`` pays them."""
    why = _ort_unavailable(plan)
    if why:
        return [row("*", (0, 0), "*", "ort", skipped=why)]
    import tempfile

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="i2i-gpu-check-") as work:
        for name in MODELS:
            for precision in ("fp32", "fp16") if plan.device.startswith("cuda") else ("fp32",):
                rows += _ort_model(torch, name, precision, Path(work), plan)
    return rows


def _ort_unavailable(plan: Plan) -> str | None:
    try:
        import onnxruntime
    except ImportError as exc:
        return f"onnxruntime does not import: {exc}"
    import importlib.util

    if importlib.util.find_spec("onnx") is None:  # the exporter needs it; asking must not import it
        from i2i.errors import install_hint

        return f"the exporter needs onnx: {install_hint('export')}"
    from i2i.runtime.backends.onnxruntime import gpu_fix_command

    if plan.device.startswith("cuda") and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider (`{gpu_fix_command()}`)"
    return None


def _ort_model(torch: Any, name: str, precision: str, work: Path, plan: Plan) -> list[dict[str, Any]]:
    from i2i import export
    from i2i.runtime.backends import open_backend
    from i2i.train.checkpoint import make_checkpoint

    arch, kwargs = model_spec(name, plan.dry_run)
    net = build_model(torch, name, "cpu", plan.dry_run)
    checkpoint = work / f"{name}.pt"
    torch.save(make_checkpoint(net, arch=arch, arch_kwargs=kwargs, method="none", test_norm="running"), checkpoint)
    engine = f"ort {plan.device.partition(':')[0]}"
    if plan.left() <= 60:
        return [row(name, (0, 0), precision, engine, skipped="time budget spent (an export takes about a minute)")]
    try:
        onnx_path = export(checkpoint, work / f"{name}-{precision}.onnx", precision=precision, progress=False).onnx
    except Exception as exc:  # below the parity bar, an exporter problem: recorded with the reason
        return [row(name, (0, 0), precision, engine, skipped=f"export failed: {' '.join(str(exc).split())[:200]}")]
    from i2i.errors import I2IError

    rows = []
    try:
        backend = open_backend("ort", onnx_path, device=plan.device)
    except I2IError as exc:  # e.g. compute ORT placed on the CPU: recorded with the reason, the check goes on
        return [row(name, (0, 0), precision, engine, skipped=f"refused: {' '.join(exc.message.split())[:300]}")]
    with backend:
        for hw in plan.sizes:
            if plan.left() <= 0:
                rows.append(row(name, hw, precision, engine, skipped="time budget spent"))
                continue
            batch = _input(hw).astype(backend.io.dtype)

            def call(b: np.ndarray = batch) -> np.ndarray:
                return backend(b)

            try:
                samples, out = time_call(torch, call, plan)
            except I2IError as exc:  # onnxruntime before 1.24 checks placement on the first run
                rows.append(row(name, hw, precision, engine, skipped=f"refused: {' '.join(exc.message.split())[:300]}"))
                break
            ref = _REFERENCES.get((name, hw))
            result = out.astype(np.float32)
            rows.append(row(name, hw, precision, engine, **measured(samples, result, ref, backend.describe())))
    return rows


def tensorrt_cells() -> list[dict[str, Any]]:
    from i2i.runtime.backends.tensorrt import tensorrt_status

    ok, detail = tensorrt_status()
    why = "not timed by gpu-check: use `make bench-gpu`" if ok else detail
    return [row("*", (0, 0), "*", "tensorrt", skipped=why)]


def trt_cuda_path_cells(torch: Any, plan: Plan) -> list[dict[str, Any]]:
    """The TensorRT backend's own CUDA path (benchmarks/trt_cuda_check.py) with a device kernel in
    place of the engine; on the CPU (dry run) through the cuda-python double of tests/."""
    import tempfile

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import trt_cuda_check as check
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    calls = 6 if plan.dry_run else 40
    with tempfile.TemporaryDirectory(prefix="i2i-trt-cuda-") as work:
        if plan.dry_run:
            with check.cuda_double() as double:
                return check.run_check(Path(work), check.HostKernel(double), calls, dry=True)
        import importlib.util

        try:
            found = importlib.util.find_spec("cuda.bindings") is not None
        except ImportError:  # no ``cuda`` package at all
            found = False
        if not found:
            why = "cuda.bindings is not installed (the trt extra's cuda-python)"
            return [row("trt-cuda-path", (0, 0), "*", "trt backend", skipped=why)]
        index = int(plan.device.partition(":")[2] or 0)
        return check.run_check(Path(work), check.TorchKernel(torch), calls, dry=False, device=index)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    head = f"# gpu-check on {m.get('gpu') or m['cpu']}"
    lines = [
        head,
        "",
        result["note"],
        "",
        "| model | size | precision | engine | median ms | p95 ms | FPS | PSNR vs fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        size = f"{r['height']}x{r['width']}" if r["height"] else "-"
        if "failed" in r:
            lines.append(f"| {r['model']} | {size} | {r['precision']} | {r['engine']} | FAILED: {r['failed']} ||||")
            continue
        if r.get("bit_exact"):
            ms = f"{r['median_ms']:.2f}" if "median_ms" in r else "-"
            checked = f"bit-exact, {r['frames_checked']} frames"
            engine = f"{r['engine']} ({r['what']})"
            lines.append(f"| {r['model']} | {size} | {r['precision']} | {engine} | {ms} | - | - | {checked} |")
            continue
        if "skipped" in r:
            lines.append(f"| {r['model']} | {size} | {r['precision']} | {r['engine']} | skipped: {r['skipped']} ||||")
            continue
        p = r["psnr_vs_fp32_db"]
        ps = "-" if p is None else ("identical" if math.isinf(p) else f"{p:.1f} dB")
        lines.append(
            f"| {r['model']} | {size} | {r['precision']} | {r['engine']} ({r['what']}) | {r['median_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['fps']:.1f} | {ps} |"
        )
    stack = ", ".join(f"{k} {m.get(k)}" for k in ("gpu_driver", "cuda", "cudnn", "torch", "onnxruntime", "tensorrt"))
    lines += ["", f"{stack}; {m['cpu']}, {m['cores']} cores; {result['elapsed_s']:.0f} s"]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> Plan:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, fp32/bf16: checks the script")
    p.add_argument("--device", default=None, help="cuda or cuda:N [default: cuda; cpu with --dry-run]")
    p.add_argument("--iters", type=int, default=None, help="timed calls per cell [20; 1 in a dry run]")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first [5; 0 in a dry run]")
    p.add_argument(
        "--budget", type=float, default=300.0, help="seconds before remaining cells are skipped [300: ends < 8 min]"
    )
    p.add_argument("--compile-mode", default=None, help="torch.compile mode for every size [max-autotune at 256²]")
    p.add_argument("--out", type=Path, default=None, help="results root [benchmarks/results; .work in a dry run]")
    a = p.parse_args(argv)
    dry = a.dry_run
    device = a.device or ("cpu" if dry else "cuda")
    if device.startswith("cuda") == dry:
        p.error(
            "--dry-run runs on the CPU only; a CUDA run is the real check" if dry else "--device cpu needs --dry-run"
        )
    out = a.out or ROOT / "benchmarks" / (".work/gpu-check-dry-run" if dry else "results")
    return Plan(
        device=device,
        sizes=DRY_SIZES if dry else GPU_SIZES,
        precisions=("fp32", "bf16") if dry else ("fp32", "fp16"),
        iters=a.iters or (1 if dry else 20),
        warmup=a.warmup if a.warmup is not None else (0 if dry else 5),
        budget_s=a.budget,
        compile_mode=a.compile_mode,
        out=out,
        dry_run=dry,
    )


def bootstrap() -> None:
    """Import i2i from this working tree when it is not installed (a GPU box gets only the tree):
    the installed layout maps train/, export/, runtime/ to i2i.train, i2i.export, i2i.runtime."""
    import importlib.util

    if importlib.util.find_spec("i2i") is not None and importlib.util.find_spec("i2i.runtime") is not None:
        return
    sys.path.insert(0, str(ROOT))
    import i2i

    for sub in ("train", "export", "runtime"):
        folder = ROOT / sub
        spec = importlib.util.spec_from_file_location(
            f"i2i.{sub}", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"i2i.{sub}"] = module
        spec.loader.exec_module(module)
        setattr(i2i, sub, module)


def main(argv: list[str] | None = None) -> int:
    plan = parse(argv)
    bootstrap()
    import torch

    from i2i.machine import machine_info, machine_slug
    from i2i.runtime.backends.torch import configure_torch

    cuda = plan.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("gpu-check: torch sees no CUDA device here; run it on the GPU machine (or --dry-run)", file=sys.stderr)
        return 2
    configure_torch(torch, cuda, tf32=False, cudnn_benchmark=True)
    # The TensorRT backend's CUDA path first (seconds, and the code most likely to be wrong), then
    # cheap cells; torch.compile goes last, where the time budget may end it.
    rows = trt_cuda_path_cells(torch, plan)
    rows += torch_cells(torch, plan, VARIANTS[:3]) + ort_cells(torch, plan) + tensorrt_cells()
    rows += torch_cells(torch, plan, VARIANTS[3:])
    machine = machine_info(gpu=cuda)
    result = {
        "suite": "gpu-check",
        "note": (
            "Random-init generators built from the repository (seeded; speed does not depend on weights). "
            "fp32 is true fp32 (TF32 off); fp16/bf16 run under torch.autocast. Model-only: device tensors, "
            "synchronised calls."
            + (
                " DRY RUN on the CPU: narrowed nets at a toy size; CPU figures that check the script, not GPU results."
                if plan.dry_run
                else ""
            )
        ),
        "dry_run": plan.dry_run,
        "device": plan.device,
        "tf32": False,
        "machine": machine,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": time.perf_counter() - plan.started,
        "rows": rows,
    }
    folder = plan.out / machine_slug(machine)
    folder.mkdir(parents=True, exist_ok=True)
    from i2i._files import write_text
    from i2i.export.parity import json_safe

    json_path = write_text(folder / "gpu-check.json", json.dumps(json_safe(result), indent=2), "results")
    md_path = write_text(folder / "gpu-check.md", markdown(result), "results")
    print(markdown(result))
    print(f"wrote {json_path}\nwrote {md_path}")
    failed = [r for r in rows if "failed" in r]
    if failed:
        print(f"gpu-check: {len(failed)} check(s) of the TensorRT backend's CUDA path FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
