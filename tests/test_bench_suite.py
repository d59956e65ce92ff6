"""Benchmark suites: parsing, skipped cells with reasons, results written as JSON + Markdown + PNG."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import cv2
import pytest

from i2i.benchsuite import _relate, load_suite, parse_size, run_suite, write_results
from i2i.errors import I2IError, install_hint

SUITE = """
name = "tiny"
description = "test suite"
[[models]]
name = "fast"
arch = "fast"
arch_kwargs = { ngf = 8, n_blocks = 1 }
[[matrix]]
models = ["fast"]
backends = ["torch", "ort", "trt", "nope"]
precisions = ["fp32"]
batch = [2]
sizes = ["30x50"]
iters = 2
warmup = 1
[[matrix]]
models = ["fast"]
backends = ["ort"]
precisions = ["fp32"]
batch = [1]
sizes = ["30x50"]
mode = "pipeline"
frames = 6
[[matrix]]
models = ["fast"]
backends = ["ort"]
precisions = ["fp32"]
batch = [1]
sizes = ["16"]
mode = "soak"
frames = 40
window = 10
[[matrix]]
models = ["fast"]
backends = ["ort"]
precisions = ["fp32"]
batch = [1]
sizes = ["32"]
mode = "pipeline"
frames = 5
refine = true
"""


def test_suite_runs_and_writes_results(tmp_path: Path) -> None:
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(SUITE)
    result = run_suite(load_suite(suite_file), tmp_path / "work", progress=False)
    rows = {(r["backend"], r["mode"]): r for r in result["rows"] if not r.get("refine")}
    refined = [r for r in result["rows"] if r.get("refine")]
    assert len(refined) == 1 and refined[0]["refine_p50_ms"] > 0 and refined[0]["refine_vs_infer"] > 0
    assert "unknown backend 'nope'" in rows[("nope", "model")]["skipped"]
    if importlib.util.find_spec("tensorrt") is None:  # the cell says why, and the other cells still ran
        assert install_hint("trt") in rows[("trt", "model")]["skipped"]
    ort, torch_row = rows[("ort", "model")], rows[("torch", "model")]
    assert (ort["height"], ort["width"]) == (32, 52)  # rounded up to the model's multiple of 4
    assert ort["psnr_vs_torch_fp32_db"] > 60 and torch_row["psnr_vs_torch_fp32_db"] == float("inf")
    assert torch_row["speedup_vs_torch_fp32"] == pytest.approx(1.0)
    assert ort["gflop_per_frame"] > 0 and ort["fps"] > 0 and ort["p99_ms"] >= ort["median_ms"]
    pipeline = rows[("ort", "pipeline")]
    assert pipeline["fps"] > 0 and "pipeline_vs_model" not in pipeline  # batch 1 has no model-only row here
    soak = rows[("ort", "soak")]
    assert soak["frames"] == 40 and len(soak["p99_ms_per_window"]) == 4
    assert soak["rss_end_mb"] > 0 and math.isfinite(soak["rss_growth_mb"])
    paths = write_results(result, tmp_path / "results")
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["tiny.json", "tiny.md", "tiny.png"]  # no temp files
    saved = json.loads(paths[0].read_text())
    assert saved["machine"]["cores"] >= 1 and len(saved["rows"]) == 7
    assert "Soak" in paths[1].read_text() and "Refine stage" in paths[1].read_text()
    assert "| fast | model | ort | fp32 | 2 | 32x52 |" in paths[1].read_text()
    chart = cv2.imread(str(paths[2]))
    assert chart is not None and chart.shape[0] > 50


def test_bad_suites(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(I2IError, match="not valid TOML"):
        load_suite(bad)
    bad.write_text(SUITE.replace('models = ["fast"]\nbackends = ["ort"]', 'models = ["other"]\nbackends = ["ort"]'))
    with pytest.raises(I2IError, match="unknown models"):
        load_suite(bad)
    bad.write_text(SUITE.replace('sizes = ["16"]', 'sizes = ["16"]\ndevice = "gpu"'))
    with pytest.raises(I2IError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        load_suite(bad)
    bad.write_text(SUITE.replace('sizes = ["16"]', 'sizes = ["16"]\noptions = { trt = { x = 1 } }'))
    with pytest.raises(I2IError, match=r"options for backends the cell does not run: \['trt'\]"):
        load_suite(bad)
    with pytest.raises(I2IError, match="suite not found"):
        load_suite(tmp_path / "missing.toml")
    with pytest.raises(I2IError, match="'12xx' is not a size; use HxW"):
        parse_size("12xx")


def test_speedups_relate_rows_of_the_same_run() -> None:
    """× torch fp32 for every timed row; a reduced-precision row is also set against torch eager at its precision."""

    def row(backend: str, precision: str, ms: float) -> dict[str, object]:
        return dict(model="m", batch=1, height=8, width=8, mode="model", backend=backend, precision=precision,
                    median_ms=ms, fps=1e3 / ms)  # fmt: skip

    rows = [row("torch", "fp32", 10.0), row("torch", "fp16", 4.0), row("ort", "fp16", 2.0), row("ort", "int8", 5.0)]
    _relate(rows)
    assert [r["speedup_vs_torch_fp32"] for r in rows] == [1.0, 2.5, 5.0, 2.0]
    assert rows[2]["speedup_vs_torch_same_precision"] == 2.0
    assert "speedup_vs_torch_same_precision" not in rows[0] and "speedup_vs_torch_same_precision" not in rows[3]


@pytest.mark.parametrize(
    "suite_file", sorted((Path(__file__).parents[1] / "benchmarks").glob("*.toml")), ids=lambda p: p.name
)
def test_committed_suites_parse(suite_file: Path) -> None:
    suite = load_suite(suite_file)
    assert suite.models and suite.matrix


def test_a_model_with_train_arguments_is_trained_once_per_argument_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from i2i import benchsuite
    from i2i.benchsuite import ModelSpec, prepare_model

    runs: list[list[str]] = []

    def fake_training(args: list[str], name: str) -> None:
        runs.append(args)
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.pt").write_bytes(b"weights")

    monkeypatch.setattr(benchsuite, "run_training", fake_training)
    spec = ModelSpec("resnet9", arch="resnet", train=["cyclegan", "--data", "d", "--max-steps", "5"])
    checkpoint = prepare_model(spec, tmp_path)
    assert checkpoint == tmp_path / "resnet9" / "run" / "model.pt"
    assert runs == [["cyclegan", "--data", "d", "--max-steps", "5", "--out", str(checkpoint.parent), "--overwrite"]]
    assert prepare_model(spec, tmp_path) == checkpoint and len(runs) == 1  # trained once
    longer = ModelSpec("resnet9", arch="resnet", train=["cyclegan", "--data", "d", "--max-steps", "9"])
    prepare_model(longer, tmp_path)
    assert len(runs) == 2 and runs[1][4] == "9"  # other arguments: trained again


def test_a_failed_training_is_one_line(tmp_path: Path) -> None:
    from i2i.benchsuite import ModelSpec, prepare_model

    spec = ModelSpec("broken", train=["no-such-method"])
    with pytest.raises(I2IError, match=r"^model 'broken': i2i-train no-such-method --out .* failed: .*no-such-method"):
        prepare_model(spec, tmp_path)


def test_a_model_that_cannot_be_prepared_skips_its_cells_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from i2i import benchsuite

    def failing(args: list[str], name: str) -> None:
        raise I2IError(f"model {name!r}: i2i-train {args[0]} failed: no data")

    monkeypatch.setattr(benchsuite, "run_training", failing)
    suite_file = tmp_path / "two.toml"
    suite_file.write_text(
        SUITE.split("[[matrix]]")[0]
        + '[[models]]\nname = "trained"\ntrain = ["distill"]\n'
        + '[[matrix]]\nmodels = ["trained", "fast"]\nbackends = ["ort"]\nprecisions = ["fp32"]\n'
        + 'batch = [1]\nsizes = ["16"]\niters = 1\nwarmup = 0\n'
    )
    rows = run_suite(load_suite(suite_file), tmp_path / "work", progress=False)["rows"]
    assert [r["model"] for r in rows] == ["trained", "fast"]
    assert rows[0]["skipped"] == "model 'trained': i2i-train distill failed: no data"
    assert "skipped" not in rows[1] and rows[1]["fps"] > 0
