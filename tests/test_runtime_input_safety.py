"""Inputs i2i-run must survive: an output never replaces its input, and no input can exhaust memory."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import invoke
from test_backends import make_model
from test_runtime_io import smooth_frame, write_video

from i2i.errors import I2IError
from i2i.runtime.cli import main
from i2i.runtime.images import declared_size
from i2i.runtime.sinks import refuse_replacing_inputs
from i2i.runtime.sources import FolderSource, open_source


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


# --------------------------------------------------------------------------- decoded-size cap


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds no pixels: a few bytes that decode to gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tiff"])
def test_declared_size_reads_the_header(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), np.zeros((37, 53, 3), np.uint8))
    assert declared_size(path.read_bytes()) == (37, 53)


def test_a_huge_png_header_is_skipped_before_decoding_and_the_batch_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "imgs"
    _images(folder)
    (folder / "img05.png").write_bytes(_png_header(50_000, 50_000))
    decoded: list[int] = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda data, flags: decoded.append(data.size) or real(data, flags))
    with FolderSource(str(folder)) as source:
        names = [frame.name for frame in source]
    assert names == ["img0", "img1"]  # the file after the bad one is still read
    assert len(decoded) == 2  # the bomb was never handed to the decoder
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: skipping" in err and "img05.png: its header declares 50000x50000" in err
    assert "--max-pixels" in err


def test_the_cap_applies_to_decoded_images_videos_and_patterns(tmp_path: Path) -> None:
    _images(tmp_path / "imgs", 1)  # 48x64 = 3072 px
    write_video(tmp_path / "clip.avi", 2)
    with pytest.raises(I2IError, match="none of the 1 images"):
        FolderSource(str(tmp_path / "imgs"), max_pixels=3071)
    assert [f.name for f in FolderSource(str(tmp_path / "imgs"), max_pixels=3072)] == ["img0"]
    with pytest.raises(I2IError, match=r"clip.avi: its container declares frames of 48x64 .*--max-pixels 3072"):
        open_source(str(tmp_path / "clip.avi"), max_pixels=3000)
    with pytest.raises(I2IError, match="over the 33.2 Mpx limit"):
        open_source("pattern:20000x20000@0")


def test_max_pixels_raises_the_cap_from_the_command_line(model: Path, tmp_path: Path) -> None:
    _images(tmp_path / "imgs", 1)
    code, output = _run(model, "-s", tmp_path / "imgs", "--max-pixels", 3000)
    assert code != 0 and "could be read" in output
    code, output = _run(model, "-s", tmp_path / "imgs", "--max-pixels", 3072)
    assert code == 0, output


def test_a_float_image_outside_0_1_is_skipped_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A float TIFF holding 0..255 would have been clipped into a white frame: the folder skips it."""
    folder = tmp_path / "imgs"
    _images(folder, 1)
    assert cv2.imwrite(str(folder / "hdr.tiff"), smooth_frame().astype(np.float32))
    assert [frame.name for frame in FolderSource(str(folder))] == ["img0"]
    err = capsys.readouterr().err
    assert "warning: skipping" in err and "hdr.tiff: float frames hold values in 0..1" in err
