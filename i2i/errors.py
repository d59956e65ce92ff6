"""Errors every command reports as one line (and the exit codes they map to).

Exit codes are the same for every i2i command:
  0  success
  1  failure: bad input file, unreadable video, parity below the bar, missing dependency ...
  2  usage error: unknown option, bad option value (raised by click)
130  interrupted by Ctrl-C (outputs written so far are valid)
"""

from __future__ import annotations

import click

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class I2IError(click.ClickException):
    """A failure the user can act on. Printed as ``Error: <message>``, exit code 1."""

    exit_code = EXIT_FAILURE


class Interrupted(I2IError):
    """Ctrl-C after outputs were made safe; exit code 130 like a shell."""

    exit_code = EXIT_INTERRUPTED


class MissingDependencyError(I2IError):
    """An optional library is not installed; the message names the pip extra."""

    def __init__(self, library: str, extra: str, why: str = "") -> None:
        hint = f"pip install 'i2i[{extra}]'"
        detail = f" ({why})" if why else ""
        super().__init__(f"{library} is not available{detail}; install it with: {hint}")
