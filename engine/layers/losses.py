"""Loss layers: reduce predictions and targets to the scalar that training minimises."""
from __future__ import annotations

import numpy as np

from engine.registry import register
from engine.spec import Example, IntInput, Layer, ShapeError, fmt_shape


@register
class CrossEntropyLoss(Layer):
    """Softmax cross-entropy of logits against integer class labels (class scores on the last axis)."""

    category = "Loss"
    inputs = ("input", "target")
    outputs = ("loss",)
    is_loss = True
    differentiable_inputs = ("input",)
    examples = (Example({}, ((5, 4), IntInput((5,), 4))),
                Example({}, ((2, 3, 6), IntInput((2, 3), 6))))

    @staticmethod
    def infer(a, x, t):
        if len(x) < 2:
            raise ShapeError(f"expects logits (N, classes), got {fmt_shape(x)}")
        if len(t) != len(x) - 1 or any(p is not None and q is not None and p != q
                                       for p, q in zip(x[1:-1], t[1:])):
            raise ShapeError(f"targets {fmt_shape(t)} do not match logits {fmt_shape(x)}: "
                             f"expects one class index per row of logits")
        return ()

    @staticmethod
    def forward(a, p, ctx, x, t):
        z = x.reshape(-1, x.shape[-1])
        t = t.reshape(-1)
        if t.size and (t.min() < 0 or t.max() >= z.shape[1]):
            raise ShapeError(f"a label is outside 0..{z.shape[1] - 1} (got {t.min()}..{t.max()})")
        m = z.max(axis=1, keepdims=True)  # log-sum-exp shift: exp never overflows
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        logp = z[np.arange(len(t)), t] - m[:, 0] - np.log(s[:, 0])
        ctx.save(e / s, t, x.shape)
        return np.asarray(-logp.mean(), dtype=x.dtype)

    @staticmethod
    def backward(a, p, ctx, dy):
        prob, t, shape = ctx.saved
        g = prob.copy()
        g[np.arange(len(t)), t] -= 1
        g *= dy / len(t)
        return (g.reshape(shape), None), {}


@register
class MSELoss(Layer):
    """Mean squared error between predictions and real-valued targets of the same shape."""

    category = "Loss"
    inputs = ("input", "target")
    outputs = ("loss",)
    is_loss = True
    examples = (Example({}, ((4, 3), (4, 3))),)

    @staticmethod
    def infer(a, x, t):
        if len(x) != len(t) or any(p is not None and q is not None and p != q for p, q in zip(x, t)):
            raise ShapeError(f"prediction {fmt_shape(x)} and target {fmt_shape(t)} differ in shape")
        return ()

    @staticmethod
    def forward(a, p, ctx, x, t):
        d = x - t
        ctx.save(d)
        return np.asarray((d * d).mean(), dtype=x.dtype)

    @staticmethod
    def backward(a, p, ctx, dy):
        (d,) = ctx.saved
        g = d * (2.0 * dy / d.size)
        return (g if ctx.needs_input_grad[0] else None,
                -g if ctx.needs_input_grad[1] else None), {}
