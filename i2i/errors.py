"""Errors every command reports as one line (and the exit codes they map to).

Exit codes are the same for every i2i command:
  0  success
  1  failure: bad input file, unreadable video, parity below the bar, missing dependency ...
  2  usage error: unknown option, bad option value (raised by click)
130  interrupted by Ctrl-C (SIGINT): outputs written so far are valid
143  terminated by SIGTERM (``kill``, ``docker stop``, a job scheduler): handled exactly like Ctrl-C,
     so the same outputs are valid (a checkpoint from the last completed save, no half-written
     ONNX model or engine, a playable video)

130 and 143 are 128 + the signal number, as a shell reports them.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import click

# The name pip installs this project under (PyPI's `i2i` is an unrelated project): every hint names it.
DISTRIBUTION = "i2i-toolkit"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


def _editable_checkout() -> Path | None:
    """The checkout folder when i2i runs from one: an editable install (``pip install -e``), read from
    pip's ``direct_url.json`` (PEP 610), or the package imported straight from the repository (the
    folder above ``i2i/`` holds this project's pyproject.toml). None for an ordinary install."""
    # Every distribution of that name on sys.path: run from the checkout, its *.egg-info (no
    # direct_url.json) comes first, the venv's dist-info after it.
    for dist in metadata.distributions(name=DISTRIBUTION):
        try:
            info = json.loads(dist.read_text("direct_url.json") or "null")
        except ValueError:
            continue
        if not isinstance(info, dict) or not (info.get("dir_info") or {}).get("editable"):
            continue
        url = urlparse(str(info.get("url", "")))
        if url.scheme == "file":
            return Path(unquote(url.path))
    root = Path(__file__).resolve().parent.parent
    try:
        if f'name = "{DISTRIBUTION}"' in (root / "pyproject.toml").read_text(encoding="utf-8"):
            return root
    except OSError:
        pass
    return None


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` (``cpu``, ``gpu``, ``train`` ...) into the interpreter running
    now: ``<sys.executable> -m pip install 'i2i-toolkit[extra]'``, or ``-e '<checkout>[extra]'`` when i2i
    runs from an editable checkout (a plain install there would replace the checkout with the index's
    release). ``sys.executable`` because a bare ``pip`` may belong to another environment."""
    python = shlex.quote(sys.executable or "python3")
    checkout = _editable_checkout()
    if checkout is not None:
        return f"{python} -m pip install -e {shlex.quote(f'{checkout}[{extra}]')}"
    return f"{python} -m pip install {shlex.quote(f'{DISTRIBUTION}[{extra}]')}"


class I2IError(click.ClickException):
    """A failure the user can act on. Printed as ``Error: <message>``, exit code 1."""

    exit_code = EXIT_FAILURE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread the way Ctrl-C raises KeyboardInterrupt.

    A KeyboardInterrupt on purpose: every ``except KeyboardInterrupt`` cleanup (training's
    save-and-exit, the video sink's close, the atomic writers' temp-file removal) runs for it too.
    """


class Interrupted(I2IError):
    """Ctrl-C or SIGTERM after outputs were made safe; exit code 130 or 143 like a shell.

    Printed as ``Interrupted: <message>`` (``Terminated: <message>`` for SIGTERM); pass the caught
    KeyboardInterrupt as ``cause`` so the word and the exit code follow the signal.
    """

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.terminated = False
        if isinstance(cause, Terminated):
            self.mark_terminated()

    @property
    def exit_code(self) -> int:
        """130, or 143 once marked terminated: click declares ``exit_code`` a class attribute, this one
        follows the instance (click reads it from the exception it caught)."""
        return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED

    @exit_code.setter
    def exit_code(self, code: int) -> None:  # click's attribute is writable: only the two signal codes fit
        if code not in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            raise ValueError(f"an interruption exits with {EXIT_INTERRUPTED} or {EXIT_TERMINATED}, not {code}")
        self.terminated = code == EXIT_TERMINATED

    def mark_terminated(self) -> None:
        self.terminated = True

    def show(self, file: IO[Any] | None = None) -> None:
        word = "Terminated" if self.terminated else "Interrupted"
        click.echo(f"{word}: {self.format_message()}", file=file, err=True)


class MissingDependencyError(I2IError):
    """An optional library is not installed; the message names the pip extra."""

    def __init__(self, library: str | Sequence[str], extra: str, why: str = "") -> None:
        names = [library] if isinstance(library, str) else list(library)
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        verb = "is" if len(names) == 1 else "are"
        detail = f" ({why})" if why else ""
        super().__init__(f"{listed} {verb} not available{detail}; install it with: {install_hint(extra)}")
