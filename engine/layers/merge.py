"""Layers that join or split tensors: Add (residual connections), Concat, Split (two outputs)."""
from __future__ import annotations

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Int, Layer, ShapeError, TorchCode, fmt_shape


def _axis(dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise ShapeError(f"dim {dim} is out of range for {ndim}-D tensors")
    return dim % ndim


@register
class Add(Layer):
    """Element-wise sum of two tensors of the same shape (a residual connection)."""

    formula = "y = a + b, element by element"
    backward_formula = "dL/da = dL/dy, dL/db = dL/dy"
    category = "Merge/Split"
    inputs = ("a", "b")
    examples = (Example({}, ((3, 4), (3, 4))),)

    @staticmethod
    def infer(a, x, y):
        if tuple(x[1:]) != tuple(y[1:]):
            raise ShapeError(f"cannot add {fmt_shape(x)} and {fmt_shape(y)}: shapes differ")
        return x

    @staticmethod
    def forward(a, p, ctx, x, y):
        return x + y

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy, dy), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{a} + {b}")

    @staticmethod
    def to_onnx(a, in_shapes, g, x, y):
        return g.op("Add", x, y)


@register
class Concat(Layer):
    """Joins two tensors along one axis (dim counts the batch as 0, as torch.cat)."""

    formula = "y = cat(a, b) along dim {dim} (0 is the batch)"
    backward_formula = "dL/da, dL/db = dL/dy cut back at a's size along dim {dim}"
    category = "Merge/Split"
    inputs = ("a", "b")
    attrs = {"dim": Int(1, "axis to join along (0 is the batch)", min=-8, max=8)}
    examples = (Example({}, ((2, 3), (2, 4))), Example({"dim": -1}, ((2, 3, 2), (2, 3, 5))))

    @staticmethod
    def infer(a, x, y):
        if len(x) != len(y):
            raise ShapeError(f"cannot join {fmt_shape(x)} and {fmt_shape(y)}: ranks differ")
        d = _axis(a.dim, len(x))
        if d == 0:
            raise ShapeError("cannot join along the batch dimension (dim 0)")
        if any(p != q for i, (p, q) in enumerate(zip(x, y)) if i not in (0, d)):
            raise ShapeError(f"cannot join {fmt_shape(x)} and {fmt_shape(y)} along dim {a.dim}: "
                             f"other dimensions differ")
        return tuple(p + q if i == d else p for i, (p, q) in enumerate(zip(x, y)))

    @staticmethod
    def forward(a, p, ctx, x, y):
        d = a.dim % x.ndim
        ctx.save(x.shape[d])
        return np.concatenate([x, y], axis=d)

    @staticmethod
    def backward(a, p, ctx, dy):
        (n,) = ctx.saved
        da, db = np.split(dy, [n], axis=a.dim % dy.ndim)
        return (da, db), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.cat(({{a}}, {{b}}), dim={a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x, y):
        return g.op("Concat", x, y, axis=a.dim)


@register
class Split(Layer):
    """Splits a tensor in two along one axis: the first `split` entries, and the rest."""

    formula = "a = the first {split} entries of x along dim {dim} (0: half), b = the rest"
    backward_formula = "dL/dx = cat(dL/da, dL/db) along dim {dim}"
    category = "Merge/Split"
    outputs = ("a", "b")
    attrs = {"dim": Int(1, "axis to split (0 is the batch)", min=-8, max=8),
             "split": Int(0, "size of the first part; 0 splits in half", min=0)}
    examples = (Example({}, ((2, 6),)), Example({"dim": 2, "split": 1}, ((2, 3, 4),)))

    @staticmethod
    def _sizes(a, x) -> tuple:
        d = _axis(a.dim, len(x))
        if d == 0:
            raise ShapeError("cannot split the batch dimension (dim 0)")
        total = x[d]
        first = a.split or total // 2
        if not 0 < first < total:
            raise ShapeError(f"cannot split {total} entries of dim {a.dim} into {first} and "
                             f"{total - first}")
        return d, first

    @staticmethod
    def infer(a, x):
        d, first = Split._sizes(a, x)
        return (tuple(first if i == d else s for i, s in enumerate(x)),
                tuple(x[d] - first if i == d else s for i, s in enumerate(x)))

    @staticmethod
    def forward(a, p, ctx, x):
        d, first = Split._sizes(a, x.shape)
        ctx.save(d)
        return tuple(np.split(x, [first], axis=d))

    @staticmethod
    def backward(a, p, ctx, da, db):
        (d,) = ctx.saved
        return (np.concatenate([da, db], axis=d),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        d, first = Split._sizes(a, in_shapes[0])
        return TorchCode(f"torch.split({{x}}, [{first}, {in_shapes[0][d] - first}], dim={d})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        d, first = Split._sizes(a, in_shapes[0])
        sizes = g.const([first, in_shapes[0][d] - first], np.int64)
        return g.op("Split", x, sizes, axis=d, outputs=2)
