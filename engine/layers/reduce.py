"""Reductions over chosen axes: Sum and Mean (``torch.sum(x, dim, keepdim)``, ``torch.mean``).

``dim`` lists PyTorch dims (the batch is 0, which cannot be reduced: every sample keeps its own
result); ``keepdim`` leaves each reduced axis in place with size 1, ready to broadcast back.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.layers.axes import sample_axes
from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Bool, Example, IntTuple, Layer, TorchCode


class _Reduce(Layer):
    category = "Math"
    attrs = {"dim": IntTuple((-1,), "the dims to reduce (PyTorch's numbering: the batch is 0 "
                                    "and cannot be reduced; -1 is the last)"),
             "keepdim": Bool(False, "keep each reduced dim with size 1")}
    examples = (Example({}, ((3, 4),)), Example({"dim": (2, 3), "keepdim": True}, ((2, 3, 4, 5),)),
                Example({"dim": (1, -1)}, ((2, 3, 4),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if not a["dim"]:
            raise AttrError("dim: name at least one dim to reduce")

    @classmethod
    def label(cls, a) -> str:
        return "dim " + ",".join(map(str, a["dim"]))

    @staticmethod
    def infer(a, x):
        axes = sample_axes(a.dim, len(x))
        if a.keepdim:
            return tuple(1 if i in axes else s for i, s in enumerate(x))
        return tuple(s for i, s in enumerate(x) if i not in axes)

    @staticmethod
    def _spread(a, dy, shape) -> np.ndarray:
        """dy back over the reduced axes (each input value gets its output's gradient)."""
        axes = sample_axes(a.dim, len(shape))
        if not a.keepdim:
            dy = np.expand_dims(dy, axes)
        return np.broadcast_to(dy, shape)

    @staticmethod
    def _onnx_axes(a, in_shapes) -> list:
        return list(sample_axes(a.dim, len(in_shapes[0])))


@register
class Sum(_Reduce):
    """Sums over the chosen dims (torch.sum with dim and keepdim)."""

    formula = "y = Σ x over dims {dim} (keepdim = {keepdim})"
    backward_formula = "dL/dx = dL/dy copied back over dims {dim}"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape)
        return x.sum(axis=sample_axes(a.dim, x.ndim), keepdims=a.keepdim)

    @staticmethod
    def backward(a, p, ctx, dy):
        (shape,) = ctx.saved
        return (np.ascontiguousarray(_Reduce._spread(a, dy, shape)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.sum({{x}}, dim={tuple(a.dim)}, keepdim={a.keepdim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        axes = g.const(_Reduce._onnx_axes(a, in_shapes), np.int64)
        return g.op("ReduceSum", x, axes, keepdims=int(a.keepdim))


@register
class Mean(_Reduce):
    """Averages over the chosen dims (torch.mean with dim and keepdim)."""

    formula = "y = (1/n)·Σ x over dims {dim}, n the entries each sum covers (keepdim = {keepdim})"
    backward_formula = "dL/dx = dL/dy / n, copied back over dims {dim}"

    @staticmethod
    def forward(a, p, ctx, x):
        axes = sample_axes(a.dim, x.ndim)
        ctx.save(x.shape, int(np.prod([x.shape[i] for i in axes])))
        return x.mean(axis=axes, keepdims=a.keepdim)

    @staticmethod
    def backward(a, p, ctx, dy):
        shape, count = ctx.saved
        return (np.ascontiguousarray(_Reduce._spread(a, dy / count, shape)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.mean({{x}}, dim={tuple(a.dim)}, keepdim={a.keepdim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):  # opset 17 takes ReduceMean's axes as an attribute
        return g.op("ReduceMean", x, axes=_Reduce._onnx_axes(a, in_shapes),
                    keepdims=int(a.keepdim))
