"""Temporal stability, measured: per-frame vs stabilised warping error on real clips, and the
stabilising stage's cost (issue: video that does not flicker).

For each model (``--model NAME=PATH``, run through ``i2i.load``) and each clip, the per-frame output,
the ``FlowStabilizer`` output at ``--strength`` and, as a control, a plain exponential moving average
of the outputs at the same strength without motion compensation (what "just blur over time" buys)
are judged by ``i2i.analysis.temporal`` (DIS MEDIUM flow of the input, Ruder's occlusion checks):
E_warp, tPSNR, the input's own E_warp, and fidelity (PSNR/SSIM) to the per-frame output.
``--compare A:B`` adds the E_warp of model A's outputs relative to model B's per-frame output (a
temporal-loss model against its baseline, alone and with the stage); ``--heldout DATA`` adds each
model's mean PSNR on DATA/test/A → DATA/test/B. The stage's cost is timed single-threaded
(``cv2.setNumThreads(1)``) on real frames at 256x256 and 720x1280.

    .venv/bin/python benchmarks/temporal.py --model pix2pix=RUN/model.onnx --model style=STYLE/model.onnx

writes benchmarks/results/<machine>/temporal.json and temporal.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from i2i.analysis import temporal
from i2i.common import list_images, psnr_db
from i2i.machine import machine_info, machine_slug
from i2i.runtime.stabilize import FlowStabilizer

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
CLIPS = ("walk.mkv", "book.mkv", "bottle-detection.mp4")
GOAL_REDUCTION = 0.40  # E_warp at least 40 % below per-frame ...
GOAL_FIDELITY_DB = 30.0  # ... at at least 30 dB PSNR to the per-frame output
BUDGET_MS = {"256x256": 3.0, "720x1280": 12.0}


def moving_average(outputs: Sequence[np.ndarray], strength: float) -> list[np.ndarray]:
    """out_t = (1 − s)·translated_t + s·out_{t−1}, per pixel, no motion compensation (the control)."""
    result: list[np.ndarray] = []
    for frame in outputs:
        result.append(frame if not result else cv2.addWeighted(frame, 1 - strength, result[-1], strength, 0))
    return result


def measure_clip(translator: Any, clip: Path, strengths: Sequence[float], max_frames: int) -> dict[str, Any]:
    """Per-frame output, then for each strength the stabilised output and the no-flow average."""
    frames = list(temporal.read_frames(clip))[: max_frames or None]
    started = time.perf_counter()
    outputs = [translator(frame) for frame in frames]
    infer_ms = (time.perf_counter() - started) / len(frames) * 1e3
    series: dict[str, list[np.ndarray]] = {"per-frame": outputs}
    cuts = {}
    for strength in strengths:
        stabilizer = FlowStabilizer(strength)
        series[f"stabilised {strength}"] = [stabilizer(a, b) for a, b in zip(frames, outputs)]
        series[f"average {strength}"] = moving_average(outputs, strength)
        cuts[str(strength)] = stabilizer.cuts
    meter = temporal.WarpingErrorMeter(reference="per-frame")
    for t, frame in enumerate(frames):
        meter.add(frame, {name: images[t] for name, images in series.items()})
    report = meter.report()
    report["infer_ms_per_frame"] = infer_ms
    report["scene_cuts"] = cuts
    report["size"] = f"{frames[0].shape[0]}x{frames[0].shape[1]}"
    return report


def compare(report: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """E_warp of a variant's series relative to the baseline's per-frame output (same clip and flow)."""
    base = baseline["series"]["per-frame"]["e_warp"]
    return {
        name: {"e_warp": s["e_warp"], "reduction": 1 - s["e_warp"] / base}
        for name, s in report["series"].items()
        if name == "per-frame" or name.startswith("stabilised")
    }


def heldout_psnr(translator: Any, data: Path) -> float:
    """Mean 8-bit PSNR of translations of DATA/test/A against DATA/test/B (by file name)."""
    sources, targets = list_images(data / "test" / "A"), {p.stem: p for p in list_images(data / "test" / "B")}
    values = []
    for path in sources:
        source, target = (next(temporal.read_frames(p)) for p in (path, targets[path.stem]))
        values.append(min(psnr_db(target, translator(source)), 100.0))
    return float(np.mean(values))


def stage_cost(clip: Path, frames: int = 120) -> dict[str, Any]:
    """FlowStabilizer's time per frame, single-threaded, at 256x256 and 720x1280 (real frames, resized;
    the translated frame is the input blurred, so the flow and the blend see real texture)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        source = list(temporal.read_frames(clip))[:frames]
        result = {}
        for h, w in ((256, 256), (720, 1280)):
            inputs = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in source]
            translated = [cv2.GaussianBlur(f, (5, 5), 0) for f in inputs]
            stabilizer = FlowStabilizer()
            wall, cpu = [], []
            for a, b in zip(inputs, translated):
                started, started_cpu = time.perf_counter(), time.thread_time()
                stabilizer(a, b)
                wall.append(time.perf_counter() - started)
                cpu.append(time.thread_time() - started_cpu)
            ms, cpu_ms = np.asarray(wall[10:]) * 1e3, np.asarray(cpu[10:]) * 1e3  # after warm-up
            dis = temporal.dis_flow(cv2.DISOpticalFlow_PRESET_ULTRAFAST)
            gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in inputs[:40]]
            started = time.thread_time()
            for first, second in zip(gray, gray[1:]):
                dis(first, second)
            dis_ms = (time.thread_time() - started) / (len(gray) - 1) * 1e3
            key = f"{h}x{w}"
            result[key] = {
                "mean_ms": float(ms.mean()),
                "p50_ms": float(np.median(ms)),
                "p95_ms": float(np.percentile(ms, 95)),
                "min_ms": float(ms.min()),
                "cpu_mean_ms": float(cpu_ms.mean()),
                "cpu_p95_ms": float(np.percentile(cpu_ms, 95)),
                "budget_ms": BUDGET_MS[key],
                "dis_ultrafast_full_resolution_cpu_ms": dis_ms,
                "frames": len(ms),
            }
        return result
    finally:
        cv2.setNumThreads(threads)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import i2i

    clips = [Path(c) for c in args.clip] or [MEDIA / c for c in CLIPS]
    models = dict(spec.split("=", 1) for spec in args.model)
    strengths = sorted({args.strength, *(float(v) for v in args.sweep.split(",") if v)})
    load_before = os.getloadavg()
    results: dict[str, Any] = {"models": {}, "stage_cost": {}, "comparisons": {}}
    for name, path in models.items():
        with i2i.load(path, backend="ort") as translator:
            entry: dict[str, Any] = {"path": str(path), "arch": translator.card.arch, "clips": {}}
            for clip in clips:
                report = measure_clip(translator, clip, strengths, args.max_frames)
                entry["clips"][clip.name] = report
                print(f"{name} {clip.name}:\n  " + "\n  ".join(temporal.summary_lines(report)[1:]), flush=True)
            if args.heldout:
                entry["heldout_psnr_db"] = heldout_psnr(translator, Path(args.heldout))
        results["models"][name] = entry
    for spec in args.compare:
        variant, baseline = spec.split(":", 1)
        results["comparisons"][spec] = {
            clip: compare(results["models"][variant]["clips"][clip], results["models"][baseline]["clips"][clip])
            for clip in results["models"][variant]["clips"]
        }
    results["stage_cost"] = stage_cost(clips[0])
    results["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return results


def markdown(results: dict[str, Any], machine: dict[str, Any], strength: float, note: str) -> str:
    stab, avg = f"stabilised {strength}", f"average {strength}"
    lines = [
        "# Temporal stability: per-frame vs stabilised",
        "",
        "Warping error (Lai et al. 2018) on the real clips of `shared/media` (CC BY 4.0, Intel): flow by OpenCV DIS "
        "MEDIUM on the input frames, Ruder et al. 2016 occlusion and motion-boundary checks; E_warp on [0, 1] values, "
        "tPSNR = -10 log10 E_warp. *stabilised*: `FlowStabilizer` (runtime/stabilize.py) at strength "
        f"{strength}; *average*: the same blend without motion compensation (a control: blurring over time "
        "also lowers E_warp). Fidelity: PSNR/SSIM to the per-frame output. Goal: E_warp "
        f">= {GOAL_REDUCTION:.0%} lower at >= {GOAL_FIDELITY_DB:.0f} dB fidelity.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; {machine['os']}; "
        f"load average {results['load_average']['before'][0]:.1f} before, {results['load_average']['after'][0]:.1f} "
        f"after (2 shared cores: timings are upper bounds); {results['date']}",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        "| model | clip | frames | input E_warp | per-frame E_warp | stabilised E_warp | reduction | fidelity PSNR "
        "(min) | SSIM | average: reduction, PSNR, SSIM | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["models"].items():
        for clip, r in entry["clips"].items():
            e = {k: v["e_warp"] for k, v in r["series"].items()}
            f, fa = r["fidelity"][stab], r["fidelity"][avg]
            reduction = 1 - e[stab] / e["per-frame"]
            met = reduction >= GOAL_REDUCTION and f["psnr_db"] >= GOAL_FIDELITY_DB
            lines.append(
                f"| {name} | {clip} | {r['frames']} | {e['input']:.6f} | {e['per-frame']:.5f} | {e[stab]:.5f} | "
                f"{reduction:.1%} | {f['psnr_db']:.1f} dB ({f['psnr_db_min']:.1f}) | {f['ssim']:.3f} | "
                f"{1 - e[avg] / e['per-frame']:.1%}, {fa['psnr_db']:.1f} dB, {fa['ssim']:.3f} | "
                f"{'met' if met else 'missed'} |"
            )
    lines += [
        "",
        "Trade-off over the strength (E_warp reduction / fidelity PSNR / SSIM):",
        "",
        "| model | clip | strength | stabilised | average (no flow) |",
        "|---|---|---|---|---|",
    ]
    for name, entry in results["models"].items():
        for clip, r in entry["clips"].items():
            base = r["series"]["per-frame"]["e_warp"]
            for key in r["series"]:
                if not key.startswith("stabilised "):
                    continue
                value = key.split(" ", 1)[1]
                cells = []
                for kind in ("stabilised", "average"):
                    series, f = r["series"][f"{kind} {value}"], r["fidelity"][f"{kind} {value}"]
                    cells.append(f"{1 - series['e_warp'] / base:.1%} / {f['psnr_db']:.1f} dB / {f['ssim']:.3f}")
                lines.append(f"| {name} | {clip} | {value} | {cells[0]} | {cells[1]} |")
    heldout = {n: e["heldout_psnr_db"] for n, e in results["models"].items() if "heldout_psnr_db" in e}
    if heldout:
        figures = ", ".join(f"{n} {v:.2f} dB" for n, v in heldout.items())
        lines += ["", f"Held-out PSNR (test/A → test/B of --heldout): {figures}"]
    for spec, clips in results["comparisons"].items():
        variant, baseline = spec.split(":", 1)
        lines += ["", f"{variant} against {baseline}'s per-frame E_warp:", ""]
        lines += [f"| clip | {variant} per-frame | {variant} + stabiliser {strength} |", "|---|---|---|"]
        for clip, c in clips.items():
            per_frame, stabilised = c["per-frame"]["reduction"], c[stab]["reduction"]
            lines.append(f"| {clip} | {per_frame:.1%} lower | {stabilised:.1%} lower |")
    lines += [
        "",
        "Stage cost per frame (FlowStabilizer, `cv2.setNumThreads(1)`, real frames resized). Wall-clock times "
        "include waiting for a core on this shared machine; the thread's CPU time is the stage's own work, the "
        "figure to hold against the budget. DIS ULTRAFAST (one flow, full resolution, CPU time) for scale:",
        "",
        "| size | CPU mean ms | CPU p95 ms | wall mean ms | wall p50 ms | wall p95 ms | budget ms | DIS ULTRAFAST ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, c in results["stage_cost"].items():
        lines.append(
            f"| {size} | {c['cpu_mean_ms']:.2f} | {c['cpu_p95_ms']:.2f} | {c['mean_ms']:.2f} | {c['p50_ms']:.2f} | "
            f"{c['p95_ms']:.2f} | {c['budget_ms']:.0f} | {c['dis_ultrafast_full_resolution_cpu_ms']:.2f} |"
        )
    lines += ["", "Per-frame error over time (first model, first clip): [temporal.png](temporal.png)"]
    return "\n".join(lines) + "\n"


def write_plot(results: dict[str, Any], folder: Path) -> Path:
    """temporal.png: per-frame error over time of the first model's first clip (per-frame, stabilised,
    average at the headline strength, and the input's own)."""
    name, entry = next(iter(results["models"].items()))
    clip, report = next(iter(entry["clips"].items()))
    strength = results["strength"]
    keep = ("input", "per-frame", f"stabilised {strength}", f"average {strength}")
    subset = {**report, "series": {k: report["series"][k] for k in keep}}
    return temporal.plot_frame_errors(subset, folder / "temporal.png", f"warping error per frame: {name}, {clip}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH (.onnx or model.pt)")
    parser.add_argument("--clip", action="append", default=[], help=f"default: {', '.join(CLIPS)} in shared/media")
    parser.add_argument("--strength", type=float, default=0.5, help="the headline rows' strength")
    parser.add_argument("--sweep", default="0.3,0.5,0.7", help="strengths for the trade-off table")
    parser.add_argument("--max-frames", type=int, default=150, help="per clip (0 = all)")
    parser.add_argument("--compare", action="append", default=[], help="VARIANT:BASELINE model names")
    parser.add_argument("--heldout", default="", help="a paired dataset root: PSNR on its test/A → test/B")
    parser.add_argument("--note", default="", help="a line for the Markdown (how the models were made)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    machine = machine_info(gpu=False)
    results = run(args)
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S%z")
    results = {"machine": machine, "strength": args.strength, "note": args.note, **results}
    folder = Path(args.out) / machine_slug(machine)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "temporal.json").write_text(json.dumps(results, indent=2))
    (folder / "temporal.md").write_text(markdown(results, machine, args.strength, args.note))
    write_plot(results, folder)
    print((folder / "temporal.md").read_text())


if __name__ == "__main__":
    main()
