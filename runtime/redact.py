"""Source and sink names as they may be shown or written: without the credentials a URL carries.

``rtsp://admin:hunter2@cam/stream`` is how many cameras are addressed, and the name of a source
appears in warnings (reconnects), errors, the ``--stats`` file, ``/stats.json`` and the viewer's
info line. Every one of them takes ``display_name(spec)``: the user and password become ``***``,
and so does the value of a query parameter that names a secret (``?password=``, ``&token=``, ...).
The real URL stays inside the source that opens it.
"""

from __future__ import annotations

import re

# scheme://userinfo@ ; userinfo is everything up to the last "@" before the path, so an unencoded
# "@" in a password is hidden whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")
_SECRET_KEYS = re.compile(
    r"(?P<key>[?&;](?:[^=&;#\s]*[_.-])?(?:pass(?:word|wd)?|pwd|token|secret|key|apikey|auth|sig(?:nature)?|credentials?))"
    r"=(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)
HIDDEN = "***"


def display_name(spec: str) -> str:
    """``spec`` with any URL's user:password and secret query values replaced by ``***``; a local
    path or camera index comes back unchanged."""
    if "://" not in spec:
        return spec
    shown = _USERINFO.sub(lambda m: f"{m['scheme']}{HIDDEN}@", spec)
    return _SECRET_KEYS.sub(lambda m: f"{m['key']}={HIDDEN}" if m["value"] else m[0], shown)
