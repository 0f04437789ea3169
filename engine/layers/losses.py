"""Loss layers: reduce predictions and targets to the scalar that training minimises."""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.losses import xent_backward, xent_split
from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Int, IntInput, Layer, ShapeError, TorchCode, fmt_shape

IGNORE_INDEX = -100  # PyTorch's default: the label of a padded position (engine.data.pairs)


@register
class CrossEntropyLoss(Layer):
    """Softmax cross-entropy of logits against integer class labels (class scores on the last axis).

    Rows whose label is ``ignore_index`` (padding) add nothing and get no gradient; the mean is
    over the other rows, as ``F.cross_entropy(ignore_index=...)`` (NaN when every row is ignored).
    """

    category = "Loss"
    formula = "L = mean(−log softmax(input)[target]), softmax(z)<sub>k</sub> = e<sup>z<sub>k</sub></sup> / Σ<sub>j</sub> e<sup>z<sub>j</sub></sup>"
    backward_formula = "dL/dinput = (softmax(input) − onehot(target)) / n"
    inputs = ("input", "target")
    outputs = ("loss",)
    is_loss = True
    differentiable_inputs = ("input",)
    attrs = {"ignore_index": Int(IGNORE_INDEX, "rows with this label (padding) are left out of the "
                                               "loss and its mean, as PyTorch's ignore_index")}
    examples = (Example({}, ((5, 4), IntInput((5,), 4))),
                Example({}, ((2, 3, 6), IntInput((2, 3), 6))),
                Example({"ignore_index": 2}, ((2, 5, 4), IntInput((2, 5), 4))))

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
        ignore = a.get("ignore_index", IGNORE_INDEX)
        keep = t != ignore
        kept = None if keep.all() else np.flatnonzero(keep)  # the common case copies nothing
        if kept is not None:
            z, t = np.ascontiguousarray(z[kept]), t[kept]
        prob = np.empty_like(z)
        loss, bad = xent_split(z, t, prob) if len(t) else (np.nan, -1)  # no rows: mean of none
        if bad >= 0:
            raise ShapeError(f"a label is outside 0..{z.shape[1] - 1} (got {t.min()}..{t.max()}); "
                             f"{ignore} marks a position to ignore")
        ctx.save(prob, t, x.shape, kept)
        return np.asarray(loss, dtype=x.dtype)

    @staticmethod
    def backward(a, p, ctx, dy):
        prob, t, shape, kept = ctx.saved
        g = np.empty_like(prob)
        xent_backward(prob, t, float(dy) / max(len(t), 1), g)
        if kept is not None:  # ignored rows get no gradient
            full = np.zeros((int(np.prod(shape[:-1])), shape[-1]), g.dtype)
            full[kept] = g
            g = full
        return (g.reshape(shape), None), {}

    @staticmethod
    def to_torch(a, in_shapes):
        ignore = a.get("ignore_index", IGNORE_INDEX)
        extra = "" if ignore == IGNORE_INDEX else f", ignore_index={ignore}"
        return TorchCode("F.cross_entropy({input}.reshape(-1, {input}.shape[-1]), "
                         "{target}.reshape(-1)" + extra + ")")


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
