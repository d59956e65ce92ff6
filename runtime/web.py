"""Browser viewer: ``--sink http://127.0.0.1:8080`` serves the translated stream to any browser.

``GET /`` is a page with the live MJPEG stream and a stats panel; ``/stream.mjpg`` is the
stream (multipart/x-mixed-replace, which every browser shows in an ``<img>``), ``/frame.jpg``
the latest frame, ``/stats.json`` the pipeline's figures. Standard library only
(``ThreadingHTTPServer``): a viewer should not pull a web framework into the runtime.

The pipeline never waits for a viewer. ``write`` only swaps in the newest frame; each client
thread encodes (once per frame, shared by all clients) and sends whatever is newest when its
socket is ready, so a slow client simply skips frames — counted per client, and in the stats
as ``viewer_skipped`` — and a stalled one is dropped after a send timeout.

Network surface, smallest first:
- It binds the loopback interface unless given a host. Any other address needs a token (every
  request must carry it as ``?token=…`` or ``Authorization: Bearer …``; compared in constant
  time) or an explicit ``insecure_public=True``; otherwise it refuses before opening a socket.
  Without a token, a loopback viewer answers only requests addressed to a loopback name, so a
  web page the user happens to visit cannot reach it through DNS rebinding.
- Only the routes in ``ROUTES`` exist: nothing is read from disk, so there is no listing and no
  traversal; any other path is 404, any method but GET 405.
- At most ``max_clients`` streams run at once (the next one gets 503 at once; a slot frees as
  soon as a viewer leaves), at most ``CONNECTIONS_PER_CLIENT`` times as many connections are
  served (a browser holds a keep-alive one or two beside its stream), and a connection that
  sends no request for ``idle_timeout`` seconds is closed: a flood of sockets cannot pile up
  threads.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import select
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import click
import cv2
import numpy as np

from i2i._cli import debug_enabled
from i2i.errors import I2IError
from i2i.runtime.sinks import Sink

BOUNDARY = "i2iframe"
TOKEN_ENV = "I2I_VIEWER_TOKEN"  # read by i2i-run's --token
DEFAULT_MAX_CLIENTS = 8
CONNECTIONS_PER_CLIENT = 4  # connections served per stream slot: the stream, plus the page's keep-alive ones
SEND_TIMEOUT_S = 5.0  # a client that cannot take a frame for this long is disconnected
IDLE_TIMEOUT_S = 15.0  # a connection that sends no request for this long is closed
TURN_AWAY_TIMEOUT_S = 2.0  # how long a connection over the cap may take to send the request we answer 503


def check_access(host: str, token: str | None, insecure_public: bool) -> None:
    """Refuse to serve a non-loopback address with no token unless the user opted in (called before binding)."""
    if token is not None:
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise I2IError(
                "the viewer token must be printable ASCII without spaces, e.g. --token $(openssl rand -hex 16)"
            )
        if insecure_public:
            raise I2IError("--token and --insecure-public contradict each other: give one of them")
    elif not insecure_public and not _is_loopback(host):
        raise I2IError(
            f"refusing to serve the viewer on {host or 'all interfaces'} (not loopback) without authentication: "
            f"give --token TEXT (or set {TOKEN_ENV}) so every request must carry it, or pass --insecure-public "
            "to let anyone who can reach this machine watch"
        )


def parse_viewer_url(url: str) -> tuple[str, int]:
    """``http://HOST:PORT`` -> (host, port); an empty host or ``localhost`` means 127.0.0.1, port 0 a free one."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise I2IError(f"the viewer serves plain http://, not {parts.scheme}:// ({url})")
    if parts.path not in ("", "/") or parts.query:
        raise I2IError(f"give the viewer as http://HOST:PORT with no path, got {url}")
    if parts.username is not None:
        raise I2IError(f"the viewer address takes no user or password ({url}): protect it with --token")
    try:
        port = parts.port if parts.port is not None else 8080
    except ValueError:
        raise I2IError(f"bad port in {url}") from None
    host = parts.hostname or "127.0.0.1"
    return ("127.0.0.1" if host == "localhost" else host), port


def check_viewer_url(url: str, token: str | None = None, insecure_public: bool = False) -> None:
    """Every check ``WebSink.from_url`` makes before it binds, so a command can fail before loading a model."""
    check_access(parse_viewer_url(url)[0], token, insecure_public)


class _Latest:
    """The newest frame, its sequence number and its JPEG (encoded at most once, on demand)."""

    def __init__(self, quality: int) -> None:
        self.quality = quality
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] | None = None
        self._encode_lock = threading.Lock()
        self.closed = False

    def publish(self, image: np.ndarray) -> None:
        with self._cond:
            self._image = image
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def seq(self) -> int:
        return self._seq

    def wait_newer(self, seq: int, timeout: float) -> int:
        """Block until a frame newer than ``seq`` exists (or timeout/close); returns the newest seq."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or self.closed, timeout=timeout)
            return self._seq

    def jpeg(self) -> tuple[int, bytes] | None:
        """(seq, JPEG bytes) of the newest frame; cv2.imencode releases the GIL while it works."""
        with self._encode_lock:
            with self._cond:
                image, seq = self._image, self._seq
            if image is None:
                return None
            if self._jpeg is None or self._jpeg[0] != seq:
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    return None
                self._jpeg = (seq, data.tobytes())
            return self._jpeg


@dataclass(eq=False)
class _Client:
    """One stream viewer: the last frame it was sent, and how many it got or skipped."""

    last: int = 0
    sent: int = 0
    skipped: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # client threads never keep the process alive or block close()
    sink: WebSink

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client leaving mid-answer is routine; anything else is one line (the traceback with --debug)."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"warning: the viewer failed to answer a request: {type(error).__name__}: {error}", err=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "i2i-viewer"
    sys_version = ""  # no Python version in the Server header
    admitted = False

    def setup(self) -> None:
        super().setup()
        sink = self.server.sink
        self.admitted = sink.connection_opened(self.connection)
        # A connection that sends no request in time is closed (handle_one_request catches the timeout);
        # one over the cap gets a short while to send the request we answer 503.
        idle = sink.idle_timeout if self.admitted else min(TURN_AWAY_TIMEOUT_S, sink.idle_timeout)
        self.connection.settimeout(idle)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.admitted:
                self.server.sink.connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would bury the pipeline's own output

    def end_headers(self) -> None:
        # On every response, errors included. The page's address may hold the token: never pass it on as a Referer.
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def do_GET(self) -> None:
        if not self._admit():
            return
        route = ROUTES.get(self.path.partition("?")[0])  # exact match: no file system behind it
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
        else:
            route(self, self.server.sink)

    def _not_allowed(self) -> None:
        if self._admit():
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", {"Allow": "GET"}, close=True)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _admit(self) -> bool:
        """False after answering a request that is over the connection cap, foreign or without the token.

        The answers say nothing about the routes or the token; the connection is closed after them, since a
        request body we did not read may follow.
        """
        sink = self.server.sink
        if not self.admitted:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"busy: too many connections\n", {"Retry-After": "5"}, True)
        elif not sink.host_allowed(self.headers.get("Host")):
            self._send(HTTPStatus.FORBIDDEN, b"forbidden: this viewer answers to loopback addresses only\n", close=True)
        elif not sink.authorised(self.headers.get("Authorization"), self.path.partition("?")[2]):
            headers = {"WWW-Authenticate": 'Bearer realm="i2i viewer"'}
            self._send(HTTPStatus.UNAUTHORIZED, b"unauthorized\n", headers, close=True)
        else:
            return True
        return False

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        headers: dict[str, str] | None = None,
        close: bool = False,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        self.wfile.write(body)

    # -- the routes --------------------------------------------------------------------------------
    def _page(self, sink: WebSink) -> None:
        page = render_page(sink.title, sink.stats_payload(), sink.token)
        self._send(HTTPStatus.OK, page.encode(), content_type="text/html; charset=utf-8")

    def _stats(self, sink: WebSink) -> None:
        body = json.dumps(sink.stats_payload(), default=str).encode()
        self._send(HTTPStatus.OK, body, content_type="application/json")

    def _frame(self, sink: WebSink) -> None:
        latest = sink.latest.jpeg()
        if latest is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n")
        else:
            self._send(HTTPStatus.OK, latest[1], content_type="image/jpeg")

    def _stream(self, sink: WebSink) -> None:
        client = sink.client_opened()
        if client is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"busy: too many viewers\n", {"Retry-After": "5"}, True)
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Connection", "close")
            self.end_headers()
            self.connection.settimeout(sink.send_timeout)
            while not sink.latest.closed:
                if sink.latest.wait_newer(client.last, timeout=0.5) <= client.last:
                    if _peer_gone(self.connection):  # noticed while idle, so its slot frees without a frame
                        return
                    continue
                latest = sink.latest.jpeg()
                if latest is None:
                    continue
                seq, data = latest
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                self.wfile.write(head.encode() + data + b"\r\n")
                sink.client_sent(client, seq)
        except OSError:  # client went away, or stalled past the send timeout
            pass
        finally:
            sink.client_closed(client)


ROUTES: dict[str, Callable[[_Handler, WebSink], None]] = {
    "/": _Handler._page,
    "/index.html": _Handler._page,
    "/stats.json": _Handler._stats,
    "/frame.jpg": _Handler._frame,
    "/stream.mjpg": _Handler._stream,
}


def _peer_gone(connection: socket.socket) -> bool:
    """True when the client has closed its end (its socket reads as end-of-file)."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class WebSink(Sink):
    """Serves the output to browsers; see the module docstring."""

    overlay_default = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        quality: int = 80,
        title: str = "i2i",
        *,
        token: str | None = None,
        insecure_public: bool = False,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        send_timeout: float = SEND_TIMEOUT_S,
        idle_timeout: float = IDLE_TIMEOUT_S,
    ) -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise I2IError(f"JPEG quality must be 1..100, got {quality}")
        if max_clients < 1:
            raise I2IError(f"the viewer needs at least one client slot, got max_clients={max_clients}")
        check_access(host, token, insecure_public)  # before a socket exists
        self.title = title
        self.token = token
        self.loopback = _is_loopback(host)
        self.max_clients = max_clients
        self.max_connections = max_clients * CONNECTIONS_PER_CLIENT
        self.send_timeout = send_timeout
        self.idle_timeout = idle_timeout
        self.latest = _Latest(quality)
        self._lock = threading.Lock()
        self._clients: set[_Client] = set()
        self._connections: set[socket.socket] = set()
        self.skipped_total = 0
        self.clients_served = 0
        self.clients_refused = 0
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            hint = "the port is in use: pick another one, e.g. http://127.0.0.1:8081" if exc.errno == 98 else ""
            raise I2IError(f"cannot serve the viewer on {host}:{port}: {exc.strerror}; {hint}".rstrip("; ")) from None
        self._server.sink = self
        address = self._server.server_address
        bound_host, bound_port = str(address[0]), int(address[1])
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}/"
        self.view_url = self.url + _token_query(token)  # what to open in a browser
        self.path = self.url  # recorded in stats and reports: never the token
        self._thread = threading.Thread(target=self._server.serve_forever, name="i2i-web", daemon=True)
        self._thread.start()
        if not self.loopback and token is None:
            click.echo(
                f"warning: the viewer listens on {host or 'all interfaces'} (not loopback) with no token "
                "(--insecure-public): anyone who can reach this machine can watch the stream",
                err=True,
            )
        click.echo(f"viewer: {self.view_url}", err=True)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        token: str | None = None,
        insecure_public: bool = False,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> WebSink:
        """``http://HOST:PORT`` (see ``parse_viewer_url``) with the access options of ``__init__``."""
        host, port = parse_viewer_url(url)
        return cls(host, port, token=token, insecure_public=insecure_public, max_clients=max_clients)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    # -- the sink side: called by the pipeline, never blocks on a client ------------------------
    def _write(self, image: np.ndarray, name: str | None) -> None:
        # A copy: the caller may reuse its buffer while clients still encode the previous frame.
        self.latest.publish(image.copy())

    def _close(self) -> None:
        self.latest.close()  # streaming handlers see it within half a second and end their response
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # also wakes a handler blocked sending to a stalled client
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the server side -------------------------------------------------------------------------
    def host_allowed(self, host_header: str | None) -> bool:
        """Without a token a loopback viewer answers only to loopback names: a page from elsewhere that
        rebinds its own domain to 127.0.0.1 still sends that domain as Host, and is refused."""
        if self.token is not None or not self.loopback or not host_header:
            return True
        try:
            name = urlsplit("//" + host_header).hostname or ""
        except ValueError:
            return False
        return _is_loopback(name)

    def authorised(self, authorization: str | None, query: str) -> bool:
        """Does the request carry the token, as ``?token=`` or ``Authorization: Bearer``?"""
        if self.token is None:
            return True
        expected = self.token.encode()
        offered = [value.encode() for value in parse_qs(query).get("token", [])]
        scheme, _, credential = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer":
            offered.append(credential.strip().encode("latin-1", "replace"))
        # compare_digest's time does not depend on where the two differ, so the token cannot be guessed bytewise.
        return any([hmac.compare_digest(value, expected) for value in offered])

    def connection_opened(self, connection: socket.socket) -> bool:
        """Count a connection in; False when the cap is reached (the handler then answers 503)."""
        with self._lock:
            if len(self._connections) >= self.max_connections:
                return False
            self._connections.add(connection)
            return True

    def connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def client_opened(self) -> _Client | None:
        """A stream slot, or None when all ``max_clients`` are taken."""
        with self._lock:
            if len(self._clients) >= self.max_clients:
                self.clients_refused += 1
                return None
            client = _Client()
            self._clients.add(client)
            self.clients_served += 1
            return client

    def client_sent(self, client: _Client, seq: int) -> None:
        """The client got frame ``seq``; the frames between its previous one and this it skipped."""
        skipped = seq - client.last - 1 if client.last else 0  # frames before it joined are not skips
        with self._lock:
            client.last = seq
            client.sent += 1
            client.skipped += skipped
            self.skipped_total += skipped
        if skipped and self.stats is not None:
            self.stats.count("viewer_skipped", skipped)

    def client_closed(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)

    def client_counts(self) -> list[dict[str, int]]:
        """Per connected stream viewer: the last frame sent to it, frames sent, frames skipped."""
        with self._lock:
            return [{"last": c.last, "sent": c.sent, "skipped": c.skipped} for c in self._clients]

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def stats_payload(self) -> dict[str, Any]:
        with self._lock:
            viewer = {
                "clients": len(self._clients),
                "max_clients": self.max_clients,
                "clients_served": self.clients_served,
                "clients_refused": self.clients_refused,
                "skipped": self.skipped_total,
                "published": self.latest.seq,
            }
        payload: dict[str, Any] = {"viewer": viewer}
        if self.stats is not None:
            payload["live"] = self.stats.snapshot()
            payload.update(self.stats.summary())
        return payload


def render_page(title: str, payload: dict[str, Any], token: str | None = None) -> str:
    """The page with the stats panel already filled in, so it is right before its script first polls
    (and without JavaScript); the script then refreshes it from /stats.json twice a second.

    With a ``token``, the page's own requests carry it as ``?token=…``: a browser sends no Authorization
    header for an ``<img>`` or a plain fetch. Fully URL-quoted, it is safe in an attribute and a JS string.
    """

    def ms(value: Any) -> str:
        return "–" if value is None else f"{value:.1f}"

    live = payload.get("live") or {}
    stages = payload.get("stages") or {}
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{ms(s['p50_ms'])}</td><td>{ms(s['p95_ms'])}</td>"
        f"<td>{ms(s['p99_ms'])}</td></tr>"
        for name, s in stages.items()
    )
    values = {
        "TITLE": html.escape(title),
        "QUERY": _token_query(token),
        "FPS": f"{live['fps']:.1f}" if "fps" in live else "–",
        "E2E": ms(stages.get("e2e", {}).get("p50_ms")),
        "FRAMES": str(payload.get("frames", 0)),
        "DROPPED": str(payload.get("dropped", 0)),
        "SKIPPED": str(payload["viewer"]["skipped"]),
        "ROWS": rows,
        "INFO": html.escape(" · ".join(f"{k}: {v}" for k, v in (payload.get("info") or {}).items())),
    }
    page = PAGE
    for key, value in values.items():
        page = page.replace("{{" + key + "}}", value)
    return page


def _token_query(token: str | None) -> str:
    return f"?token={quote(token, safe='')}" if token else ""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{TITLE}} viewer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { margin: 0; background: #111; color: #ddd; font: 14px/1.4 system-ui, sans-serif; display: flex;
         gap: 16px; padding: 16px; box-sizing: border-box; min-height: 100vh; }
  #view { flex: 1; min-width: 0; }
  #stream { max-width: 100%; max-height: calc(100vh - 64px); display: block; background: #000; }
  #panel { width: 300px; flex: none; }
  h1 { font-size: 16px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  td, th { padding: 2px 6px; text-align: right; border-bottom: 1px solid #333; }
  td:first-child, th:first-child { text-align: left; }
  .big { font-size: 28px; font-weight: 600; color: #fff; }
  #state { color: #8c8; } #state.ended { color: #c88; }
</style>
</head>
<body>
<div id="view">
  <h1>{{TITLE}} <span id="state">live</span></h1>
  <img id="stream" src="stream.mjpg{{QUERY}}" alt="live stream">
</div>
<div id="panel">
  <div><span class="big" id="fps">{{FPS}}</span> FPS</div>
  <div>end-to-end latency p50 <b id="e2e">{{E2E}}</b> ms</div>
  <div>frames <b id="frames">{{FRAMES}}</b> · dropped <b id="dropped">{{DROPPED}}</b>
    · viewer skipped <b id="skipped">{{SKIPPED}}</b></div>
  <table id="stages"><thead><tr><th>stage</th><th>p50</th><th>p95</th><th>p99</th></tr></thead>
  <tbody>{{ROWS}}</tbody></table>
  <p id="info">{{INFO}}</p>
</div>
<script>
const $ = (id) => document.getElementById(id);
const ms = (v) => (v === undefined || v === null) ? "–" : v.toFixed(1);
async function poll() {
  try {
    const r = await fetch("stats.json{{QUERY}}", {cache: "no-store"});
    const s = await r.json();
    const live = s.live || {};
    $("fps").textContent = (live.fps || 0).toFixed(1);
    $("frames").textContent = s.frames ?? 0;
    $("dropped").textContent = s.dropped ?? 0;
    $("skipped").textContent = s.viewer.skipped;
    const stages = s.stages || {};
    $("e2e").textContent = ms(stages.e2e && stages.e2e.p50_ms);
    $("stages").tBodies[0].innerHTML = Object.entries(stages).map(([name, v]) =>
      `<tr><td>${name}</td><td>${ms(v.p50_ms)}</td><td>${ms(v.p95_ms)}</td><td>${ms(v.p99_ms)}</td></tr>`).join("");
    $("info").textContent = Object.entries(s.info || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
    document.body.dataset.frames = s.frames ?? 0;
  } catch (e) {
    $("state").textContent = "ended"; $("state").className = "ended";
  }
}
poll(); setInterval(poll, 500);
</script>
</body>
</html>
"""
