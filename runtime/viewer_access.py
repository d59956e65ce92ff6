"""Who may use the browser viewer (``i2i.runtime.web``): its address, its token, and the wait after failed tries.

Everything here runs before a socket is opened or before a request reaches a route:
- ``check_access``: a non-loopback address needs a token (or the explicit ``insecure_public``); a token set
  by hand must be strong enough to survive guessing; ``--token auto`` asks for a generated one, which is
  shown once, on the terminal only.
- ``resolve_token``: the token from the command line, else from ``I2I_VIEWER_TOKEN`` (an environment
  variable is not in ``ps`` or ``/proc/PID/cmdline`` for other users, a command-line option is).
- ``check_viewer_url``: every check the viewer makes before serving, including a trial bind, so a
  command can fail at once instead of after loading its model.
- ``FailureBackoff``: after a few wrong tokens from one address, no further try from it is judged until
  a wait, doubling with each failure, has passed.
- ``from_another_site``: a browser's request made by another site's page (``Sec-Fetch-Site``), refused
  unless it opens the viewer's page itself, so no web page can embed the stream or hold its slots.
- ``public_info``: the run's description as the viewer shows it (no credentials, no absolute paths).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from i2i.errors import I2IError

TOKEN_ENV = "I2I_VIEWER_TOKEN"  # read by i2i-run's --token, and by resolve_token
GENERATE = "auto"  # --token auto: a random token, shown once on the terminal (too short to be one by hand)
MIN_TOKEN_CHARS = 16  # 16 hex digits are 64 bits; `openssl rand -hex 16` gives 32
MIN_DISTINCT_CHARS = 5  # refuses 'aaaaaaaaaaaaaaaa' and 'abababab…'; 16 random hex digits have ~10
MAX_TOKEN_CHARS = 1024  # an offered value longer than this is wrong without being compared
GENERATED_TOKEN_BYTES = 24  # 192 bits, 32 URL-safe characters
FAILURES_BEFORE_BACKOFF = 5  # wrong tokens in a row from one address before it has to wait
BACKOFF_FIRST_S = 1.0  # the first wait; each further failure doubles it ...
BACKOFF_MAX_S = 300.0  # ... up to this
BACKOFF_FORGET_S = 3600.0  # an address with no failure for this long starts afresh
BACKOFF_ADDRESSES = 4096  # addresses remembered at most (the oldest are forgotten first)
TOKEN_HINT = (
    f"use at least {MIN_TOKEN_CHARS} characters from a random generator, e.g. "
    f'`export {TOKEN_ENV}="$(openssl rand -hex 16)"`, or --token {GENERATE} for one generated and shown once'
)


def resolve_token(value: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token to use: ``value`` (a command-line option) when given, else ``I2I_VIEWER_TOKEN``
    (unset or empty: no token). ``auto`` stays as it is: the viewer generates the token when it starts."""
    if value is not None:
        return value
    return environ.get(TOKEN_ENV) or None


def generate_token() -> str:
    return secrets.token_urlsafe(GENERATED_TOKEN_BYTES)


def stderr_is_terminal() -> bool:
    """Is standard error a terminal? Only there is a token shown (a redirected stderr is a log)."""
    stream = sys.stderr
    return stream is not None and stream.isatty()


def check_token(token: str) -> None:
    """Refuse a token that is unusable in a URL or too weak to set by hand (``auto`` is generated)."""
    if token == GENERATE:
        return
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise I2IError(f"the viewer token must be printable ASCII without spaces: {TOKEN_HINT}")
    if len(token) > MAX_TOKEN_CHARS:
        raise I2IError(f"the viewer token is over {MAX_TOKEN_CHARS} characters")
    if len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_DISTINCT_CHARS:
        raise I2IError(f"the viewer token is too weak to survive guessing: {TOKEN_HINT}")


def check_access(host: str, token: str | None, insecure_public: bool) -> None:
    """Refuse to serve a non-loopback address with no token unless the user opted in, and refuse a weak
    token, or a generated one with no terminal to show it on (called before binding)."""
    if token is not None:
        if insecure_public:
            raise I2IError("--token and --insecure-public contradict each other: give one of them")
        check_token(token)
        if token == GENERATE and not stderr_is_terminal():
            raise I2IError(
                f"--token {GENERATE}: a generated token is shown only on a terminal, and standard error is not "
                f"one: set {TOKEN_ENV} instead"
            )
    elif not insecure_public and not is_loopback(host):
        raise I2IError(
            f"refusing to serve the viewer on {host or 'all interfaces'} (not loopback) without authentication: "
            f'set {TOKEN_ENV} (e.g. `export {TOKEN_ENV}="$(openssl rand -hex 16)"`) or give --token {GENERATE} '
            "for one generated and shown once, so every request must carry it; or pass --insecure-public "
            "to let anyone who can reach this machine watch"
        )


def parse_viewer_url(url: str) -> tuple[str, int]:
    """``http://HOST:PORT`` -> (host, port); an empty host or ``localhost`` means 127.0.0.1, port 0 a free
    one; an IPv6 address is written in brackets (``http://[::1]:8080``) and returned without them."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise I2IError(f"the viewer serves plain http://, not {parts.scheme}:// ({url})")
    if parts.path not in ("", "/") or parts.query:
        raise I2IError(f"give the viewer as http://HOST:PORT with no path, got {url}")
    if parts.username is not None:
        raise I2IError(f"the viewer address takes no user or password ({url}): protect it with a token")
    try:
        port = parts.port if parts.port is not None else 8080
    except ValueError:
        raise I2IError(f"bad port in {url}") from None
    host = parts.hostname or "127.0.0.1"
    return ("127.0.0.1" if host == "localhost" else host), port


def address_family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_error(host: str, port: int, error: OSError) -> I2IError:
    hint = "the port is in use: pick another one, e.g. http://127.0.0.1:8081" if error.errno == 98 else ""
    shown = f"[{host}]" if ":" in host else host
    return I2IError(f"cannot serve the viewer on {shown}:{port}: {error.strerror or error}; {hint}".rstrip("; "))


def check_bind(host: str, port: int) -> None:
    """Bind (and close at once) a socket like the viewer's: a port in use, an address this machine does
    not have or an address family it lacks is an error now, before anything slow has started."""
    try:
        with socket.socket(address_family(host), socket.SOCK_STREAM) as trial:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server: TIME_WAIT is no conflict
            trial.bind((host, port))
    except OSError as error:
        raise bind_error(host, port, error) from None


def check_viewer_url(url: str, token: str | None = None, insecure_public: bool = False, bind: bool = True) -> None:
    """Every check ``WebSink.from_url`` makes before it serves (with ``bind``, a trial bind of the address),
    so a command can fail before loading a model."""
    host, port = parse_viewer_url(url)
    check_access(host, token, insecure_public)
    if bind:
        check_bind(host, port)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def host_is_loopback(host_header: str) -> bool:
    """Does a Host header (``name``, ``name:port``, ``[v6]:port``) name a loopback address?"""
    try:
        name = urlsplit("//" + host_header).hostname or ""
    except ValueError:
        return False
    return is_loopback(name)


class FailureBackoff:
    """Wrong tokens per client address (an IPv6 address by its /64, which one host usually holds whole).

    The first ``free`` failures in a row cost nothing; then the address must wait ``first_s`` before its
    next try is judged, twice that after the next failure, up to ``max_s``. A right token resets it. Clients
    behind one address (one host, one NAT) share its wait; other addresses are never slowed.
    """

    def __init__(
        self,
        free: int = FAILURES_BEFORE_BACKOFF,
        first_s: float = BACKOFF_FIRST_S,
        max_s: float = BACKOFF_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.first_s, self.max_s, self.clock = free, first_s, max_s, clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # key -> (count, last, until)

    @staticmethod
    def key(address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def wait_s(self, address: str) -> float:
        """Seconds before a try from ``address`` is judged again (0: now)."""
        with self._lock:
            entry = self._failures.get(self.key(address))
        return 0.0 if entry is None else max(0.0, entry[2] - self.clock())

    def failed(self, address: str) -> None:
        key, now = self.key(address), self.clock()
        with self._lock:
            count, last, _ = self._failures.pop(key, (0, now, now))
            if now - last > BACKOFF_FORGET_S:
                count = 0
            count += 1
            wait = 0.0 if count < self.free else min(self.first_s * 2 ** (count - self.free), self.max_s)
            self._failures[key] = (count, now, now + wait)
            while len(self._failures) > BACKOFF_ADDRESSES:
                self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(self.key(address), None)


# -- requests from other sites ---------------------------------------------------------------------------
PAGE_ROUTES = ("/", "/index.html")


def from_another_site(headers: Message, path: str) -> bool:
    """A browser's request made by another site's page (its ``Sec-Fetch-Site``), other than a visit to the
    page itself: an ``<img>`` or a script elsewhere must not hold a viewer's slot (or, without a token, watch)."""
    site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
    if site not in ("cross-site", "same-site"):
        return False  # same-origin, none (typed or bookmarked), or not a browser
    visit = headers.get("Sec-Fetch-Mode") == "navigate" and headers.get("Sec-Fetch-Dest") == "document"
    return not (visit and path in PAGE_ROUTES)


# -- what the viewer shows about the run --------------------------------------------------------------
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s?#]*@")
PATH_KEYS = ("model", "source", "sink")  # stats.info entries that may hold a local path


def redact_credentials(text: str) -> str:
    """``rtsp://user:pass@cam/x`` -> ``rtsp://***@cam/x``, wherever a URL appears in ``text``."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def public_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """The run's description for the viewer: URLs without user, password or query; files by name only."""
    shown: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, str):
            value = redact_credentials(value)
            if "://" in value:
                head, sep, _ = value.partition("?")
                value = head + ("?…" if sep else "")
            elif key in PATH_KEYS and not value.startswith("pattern:"):
                value = re.split(r"[\\/]", value.rstrip("/\\"))[-1] or value
        shown[key] = value
    return shown
