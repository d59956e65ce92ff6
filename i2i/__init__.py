"""i2i: image-to-image translation from training to real-time deployment.

Installed as the ``i2i-toolkit`` distribution (``pip install 'i2i-toolkit[cpu]'``); the import name
is ``i2i``. The distribution has three layers, each in its own top-level folder:
``i2i.train`` (torch), ``i2i.export`` (torch + onnx) and ``i2i.runtime``
(numpy, OpenCV, ONNX Runtime; never torch).

The Python API (see the README's "Python API" section)::

    translator = i2i.load("model.onnx")          # -> i2i.Translator; torch-free for ONNX and engines
    frame_out = translator(frame_in)             # OpenCV BGR uint8 in, same size out
    result = i2i.export("model.pt", precision="fp16", engine="trt")   # -> i2i.ExportResult

Names are imported on first use, so ``import i2i`` stays cheap and loads no backend library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from i2i.api import TranslatedFrame, Translator, load
    from i2i.errors import I2IError
    from i2i.export.build import ExportResult
    from i2i.runtime.card import ModelCard

__all__ = ["ExportResult", "I2IError", "ModelCard", "TranslatedFrame", "Translator", "__version__", "export", "load"]

_LAZY = {
    "load": ("i2i.api", "load"),
    "Translator": ("i2i.api", "Translator"),
    "TranslatedFrame": ("i2i.api", "TranslatedFrame"),
    "ExportResult": ("i2i.export.build", "ExportResult"),
    "I2IError": ("i2i.errors", "I2IError"),
    "ModelCard": ("i2i.runtime.card", "ModelCard"),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "export":  # the callable i2i.export package (``i2i.export(checkpoint, ...)``)
        return importlib.import_module("i2i.export")
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'i2i' has no attribute {name!r}")
