"""End to end: a few training steps → export → parity → runtime on a short clip → bench."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import invoke, run_script

from i2i.runtime.card import ModelCard

pytestmark = pytest.mark.e2e


def test_training_run_writes_contract_files(tiny_run: Path) -> None:
    for name in ("model.pt", "state.pt", "log.jsonl", "config.json"):
        assert (tiny_run / name).is_file(), name
    lines = [json.loads(x) for x in (tiny_run / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 4 and all(math.isfinite(lines[-1][k]) for k in ("d", "g_gan", "g_l1"))
    assert lines[-1]["lr"] == 0.0  # linear decay reaches zero at the last step
    grid = cv2.imread(str(tiny_run / "samples" / "step_000004.png"))
    assert grid is not None and grid.shape == (3 * 64, 4 * 64, 3)  # rows source|fake|target, 4 images


def test_export_parity_and_card(tiny_onnx: Path, tiny_run: Path) -> None:
    import onnx

    model = onnx.load(str(tiny_onnx))
    card = ModelCard.from_json({p.key: p.value for p in model.metadata_props}["i2i"])
    assert card.arch == "unet" and card.size_multiple == 32 and card.precision == "fp32"
    assert card.opset is not None and card.opset >= 17 and card.source is not None
    assert card.source["name"] == "model.pt"
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))  # dynamic N, H, W
    report = json.loads(tiny_onnx.with_suffix(".parity.json").read_text())
    assert report["passed"] is True
    assert report["max_abs"] <= 1e-4
    assert all(c["psnr_db"] == "inf" or c["psnr_db"] >= 60 for c in report["cases"])
    assert any(c["input"].startswith("image ") for c in report["cases"])  # real photos, not only noise
    assert any(c["shape"][0] == 2 for c in report["cases"])  # dynamic batch exercised


def test_runtime_translates_video_frame_for_frame(tiny_onnx: Path, demo_data: Path, tmp_path: Path) -> None:
    from i2i.runtime.cli import main

    out = tmp_path / "out.mp4"
    stats = tmp_path / "stats.json"
    result = invoke(
        main, [tiny_onnx, "--source", demo_data / "video.mp4", "--sink", out, "--stats", stats, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    src, dst = cv2.VideoCapture(str(demo_data / "video.mp4")), cv2.VideoCapture(str(out))
    n_src = int(src.get(cv2.CAP_PROP_FRAME_COUNT))
    assert n_src > 0 and int(dst.get(cv2.CAP_PROP_FRAME_COUNT)) == n_src
    ok_a, a = src.read()
    ok_b, b = dst.read()
    assert ok_a and ok_b and a.shape == b.shape == (72, 96, 3)  # 72x96 is not a multiple of 32: padded and cropped
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5  # translated, not passed through
    assert b.std() > 1  # not blank
    summary = json.loads(stats.read_text())
    assert summary["frames"] == n_src and {"read", "preprocess", "infer", "postprocess", "write"} <= set(
        summary["stages"]
    )


def test_runtime_output_matches_torch_on_frames(tiny_onnx: Path, tiny_run: Path, demo_data: Path) -> None:
    """The ORT pipeline's frames equal the torch generator's frames (up to uint8 rounding)."""
    from i2i.runtime.backends import open_backend
    from i2i.runtime.frames import postprocess, preprocess

    image = cv2.imread(str(sorted((demo_data / "test" / "A").iterdir())[0]))
    with open_backend("ort", tiny_onnx) as ort_backend, open_backend("torch", tiny_run / "model.pt") as torch_backend:
        batch, size = preprocess([image], ort_backend.size_multiple)
        a = postprocess(ort_backend(batch), size)[0]
        b = postprocess(torch_backend(batch), size)[0]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_runtime_path_never_imports_torch(tiny_onnx: Path, demo_data: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import i2i.runtime, i2i.runtime.pipeline, i2i.runtime.backends.onnxruntime\n"
        "assert 'torch' not in sys.modules, 'import pulled in torch'\n"
        "from i2i.runtime.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "assert 'torch' not in sys.modules, 'i2i-run pulled in torch'\n"
        "print('TORCH-FREE')\n"
    )
    result = run_script(
        code,
        str(tiny_onnx),
        "--source",
        str(demo_data / "video.mp4"),
        "--sink",
        str(tmp_path / "frames"),
        "--no-progress",
        "--backend",
        "auto",
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH-FREE" in result.stdout
    assert len(list((tmp_path / "frames").glob("*.png"))) > 0


def test_bench_compares_ort_with_torch(tiny_onnx: Path, tmp_path: Path) -> None:
    from i2i.bench import main

    out = tmp_path / "bench.json"
    result = invoke(main, [tiny_onnx, "--size", "64", "--iters", "3", "--warmup", "1", "--json", out])
    assert result.exit_code == 0, result.output
    rows = {r["backend"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"ort", "torch"}
    assert rows["torch"]["speedup_vs_torch"] == pytest.approx(1.0)
    assert rows["ort"]["psnr_vs_torch_db"] >= 60
    assert all(r["median_ms"] > 0 and r["fps"] > 0 and r["height"] == 64 for r in rows.values())
    assert "| ort |" in result.output and "| torch |" in result.output
