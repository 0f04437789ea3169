"""Loss layers: reduce predictions and targets to the scalar that training minimises."""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.losses import xent_backward, xent_forward
from layerloom.engine.registry import register
from layerloom.engine.spec import Example, IntInput, Layer, ShapeError, TorchCode, fmt_shape


@register
class CrossEntropyLoss(Layer):
    """Softmax cross-entropy of logits against integer class labels (class scores on the last axis)."""

    category = "Loss"
    formula = "L = mean(−log softmax(input)[target]), softmax(z)<sub>k</sub> = e<sup>z<sub>k</sub></sup> / Σ<sub>j</sub> e<sup>z<sub>j</sub></sup>"
    backward_formula = "dL/dinput = (softmax(input) − onehot(target)) / n"
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
        z = np.ascontiguousarray(z, dtype=np.float64 if z.dtype == np.float64 else np.float32)
        t = t.reshape(-1).astype(np.int64, copy=False)
        prob = np.empty_like(z)
        loss, bad = xent_forward(z, t, prob) if len(t) else (np.nan, -1)  # no rows: mean of none
        if bad >= 0:
            raise ShapeError(f"a label is outside 0..{z.shape[1] - 1} (got {t.min()}..{t.max()})")
        ctx.save(prob, t, x.shape)
        return np.asarray(loss, dtype=x.dtype)

    @staticmethod
    def backward(a, p, ctx, dy):
        prob, t, shape = ctx.saved
        g = np.empty_like(prob)
        xent_backward(prob, t, float(dy) / max(len(t), 1), g)
        return (g.reshape(shape), None), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.cross_entropy({input}.reshape(-1, {input}.shape[-1]), "
                         "{target}.reshape(-1))")


@register
class MSELoss(Layer):
    """Mean squared error between predictions and real-valued targets of the same shape."""

    category = "Loss"
    formula = "L = mean((input − target)<sup>2</sup>)"
    backward_formula = "dL/dinput = 2 (input − target) / n"
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

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.mse_loss({input}, {target})")
