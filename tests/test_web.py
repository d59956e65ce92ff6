"""Browser viewer (``--sink http://…``): endpoints, slow clients, and the page in headless Chromium."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_runtime_pipeline import FakeBackend, ListSource

from i2i.errors import I2IError
from i2i.runtime.pipeline import run_pipeline
from i2i.runtime.sinks import open_sink
from i2i.runtime.sources import PatternSource
from i2i.runtime.stats import StageStats
from i2i.runtime.web import BOUNDARY, WebSink

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def get(url: str, timeout: float = 10) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def read_first_part(url: str) -> bytes:
    """The first JPEG of an MJPEG stream."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        assert response.readline().strip() == f"--{BOUNDARY}".encode()
        headers = {}
        while (line := response.readline().strip()) != b"":
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        return bytes(response.read(int(headers["content-length"])))


def test_endpoints_serve_page_frame_stream_and_stats() -> None:
    sink = open_sink("http://127.0.0.1:0")  # port 0: any free port; loopback
    assert isinstance(sink, WebSink) and sink.url.startswith("http://127.0.0.1:") and sink.overlay
    base = sink.url
    stats = StageStats()
    stats.info = {"backend": "fake"}
    sink.bind_stats(stats)
    with sink:
        assert get(base + "frame.jpg")[0] == 503  # nothing published yet
        image = np.zeros((60, 80, 3), np.uint8)
        image[:, 40:] = (0, 200, 255)
        sink.configure(overlay=False).write(image)
        stats.count_frame()
        status, kind, body = get(base)
        assert status == 200 and kind.startswith("text/html")
        assert b'src="stream.mjpg"' in body and b"stats.json" in body
        status, kind, body = get(base + "frame.jpg")
        decoded = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert status == 200 and kind == "image/jpeg" and np.abs(decoded.astype(int) - image).mean() < 3
        streamed = cv2.imdecode(np.frombuffer(read_first_part(base + "stream.mjpg"), np.uint8), cv2.IMREAD_COLOR)
        assert streamed.shape == (60, 80, 3)
        status, kind, body = get(base + "stats.json")
        payload = json.loads(body)
        assert kind == "application/json" and payload["frames"] == 1 and payload["info"] == {"backend": "fake"}
        assert payload["viewer"]["published"] == 1 and payload["viewer"]["clients_served"] == 1
        assert get(base + "nope")[0] == 404
    with pytest.raises(OSError):
        get(base, timeout=2)  # closed with the sink


def test_address_rules(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(I2IError, match="plain http://"):
        WebSink.from_url("https://127.0.0.1:8080")
    with pytest.raises(I2IError, match="no path"):
        WebSink.from_url("http://127.0.0.1:8080/view")
    with WebSink.from_url("http://localhost:0") as local:
        assert local.url.startswith("http://127.0.0.1:")
        with pytest.raises(I2IError, match=f"cannot serve the viewer on 127.0.0.1:{local.port}"):
            WebSink("127.0.0.1", local.port)
    assert "not loopback" not in capsys.readouterr().err
    with WebSink("0.0.0.0", 0):
        pass
    assert "not loopback" in capsys.readouterr().err  # serving the network is opt-in and warned about


def test_a_slow_client_never_stalls_the_pipeline() -> None:
    """A client that connects and never reads: the pipeline still writes every frame at its pace."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(40)]  # noise: big JPEGs
    sink = WebSink("127.0.0.1", 0)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", sink.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # ... and never read a byte
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_first_part(sink.url + "stream.mjpg")))
    reader.start()
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(run_pipeline(ListSource(frames), FakeBackend(), sink)))
    with sink:
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive(), "the pipeline stalled behind a slow viewer"
        reader.join(timeout=30)
    stalled.close()
    assert result[0].frames == 40 and sink.frames_written == 40 and sink.latest.seq == 40
    assert received and received[0][:2] == b"\xff\xd8"  # a reading client got JPEG frames meanwhile


def _chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _chromium_run(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        "--window-size=1100,560",
        "--timeout=4000",  # the MJPEG <img> never finishes loading: act after 4 s of live page
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=90)


def test_browser_viewer_in_headless_chromium(tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium); the browser viewer is untested")
    sink = open_sink("http://127.0.0.1:0", view="side-by-side")
    stop = threading.Event()
    done: list[StageStats] = []
    source = PatternSource(320, 240, fps=15)
    worker = threading.Thread(target=lambda: done.append(run_pipeline(source, FakeBackend(), sink, stop=stop)))
    with sink:
        worker.start()
        shot = tmp_path / "viewer.png"
        result = _chromium_run(binary, tmp_path / "profile-1", f"--screenshot={shot}", sink.url)
        assert shot.is_file(), result.stderr[-2000:]
        dom = _chromium_run(binary, tmp_path / "profile-2", "--dump-dom", sink.url).stdout
        latest = cv2.imdecode(np.frombuffer(sink.latest.jpeg()[1], np.uint8), cv2.IMREAD_COLOR)  # type: ignore[index]
        stop.set()
        worker.join(timeout=30)
    screenshot = cv2.imread(str(shot))
    assert screenshot is not None and screenshot.shape[:2] == (560, 1100)
    # A live frame: the page shows the streamed image (input | inverted output, 640x240) at its
    # natural size; it matches the newest frame except for the moving disc and the overlay digits.
    assert latest.shape == (240, 640, 3)
    match = cv2.matchTemplate(screenshot, latest, cv2.TM_CCOEFF_NORMED)
    _, score, _, (x, y) = cv2.minMaxLoc(match)
    assert score > 0.6, f"no live frame in the screenshot (best match {score:.2f} at {x},{y}); see {shot}"
    # The stats panel: filled in by the page's script from stats.json.
    frames = int(dom.split('id="frames">')[1].split("<")[0])
    fps = dom.split('id="fps">')[1].split("<")[0]
    assert frames > 0 and fps != "–" and float(fps) > 0, dom[-3000:]
    assert "<td>infer</td>" in dom and "<td>e2e</td>" in dom
    assert done and done[0].interrupted and done[0].frames > 0
