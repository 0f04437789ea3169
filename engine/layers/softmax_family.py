"""Activations along one dim: LogSoftmax, Softmin and GLU (as ``torch.nn``, dim counted PyTorch's
way: the batch is 0, -1 the last)."""
from __future__ import annotations

import numpy as np

from layerloom.engine.layers.axes import sample_axis
from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Int, Layer, ShapeError, TorchCode, fmt_shape


class _AlongDim(Layer):
    category = "Activation"
    attrs = {"dim": Int(-1, "the dim to normalise over (-1 = last)")}
    examples = (Example({}, ((3, 4),)), Example({"dim": 1}, ((2, 3, 4),)))

    @staticmethod
    def infer(a, x):
        if not -len(x) <= a.dim < len(x):
            raise ShapeError(f"dim {a.dim} is out of range for {len(x)}-D input")
        return x


@register
class LogSoftmax(_AlongDim):
    """log of Softmax, computed stably: log-probabilities for NLL-style losses."""

    formula = ("y<sub>i</sub> = x<sub>i</sub> − ln Σ<sub>j</sub> e<sup>x<sub>j</sub></sup> along "
               "dim {dim}")
    backward_formula = ("dL/dx<sub>i</sub> = dL/dy<sub>i</sub> − "
                        "e<sup>y<sub>i</sub></sup>·Σ<sub>j</sub> dL/dy<sub>j</sub>")

    @staticmethod
    def forward(a, p, ctx, x):
        shifted = x - x.max(axis=a.dim, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=a.dim, keepdims=True))
        ctx.save(y)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        (y,) = ctx.saved
        return (dy - np.exp(y) * dy.sum(axis=a.dim, keepdims=True),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.log_softmax({{x}}, dim={a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("LogSoftmax", x, axis=a.dim)


@register
class Softmin(_AlongDim):
    """Softmax of −x: the smallest entries get the largest probabilities."""

    formula = ("y<sub>i</sub> = e<sup>−x<sub>i</sub></sup> / Σ<sub>j</sub> "
               "e<sup>−x<sub>j</sub></sup> along dim {dim}")
    backward_formula = ("dL/dx<sub>i</sub> = −y<sub>i</sub>·(dL/dy<sub>i</sub> − Σ<sub>j</sub> "
                        "dL/dy<sub>j</sub>·y<sub>j</sub>)")

    @staticmethod
    def forward(a, p, ctx, x):
        e = np.exp(x.min(axis=a.dim, keepdims=True) - x)
        y = e / e.sum(axis=a.dim, keepdims=True)
        ctx.save(y)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        (y,) = ctx.saved
        return (-y * (dy - (dy * y).sum(axis=a.dim, keepdims=True)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.softmin({{x}}, dim={a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Softmax", g.op("Neg", x), axis=a.dim)


@register
class GLU(Layer):
    """Gated linear unit: splits dim in halves a and b and gives a·σ(b) (half as wide)."""

    formula = "a, b = the first and second halves of x along dim {dim}; y = a·σ(b)"
    backward_formula = "dL/da = dL/dy·σ(b), dL/db = dL/dy·a·σ(b)·(1 − σ(b)), side by side as dL/dx"
    category = "Activation"
    attrs = {"dim": Int(-1, "the dim to split in half (PyTorch's numbering; not the batch)")}
    examples = (Example({}, ((3, 4),)), Example({"dim": 1}, ((2, 6, 3),)))

    @staticmethod
    def infer(a, x):
        axis = sample_axis(a.dim, len(x))
        if x[axis] % 2:
            raise ShapeError(f"dim {a.dim} of {fmt_shape(x)} has {x[axis]} entries; GLU halves "
                             f"it, so it must be even")
        return tuple(s // 2 if i == axis else s for i, s in enumerate(x))

    @staticmethod
    def forward(a, p, ctx, x):
        axis = sample_axis(a.dim, x.ndim)
        first, gate = np.split(x, 2, axis=axis)
        e = np.exp(-np.abs(gate))
        s = np.where(gate >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save(first, s, axis)
        return first * s

    @staticmethod
    def backward(a, p, ctx, dy):
        first, s, axis = ctx.saved
        return (np.concatenate([dy * s, dy * first * s * (1 - s)], axis=axis),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.glu({{x}}, dim={a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        axis = sample_axis(a.dim, len(in_shapes[0]))
        half = in_shapes[0][axis] // 2
        first, gate = g.op("Split", x, g.const([half, half], np.int64), axis=axis, outputs=2)
        return g.op("Mul", first, g.op("Sigmoid", gate))
