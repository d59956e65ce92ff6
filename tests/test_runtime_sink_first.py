"""i2i-run opens its sink before it loads the model: an output that cannot be opened fails at once,
not after a model load (the model path here does not even exist: the sink's error must come first)."""

from __future__ import annotations

import socket
from pathlib import Path

from conftest import invoke

from i2i.runtime.cli import main


def _run(tmp_path: Path, sink: str) -> tuple[int, str]:
    args = [tmp_path / "absent.onnx", "--source", "pattern:24x32@0", "--max-frames", 1, "--sink", sink]
    result = invoke(main, [*args, "--backend", "ort", "--no-progress"])
    return result.exit_code, result.output


def test_a_viewer_address_that_cannot_be_bound_fails_before_the_model_loads(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, output = _run(tmp_path, f"http://127.0.0.1:{port}")
    assert code != 0
    assert str(port) in output and "absent.onnx" not in output, output


def test_a_folder_that_cannot_be_made_fails_before_the_model_loads(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, output = _run(tmp_path, str(tmp_path / "file" / "frames"))
    assert code != 0
    assert "cannot create output folder" in output and "absent.onnx" not in output, output
