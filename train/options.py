"""Config fields that carry their own command-line help and bounds, beside their defaults.

``lr: float = option(2e-4, "Adam learning rate.", above=0)`` is a dataclass field whose metadata
``i2i.train.cli`` turns into ``--lr`` with that help and range. A subclass that only changes a
default (``epochs: int = 150``) keeps the help and bounds of the field it overrides.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    minimum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """A dataclass field with CLI metadata: ``help``; ``minimum`` (values below are a usage error);
    ``above`` (an exclusive lower bound, for rates and temperatures); ``choices`` (the valid words).
    Without ``default`` the field is required."""
    metadata: dict[str, Any] = {"help": help}
    if minimum is not None:
        metadata["minimum"] = minimum
    if above is not None:
        metadata["above"] = above
    if choices:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


def field_metadata(config_cls: type, name: str) -> dict[str, Any]:
    """The CLI metadata of field ``name``: its own, else that of the nearest base class defining it."""
    for cls in config_cls.__mro__:
        fields = getattr(cls, "__dataclass_fields__", {})
        if name in fields and fields[name].metadata:
            return dict(fields[name].metadata)
    return {}
