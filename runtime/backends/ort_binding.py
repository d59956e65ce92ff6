"""IO binding for ONNX Runtime sessions: device buffers allocated once per batch shape and updated
in place (one host-to-device copy in, one device-to-host copy out), fixed for CUDA graphs."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from i2i.errors import I2IError

ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


class BoundRunner:
    """Runs a session through IO binding into buffers on ``device_type`` ('cuda' or 'cpu').

    Input and output OrtValues are allocated once per batch shape and updated in place (the last
    ``keep`` shapes are kept). ``fixed=True`` (CUDA graphs) allows one shape only: graphs replay
    kernels with the addresses they captured, so the buffers must never move; the first call
    fixes the batch size and shorter batches are padded.
    """

    keep: ClassVar[int] = 4

    def __init__(self, session: Any, device_type: str, device_id: int, fixed: bool) -> None:
        import onnxruntime

        self.ort = onnxruntime
        self.session = session
        self.device_type = device_type
        self.device_id = device_id
        self.fixed = fixed
        out_type = session.session.get_outputs()[0].type
        self._out_dtype = np.dtype(ORT_TYPES.get(out_type, "float32"))
        self._buffers: OrderedDict[tuple[int, ...], tuple[Any, Any, Any]] = OrderedDict()

    def _bound(self, shape: tuple[int, ...], batch: np.ndarray) -> tuple[Any, Any, Any]:
        """(binding, input, output) for ``shape``; new buffers are bound once, then reused."""
        if shape in self._buffers:
            self._buffers.move_to_end(shape)
            return self._buffers[shape]
        ort, where = self.ort, (self.device_type, self.device_id)
        # Allocated, not ortvalue_from_numpy: on the CPU that would alias the caller's array, and
        # update_inplace would then write later batches into it.
        source = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), batch.dtype, *where)
        # Image translation keeps the spatial size and the I/O layout, so the output has the
        # input's shape; its dtype is the graph output's.
        target = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), self._out_dtype, *where)
        binding = self.session.session.io_binding()
        binding.bind_ortvalue_input(self.session.input_name, source)
        binding.bind_ortvalue_output(self.session.output_name, target)
        self._buffers[shape] = (binding, source, target)
        if len(self._buffers) > self.keep:
            self._buffers.popitem(last=False)
        return binding, source, target

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if self.fixed and self._buffers:
            captured = next(iter(self._buffers))
            if batch.shape[1:] != captured[1:] or n > captured[0]:
                raise I2IError(
                    f"ort backend: CUDA graph captured for batches of shape {captured}; got {batch.shape} "
                    "(use a fixed --batch, or pass -O cuda_graph=false)"
                )
            if n < captured[0]:  # last, short batch: repeat the last frame to the captured size
                batch = np.concatenate([batch, np.repeat(batch[-1:], captured[0] - n, axis=0)])
        binding, source, target = self._bound(tuple(batch.shape), batch)
        source.update_inplace(batch)  # one host -> device copy into the fixed buffer
        self.session.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return target.numpy()[:n]  # one device -> host copy
