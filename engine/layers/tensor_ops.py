"""Tensor-shape operations as nodes: Slice, Repeat, Transpose, Permute, Squeeze, Unsqueeze.

Each is the PyTorch operation of the same name with PyTorch's dims (the batch is dim 0; these
layers never move, cut or repeat it), and moves values without changing them, so each backward
puts the gradient back where its value came from.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.layers.axes import sample_axis
from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Int, IntTuple, Layer, ShapeError, TorchCode, fmt_shape

INT_MAX = 2**31 - 1  # Slice's "to the end" (what PyTorch's exporter writes for an open end)


@register
class Slice(Layer):
    """Keeps entries start:end:step along one dim (x[:, start:end:step] for dim 1)."""

    formula = "y = x[{start}:{end}:{step}] along dim {dim}"
    backward_formula = "dL/dx = dL/dy at the kept entries, 0 elsewhere"
    category = "Merge/Split"
    attrs = {"dim": Int(1, "the dim to slice (PyTorch's numbering; the batch, 0, is kept whole)"),
             "start": Int(0, "first index kept (negative counts from the end)"),
             "end": Int(INT_MAX, f"index after the last kept (negative counts from the end; "
                                 f"{INT_MAX} = to the end)"),
             "step": Int(1, "keep every step-th entry", min=1)}
    examples = (Example({"start": 1, "end": 3}, ((2, 4),)),
                Example({"dim": 2, "start": -3, "step": 2}, ((2, 3, 6),)),
                Example({"dim": -1, "end": -1}, ((2, 2, 3, 4),)))

    @classmethod
    def label(cls, a) -> str:
        end = "" if a["end"] >= INT_MAX else a["end"]
        step = "" if a["step"] == 1 else f":{a['step']}"
        return f"dim {a['dim']} [{a['start']}:{end}{step}]"

    @staticmethod
    def _index(a, shape) -> tuple:
        axis = sample_axis(a.dim, len(shape))
        return axis, (slice(None),) * axis + (slice(a.start, a.end, a.step),)

    @staticmethod
    def infer(a, x):
        axis, index = Slice._index(a, x)
        size = len(range(*index[axis].indices(x[axis])))
        if size == 0:
            raise ShapeError(f"[{a.start}:{a.end}:{a.step}] keeps nothing of dim {a.dim} "
                             f"(size {x[axis]})")
        return tuple(size if i == axis else s for i, s in enumerate(x))

    @staticmethod
    def forward(a, p, ctx, x):
        _, index = Slice._index(a, x.shape)
        ctx.save(x.shape, index)
        return np.ascontiguousarray(x[index])

    @staticmethod
    def backward(a, p, ctx, dy):
        shape, index = ctx.saved
        dx = np.zeros(shape, dy.dtype)
        dx[index] = dy
        return (dx,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        axis = sample_axis(a.dim, len(in_shapes[0]))
        return TorchCode("{x}[" + ":, " * axis + f"{a.start}:{a.end}:{a.step}]")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        axis = sample_axis(a.dim, len(in_shapes[0]))
        ints = [g.const([v], np.int64) for v in (a.start, a.end, axis, a.step)]
        return g.op("Slice", x, *ints)


@register
class Repeat(Layer):
    """Tiles each sample: dim i is repeated repeats[i-1] times (x.repeat(1, *repeats), numpy's tile)."""

    formula = "y = x.repeat(1, *{repeats}): each sample tiled, dim i repeated repeats[i−1] times"
    backward_formula = "dL/dx = Σ of dL/dy over all the tiles"
    category = "Shape"
    attrs = {"repeats": IntTuple((2,), "how often to repeat each dim after the batch", min=1)}
    examples = (Example({}, ((2, 3),)), Example({"repeats": (2, 1, 3)}, ((2, 3, 2, 2),)))

    @classmethod
    def label(cls, a) -> str:
        return "×" + ",".join(map(str, a["repeats"]))

    @staticmethod
    def infer(a, x):
        if len(a.repeats) != len(x) - 1:
            raise ShapeError(f"repeats {tuple(a.repeats)} names {len(a.repeats)} dims, the input "
                             f"{fmt_shape(x)} has {len(x) - 1} after the batch")
        return (x[0], *[s * r for s, r in zip(x[1:], a.repeats)])

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape)
        return np.tile(x, (1, *a.repeats))

    @staticmethod
    def backward(a, p, ctx, dy):
        (shape,) = ctx.saved
        split = [shape[0]]
        for r, s in zip(a.repeats, shape[1:]):
            split += [r, s]
        summed = dy.reshape(split).sum(axis=tuple(range(1, len(split), 2)))
        return (summed,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"{{x}}.repeat(1, {', '.join(map(str, a.repeats))})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Tile", x, g.const([1, *a.repeats], np.int64))


@register
class Transpose(Layer):
    """Swaps two dims (torch.transpose), e.g. (N, C, L) to (N, L, C)."""

    formula = "y = x with dims {dim0} and {dim1} swapped"
    backward_formula = "dL/dx = dL/dy with dims {dim0} and {dim1} swapped back"
    category = "Shape"
    attrs = {"dim0": Int(1, "one dim to swap (PyTorch's numbering; not the batch, 0)"),
             "dim1": Int(2, "the other dim")}
    examples = (Example({}, ((2, 3, 4),)), Example({"dim0": -1, "dim1": 1}, ((2, 3, 2, 4),)))

    @classmethod
    def label(cls, a) -> str:
        return f"{a['dim0']}↔{a['dim1']}"

    @staticmethod
    def _perm(a, ndim: int) -> list:
        i, j = sample_axis(a.dim0, ndim, "dim0"), sample_axis(a.dim1, ndim, "dim1")
        perm = list(range(ndim))
        perm[i], perm[j] = j, i
        return perm

    @staticmethod
    def infer(a, x):
        return tuple(x[i] for i in Transpose._perm(a, len(x)))

    @staticmethod
    def forward(a, p, ctx, x):
        return np.ascontiguousarray(np.transpose(x, Transpose._perm(a, x.ndim)))

    @staticmethod
    def backward(a, p, ctx, dy):  # a swap is its own inverse
        return (np.ascontiguousarray(np.transpose(dy, Transpose._perm(a, dy.ndim))),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.transpose({{x}}, {a.dim0}, {a.dim1})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Transpose", x, perm=Transpose._perm(a, len(in_shapes[0])))


@register
class Permute(Layer):
    """Reorders the dims (x.permute(*dims)); dims starts with 0, the batch, which stays first."""

    formula = "y = x.permute{dims}: y's dim i is x's dim dims[i]"
    backward_formula = "dL/dx = dL/dy permuted by the inverse order"
    category = "Shape"
    attrs = {"dims": IntTuple((0, 2, 1), "the new order of all dims, batch (0) first")}
    examples = (Example({}, ((2, 3, 4),)), Example({"dims": (0, 2, 3, 1)}, ((2, 3, 2, 4),)),
                Example({"dims": (0, -1, 1, 2)}, ((2, 3, 2, 4),)))

    @classmethod
    def label(cls, a) -> str:
        return ",".join(map(str, a["dims"]))

    @staticmethod
    def _perm(a, ndim: int) -> list:
        if len(a.dims) != ndim:
            raise ShapeError(f"dims {tuple(a.dims)} orders {len(a.dims)} dims, the input has "
                             f"{ndim} (the batch included)")
        perm = [d % ndim if -ndim <= d < ndim else d for d in a.dims]
        if sorted(perm) != list(range(ndim)):
            raise ShapeError(f"dims {tuple(a.dims)} is not an order of 0…{ndim - 1}")
        if perm[0] != 0:
            raise ShapeError(f"dims {tuple(a.dims)} moves the batch: start with 0")
        return perm

    @staticmethod
    def infer(a, x):
        return tuple(x[i] for i in Permute._perm(a, len(x)))

    @staticmethod
    def forward(a, p, ctx, x):
        return np.ascontiguousarray(np.transpose(x, Permute._perm(a, x.ndim)))

    @staticmethod
    def backward(a, p, ctx, dy):
        inverse = np.argsort(Permute._perm(a, dy.ndim))
        return (np.ascontiguousarray(np.transpose(dy, inverse)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"{{x}}.permute({', '.join(map(str, a.dims))})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Transpose", x, perm=Permute._perm(a, len(in_shapes[0])))


@register
class Squeeze(Layer):
    """Removes a dim of size 1 (torch.squeeze(x, dim)); like PyTorch, leaves other sizes alone."""

    formula = "y = x without dim {dim} if it has size 1 (else y = x)"
    backward_formula = "dL/dx = dL/dy reshaped back to x's shape"
    category = "Shape"
    attrs = {"dim": Int(1, "the dim to remove (PyTorch's numbering; not the batch, 0)")}
    examples = (Example({}, ((2, 1, 4),)), Example({"dim": -1}, ((2, 3, 1),)),
                Example({"dim": 2}, ((2, 3, 4),)))

    @staticmethod
    def infer(a, x):
        axis = sample_axis(a.dim, len(x))
        return x if x[axis] != 1 else tuple(s for i, s in enumerate(x) if i != axis)

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape)
        axis = sample_axis(a.dim, x.ndim)
        return x if x.shape[axis] != 1 else np.squeeze(x, axis)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy.reshape(ctx.saved[0]),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.squeeze({{x}}, {a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        axis = sample_axis(a.dim, len(in_shapes[0]))
        if in_shapes[0][axis] != 1:
            return g.op("Identity", x)
        return g.op("Squeeze", x, g.const([axis], np.int64))


@register
class Unsqueeze(Layer):
    """Inserts a dim of size 1 (torch.unsqueeze(x, dim)), e.g. to broadcast against a wider input."""

    formula = "y = x with a new dim of size 1 inserted at {dim}"
    backward_formula = "dL/dx = dL/dy with that dim removed"
    category = "Shape"
    attrs = {"dim": Int(1, "where the new dim goes (PyTorch's numbering; after the batch)")}
    examples = (Example({}, ((2, 4),)), Example({"dim": -1}, ((2, 3, 2),)))

    @staticmethod
    def _axis(a, ndim: int) -> int:
        if not -(ndim + 1) <= a.dim <= ndim:
            raise ShapeError(f"dim {a.dim} is out of range for a new dim of {ndim}-D input")
        axis = a.dim % (ndim + 1)
        if axis == 0:
            raise ShapeError(f"dim {a.dim} would go before the batch; choose 1 to {ndim}")
        return axis

    @staticmethod
    def infer(a, x):
        axis = Unsqueeze._axis(a, len(x))
        return (*x[:axis], 1, *x[axis:])

    @staticmethod
    def forward(a, p, ctx, x):
        return np.expand_dims(x, Unsqueeze._axis(a, x.ndim))

    @staticmethod
    def backward(a, p, ctx, dy):
        return (np.squeeze(dy, Unsqueeze._axis(a, dy.ndim - 1)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.unsqueeze({{x}}, {a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        axis = Unsqueeze._axis(a, len(in_shapes[0]))
        return g.op("Unsqueeze", x, g.const([axis], np.int64))
