"""Browser viewer under attack: slow and silent sockets, guessed and doubled tokens, foreign sites, leaked
tokens and paths, IPv6. Every server listens on loopback, every attack uses a few dozen sockets at most and
stops by itself within seconds, and each test closes its server."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_web import IMAGE, JPEG_START, LONG_TOKEN, get, raw_request, read_first_part, request_line, wait_until

from i2i.errors import I2IError
from i2i.runtime import viewer_access as access
from i2i.runtime import web
from i2i.runtime.stats import StageStats
from i2i.runtime.web import WebSink, check_viewer_url

GOOD = f"?token={LONG_TOKEN}"


def closed_by_server(connection: socket.socket, wait_s: float) -> bool:
    """Did the server hang up (end of file or reset) within ``wait_s``?"""
    readable, _, _ = select.select([connection], [], [], wait_s)
    if not readable:
        return False
    try:
        return connection.recv(1) == b""
    except OSError:
        return True


class SlowLoris:
    """``count`` sockets that each send a request head one byte at a time, every ``interval_s``, for at most
    ``duration_s`` (then they close): the head never ends, so a server that waits for it waits forever."""

    def __init__(self, port: int, count: int, interval_s: float = 0.2, duration_s: float = 8.0) -> None:
        self.port, self.count, self.interval_s, self.duration_s = port, count, interval_s, duration_s
        self.stop = threading.Event()
        self.hung_up = 0  # sockets the server closed
        self.started = threading.Event()  # every socket connected and has sent its first byte
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        head = b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 10_000
        sockets = [socket.create_connection(("127.0.0.1", self.port), timeout=5) for _ in range(self.count)]
        deadline = time.monotonic() + self.duration_s
        try:
            for i in range(len(head)):
                if self.stop.is_set() or time.monotonic() > deadline:
                    break
                for connection in list(sockets):
                    try:
                        connection.send(head[i : i + 1])
                    except OSError:
                        sockets.remove(connection)
                        self.hung_up += 1
                self.started.set()
                self.stop.wait(self.interval_s)
        finally:
            for connection in sockets:
                connection.close()

    def __enter__(self) -> SlowLoris:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


# --- item: nobody locks everyone out without the token ------------------------------------------------


def test_slow_loris_sockets_do_not_keep_an_authenticated_client_out() -> None:
    """40 sockets trickling a never-ending request head (default limits: 8 streams, 32 admitted connections,
    32 waiting): the client with the token is still served, page, stats and stream."""
    with WebSink("127.0.0.1", 0, token=LONG_TOKEN) as sink:
        sink.configure(overlay=False).write(IMAGE)
        with SlowLoris(sink.port, count=40) as loris:
            wait_until(loris.started.is_set, "the attack under way")
            for _ in range(5):
                assert get(sink.url + "stats.json" + GOOD)[0] == 200
                assert get(sink.url + GOOD)[0] == 200
                assert loris.thread.is_alive(), "the attack ended before the client was served: nothing was shown"
                time.sleep(0.1)
            assert read_first_part(sink.url + "stream.mjpg" + GOOD)[:2] == JPEG_START
        counts = sink.stats_payload()["viewer"]
        assert counts["clients_refused"] == 0 and counts["clients_served"] == 1  # no slot went to the attack
        assert counts["pending_dropped"] > 0 and loris.hung_up > 0  # the oldest trickling sockets pushed out


def test_a_request_head_has_a_total_deadline_not_an_idle_one() -> None:
    """One byte every 0.1 s restarts an idle timeout forever; the head's deadline still ends it."""
    with WebSink("127.0.0.1", 0, token=LONG_TOKEN, header_timeout=0.5) as sink:
        with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as connection:
            hung_up = False
            for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 100:  # 141 x 0.1 s: 14 s in all
                try:
                    connection.send(bytes([byte]))
                except OSError:
                    hung_up = True
                if hung_up or (hung_up := closed_by_server(connection, 0.1)):
                    break
            assert hung_up, "the server waited for the whole trickled head"
        wait_until(lambda: sink.connection_counts()["open"] == 0, "the connection released")
        assert get(sink.url + GOOD)[0] == 200


def test_waiting_connections_are_bounded_and_the_oldest_makes_room() -> None:
    with WebSink("127.0.0.1", 0, max_pending=3) as sink:
        silent = [socket.create_connection(("127.0.0.1", sink.port), timeout=5) for _ in range(10)]
        wait_until(lambda: sink.pending_dropped == 7, "the oldest waiting connections pushed out")
        assert sink.connection_counts()["pending"] == 3
        assert all(closed_by_server(c, 5) for c in silent[:7]) and not closed_by_server(silent[-1], 0)
        assert get(sink.url + "stats.json")[0] == 200  # a real request pushes out one more, and is served
        for connection in silent:
            connection.close()


def test_a_refused_connection_gets_no_second_request() -> None:
    """An unknown method leaves an HTTP/1.1 connection open in the standard library: not here."""
    with WebSink("127.0.0.1", 0, token=LONG_TOKEN) as sink:
        with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as connection:
            connection.sendall(b"BREW / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /")
            data = b""
            while chunk := connection.recv(65536):  # ends: the server closed after its one answer
                data += chunk
        assert data.startswith(b"HTTP/1.1 501") and data.count(b"HTTP/1.1") == 1


# --- item: the token cannot be guessed in bulk --------------------------------------------------------


@pytest.fixture
def guarded() -> Iterator[tuple[WebSink, list[float]]]:
    """A viewer with a token whose backoff runs on a clock the test moves."""
    now = [0.0]
    backoff = access.FailureBackoff(free=3, first_s=10.0, max_s=40.0, clock=lambda: now[0])
    with WebSink("127.0.0.1", 0, token=LONG_TOKEN, backoff=backoff) as sink:
        yield sink, now


def test_exactly_one_token_per_request(guarded: tuple[WebSink, list[float]]) -> None:
    sink, _ = guarded
    bearer = f"Authorization: Bearer {LONG_TOKEN}\r\n"
    for target, extra in [
        (f"/?token=wrong&token={LONG_TOKEN}", ""),  # 3 501 guesses in one request were tried one by one
        (f"/?token={LONG_TOKEN}&token={LONG_TOKEN}", ""),
        (f"/{GOOD}", bearer),
    ]:
        status, _, body = raw_request(sink.port, request_line("GET", target, extra=extra))
        assert (status, body) == (400, b"bad request: give the token once\n"), target
    assert sink.token_failures == 3
    sink.backoff.succeeded("127.0.0.1")
    many = "&".join(f"token={i:06x}" for i in range(3501))  # 3 501 guesses in one request, as in the report
    assert raw_request(sink.port, request_line("GET", f"/?{many}"))[0] == 400
    assert raw_request(sink.port, request_line("GET", f"/{GOOD}"))[0] == 200
    assert raw_request(sink.port, request_line("GET", "/", extra=bearer))[0] == 200


def test_wrong_tokens_make_an_address_wait_and_other_addresses_do_not(
    guarded: tuple[WebSink, list[float]],
) -> None:
    sink, now = guarded

    def ask(token: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str]]:
        with socket.create_connection(("127.0.0.1", sink.port), timeout=5, source_address=(source, 0)) as c:
            c.sendall(request_line("GET", f"/stats.json?token={token}"))
            data = b"".join(iter(lambda: c.recv(65536), b""))
        head = data.partition(b"\r\n\r\n")[0].decode().split("\r\n")
        return int(head[0].split()[1]), {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}

    assert [ask(f"guess-{i:012d}")[0] for i in range(3)] == [401, 401, 401]  # the first three are free
    status, headers = ask(LONG_TOKEN)
    assert status == 429 and headers["retry-after"] == "10"  # even the right token waits: nothing is compared
    assert ask(LONG_TOKEN, source="127.0.0.2")[0] == 200  # another address is not slowed
    now[0] += 10.5
    assert ask("guess-again-000000")[0] == 401  # judged again; the wait doubles
    assert ask(LONG_TOKEN)[0] == 429 and sink.backoff.wait_s("127.0.0.1") == pytest.approx(20.0 - 0.0)
    now[0] += 20.5
    assert ask(LONG_TOKEN)[0] == 200 and sink.backoff.wait_s("127.0.0.1") == 0  # a right token resets it
    assert ask("guess-after-reset-0")[0] == 401
    assert get(sink.url + "stats.json")[0] == 401  # no token at all: nothing guessed, no wait
    assert sink.backoff.wait_s("127.0.0.1") == 0


def test_backoff_doubles_caps_and_groups_ipv6_by_its_64() -> None:
    now = [0.0]
    backoff = access.FailureBackoff(free=2, first_s=1.0, max_s=8.0, clock=lambda: now[0])
    waits = []
    for _ in range(7):
        backoff.failed("2001:db8::1")
        waits.append(backoff.wait_s("2001:db8::1"))
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.wait_s("2001:db8::ffff:1") == 8.0  # the same /64
    assert backoff.wait_s("2001:db8:0:1::1") == 0.0 and backoff.wait_s("10.0.0.1") == 0.0
    assert access.FailureBackoff.key("::ffff:10.0.0.1") == "10.0.0.1"
    backoff.succeeded("2001:db8::2")
    assert backoff.wait_s("2001:db8::1") == 0.0


# --- item: the token does not leak --------------------------------------------------------------------


def test_resolve_token_prefers_the_option_then_the_environment() -> None:
    assert access.resolve_token("from-option", {access.TOKEN_ENV: "from-env"}) == "from-option"
    assert access.resolve_token(None, {access.TOKEN_ENV: "from-env"}) == "from-env"
    assert access.resolve_token(None, {access.TOKEN_ENV: ""}) is None and access.resolve_token(None, {}) is None


def test_a_generated_token_is_shown_once_on_the_terminal_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(access, "stderr_is_terminal", lambda: False)
    with pytest.raises(I2IError, match="--token auto: a generated token is shown only on a terminal.*I2I_VIEWER"):
        WebSink("0.0.0.0", 0, token="auto")
    with pytest.raises(I2IError, match="shown only on a terminal"):
        check_viewer_url("http://0.0.0.0:0", token="auto")
    monkeypatch.setattr(access, "stderr_is_terminal", lambda: True)
    with WebSink("127.0.0.1", 0, token="auto") as sink:
        token = sink.token
        assert token is not None and token != "auto" and len(token) >= 32
        err = capsys.readouterr().err
        assert err == f"viewer: {sink.url}?token={token} (token generated for this run; it is not shown again)\n"
        assert get(sink.url + f"stats.json?token={token}")[0] == 200 and get(sink.url + "stats.json")[0] == 401
        assert token not in sink.path and token not in json.dumps(sink.stats_payload())
    with WebSink("127.0.0.1", 0, token="auto") as other:
        assert other.token != token  # a new one every run


def test_a_set_token_is_shown_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(access, "stderr_is_terminal", lambda: False)  # e.g. 2>run.log
    with WebSink("127.0.0.1", 0, token=LONG_TOKEN) as sink:
        err = capsys.readouterr().err
        assert LONG_TOKEN not in err and err.startswith(f"viewer: {sink.url} (every request needs the token")


# --- item: smaller ------------------------------------------------------------------------------------


def test_a_request_without_host_is_refused() -> None:
    for token in (None, LONG_TOKEN):
        with WebSink("127.0.0.1", 0, token=token) as sink:
            query = GOOD if token else ""
            for head in (f"GET /stats.json{query} HTTP/1.1\r\n\r\n", f"GET /stats.json{query} HTTP/1.0\r\n\r\n"):
                status, _, body = raw_request(sink.port, head.encode())
                assert (status, body) == (400, b"bad request: give one Host header\n"), (token, head)
            twice = request_line("GET", f"/stats.json{query}", extra="Host: evil.example\r\n")
            assert raw_request(sink.port, twice)[0] == 400


def test_every_response_carries_the_browser_protections() -> None:
    with WebSink("127.0.0.1", 0, token=LONG_TOKEN) as sink:
        sink.configure(overlay=False).write(IMAGE)
        for target in (f"/{GOOD}", f"/stats.json{GOOD}", f"/frame.jpg{GOOD}", "/stats.json", f"/nope{GOOD}"):
            status, headers, _ = raw_request(sink.port, request_line("GET", target))
            assert headers["cross-origin-resource-policy"] == "same-origin", target
            assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
            assert (
                headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
            )


def test_another_site_cannot_embed_the_stream() -> None:
    """Without a token a loopback viewer's Host check passes for an <img> on any page; its Sec-Fetch-Site does not."""
    embedded = "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n"
    with WebSink("127.0.0.1", 0, max_clients=1) as sink:
        sink.configure(overlay=False).write(IMAGE)
        for target in ("/stream.mjpg", "/frame.jpg", "/stats.json"):
            for site in ("cross-site", "same-site"):
                status, _, body = raw_request(
                    sink.port, request_line("GET", target, extra=embedded.replace("cross-site", site))
                )
                assert (status, body) == (403, b"forbidden: requests from other sites are refused\n"), target
        assert sink.stats_payload()["viewer"]["clients_served"] == 0  # no slot taken
        visit = "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n"
        assert raw_request(sink.port, request_line("GET", "/", extra=visit))[0] == 200  # a link to the page
        own = "Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n"
        assert raw_request(sink.port, request_line("GET", "/frame.jpg", extra=own))[0] == 200


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_an_ipv6_loopback_viewer() -> None:
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    check_viewer_url("http://[::1]:0")
    with web.WebSink.from_url("http://[::1]:0") as sink:
        assert sink.url.startswith("http://[::1]:") and sink.loopback
        assert get(sink.url + "stats.json")[0] == 200  # Host: [::1]:PORT is a loopback name
        with pytest.raises(I2IError, match=rf"cannot serve the viewer on \[::1\]:{sink.port}: .*in use"):
            check_viewer_url(f"http://[::1]:{sink.port}")


def test_check_viewer_url_binds_before_anything_is_loaded() -> None:
    with WebSink("127.0.0.1", 0) as sink:
        with pytest.raises(I2IError, match=rf"cannot serve the viewer on 127.0.0.1:{sink.port}: .*in use"):
            check_viewer_url(f"http://127.0.0.1:{sink.port}")
    check_viewer_url(f"http://127.0.0.1:{sink.port}")  # free again
    with pytest.raises(I2IError, match="cannot serve the viewer on 192.0.2.1:0"):  # TEST-NET: not this machine's
        check_viewer_url("http://192.0.2.1:0", token=LONG_TOKEN)


def test_stats_show_file_names_and_no_credentials() -> None:
    stats = StageStats()
    stats.info = {
        "model": "/home/someone/secret-project/models/sketch.onnx",
        "source": "rtsp://admin:hunter2@cam.local:554/live?auth=abc",
        "sink": "C:\\Users\\someone\\out",
        "backend": "ort CPU (cpu, fp32)",
        "batch": 1,
    }
    with WebSink("127.0.0.1", 0) as sink:
        sink.bind_stats(stats)
        payload: dict[str, Any] = json.loads(get(sink.url + "stats.json")[2])
        page = get(sink.url)[2].decode()
    assert payload["info"] == {
        "model": "sketch.onnx",
        "source": "rtsp://***@cam.local:554/live?…",
        "sink": "out",
        "backend": "ort CPU (cpu, fp32)",
        "batch": 1,
    }
    for secret in ("/home/someone", "hunter2", "admin", "auth=abc"):
        assert secret not in page and secret not in json.dumps(payload)
    assert stats.info["model"].startswith("/home/")  # the run's own record is untouched
