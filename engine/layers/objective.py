"""Objective: any value of the graph as the quantity training minimises, with no target.

The founding example of Layerloom is the gradient of ``f(x, y, z) = 2x² + y³ + z``: x, y and z are
Parameter nodes, f is built from Pow, Scale and Add, and an Objective node marks f as what
``θ ← θ − γ∇θ f(θ)`` walks downhill. Such a graph has no Input and no Label, so it trains without a
data set (``engine.objective``). Wired after a model fed by data, it minimises the model's output
itself (an energy, a penalty) — the mean over the batch of each sample's sum.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Layer, TorchCode


@register
class Objective(Layer):
    """Minimise this value: the loss is the batch mean of the sum of each sample's entries."""

    category = "Loss"
    formula = ("L = (1/N)·Σ<sub>n</sub> Σ<sub>i</sub> x<sub>n,i</sub>: the value itself, summed "
               "per sample and averaged over the N samples (N = 1 when only Parameters feed it)")
    backward_formula = "dL/dx = 1/N for every entry"
    inputs = ("x",)
    outputs = ("loss",)
    is_loss = True
    examples = (Example({}, ((1, 1),)), Example({}, ((3, 4),)), Example({}, ((2, 3, 2),)))

    @staticmethod
    def infer(a, x):
        return ()

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape, x.dtype)
        return np.asarray(x.sum() / max(len(x), 1), dtype=x.dtype)

    @staticmethod
    def backward(a, p, ctx, dy):
        shape, dtype = ctx.saved
        return (np.full(shape, float(dy) / max(shape[0], 1), dtype=dtype),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{x}.sum() / {x}.shape[0]")
