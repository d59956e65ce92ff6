"""Browser viewer: ``--sink http://127.0.0.1:8080`` serves the translated stream to any browser.

``GET /`` is a page with the live MJPEG stream and a stats panel; ``/stream.mjpg`` is the
stream (multipart/x-mixed-replace, which every browser shows in an ``<img>``), ``/frame.jpg``
the latest frame, ``/stats.json`` the pipeline's figures. Standard library only
(``ThreadingHTTPServer``): a viewer should not pull a web framework into the runtime.

The pipeline never waits for a viewer. ``write`` only swaps in the newest frame; each client
thread encodes (once per frame, shared by all clients) and sends whatever is newest when its
socket is ready, so a slow client simply skips frames — counted per client, and in the stats
as ``viewer_skipped`` — and a stalled one is dropped after a send timeout.

Network surface, smallest first (the access rules themselves are in ``i2i.runtime.viewer_access``):
- It binds the loopback interface unless given a host (IPv4 or IPv6, ``http://[::1]:8080``). Any other
  address needs a token or an explicit ``insecure_public=True``; otherwise it refuses before opening a
  socket. A token must be strong (or generated: ``token="auto"``); every request must carry exactly one,
  as ``?token=…`` or ``Authorization: Bearer …`` (compared in constant time); after a few wrong ones an
  address waits, longer after each, before its next try is judged (HTTP 429).
- Every request must name its Host. Without a token, a loopback viewer answers only requests addressed
  to a loopback name (a page that rebinds its domain to 127.0.0.1 still sends that domain), and, like
  every response's ``Cross-Origin-Resource-Policy: same-origin``, a browser's request from another site
  (``Sec-Fetch-Site``) is refused unless it opens the page itself: no web page can embed the stream.
- Only the routes in ``ROUTES`` exist: nothing is read from disk, so there is no listing and no
  traversal; any other path is 404, any method but GET 405. ``/stats.json`` names files without
  their folders and sources without credentials.
- A new connection must deliver its whole request head within ``header_timeout`` seconds (a total,
  not an idle time that each byte restarts), and takes no slot until its request has passed the
  checks above. At most ``max_pending`` such connections wait; a new one pushes out the oldest, so
  sockets that trickle bytes or send nothing cannot keep a real client out. Admitted connections
  are capped at ``max_clients * CONNECTIONS_PER_CLIENT`` (a browser holds a keep-alive one or two
  beside its stream; the next gets 503), each waits at most ``idle_timeout`` for its next request,
  and at most ``max_clients`` streams run at once (503, a slot frees as soon as a viewer leaves).
"""

from __future__ import annotations

import enum
import hmac
import io
import json
import math
import select
import socket
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import click
import numpy as np

from i2i._cli import debug_enabled
from i2i.errors import I2IError
from i2i.runtime import viewer_access as access
from i2i.runtime.sinks import Sink
from i2i.runtime.viewer_access import TOKEN_ENV, check_access, check_viewer_url, parse_viewer_url, resolve_token
from i2i.runtime.viewer_frames import LatestFrame, StreamClient
from i2i.runtime.viewer_page import render_page, token_query

__all__ = ["BOUNDARY", "TOKEN_ENV", "WebSink", "check_access", "check_viewer_url", "parse_viewer_url", "resolve_token"]

BOUNDARY = "i2iframe"
DEFAULT_MAX_CLIENTS = 8
CONNECTIONS_PER_CLIENT = 4  # connections admitted per stream slot: the stream, plus the page's keep-alive ones
MAX_PENDING = 32  # connections whose request is not in yet; a new one pushes out the oldest
SEND_TIMEOUT_S = 5.0  # a client that cannot take a frame for this long is disconnected
HEADER_TIMEOUT_S = 10.0  # a new connection's whole request head must arrive within this (a total)
IDLE_TIMEOUT_S = 15.0  # an admitted connection's next request must arrive within this (a total)
SECURITY_HEADERS = {  # on every response, errors included
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's address may hold the token: never pass it on as a Referer
    "Cross-Origin-Resource-Policy": "same-origin",  # no other site's page may embed the stream or a frame
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; connect-src 'self'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


class Verdict(enum.Enum):
    """What a request's credentials come to."""

    ADMITTED = "admitted"
    MISSING = "missing"  # no token at all: nothing was guessed, nothing counted
    WRONG = "wrong"
    AMBIGUOUS = "ambiguous"  # more than one token: refused (and counted) without comparing any
    WAIT = "wait"  # the address is backing off after failures: not judged


class _HeadReader(io.RawIOBase):
    """The connection's reads, each given only what is left of ``deadline`` (``time.monotonic``): a
    request head must arrive whole in time, however its bytes trickle in. ``None``: the socket's timeout."""

    def __init__(self, connection: socket.socket, deadline: float | None) -> None:
        super().__init__()
        self.connection = connection
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request head did not arrive in time")
            self.connection.settimeout(left)
        return self.connection.recv_into(buffer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # client threads never keep the process alive or block close()
    request_queue_size = 64  # the listen backlog: a burst of connections is accepted, then judged
    sink: WebSink

    def process_request(self, request: Any, client_address: Any) -> None:
        self.sink.connection_opened(request)  # before its thread starts: may push out the oldest pending one
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.sink.connection_closed(request)  # however the handler ended
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client leaving mid-answer is routine; anything else is one line (the traceback with --debug)."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"warning: the viewer failed to answer a request: {type(error).__name__}: {error}", err=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "i2i-viewer"
    sys_version = ""  # no Python version in the Server header
    admitted = False  # has a request on this connection passed every check (it then holds a connection slot)
    requests = 0

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader that keeps the head's deadline
        self.reader = _HeadReader(self.connection, time.monotonic() + self.server.sink.header_timeout)
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self) -> None:
        if self.requests and not self.admitted:
            self.close_connection = True  # a connection that was not admitted gets one request, no second deadline
            return
        if self.requests:  # an admitted keep-alive connection: its next request head within idle_timeout
            self.reader.deadline = time.monotonic() + self.server.sink.idle_timeout
        self.requests += 1
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would bury the pipeline's own output

    def end_headers(self) -> None:
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
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
        """False after answering a request that is malformed, foreign, from another site, without the token,
        backing off, or over the connection cap; True once it has passed, and the connection holds a slot.

        The answers say nothing about the routes or the token; the connection is closed after them, since a
        request body we did not read may follow.
        """
        sink = self.server.sink
        self.reader.deadline = None  # the head is in: from here on only the send timeout applies
        self.connection.settimeout(sink.send_timeout)
        sink.head_received(self.connection)
        path, _, query = self.path.partition("?")
        hosts = self.headers.get_all("Host") or []
        verdict = Verdict.ADMITTED
        if len(hosts) != 1:
            self._send(HTTPStatus.BAD_REQUEST, b"bad request: give one Host header\n", close=True)
        elif not sink.host_allowed(hosts[0]):
            self._send(HTTPStatus.FORBIDDEN, b"forbidden: this viewer answers to loopback addresses only\n", close=True)
        elif access.from_another_site(self.headers, path):
            self._send(HTTPStatus.FORBIDDEN, b"forbidden: requests from other sites are refused\n", close=True)
        elif (verdict := sink.authorise(self.client_address[0], self.headers.get("Authorization"), query)) in (
            Verdict.MISSING,
            Verdict.WRONG,
        ):
            headers = {"WWW-Authenticate": 'Bearer realm="i2i viewer"'}
            self._send(HTTPStatus.UNAUTHORIZED, b"unauthorized\n", headers, close=True)
        elif verdict is Verdict.AMBIGUOUS:
            self._send(HTTPStatus.BAD_REQUEST, b"bad request: give the token once\n", close=True)
        elif verdict is Verdict.WAIT:
            wait = max(1, math.ceil(sink.backoff.wait_s(self.client_address[0])))
            headers = {"Retry-After": str(wait)}
            self._send(HTTPStatus.TOO_MANY_REQUESTS, b"too many wrong tokens: wait\n", headers, close=True)
        elif not sink.connection_admitted(self.connection):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"busy: too many connections\n", {"Retry-After": "5"}, True)
        else:
            self.admitted = True
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
        max_pending: int = MAX_PENDING,
        send_timeout: float = SEND_TIMEOUT_S,
        header_timeout: float = HEADER_TIMEOUT_S,
        idle_timeout: float = IDLE_TIMEOUT_S,
        backoff: access.FailureBackoff | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise I2IError(f"JPEG quality must be 1..100, got {quality}")
        if max_clients < 1 or max_pending < 1:
            raise I2IError(f"the viewer needs at least one client slot, got max_clients={max_clients}")
        check_access(host, token, insecure_public)  # before a socket exists
        self.title = title
        generated = token == access.GENERATE
        self.token = access.generate_token() if generated else token
        self.loopback = access.is_loopback(host)
        self.max_clients = max_clients
        self.max_connections = max_clients * CONNECTIONS_PER_CLIENT
        self.max_pending = max_pending
        self.send_timeout = send_timeout
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.backoff = backoff or access.FailureBackoff()
        self.latest = LatestFrame(quality)
        self._lock = threading.Lock()
        self._clients: set[StreamClient] = set()
        self._open: set[socket.socket] = set()  # every connection, to wake them all on close
        self._pending: OrderedDict[socket.socket, None] = OrderedDict()  # request not in yet; oldest first
        self._admitted: set[socket.socket] = set()
        self.skipped_total = 0
        self.clients_served = 0
        self.clients_refused = 0
        self.pending_dropped = 0
        self.token_failures = 0
        self._serve(host, port)
        if not self.loopback and token is None:
            click.echo(
                f"warning: the viewer listens on {host or 'all interfaces'} (not loopback) with no token "
                "(--insecure-public): anyone who can reach this machine can watch the stream",
                err=True,
            )
        self._announce(generated)

    def _serve(self, host: str, port: int) -> None:
        """Bind (IPv6 for an IPv6 address), record the address, and serve in a daemon thread."""
        server_class = _Server6 if access.address_family(host) == socket.AF_INET6 else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as exc:
            raise access.bind_error(host, port, exc) from None
        self._server.sink = self
        address = self._server.server_address
        bound_host, bound_port = str(address[0]), int(address[1])
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}/"
        self.view_url = self.url + token_query(self.token)  # what to open in a browser: shown on a terminal only
        self.path = self.url  # recorded in stats and reports: never the token
        self._thread = threading.Thread(target=self._server.serve_forever, name="i2i-web", daemon=True)
        self._thread.start()

    def _announce(self, generated: bool) -> None:
        """The address to open, once. With a token it is shown whole only on a terminal: a redirected
        standard error is a log, and the token must not end up in one."""
        if self.token is None:
            click.echo(f"viewer: {self.url}", err=True)
        elif access.stderr_is_terminal():
            made = " (token generated for this run; it is not shown again)" if generated else ""
            click.echo(f"viewer: {self.view_url}{made}", err=True)
        else:
            click.echo(
                f"viewer: {self.url} (every request needs the token, as ?token=... or "
                "Authorization: Bearer ...; the address with it is shown only on a terminal)",
                err=True,
            )

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
            connections = list(self._open)
        for connection in connections:  # also wakes a handler blocked sending to a stalled client
            _hang_up(connection)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- who is let in ---------------------------------------------------------------------------
    def host_allowed(self, host_header: str | None) -> bool:
        """Without a token a loopback viewer answers only to loopback names: a page from elsewhere that
        rebinds its own domain to 127.0.0.1 still sends that domain as Host, and is refused. A request
        without a Host is never allowed."""
        if not host_header:
            return False
        if self.token is not None or not self.loopback:
            return True
        return access.host_is_loopback(host_header)

    def authorise(self, address: str, authorization: str | None, query: str) -> Verdict:
        """Does the request carry the token, exactly once, as ``?token=`` or ``Authorization: Bearer``?
        Wrong and doubled tokens count against ``address``; while it backs off, nothing is compared."""
        if self.token is None:
            return Verdict.ADMITTED
        offered = [value for name, value in parse_qsl(query, keep_blank_values=True) if name == "token"]
        if authorization is not None:
            scheme, _, credential = authorization.strip().partition(" ")
            offered.append(credential.strip() if scheme.lower() == "bearer" else "")  # another scheme: wrong
        if not offered:
            return Verdict.MISSING
        if self.backoff.wait_s(address) > 0:
            return Verdict.WAIT
        verdict = Verdict.AMBIGUOUS if len(offered) > 1 else Verdict.WRONG
        if len(offered) == 1 and len(offered[0]) <= access.MAX_TOKEN_CHARS:
            # compare_digest's time does not depend on where the two differ: the token cannot be guessed bytewise.
            if hmac.compare_digest(offered[0].encode("utf-8", "replace"), self.token.encode()):
                self.backoff.succeeded(address)
                return Verdict.ADMITTED
        self.backoff.failed(address)
        with self._lock:
            self.token_failures += 1
        return verdict

    # -- connections -----------------------------------------------------------------------------
    def connection_opened(self, connection: socket.socket) -> None:
        """A new connection waits for its request; past ``max_pending`` waiting, the oldest is hung up."""
        with self._lock:
            self._open.add(connection)
            self._pending[connection] = None
            dropped = []
            while len(self._pending) > self.max_pending:
                dropped.append(self._pending.popitem(last=False)[0])
            self.pending_dropped += len(dropped)
        for old in dropped:
            _hang_up(old)  # its handler's read ends at once

    def head_received(self, connection: socket.socket) -> None:
        """The request is in: it is judged now, and no longer pushed out by newer connections."""
        with self._lock:
            self._pending.pop(connection, None)

    def connection_admitted(self, connection: socket.socket) -> bool:
        """A connection slot for a request that passed every check; False when all are taken (503)."""
        with self._lock:
            if connection in self._admitted:
                return True
            if len(self._admitted) >= self.max_connections:
                return False
            self._admitted.add(connection)
            return True

    def connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)
            self._pending.pop(connection, None)
            self._admitted.discard(connection)

    def connection_counts(self) -> dict[str, int]:
        """Open connections: all, still sending their request (``pending``), admitted."""
        with self._lock:
            return {"open": len(self._open), "pending": len(self._pending), "admitted": len(self._admitted)}

    # -- streams ---------------------------------------------------------------------------------
    def client_opened(self) -> StreamClient | None:
        """A stream slot, or None when all ``max_clients`` are taken."""
        with self._lock:
            if len(self._clients) >= self.max_clients:
                self.clients_refused += 1
                return None
            client = StreamClient()
            self._clients.add(client)
            self.clients_served += 1
            return client

    def client_sent(self, client: StreamClient, seq: int) -> None:
        """The client got frame ``seq``; the frames between its previous one and this it skipped."""
        skipped = seq - client.last - 1 if client.last else 0  # frames before it joined are not skips
        with self._lock:
            client.last = seq
            client.sent += 1
            client.skipped += skipped
            self.skipped_total += skipped
        if skipped and self.stats is not None:
            self.stats.count("viewer_skipped", skipped)

    def client_closed(self, client: StreamClient) -> None:
        with self._lock:
            self._clients.discard(client)

    def client_counts(self) -> list[dict[str, int]]:
        """Per connected stream viewer: the last frame sent to it, frames sent, frames skipped."""
        with self._lock:
            return [{"last": c.last, "sent": c.sent, "skipped": c.skipped} for c in self._clients]

    def stats_payload(self) -> dict[str, Any]:
        """What ``/stats.json`` and the page show: the viewer's counts and the pipeline's figures, its
        description without credentials or folders (``viewer_access.public_info``)."""
        with self._lock:
            viewer = {
                "clients": len(self._clients),
                "max_clients": self.max_clients,
                "clients_served": self.clients_served,
                "clients_refused": self.clients_refused,
                "skipped": self.skipped_total,
                "published": self.latest.seq,
                "pending_dropped": self.pending_dropped,
                "token_failures": self.token_failures,
            }
        payload: dict[str, Any] = {"viewer": viewer}
        if self.stats is not None:
            payload["live"] = self.stats.snapshot()
            payload.update(self.stats.summary())
            payload["info"] = access.public_info(payload.get("info") or {})
        return payload


def _hang_up(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
