"""The Python API used exactly as an application would: i2i.load / Translator / i2i.export."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import invoke, run_script

import i2i
from i2i.errors import I2IError

README = Path(__file__).resolve().parents[1] / "README.md"


def _photo(h: int = 45, w: int = 70, seed: int = 0) -> np.ndarray:
    """A smooth BGR "photo" whose size is not a multiple of anything."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(cv2.resize(rng.integers(0, 256, (9, 14, 3), dtype=np.uint8), (w, h)), (5, 5), 0)


def test_translator_frames_gray_bgra_and_lists(tiny_onnx: Path) -> None:
    with i2i.load(tiny_onnx, backend="ort") as translator:
        assert translator.card.io.kind == "tensor" and translator.card.source is not None
        photo = _photo()
        out = translator(photo)
        assert out.shape == photo.shape and out.dtype == np.uint8
        gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
        assert np.array_equal(translator(gray), translator(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))
        bgra = cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)
        assert np.array_equal(translator(bgra), out)
        other = _photo(32, 40, seed=1)
        outs = translator([photo, other, photo])
        assert isinstance(outs, list) and [o.shape for o in outs] == [photo.shape, other.shape, photo.shape]
        assert np.array_equal(outs[0], out) and np.array_equal(outs[2], out)
    with pytest.raises(I2IError, match="closed"):
        translator(photo)


def test_a_list_of_equal_frames_is_one_batched_call(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    translator = i2i.load(tiny_onnx, backend="ort")
    calls: list[tuple[int, ...]] = []
    backend = translator.backend
    real = backend._infer

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape)
        return real(batch)

    monkeypatch.setattr(backend, "_infer", counting)
    frames = [_photo(seed=s) for s in range(3)]
    outs = translator(frames)
    assert len(calls) == 1 and calls[0][0] == 3
    assert all(np.array_equal(o, translator(f)) for o, f in zip(outs, frames))
    translator.close()


def test_a_frame_equals_what_i2i_run_writes(tiny_onnx: Path, tmp_path: Path) -> None:
    from i2i.runtime.cli import main as run_main

    source = tmp_path / "in"
    source.mkdir()
    photo = _photo(50, 66)
    cv2.imwrite(str(source / "photo.png"), photo)
    result = invoke(run_main, [tiny_onnx, "--source", source, "--sink", tmp_path / "out", "--backend", "ort"])
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / "out" / "photo.png"))
    with i2i.load(tiny_onnx, backend="ort") as translator:
        assert np.array_equal(translator(photo), written)


def test_stream_yields_every_frame_of_a_folder(tiny_onnx: Path, tmp_path: Path) -> None:
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k}.png"), _photo(seed=k))
    with i2i.load(tiny_onnx, backend="ort") as translator:
        frames = list(translator.stream(tmp_path, batch_size=2))
        assert len(frames) == 3 and all(f.image.shape == (45, 70, 3) for f in frames)
        assert len(list(translator.stream(tmp_path, max_frames=2))) == 2
        with pytest.raises(I2IError, match="batch_size must be >= 1"):
            list(translator.stream(tmp_path, batch_size=0))


def test_load_errors_are_one_line(tmp_path: Path, tiny_onnx: Path) -> None:
    with pytest.raises(I2IError, match="model not found"):
        i2i.load(tmp_path / "missing.onnx", backend="ort")
    with pytest.raises(I2IError, match="unknown backend 'magic'"):
        i2i.load(tiny_onnx, backend="magic")
    not_a_frame: Any = {"photo": 1}
    with i2i.load(tiny_onnx, backend="ort") as translator:
        with pytest.raises(I2IError, match="numpy frame, an image path or a list"):
            translator(not_a_frame)
        with pytest.raises(I2IError, match="no such image file: .*photo.jpg"):
            translator(tmp_path / "photo.jpg")
        with pytest.raises(I2IError, match="a folder; translator.path. takes one image, translator.stream.. the rest"):
            translator(tmp_path)


def test_load_is_torch_free_for_onnx(tiny_onnx: Path) -> None:
    code = (
        "import sys, numpy as np, i2i\n"
        "t = i2i.load(sys.argv[1])\n"
        "out = t(np.zeros((20, 30, 3), np.uint8))\n"
        "assert out.shape == (20, 30, 3)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = run_script(code, str(tiny_onnx))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_export_api(tiny_run: Path, tmp_path: Path) -> None:
    result = i2i.export(tiny_run / "model.pt", tmp_path / "m.onnx", progress=False)
    assert result.onnx == tmp_path / "m.onnx" and result.onnx.is_file()
    assert result.card == i2i.ModelCard.from_onnx(result.onnx) and result.parity is not None
    assert result.parity["passed"] and result.engine is None and result.triton is None
    with pytest.raises(I2IError, match="export has no option fp17"):
        i2i.export(tiny_run / "model.pt", fp17=True)
    with pytest.raises(I2IError, match="unknown precision 'fp17'"):
        i2i.export(tiny_run / "model.pt", tmp_path / "x.onnx", precision="fp17", progress=False)
    with pytest.raises(I2IError, match="run-time precision"):
        i2i.export(tiny_run / "model.pt", tmp_path / "x.onnx", precision="bf16", progress=False)
    assert not (tmp_path / "x.onnx").exists()


def _readme_python_api() -> str:
    text = README.read_text()
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has a python example"
    return match.group(1)


@pytest.mark.slow
def test_readme_python_api_runs_as_written(tiny_run: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_onnx, tmp_path / "model.onnx")
    shutil.copy(tiny_run / "model.pt", tmp_path / "model.pt")
    cv2.imwrite(str(tmp_path / "photo.jpg"), _photo(60, 80))
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for k in range(12):
        writer.write(_photo(48, 64, seed=k))
    writer.release()
    code = "import os, sys\nos.chdir(sys.argv[1])\n" + _readme_python_api()
    done = run_script(code, str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "last.png").is_file() and (tmp_path / "model_fp16.onnx").is_file()
    assert "fp16" in done.stdout


def test_float_frames_follow_the_contract(tiny_onnx: Path) -> None:
    """uint8 frames, or float frames in 0..1: 0..255 floats and NaN are refused, not translated as
    a white or black frame."""
    with i2i.load(tiny_onnx) as translator:
        photo = _photo()
        np.testing.assert_array_equal(translator(photo.astype(np.float32) / 255.0), translator(photo))
        with pytest.raises(I2IError, match="float frames hold values in 0..1; this one spans"):
            translator(photo.astype(np.float32))
        broken = photo.astype(np.float32) / 255.0
        broken[0, 0, 0] = np.nan
        with pytest.raises(I2IError, match="NaN/Inf"):
            translator(broken)


def test_stream_items_carry_names_paths_and_stage_timings(tiny_onnx: Path, tmp_path: Path) -> None:
    """An application saves outputs under their input names and reads the per-stage timings the CLI
    prints; translator(frame) keeps returning an array, and translator(path) reads one image."""
    photos = {name: _photo(seed=k) for k, name in enumerate(["b_2", "a_10", "c"])}
    for name, photo in photos.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), photo)
    with i2i.load(tiny_onnx, backend="ort") as translator:
        items = list(translator.stream(tmp_path, batch_size=2))
        assert [(i.index, i.name) for i in items] == [(0, "a_10"), (1, "b_2"), (2, "c")]
        assert [Path(i.path) for i in items] == [tmp_path / f"{i.name}.png" for i in items]
        for item in items:
            expected = translator(photos[item.name])
            assert isinstance(expected, np.ndarray)
            np.testing.assert_array_equal(item.image, expected)
            np.testing.assert_array_equal(item.input, photos[item.name])
            np.testing.assert_array_equal(translator(str(tmp_path / f"{item.name}.png")), expected)
            np.testing.assert_array_equal(translator(Path(item.path)), expected)
            assert set(item.speed) == {"read", "preprocess", "infer", "postprocess"}
            assert all(ms >= 0.0 for ms in item.speed.values())
        video = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (70, 45))
        for k in range(3):
            writer.write(_photo(seed=k))
        writer.release()
        streamed = list(translator.stream(video))
        assert [(i.index, i.name, i.path) for i in streamed] == [(k, None, str(video)) for k in range(3)]
