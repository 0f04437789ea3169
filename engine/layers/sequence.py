"""Sequence heads: reduce (N, T, D) sequences to one vector per sample for a classifier."""
from __future__ import annotations

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Layer, ShapeError, TorchCode, fmt_shape


def _check_sequence(x) -> None:
    if len(x) != 3:
        raise ShapeError(f"expects sequences (N, steps, features), got {fmt_shape(x)}")


@register
class TakeLast(Layer):
    """Keeps only the last step of a sequence: (N, T, D) -> (N, D), as x[:, -1]."""

    formula = "y[n] = x[n, T−1]: the last of each sequence's T steps"
    backward_formula = "dL/dx[n, T−1] = dL/dy[n], 0 at every other step"
    category = "Shape"
    examples = (Example({}, ((3, 4, 2),)),)

    @staticmethod
    def infer(a, x):
        _check_sequence(x)
        return (x[0], x[2])

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape)
        return x[:, -1].copy()

    @staticmethod
    def backward(a, p, ctx, dy):
        (shape,) = ctx.saved
        dx = np.zeros(shape, dtype=dy.dtype)
        dx[:, -1] = dy
        return (dx,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{x}[:, -1]")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Gather", x, g.const(-1, np.int64), axis=1)


@register
class MeanPool(Layer):
    """Averages a sequence over time: (N, T, D) -> (N, D), as x.mean(dim=1)."""

    formula = "y[n] = (1/T)·Σ<sub>t</sub> x[n, t] over the T steps"
    backward_formula = "dL/dx[n, t] = dL/dy[n] / T at every step t"
    category = "Pooling"
    examples = (Example({}, ((3, 4, 2),)),)

    @staticmethod
    def infer(a, x):
        _check_sequence(x)
        return (x[0], x[2])

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape)
        return x.mean(axis=1)

    @staticmethod
    def backward(a, p, ctx, dy):
        (shape,) = ctx.saved
        dx = np.broadcast_to((dy / shape[1])[:, None, :], shape).copy()
        return (dx,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{x}.mean(dim=1)")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("ReduceMean", x, axes=[1], keepdims=0)
