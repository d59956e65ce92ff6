"""Browser viewer (``--sink http://…``): endpoints, access rules, limits, slow clients, and the page in
headless Chromium. Every server here listens on loopback; the non-loopback rules are checked before a
socket is opened, so they are tested without serving the network."""

from __future__ import annotations

import hmac
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from conftest import invoke
from test_backends import make_model
from test_runtime_pipeline import FakeBackend, ListSource

from i2i.errors import I2IError
from i2i.runtime import web
from i2i.runtime.pipeline import run_pipeline
from i2i.runtime.sinks import open_sink
from i2i.runtime.sources import PatternSource
from i2i.runtime.stats import StageStats
from i2i.runtime.web import BOUNDARY, WebSink, check_access, check_viewer_url

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
JPEG_START = b"\xff\xd8"
IMAGE = np.full((60, 80, 3), 90, np.uint8)
LONG_TOKEN = "5f1c0d9e8a7b6c4d3e2f1a0b"  # strong enough to be accepted (see viewer_access.check_token)


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def raw_request(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """Send bytes exactly as given (no client-side path normalising); read the answer until the server closes.
    Status 0 when the server closed without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        data = b""
        try:
            while chunk := connection.recv(65536):
                data += chunk
        except ConnectionResetError:  # the server closed with part of our request unread: the answer came first
            pass
    if not data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def request_line(method: str, target: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n".encode("latin-1")


def wait_until(condition: Callable[[], bool], what: str, guard_s: float = 20) -> None:
    """Poll for an event; the deadline only keeps a broken build from hanging the suite."""
    deadline = time.monotonic() + guard_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def open_stream(sink: WebSink, rcvbuf: int | None = None) -> socket.socket:
    """A viewer on /stream.mjpg that has read the response head (so it holds a slot) and nothing more."""
    connection = socket.socket()
    if rcvbuf is not None:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: a small window
    connection.settimeout(10)
    connection.connect(("127.0.0.1", sink.port))
    connection.sendall(request_line("GET", "/stream.mjpg"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += connection.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return connection


def read_first_part(url: str, headers: dict[str, str] | None = None) -> bytes:
    """The first JPEG of an MJPEG stream."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
        assert response.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        assert response.readline().strip() == f"--{BOUNDARY}".encode()
        part_headers = {}
        while (line := response.readline().strip()) != b"":
            key, _, value = line.decode().partition(":")
            part_headers[key.lower()] = value.strip()
        assert part_headers["content-type"] == "image/jpeg"
        return bytes(response.read(int(part_headers["content-length"])))


def viewers(sink: WebSink) -> int:
    return int(sink.stats_payload()["viewer"]["clients"])


# --- endpoints ------------------------------------------------------------------------------------


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
        assert b'src="stream.mjpg"' in body and b'fetch("stats.json"' in body  # no token: plain links
        status, kind, body = get(base + "frame.jpg")
        decoded = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert status == 200 and kind == "image/jpeg" and np.abs(decoded.astype(int) - image).mean() < 3
        streamed = cv2.imdecode(np.frombuffer(read_first_part(base + "stream.mjpg"), np.uint8), cv2.IMREAD_COLOR)
        assert streamed.shape == (60, 80, 3)
        status, kind, body = get(base + "stats.json")
        payload = json.loads(body)
        assert kind == "application/json" and payload["frames"] == 1 and payload["info"] == {"backend": "fake"}
        assert payload["viewer"]["published"] == 1 and payload["viewer"]["clients_served"] == 1
        assert payload["viewer"]["max_clients"] == web.DEFAULT_MAX_CLIENTS
        status, headers, _ = raw_request(sink.port, request_line("GET", "/"))
        assert status == 200 and headers["referrer-policy"] == "no-referrer"  # the URL may hold the token
        assert headers["x-content-type-options"] == "nosniff" and "Python" not in headers["server"]
    with pytest.raises(OSError):
        get(base, timeout=2)  # closed with the sink


# --- who may connect ------------------------------------------------------------------------------


def test_address_rules(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(I2IError, match="plain http://"):
        WebSink.from_url("https://127.0.0.1:8080")
    with pytest.raises(I2IError, match="no path"):
        WebSink.from_url("http://127.0.0.1:8080/view")
    with pytest.raises(I2IError, match="no user or password .* protect it with a token"):
        WebSink.from_url("http://me:secret@127.0.0.1:8080")
    with pytest.raises(I2IError, match="at least one client slot"):
        WebSink("127.0.0.1", 0, max_clients=0)
    with WebSink.from_url("http://localhost:0") as local:
        assert local.url.startswith("http://127.0.0.1:") and local.view_url == local.url
        with pytest.raises(I2IError, match=f"cannot serve the viewer on 127.0.0.1:{local.port}"):
            WebSink("127.0.0.1", local.port)
    assert "not loopback" not in capsys.readouterr().err
    with WebSink("0.0.0.0", 0, insecure_public=True):  # the explicit opt-in; closed at once
        pass
    assert "not loopback) with no token (--insecure-public)" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.20", "viewer.example"])
def test_a_non_loopback_address_needs_a_token_or_the_opt_in(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def bind(*args: Any) -> None:
        raise AssertionError("a socket was opened before the access check")

    monkeypatch.setattr(web, "_Server", bind)  # the refusal comes before anything is served
    monkeypatch.setattr(web, "_Server6", bind)
    pattern = r"not loopback\) without authentication: set I2I_VIEWER_TOKEN .* --token auto .*--insecure-public"
    with pytest.raises(I2IError, match=pattern):
        WebSink(host, 0)
    url = f"http://[{host}]:0" if ":" in host else f"http://{host}:0"
    with pytest.raises(I2IError, match=pattern):
        WebSink.from_url(url) if host else WebSink(host, 0)
    if host:
        with pytest.raises(I2IError, match=pattern):
            check_viewer_url(url)
        check_viewer_url(url, token="long-random-token", bind=False)  # an address this machine may not have
    check_access(host, "long-random-token", False)  # a token is enough ...
    check_access(host, None, True)  # ... and so is the explicit opt-in
    with pytest.raises(AssertionError, match="socket was opened"):
        WebSink(host, 0, token="long-random-token")  # accepted: it goes on to bind


def test_token_rules() -> None:
    for bad in ("", "two words in a long token", "tab\there-and-long-enough", "naïve-but-long-enough"):
        with pytest.raises(I2IError, match="printable ASCII without spaces: use at least 16 characters"):
            check_access("127.0.0.1", bad, False)
    with pytest.raises(I2IError, match="--token and --insecure-public contradict"):
        check_access("0.0.0.0", "secret", True)
    for weak in ("t0k", "hunter2", "0123456789abcde", "a" * 40, "abab" * 8):  # short, or few distinct characters
        with pytest.raises(I2IError, match="too weak to survive guessing: use at least 16 characters .*openssl rand"):
            check_access("0.0.0.0", weak, False)
    with pytest.raises(I2IError, match="over 1024 characters"):
        check_access("0.0.0.0", "0123456789abcdef" * 65, False)
    check_access("0.0.0.0", "0123456789abcdef", False)  # 16 characters: 64 bits as hex
    check_access("0.0.0.0", web.access.generate_token(), False)
    check_access("127.0.0.1", None, False)  # loopback needs neither
    check_access("::1", None, False)
    check_access("localhost", None, False)


TOKEN = 'tok&en<"x>/=%-0123456789'  # characters that need quoting in a URL, an attribute and a JS string


def test_the_token_is_checked_on_every_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    compared: list[bytes] = []
    real_compare = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare)
    monkeypatch.setattr(web.access, "stderr_is_terminal", lambda: True)  # the address with the token: terminal only
    good = "?token=" + quote(TOKEN, safe="")
    patient = web.access.FailureBackoff(free=1000)  # this test's many wrong tries are not what it is about
    with WebSink("127.0.0.1", 0, token=TOKEN, backoff=patient) as sink:
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"viewer: {sink.url}{good}"  # click it
        assert sink.view_url == sink.url + good and TOKEN not in str(sink.path)  # the path goes into reports
        sink.configure(overlay=False).write(IMAGE)
        refused = [
            ("", {}),
            ("?token=wrong", {}),
            ("?token=" + quote(TOKEN[:-1], safe=""), {}),  # a prefix
            ("?token=" + quote(TOKEN + "x", safe=""), {}),
            ("?tok=" + quote(TOKEN, safe=""), {}),
            ("", {"Authorization": "Bearer wrong"}),
            ("", {"Authorization": f"Basic {TOKEN}"}),
            ("", {"Authorization": TOKEN}),
        ]
        for route in ("", "index.html", "stats.json", "frame.jpg", "stream.mjpg", "nope", "..%2f..%2fetc/passwd"):
            for query, headers in refused:
                status, _, body = get(sink.url + route + query, headers)
                assert (status, body) == (401, b"unauthorized\n"), (route, query, headers)  # nothing else told
        status, headers, _ = raw_request(sink.port, request_line("POST", "/stats.json"))
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")  # before the method is judged
        status, _, page = get(sink.url + good)
        assert status == 200  # the page's own requests carry the token, quoted
        assert f'src="stream.mjpg{good}"'.encode() in page and f'fetch("stats.json{good}"'.encode() in page
        assert TOKEN.encode() not in page  # never unquoted in the page
        assert get(sink.url + "stats.json" + good)[0] == 200
        assert get(sink.url + "index.html", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(sink.url + "frame.jpg", {"Authorization": f"bearer {TOKEN}"})[0] == 200
        assert read_first_part(sink.url + "stream.mjpg" + good)[:2] == JPEG_START
        assert read_first_part(sink.url + "stream.mjpg", {"Authorization": f"Bearer {TOKEN}"})[:2] == JPEG_START
        assert get(sink.url + "nope" + good)[0] == 404
    assert TOKEN.encode() in compared  # every check went through the constant-time comparison


def test_without_a_token_loopback_answers_only_loopback_host_names() -> None:
    """DNS rebinding: a page from evil.example that re-points its name at 127.0.0.1 still sends that Host."""
    with WebSink("127.0.0.1", 0) as sink:
        for host in ("evil.example", f"evil.example:{sink.port}", "127.0.0.1.evil.example", "[::1", ""):
            status, _, body = raw_request(sink.port, request_line("GET", "/stats.json", host=host))
            assert status == 403 and b"loopback" in body, host
        for host in (f"127.0.0.1:{sink.port}", f"localhost:{sink.port}", "LOCALHOST", "[::1]:8080", "127.0.0.2"):
            assert raw_request(sink.port, request_line("GET", "/stats.json", host=host))[0] == 200, host
    with WebSink("127.0.0.1", 0, token=LONG_TOKEN) as sink:  # with a token any name may be used
        assert raw_request(sink.port, request_line("GET", f"/?token={LONG_TOKEN}", host="viewer.example"))[0] == 200


# --- what is served -------------------------------------------------------------------------------


def test_only_the_known_routes_are_served() -> None:
    traversals = [
        "/../../etc/passwd",
        "/%2e%2e/",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/stream.mjpg/../../etc/passwd",
        "/./index.html",
        "/index.html/",
        "/frame.jpg%00.png",
        "/static/",
        "/.git/config",
        "/tests/",
        "/web.py",
        "http://127.0.0.1/etc/passwd",
        "/" + "a" * 8000,
    ]
    with WebSink("127.0.0.1", 0) as sink:
        for target in traversals:
            status, _, body = raw_request(sink.port, request_line("GET", target))
            assert (status, body) == (404, b"not found\n"), target  # no listing, no file, no echo of the path
        status, _, body = raw_request(sink.port, request_line("GET", "/" + "a" * 70_000))
        assert status == 414 and b"a" * 100 not in body  # the standard library's request-line limit


def test_other_methods_are_refused_without_a_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    with WebSink("127.0.0.1", 0) as sink:
        capfd.readouterr()
        for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"):
            status, headers, _ = raw_request(
                sink.port, request_line(method, "/stats.json", extra="Content-Length: 5\r\n") + b"hello"
            )
            assert status == 405 and headers["allow"] == "GET", method
        assert raw_request(sink.port, request_line("BREW", "/"))[0] == 501  # no such method at all
        for request, code in ((b"GET / NOT-HTTP\r\n\r\n", b"400"), (b"GET / HTTP/9.9\r\n\r\n", b"505")):
            with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as connection:
                connection.sendall(request)  # the standard library answers these with a bare error page
                assert b"Error code: " + code in connection.makefile("rb").read()
        assert get(sink.url + "stats.json")[0] == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.strip() == "", err


def test_a_failing_request_is_one_line_not_a_traceback(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with WebSink("127.0.0.1", 0) as sink:
        capfd.readouterr()

        def broken() -> dict[str, Any]:
            raise RuntimeError("boom")

        monkeypatch.setattr(sink, "stats_payload", broken)
        assert raw_request(sink.port, request_line("GET", "/stats.json"))[0] == 0  # hung up, no answer
        err = capfd.readouterr().err
        assert err == "warning: the viewer failed to answer a request: RuntimeError: boom\n", err
        monkeypatch.undo()
        assert get(sink.url + "stats.json")[0] == 200


# --- limits ---------------------------------------------------------------------------------------


def test_max_clients_then_503_and_a_slot_frees_when_a_viewer_leaves() -> None:
    with WebSink("127.0.0.1", 0, max_clients=2) as sink:
        held = [open_stream(sink), open_stream(sink)]
        assert viewers(sink) == 2
        status, headers, body = raw_request(sink.port, request_line("GET", "/stream.mjpg"))
        assert (status, body) == (503, b"busy: too many viewers\n") and headers["retry-after"]
        assert get(sink.url + "stats.json")[0] == 200  # the page and stats take no viewer slot
        assert sink.stats_payload()["viewer"]["clients_refused"] == 1
        held.pop().close()
        wait_until(lambda: viewers(sink) == 1, "the server noticing a viewer left (no frame was published)")
        sink.configure(overlay=False).write(IMAGE)
        assert read_first_part(sink.url + "stream.mjpg")[:2] == JPEG_START  # the freed slot is usable
        for connection in held:
            connection.close()


def keep_alive(sink: WebSink) -> socket.socket:
    """A connection that made one admitted request and stays open (HTTP/1.1 keep-alive)."""
    connection = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
    connection.sendall(b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reader = connection.makefile("rb")
    assert reader.readline().startswith(b"HTTP/1.1 200")
    lines = list(iter(reader.readline, b"\r\n"))  # the whole head, up to its blank line
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    assert len(reader.read(length)) == length  # and the whole body: nothing is left unread
    return connection


def test_admitted_connections_over_the_cap_get_503() -> None:
    """Admitted keep-alive connections cannot pile up threads: max_clients * CONNECTIONS_PER_CLIENT, then 503."""
    with WebSink("127.0.0.1", 0, max_clients=1) as sink:
        assert sink.max_connections == web.CONNECTIONS_PER_CLIENT
        held = [keep_alive(sink) for _ in range(sink.max_connections)]
        assert sink.connection_counts()["admitted"] == sink.max_connections
        status, headers, body = raw_request(sink.port, request_line("GET", "/"))
        assert (status, body) == (503, b"busy: too many connections\n") and headers["connection"] == "close"
        held.pop().close()
        wait_until(lambda: sink.connection_counts()["admitted"] == sink.max_connections - 1, "a slot released")
        assert raw_request(sink.port, request_line("GET", "/"))[0] == 200
        for connection in held:
            connection.close()


def test_a_connection_that_sends_nothing_is_closed() -> None:
    with WebSink("127.0.0.1", 0, header_timeout=0.3) as sink:
        with socket.create_connection(("127.0.0.1", sink.port), timeout=20) as connection:
            assert connection.recv(1) == b""  # the server hung up (the guard is the 20 s socket timeout)
        wait_until(lambda: sink.connection_counts()["open"] == 0, "the idle connection released")
    with WebSink("127.0.0.1", 0, idle_timeout=0.3) as sink:  # an admitted one, after its request
        with keep_alive(sink) as connection:
            assert connection.recv(1) == b""
        wait_until(lambda: sink.connection_counts()["open"] == 0, "the idle connection released")


# --- slow clients ---------------------------------------------------------------------------------


def test_a_stalled_viewer_never_blocks_write_and_skips_frames_instead_of_queueing() -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(2)]  # noise: ~200 KB JPEGs
    writes = 200  # ~40 MB of JPEG: far more than the socket buffers between server and client can hold
    # A send timeout longer than the test: the stalled viewer is not dropped, it holds its socket throughout.
    with WebSink("127.0.0.1", 0, send_timeout=120).configure(overlay=False) as sink:
        stalled = open_stream(sink, rcvbuf=4096)  # ... and from here on reads nothing
        writer = threading.Thread(target=lambda: [sink.write(frames[i % 2]) for i in range(writes)], daemon=True)
        writer.start()
        writer.join(timeout=30)  # only a hang guard
        assert not writer.is_alive(), "write() blocked behind a viewer that does not read"
        assert sink.frames_written == writes and sink.latest.seq == writes
        (client,) = sink.client_counts()  # all the writes returned while the stalled viewer was connected
        assert client["sent"] < writes  # it is far behind, and the pipeline did not wait for it
        # It reads again: it is sent the newest frame next, and what it missed is counted as skipped.
        drained: list[int] = []

        def drain() -> None:
            stalled.settimeout(30)
            while chunk := stalled.recv(1 << 20):
                drained.append(len(chunk))

        threading.Thread(target=drain, daemon=True).start()
        wait_until(lambda: sink.client_counts()[0]["last"] == writes, "the viewer caught up to the newest frame")
        (client,) = sink.client_counts()
        assert client["skipped"] > 0 and client["sent"] + client["skipped"] <= writes
        assert sink.stats_payload()["viewer"]["skipped"] == client["skipped"]
    stalled.close()


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
    assert received and received[0][:2] == JPEG_START  # a reading client got JPEG frames meanwhile


# --- the command line -----------------------------------------------------------------------------


def test_cli_refuses_a_public_viewer_without_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from i2i.runtime.cli import main

    monkeypatch.delenv(web.TOKEN_ENV, raising=False)
    args = [tmp_path / "absent.onnx", "--source", "pattern:32x24@0"]  # never opened: the check comes first
    result = invoke(main, [*args, "--sink", "http://0.0.0.0:0"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("Error: refusing to serve the viewer on 0.0.0.0")
    assert "--token" in lines[0] and "--insecure-public" in lines[0]
    result = invoke(main, [*args, "--sink", "http://0.0.0.0:0", "--token", "t0k", "--insecure-public"])
    assert result.exit_code == 1 and "contradict" in result.output
    result = invoke(main, [*args, "--sink", "http://0.0.0.0:0", "--token", "t0k"])
    assert result.exit_code == 1 and "too weak" in result.output
    result = invoke(main, [*args, "--sink", "null", "--token", "t0k", "--max-clients", "3"])
    assert result.exit_code == 1 and "--token, --max-clients: only for the browser viewer" in result.output
    result = invoke(main, [*args, "--sink", "http://127.0.0.1:0", "--max-clients", "0"])
    assert result.exit_code == 2 and "--max-clients" in result.output


def test_cli_passes_the_viewer_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from i2i.runtime.cli import main

    opened: list[dict[str, Any]] = []
    real_from_url = WebSink.from_url.__func__  # type: ignore[attr-defined]

    def from_url(cls: type[WebSink], url: str, **options: Any) -> WebSink:
        opened.append(options)
        return real_from_url(cls, url, **options)  # type: ignore[no-any-return]

    monkeypatch.setattr(WebSink, "from_url", classmethod(from_url))
    model = make_model(tmp_path / "m.onnx")
    stats = tmp_path / "stats.json"
    args = [model, "--source", "pattern:32x24@0", "--max-frames", "3", "--backend", "ort", "--no-progress"]
    viewer = ["--sink", "http://127.0.0.1:0", "--max-clients", "2", "--stats", stats]
    result = invoke(main, [*args, *viewer], env={web.TOKEN_ENV: LONG_TOKEN})
    assert result.exit_code == 0, result.output
    assert opened == [{"token": LONG_TOKEN, "insecure_public": False, "max_clients": 2}]
    assert re.search(r"viewer: http://127\.0\.0\.1:\d+/ \(every request needs the token", result.output)
    assert LONG_TOKEN not in result.output  # not a terminal: the output may be a log
    assert LONG_TOKEN not in stats.read_text()  # reports name the viewer without its token
    result = invoke(main, [*args, "--sink", "null"], env={web.TOKEN_ENV: LONG_TOKEN})
    assert result.exit_code == 0, result.output  # a token in the environment is no error for other sinks


# --- a real browser -------------------------------------------------------------------------------


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
    """With a token: the page's stream and stats requests must carry it, or the frame and stats never arrive."""
    binary = _chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium); the browser viewer is untested")
    sink = open_sink("http://127.0.0.1:0", view="side-by-side", viewer={"token": LONG_TOKEN})
    assert isinstance(sink, WebSink) and sink.view_url.endswith(f"/?token={LONG_TOKEN}")
    stop = threading.Event()
    done: list[StageStats] = []
    source = PatternSource(320, 240, fps=15)
    worker = threading.Thread(target=lambda: done.append(run_pipeline(source, FakeBackend(), sink, stop=stop)))
    with sink:
        worker.start()
        shot = tmp_path / "viewer.png"
        result = _chromium_run(binary, tmp_path / "profile-1", f"--screenshot={shot}", sink.view_url)
        assert shot.is_file(), result.stderr[-2000:]
        dom = _chromium_run(binary, tmp_path / "profile-2", "--dump-dom", sink.view_url).stdout
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
    # The stats panel: filled in by the page's script from stats.json (a refused fetch marks it "ended").
    frames = int(dom.split('id="frames">')[1].split("<")[0])
    fps = dom.split('id="fps">')[1].split("<")[0]
    assert frames > 0 and fps != "–" and float(fps) > 0, dom[-3000:]
    assert 'id="state">live<' in dom, dom[-3000:]
    assert "<td>infer</td>" in dom and "<td>e2e</td>" in dom
    assert done and done[0].interrupted and done[0].frames > 0
