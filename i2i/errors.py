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

from typing import IO, Any

import click

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


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

    def __init__(self, library: str, extra: str, why: str = "") -> None:
        hint = f"pip install 'i2i[{extra}]'"
        detail = f" ({why})" if why else ""
        super().__init__(f"{library} is not available{detail}; install it with: {hint}")
