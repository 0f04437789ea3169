"""Layers that join or split tensors: Add (residual connections), Concat, Split (two outputs),
Chunk (one output per piece)."""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.sums import add
from layerloom.engine.layers.broadcast import broadcast_shapes, unbroadcast
from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Int, Layer, ShapeError, TorchCode, fmt_shape


def _axis(dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise ShapeError(f"dim {dim} is out of range for {ndim}-D tensors")
    return dim % ndim


@register
class Add(Layer):
    """Element-wise sum of two tensors (a residual connection), with numpy/PyTorch broadcasting."""

    formula = "y = a + b, element by element, with broadcasting"
    backward_formula = ("dL/da = dL/dy, dL/db = dL/dy, each summed over the axes it was broadcast "
                        "along")
    category = "Merge/Split"
    inputs = ("a", "b")
    examples = (Example({}, ((3, 4), (3, 4))), Example({}, ((2, 3, 4, 4), (2, 3, 1, 1))))

    @staticmethod
    def infer(a, x, y):
        return broadcast_shapes(x, y, "add")

    @staticmethod
    def forward(a, p, ctx, x, y):
        ctx.save(x.shape, y.shape)
        return add(x, y)  # split over the cores when large (kernels/sums.py)

    @staticmethod
    def backward(a, p, ctx, dy):
        shapes = ctx.saved
        if shapes[0] == shapes[1]:
            return (dy, dy), {}
        return tuple(unbroadcast(dy, s) for s in shapes), {}

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


@register
class Chunk(Layer):
    """Splits a tensor into pieces along one dim (torch.chunk), one output port per piece."""

    formula = ("y<sub>0</sub>, y<sub>1</sub>, … = x cut into {chunks} pieces along dim {dim}, each"
               " ⌈size / {chunks}⌉ long (the last may be shorter), as torch.chunk")
    backward_formula = "dL/dx = cat(dL/dy<sub>0</sub>, dL/dy<sub>1</sub>, …) along dim {dim}"
    category = "Merge/Split"
    outputs = ("y0", "y1")  # for the default chunks=2; ``outputs_for`` follows the attribute
    attrs = {"chunks": Int(2, "how many pieces (each output port is one)", min=2, max=16),
             "dim": Int(1, "the dim to cut (PyTorch's numbering; not the batch, 0)")}
    examples = (Example({}, ((2, 6),)), Example({"chunks": 3, "dim": -1}, ((2, 3, 7),)))

    @classmethod
    def outputs_for(cls, a) -> tuple:
        return tuple(f"y{i}" for i in range(a["chunks"]))

    @classmethod
    def label(cls, a) -> str:
        return f"{a['chunks']} along {a['dim']}"

    @staticmethod
    def _sizes(a, x) -> tuple:
        """(axis, piece sizes) as torch.chunk cuts: pieces of ceil(n / chunks), the last smaller."""
        d = _axis(a.dim, len(x))
        if d == 0:
            raise ShapeError("cannot chunk the batch dimension (dim 0)")
        n = x[d]
        size = -(-n // a.chunks)
        sizes = [min(size, n - start) for start in range(0, n, size)]
        if len(sizes) != a.chunks:
            raise ShapeError(f"{n} entries of dim {a.dim} cut in pieces of {size} make "
                             f"{len(sizes)}, not {a.chunks} (as torch.chunk); choose another chunks")
        return d, sizes

    @staticmethod
    def infer(a, x):
        d, sizes = Chunk._sizes(a, x)
        return tuple(tuple(s if i == d else v for i, v in enumerate(x)) for s in sizes)

    @staticmethod
    def forward(a, p, ctx, x):
        d, sizes = Chunk._sizes(a, x.shape)
        ctx.save(d)
        return tuple(np.ascontiguousarray(piece)
                     for piece in np.split(x, np.cumsum(sizes)[:-1], axis=d))

    @staticmethod
    def backward(a, p, ctx, *dys):
        (d,) = ctx.saved
        return (np.concatenate(dys, axis=d),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.chunk({{x}}, {a.chunks}, dim={a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        d, sizes = Chunk._sizes(a, in_shapes[0])
        return g.op("Split", x, g.const(sizes, np.int64), axis=d, outputs=a.chunks)
