"""Browser viewer: ``--sink http://127.0.0.1:8080`` serves the translated stream to any browser.

``GET /`` is a page with the live MJPEG stream and a stats panel; ``/stream.mjpg`` is the
stream (multipart/x-mixed-replace, which every browser shows in an ``<img>``), ``/frame.jpg``
the latest frame, ``/stats.json`` the pipeline's figures. Standard library only
(``ThreadingHTTPServer``): a viewer should not pull a web framework into the runtime.

The pipeline never waits for a viewer. ``write`` only swaps in the newest frame; each client
thread encodes (once per frame, shared by all clients) and sends whatever is newest when its
socket is ready, so a slow client simply skips frames — counted per client, and in the stats
as ``viewer_skipped`` — and a stalled one is dropped after a send timeout.

It binds the loopback interface unless told otherwise: there is no authentication, so serving
the network is opt-in (``--sink http://0.0.0.0:8080``) and warned about.
"""

from __future__ import annotations

import html
import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import click
import cv2
import numpy as np

from i2i.errors import I2IError
from i2i.runtime.sinks import Sink

BOUNDARY = "i2iframe"
SEND_TIMEOUT_S = 5.0  # a client that cannot take a frame for this long is disconnected


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # client threads never keep the process alive or block close()
    sink: WebSink


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would bury the pipeline's own output

    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        sink = self.server.sink
        if route in ("/", "/index.html"):
            self._send(
                HTTPStatus.OK, "text/html; charset=utf-8", render_page(sink.title, sink.stats_payload()).encode()
            )
        elif route == "/stats.json":
            body = json.dumps(sink.stats_payload(), default=str).encode()
            self._send(HTTPStatus.OK, "application/json", body)
        elif route == "/frame.jpg":
            latest = sink.latest.jpeg()
            if latest is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"no frame yet\n")
            else:
                self._send(HTTPStatus.OK, "image/jpeg", latest[1])
        elif route == "/stream.mjpg":
            self._stream(sink)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, sink: WebSink) -> None:
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.connection.settimeout(SEND_TIMEOUT_S)
        client = sink.client_opened()
        sent = 0
        try:
            while not sink.latest.closed:
                newest = sink.latest.wait_newer(sent, timeout=1.0)
                if newest <= sent:
                    continue
                latest = sink.latest.jpeg()
                if latest is None:
                    continue
                seq, data = latest
                if sent and seq > sent + 1:
                    sink.client_skipped(client, seq - sent - 1)  # this client was too slow for them
                sent = seq
                part = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
                self.wfile.write(part)
                self.wfile.flush()
        except OSError:  # client went away, or stalled past the send timeout
            pass
        finally:
            sink.client_closed(client)


class WebSink(Sink):
    """Serves the output to browsers; see the module docstring."""

    overlay_default = True

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 80, title: str = "i2i") -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise I2IError(f"JPEG quality must be 1..100, got {quality}")
        self.title = title
        self.latest = _Latest(quality)
        self._clients_lock = threading.Lock()
        self._clients: dict[int, int] = {}  # client id -> frames it skipped
        self._next_client = 0
        self.skipped_total = 0
        self.clients_served = 0
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
        self.path = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, name="i2i-web", daemon=True)
        self._thread.start()
        if not _is_loopback(host):
            click.echo(
                f"warning: the viewer listens on {host} (not loopback): anyone who can reach this machine "
                "can watch the stream; there is no authentication",
                err=True,
            )
        click.echo(f"viewer: {self.url}", err=True)

    @classmethod
    def from_url(cls, url: str) -> WebSink:
        """``http://HOST:PORT``; an empty host or ``localhost`` means 127.0.0.1, port 0 a free one."""
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise I2IError(f"the viewer serves plain http://, not {parts.scheme}:// ({url})")
        if parts.path not in ("", "/") or parts.query:
            raise I2IError(f"give the viewer as http://HOST:PORT with no path, got {url}")
        try:
            port = parts.port if parts.port is not None else 8080
        except ValueError:
            raise I2IError(f"bad port in {url}") from None
        host = parts.hostname or "127.0.0.1"
        return cls("127.0.0.1" if host == "localhost" else host, port)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    # -- the sink side: called by the pipeline, never blocks on a client ------------------------
    def _write(self, image: np.ndarray, name: str | None) -> None:
        # A copy: the caller may reuse its buffer while clients still encode the previous frame.
        self.latest.publish(image.copy())

    def _close(self) -> None:
        self.latest.close()  # streaming handlers see it within a second and end their response
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the server side -------------------------------------------------------------------------
    def client_opened(self) -> int:
        with self._clients_lock:
            self._next_client += 1
            self._clients[self._next_client] = 0
            self.clients_served += 1
            return self._next_client

    def client_skipped(self, client: int, n: int) -> None:
        with self._clients_lock:
            self._clients[client] = self._clients.get(client, 0) + n
            self.skipped_total += n
        if self.stats is not None:
            self.stats.count("viewer_skipped", n)

    def client_closed(self, client: int) -> None:
        with self._clients_lock:
            self._clients.pop(client, None)

    def stats_payload(self) -> dict[str, Any]:
        with self._clients_lock:
            viewer = {
                "clients": len(self._clients),
                "clients_served": self.clients_served,
                "skipped": self.skipped_total,
                "published": self.latest.seq,
            }
        payload: dict[str, Any] = {"viewer": viewer}
        if self.stats is not None:
            payload["live"] = self.stats.snapshot()
            payload.update(self.stats.summary())
        return payload


def render_page(title: str, payload: dict[str, Any]) -> str:
    """The page with the stats panel already filled in, so it is right before its script first polls
    (and without JavaScript); the script then refreshes it from /stats.json twice a second."""

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
  <img id="stream" src="stream.mjpg" alt="live stream">
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
    const r = await fetch("stats.json", {cache: "no-store"});
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
