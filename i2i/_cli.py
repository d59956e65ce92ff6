"""Shared click plumbing: one-line errors, ``--debug`` tracebacks, SIGTERM as Ctrl-C, lazy subcommands."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import click

from i2i.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED, I2IError, Interrupted, Terminated

DEBUG_ENV = "I2I_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}" if not isinstance(exc, OSError) else text


def _handle(exc: Exception) -> None:
    """Turn an unexpected exception into one line on stderr and exit code 1."""
    if debug_enabled():
        traceback.print_exc()
    click.echo(f"Error: {_one_line(exc)} (set {DEBUG_ENV}=1 or pass --debug for the traceback)", err=True)
    sys.exit(EXIT_FAILURE)


# -- SIGTERM ------------------------------------------------------------------------------------
# Python's default for SIGTERM is to die on the spot: no checkpoint saved, no video trailer, temp
# files of atomic writes left behind. While a command runs, SIGTERM instead raises Terminated (a
# KeyboardInterrupt) in the main thread, so the cleanup written for Ctrl-C runs for it too.
@dataclass
class _SigtermState:
    pid: int = 0  # the process that installed the handler
    received: bool = False  # set by the handler, read when the command ends; reset after


_sigterm = _SigtermState()


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != _sigterm.pid:  # a forked child (a DataLoader worker): die as it would without us
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _sigterm.received:  # cleanup is already under way: let it finish (SIGKILL still forces)
        return
    _sigterm.received = True
    raise Terminated


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated for the duration of the block; the default is restored after.

    Installed by the outermost command only, in the main thread only (``signal.signal`` works
    nowhere else), and only over the default action: a handler installed by whoever embeds the
    command, or SIG_IGN from a parent, is left alone. ``i2i-train --nproc N`` runs torch's elastic
    launcher, which installs its own handler while the ranks run (it forwards the signal to them).
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    _sigterm.pid, _sigterm.received = os.getpid(), False
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _sigterm.received = False


class _ErrorHandlingMixin(click.Command):
    """Error handling for a click command class; listed before the click class it extends."""

    def invoke(self, ctx: click.Context) -> Any:
        with _sigterm_raises():
            return self._invoke_reporting_errors(ctx)

    def _invoke_reporting_errors(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Interrupted as exc:  # outputs made safe by the command; SIGTERM's code if it was SIGTERM
            if _sigterm.received:
                exc.mark_terminated()
            raise
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except SystemExit as exc:  # a command that reports its own interruption (i2i-run) exits 130
            if exc.code == EXIT_INTERRUPTED and _sigterm.received:
                raise SystemExit(EXIT_TERMINATED) from None
            raise
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, Terminated)
            click.echo("Terminated." if terminated else "Interrupted.", err=True)
            sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
        except Exception as exc:
            _handle(exc)


class Command(_ErrorHandlingMixin, click.Command):
    """A click command whose unexpected errors become one line and exit code 1."""


class Group(_ErrorHandlingMixin, click.Group):
    """A click group with the same error handling; subcommands may be lazy ("module:attr").

    ``summaries`` gives lazy subcommands their one-line help, so ``--help`` lists them without
    importing them (``i2i --help`` loads no torch); ``checks`` runs before a lazy subcommand is
    imported (e.g. that torch is installed, raising MissingDependencyError otherwise)."""

    command_class = Command

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, str] | None = None,
        summaries: dict[str, str] | None = None,
        checks: dict[str, Callable[[], None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})
        self._summaries = dict(summaries or {})
        self._checks = dict(checks or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            summary = self._summaries.get(name) if name in self._lazy else None
            if summary is None:
                cmd = self.get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                summary = cmd.get_short_help_str(formatter.width - 6 - max(map(len, self.list_commands(ctx))))
            rows.append((name, summary))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            if name in self._checks:
                self._checks[name]()
            module, attr = self._lazy[name].split(":")
            cmd = getattr(importlib.import_module(module), attr)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, name)


Group.group_class = Group


def debug_option(func: Any) -> Any:
    """``--debug``: show full tracebacks (same as I2I_DEBUG=1)."""

    def _set(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            os.environ[DEBUG_ENV] = "1"

    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set,
        help="Show full tracebacks on errors.",
    )(func)


def hw_option(
    *param_decls: str, square: bool = True, check: Callable[[tuple[int, int]], None] | None = None, **kwargs: Any
) -> Any:
    """A size option written ``HxW`` (height first, as everywhere in i2i), parsed by ``i2i.common.parse_hw``
    into (H, W) or None; a bad value is click's usage error (exit 2) naming the option. ``check`` may
    reject a parsed size with an I2IError (e.g. a value that looks like the other order)."""
    from i2i.common import parse_hw

    def _parse(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
        if value is None or value == "":
            return None
        try:
            size = parse_hw(value, what=param.opts[0], square=square)
            if check is not None:
                check(size)
        except I2IError as exc:
            raise click.BadParameter(exc.message) from None
        return size

    kwargs.setdefault("metavar", "HxW")
    return click.option(*param_decls, callback=_parse, **kwargs)
