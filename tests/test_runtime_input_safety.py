"""Inputs i2i-run must survive: an output never replaces its input, and no input can exhaust memory."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest
from conftest import invoke
from test_backends import make_model
from test_runtime_io import smooth_frame, write_video

from i2i.errors import I2IError
from i2i.runtime.cli import main
from i2i.runtime.sinks import refuse_replacing_inputs
from i2i.runtime.sources import open_source


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "invert.onnx")


def _run(model: Path, *args: object) -> tuple[int, str]:
    result = invoke(main, [model, *args, "--backend", "ort", "--no-progress"])
    return result.exit_code, result.output


def _images(folder: Path, n: int = 2) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        assert cv2.imwrite(str(folder / f"img{i}.png"), smooth_frame(shift=i))
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- output replacing input


def test_a_video_written_over_itself_is_refused(model: Path, tmp_path: Path) -> None:
    clip = tmp_path / "same.mp4"
    write_video(clip, 3)
    before = clip.read_bytes()
    os.symlink(clip, tmp_path / "link.mp4")
    for sink in (clip, tmp_path / "link.mp4", tmp_path / "sub" / ".." / "same.mp4"):
        code, output = _run(model, "-s", clip, "-o", sink)
        assert code != 0
        assert output.strip().count("\n") == 0 and "is the source file" in output and "destroy the input" in output
        assert clip.read_bytes() == before
    code, output = _run(model, "-s", clip, "--stats", clip)
    assert code != 0 and "--stats" in output and clip.read_bytes() == before


def test_a_hard_link_to_the_input_is_the_input(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_video(clip, 2)
    os.link(clip, tmp_path / "hard.mp4")
    with open_source(str(clip)) as source, pytest.raises(I2IError, match="is the source file"):
        refuse_replacing_inputs(str(tmp_path / "hard.mp4"), source.input_files())


def test_a_folder_that_is_both_source_and_sink_is_refused(model: Path, tmp_path: Path) -> None:
    before = _images(tmp_path / "imgs")
    for source, sink in [
        (tmp_path / "imgs", tmp_path / "imgs"),
        (f"{tmp_path}/imgs/*.png", tmp_path / "imgs"),
        (tmp_path / "imgs" / "img0.png", tmp_path / "imgs" / "."),
    ]:
        code, output = _run(model, "-s", source, "-o", sink)
        assert code != 0 and "is the folder the source's images are read from" in output, output
        assert {p.name: p.read_bytes() for p in sorted((tmp_path / "imgs").iterdir())} == before


def test_outputs_beside_or_below_their_inputs_are_fine(model: Path, tmp_path: Path) -> None:
    _images(tmp_path / "imgs")
    write_video(tmp_path / "clip.mp4", 2)
    code, output = _run(model, "-s", tmp_path / "imgs", "-o", tmp_path / "imgs" / "out")  # not re-read: one level
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "imgs" / "out").iterdir()) == ["img0.png", "img1.png"]
    with open_source(str(tmp_path / "clip.mp4")) as source:
        refuse_replacing_inputs(str(tmp_path), source.input_files())  # frame_*.png beside a video
        refuse_replacing_inputs(str(tmp_path / "other.mp4"), source.input_files())
