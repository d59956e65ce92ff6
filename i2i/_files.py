"""Small output files (JSON reports, Markdown tables) written whole or not at all, torch-free.

``write_text`` writes a hidden temp file beside the target and renames it into place, so a full
disk or a read-only folder never leaves a truncated report under the final name; every failure
is one ``I2IError`` naming the file. A target that exists and is not a regular file (``/dev/full``,
``/dev/stdout``, a named pipe) is written in place: renaming over it would replace the device.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from i2i.errors import I2IError


def write_text(path: str | os.PathLike[str], text: str, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder; returns the path."""
    target = Path(path)
    try:
        if target.exists() and not target.is_file():
            with open(target, "w", encoding="utf-8") as stream:  # a device or a pipe: no rename
                stream.write(text)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "x", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise I2IError(f"cannot write {what} {target}: {exc.strerror or exc}") from None
    return target
