"""Parity for exports that keep dropout on at test time (``--test-dropout``).

Such a graph draws a fresh mask per run (``RandomUniformLike``, from the ``torch.rand_like`` of
``i2i.train.checkpoint.ActiveDropout``), so comparing it with torch compares two random draws.
The export is checked in two parts instead:

1. **Everything but the draw**, exactly: the graph with each ``RandomUniformLike`` replaced by a
   tensor of its ``high`` (1.0: every unit kept, as ``rand >= p`` always holds) against the torch
   module whose dropout draws the same; the precision's usual bar applies (:func:`keep_every_unit`,
   :func:`torch_keep_every_unit`).
2. **The draw itself**, statistically (:func:`dropout_statistics`): the mean |Δ| between two runs on
   the same input, over ``pairs`` pairs of runs of the shipped graph and of the torch module. The
   two means must agree within ``Z`` standard errors (estimated from the pairs' spread, which
   includes the correlation between pixels that one dropped channel moves together) plus twice the
   precision's own mean error: ‖a′ − b′| − |a − b‖ ≤ |a′ − a| + |b′ − b| per element.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from i2i.train.checkpoint import ActiveDropout

RANDOM_OPS = ("RandomUniformLike",)  # what torch.rand_like exports to
Z = 5.0  # standard errors allowed: with 8 + 8 pairs (t, 14 df) a sound export fails once in ~5000
PAIRS = 8


def count_random_ops(model: onnx.ModelProto) -> int:
    return sum(node.op_type.startswith("Random") for node in model.graph.node)


def keep_every_unit(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` whose ``RandomUniformLike`` nodes give their ``high`` everywhere
    (``Expand(CastLike(high, x), Shape(x))``, or ``Cast`` to the node's ``dtype``); how many."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in out.graph.node:
        if node.op_type not in RANDOM_OPS:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        stem = f"i2i_kept{replaced}"
        value = numpy_helper.from_array(np.array(float(attrs.get("high", 1.0)), np.float32), f"{stem}_high")
        out.graph.initializer.append(value)
        like = node.input[0]
        if "dtype" in attrs:
            typed = helper.make_node("Cast", [value.name], [f"{stem}_typed"], to=int(attrs["dtype"]))
        else:
            typed = helper.make_node("CastLike", [value.name, like], [f"{stem}_typed"])
        shape = helper.make_node("Shape", [like], [f"{stem}_shape"])
        nodes += [typed, shape, helper.make_node("Expand", [f"{stem}_typed", f"{stem}_shape"], list(node.output))]
        replaced += 1
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out, replaced


class _KeptDropout(nn.Module):
    """``ActiveDropout`` whose draw is 1.0 everywhere: its exact arithmetic, every unit kept."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (torch.ones_like(x) >= self.p).to(x.dtype)
        return x * keep * (1.0 / (1.0 - self.p) if self.p < 1.0 else 0.0)


def torch_keep_every_unit(module: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``module`` with every ``ActiveDropout`` keeping every unit; how many there were."""
    kept = copy.deepcopy(module)
    count = 0
    for parent in list(kept.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ActiveDropout):
                setattr(parent, name, _KeptDropout(child.p))
                count += 1
    return kept, count


def _pair_changes(outputs: list[np.ndarray]) -> np.ndarray:
    """mean |y_2i − y_2i+1| of consecutive runs, one value per pair."""
    return np.array([np.abs(a.astype(np.float64) - b).mean() for a, b in zip(outputs[::2], outputs[1::2])])


def dropout_statistics(
    module: nn.Module,
    run: Callable[[np.ndarray], np.ndarray],
    kept_run: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    pairs: int = PAIRS,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean |Δ| between two runs on ``x``: the torch module (its dropout on) against the exported
    graph's ``run``, with the bound of the module docstring; ``kept_run`` is the graph with every
    unit kept, whose error against torch (kept alike) is the precision's own on this input."""
    kept_module, _ = torch_keep_every_unit(module)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        reference = [module(torch.from_numpy(x)).numpy() for _ in range(2 * pairs)]
        kept_reference = kept_module(torch.from_numpy(x)).numpy()
    precision_mean_abs = float(np.abs(kept_reference.astype(np.float64) - kept_run(x)).mean())
    exported = [np.asarray(run(x), dtype=np.float32) for _ in range(2 * pairs)]
    ours, theirs = _pair_changes(reference), _pair_changes(exported)
    standard_error = math.sqrt((ours.var(ddof=1) + theirs.var(ddof=1)) / pairs)
    bound = Z * standard_error + 2.0 * precision_mean_abs
    gap = abs(float(theirs.mean() - ours.mean()))
    active = bool(ours.mean() > 0) == bool(theirs.mean() > 0)
    return {
        "input": f"random {'x'.join(str(d) for d in x.shape)}",
        "pairs": pairs,
        "torch_mean_abs_change": float(ours.mean()),
        "exported_mean_abs_change": float(theirs.mean()),
        "gap": gap,
        "standard_error": standard_error,
        "precision_mean_abs": precision_mean_abs,
        "bound": bound,
        "passed": bool(active and gap <= bound),
    }


def statistics_input(size_multiple: int, batch: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """Uniform noise in [-1, 1]: the export's static batch and size, else one image of at least 128²."""
    m = max(1, size_multiple)
    h, w = size if size is not None else (m * max(1, math.ceil(128 / m)),) * 2
    return np.random.default_rng(0).uniform(-1, 1, (batch or 1, 3, h, w)).astype(np.float32)
