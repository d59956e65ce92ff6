"""Shared click plumbing: one-line errors, ``--debug`` tracebacks, lazy subcommands."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from i2i.errors import EXIT_FAILURE, EXIT_INTERRUPTED

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


class _ErrorHandlingMixin:
    def invoke(self, ctx: click.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            _handle(exc)


class Command(_ErrorHandlingMixin, click.Command):
    """A click command whose unexpected errors become one line and exit code 1."""


class Group(_ErrorHandlingMixin, click.Group):
    """A click group with the same error handling; subcommands may be lazy ("module:attr")."""

    command_class = Command

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
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
