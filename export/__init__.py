"""i2i.export: model.pt → ONNX (fp32/fp16/int8, tensor or frame I/O, static or dynamic shapes, card,
parity report) → TensorRT engine + sidecar → Triton model repository; ``inspect``.

The package is callable: ``i2i.export("model.pt", precision="fp16")`` is ``i2i.export.build.export``,
the one orchestration behind ``i2i-export`` and the bench suites. Importing it loads neither torch
nor onnx; the export itself does.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _ExportPackage(types.ModuleType):
    """``i2i.export`` is both the package and the ``export`` function of the Python API."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from i2i._entry import require_export

        source = args[0] if args else kwargs.get("checkpoint")
        if source is not None:  # without one, export() raises its own TypeError
            require_export(source, "i2i.export()")
        from i2i.export.build import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _ExportPackage
