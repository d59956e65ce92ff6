"""Files written whole or not at all, torch-free: the one atomic-write primitive of i2i.

``atomic_file`` hands out a hidden temp file beside the target, fsyncs it and renames it into
place, so a full disk, a read-only folder, Ctrl-C or SIGTERM never leave a truncated file under
the final name, and the temp file is deleted on any exception. Everything that writes a file whole
goes through it: ``write_bytes``/``write_text`` here (reports, manifests, stats), and
``i2i.train.checkpoint.atomic_save`` (torch.save) and the TensorRT engine writer on top of it.

``write_bytes``/``write_text`` report every failure as one ``I2IError`` naming the file. A target
that exists and is not a regular file (``/dev/full``, ``/dev/stdout``, a named pipe) is written
in place: renaming over it would replace the device.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from i2i.errors import I2IError


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` complete or not at all.

    Written as a hidden temp file beside ``path``, fsynced, then renamed onto it. On any exception,
    Ctrl-C and SIGTERM included, the temp file is deleted and ``path`` keeps its old content. An
    OSError that names no file (a failed ``write``) is given ``path`` as its file name, so the one
    line a user sees says which file could not be written.
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Not tempfile.mkstemp: its files are 0600; this one gets the umask's mode, like open() gives.
        name = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        tmp = name
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            finish_despite_interrupts(lambda: tmp.unlink(missing_ok=True), reraise=False)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = str(target)
        raise


def finish_despite_interrupts(cleanup: Callable[[], None], reraise: bool = True) -> None:
    """Run ``cleanup`` to the end even when Ctrl-C or SIGTERM lands in it, then raise that interrupt.

    An interrupt that arrives while a temp file or folder is being removed (the normal end of a
    step as much as an error path) would otherwise stop the removal half way and leave the temp
    behind. The cleanup is run again until it completes; the first interrupt is re-raised after,
    so the command still stops with the signal's word and exit code. ``reraise=False`` is for
    cleanups on an error path: the exception already propagating is the one to report.
    SIGKILL still forces.
    """
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            cleanup()
            break
        except KeyboardInterrupt as exc:
            interrupted = interrupted or exc
    if interrupted is not None and reraise:
        raise interrupted


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A private temp folder in ``parent`` (default: the system temp folder), removed on any exit.

    Unlike ``tempfile.TemporaryDirectory``, an interrupt during the removal does not leave the
    folder behind (``finish_despite_interrupts``); the name is chosen before the folder is made, so
    no moment exists in which the folder is there and unknown to the cleanup.
    """
    path = Path(parent if parent is not None else tempfile.gettempdir()) / f"{prefix}{secrets.token_hex(4)}"

    def remove() -> None:
        shutil.rmtree(path, ignore_errors=True)

    try:
        path.mkdir(mode=0o700)
        yield path
    except BaseException:
        finish_despite_interrupts(remove, reraise=False)
        raise
    finish_despite_interrupts(remove)


def write_bytes(path: str | os.PathLike[str], data: bytes, what: str = "output") -> Path:
    """Write ``data`` to ``path`` atomically, creating its folder; returns the path."""
    target = Path(path)
    try:
        if target.exists() and not target.is_file():
            with open(target, "wb") as stream:  # a device or a pipe: no rename
                stream.write(data)
            return target
        with atomic_file(target) as stream:
            stream.write(data)
    except OSError as exc:
        raise I2IError(f"cannot write {what} {target}: {exc.strerror or exc}") from None
    return target


def write_text(path: str | os.PathLike[str], text: str, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder; returns the path."""
    return write_bytes(path, text.encode("utf-8"), what)
