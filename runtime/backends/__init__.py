"""Inference backends behind one interface (see ``base.Backend``), imported lazily by name."""

from i2i.runtime.backends.base import (
    BACKEND_MODULES,
    BASELINE,
    AutoTier,
    Backend,
    TensorSpec,
    available_backends,
    backend_names,
    backend_status,
    backends_for,
    get_backend,
    open_backend,
)
from i2i.runtime.card import ModelIO

__all__ = [
    "BACKEND_MODULES",
    "BASELINE",
    "AutoTier",
    "Backend",
    "ModelIO",
    "TensorSpec",
    "available_backends",
    "backend_names",
    "backend_status",
    "backends_for",
    "get_backend",
    "open_backend",
]
