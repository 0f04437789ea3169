"""Element-wise activation functions."""
from __future__ import annotations

import numpy as np

from engine.registry import register
from engine.spec import Example, Layer


@register
class ReLU(Layer):
    """Rectified linear unit: max(0, x)."""

    category = "Activation"
    examples = (Example({}, ((3, 4),)),)

    @staticmethod
    def infer(a, x):
        return x

    @staticmethod
    def forward(a, p, ctx, x):
        mask = x > 0
        ctx.save(mask)
        return x * mask

    @staticmethod
    def backward(a, p, ctx, dy):
        (mask,) = ctx.saved
        return (dy * mask,), {}


_ = np
