"""Network registry: generators and discriminators are built by name.

``build_net("resnet", ngf=64, n_blocks=9)`` returns the module; ``NETS`` lists the names.
The checkpoint stores the registry name and the keyword arguments, so export and the
torch baseline rebuild exactly the network that was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from i2i.errors import I2IError

NETS: dict[str, Callable[..., nn.Module]] = {}
_Factory = TypeVar("_Factory", bound=Callable[..., nn.Module])


def register_net(name: str) -> Callable[[_Factory], _Factory]:
    """Register a network class (or a function building one) under ``name``; returned unchanged."""

    def deco(factory: _Factory) -> _Factory:
        if name in NETS:
            raise ValueError(f"network {name!r} registered twice")
        NETS[name] = factory
        return factory

    return deco


def build_net(name: str, **kwargs: Any) -> nn.Module:
    if name not in NETS:
        raise I2IError(f"unknown network {name!r}; valid: {', '.join(sorted(NETS))}")
    return NETS[name](**kwargs)


def _import_all() -> None:
    """Import every module of this package: a network is registered by its file existing."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_all()
