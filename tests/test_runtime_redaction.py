"""A source URL's user and password never appear where a source is shown or written: its name,
errors, reconnect warnings, the --stats file, and the run info that /stats.json and the viewer show."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from test_backends import make_model
from test_runtime_pipeline import _DroppingMjpeg

from i2i.errors import I2IError
from i2i.runtime.cli import main
from i2i.runtime.redact import display_name
from i2i.runtime.sources import StreamSource, open_source

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("rtsp://user:pass@cam/stream", "rtsp://***@cam/stream"),
        (f"http://admin:{SECRET}@host/clip.mp4", "http://***@host/clip.mp4"),
        (f"http://admin:p@{SECRET}@host:8554/x", "http://***@host:8554/x"),  # an unencoded @ in the password
        (
            f"http://h/x.mjpg?user=a&password={SECRET}&token=t&fps=5",
            "http://h/x.mjpg?user=a&password=***&token=***&fps=5",
        ),
        ("http://h/x.mjpg?api_key=k#top", "http://h/x.mjpg?api_key=***#top"),
        ("rtsp://cam:554/stream?fps=5", "rtsp://cam:554/stream?fps=5"),
        ("/videos/a@b.mp4", "/videos/a@b.mp4"),
        ("0", "0"),
    ],
)
def test_display_name_hides_credentials_only(spec: str, shown: str) -> None:
    assert display_name(spec) == shown


@pytest.fixture
def stream_url() -> Any:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _DroppingMjpeg)
    server.sent = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://admin:{SECRET}@127.0.0.1:{server.server_address[1]}/stream.mjpg"
    server.shutdown()
    server.server_close()


def test_stream_name_errors_and_reconnect_warnings_hide_the_password(
    stream_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = open_source(stream_url, reconnect=1)
    assert isinstance(source, StreamSource)
    source.backoff = 0.01
    assert SECRET not in source.name and SECRET not in source.display and SECRET not in repr(source)
    assert source.display.startswith("http://***@127.0.0.1:")
    images = [frame.image for _, frame in zip(range(8), source)]  # across a reconnect: the real URL is kept
    assert len(images) == 8 and source.reconnects >= 1
    source.close()
    err = capsys.readouterr().err
    assert "reconnecting in" in err and SECRET not in err and "http://***@127.0.0.1:" in err
    with pytest.raises(I2IError, match=r"cannot open video: http://\*\*\*@127\.0\.0\.1:1/x") as info:
        open_source(f"http://admin:{SECRET}@127.0.0.1:1/x", reconnect=0)
    assert SECRET not in str(info.value)


def test_stats_file_and_run_info_hide_the_password(stream_url: str, tmp_path: Path) -> None:
    model = make_model(tmp_path / "invert.onnx")
    stats = tmp_path / "stats.json"
    args = [model, "-s", stream_url, "--max-frames", 6, "--stats", stats, "--backend", "ort", "--no-progress"]
    result = invoke(main, args)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    text = stats.read_text()
    assert SECRET not in text
    info = json.loads(text)["info"]  # what /stats.json and the viewer's info line show
    assert info["source"].startswith("http://***@127.0.0.1:") and info["source"].endswith("/stream.mjpg")
