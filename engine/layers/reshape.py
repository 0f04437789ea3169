"""Shape layers: Flatten and Reshape change how values are laid out, never the values."""
from __future__ import annotations

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Example, IntTuple, Layer, ShapeError, TorchCode, fmt_shape


@register
class Flatten(Layer):
    """Flattens all but the batch dimension (images to vectors, before a Dense layer)."""

    formula = ("y = x reshaped to (N, C·H·W…): every axis after the batch joined into one, values "
               "in the same order")
    backward_formula = "dL/dx = dL/dy reshaped back to x's shape"
    category = "Shape"
    examples = (Example({}, ((2, 3, 4, 5),)),)

    @staticmethod
    def infer(a, x):
        if any(d is None for d in x[1:]):
            raise ShapeError(f"cannot flatten {fmt_shape(x)}: a dimension is unknown")
        return (x[0], int(np.prod(x[1:])))

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape)
        return x.reshape(len(x), -1)

    @staticmethod
    def backward(a, p, ctx, dy):
        (shape,) = ctx.saved
        return (dy.reshape(shape),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.flatten({x}, 1)")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Flatten", x, axis=1)


@register
class Reshape(Layer):
    """Reshapes each sample (batch kept) to a new shape with the same number of values; -1 infers one."""

    formula = "y = x with each sample reshaped to {shape} (−1: inferred), values in the same order"
    backward_formula = "dL/dx = dL/dy reshaped back to x's shape"
    category = "Shape"
    attrs = {"shape": IntTuple((1, 28, 28), "new shape of one sample; one entry may be -1",
                               min=1, allow_minus_one=True)}
    examples = (Example({"shape": (3, -1)}, ((2, 12),)), Example({"shape": (2, 2, 3)}, ((2, 3, 4),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if list(a["shape"]).count(-1) > 1:
            raise AttrError("shape: at most one entry may be -1")

    @classmethod
    def label(cls, a) -> str:
        return "×".join("?" if d == -1 else str(d) for d in a["shape"])

    @staticmethod
    def infer(a, x):
        if any(d is None for d in x[1:]):
            raise ShapeError(f"cannot reshape {fmt_shape(x)}: a dimension is unknown")
        size = int(np.prod(x[1:]))
        known = int(np.prod([d for d in a.shape if d != -1]))
        target = "×".join("?" if d == -1 else str(d) for d in a.shape)
        if -1 in a.shape:
            if size % known:
                raise ShapeError(f"cannot reshape {fmt_shape(x)} ({size} values) to {target}: "
                                 f"{size} is not a multiple of {known}")
            return (x[0], *[size // known if d == -1 else d for d in a.shape])
        if known != size:
            raise ShapeError(f"cannot reshape {fmt_shape(x)} ({size} values) to {target} "
                             f"({known} values)")
        return (x[0], *a.shape)

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x.shape)
        return x.reshape(len(x), *a.shape)

    @staticmethod
    def backward(a, p, ctx, dy):
        (shape,) = ctx.saved
        return (dy.reshape(shape),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"{{x}}.reshape(len({{x}}), {', '.join(map(str, a.shape))})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Reshape", x, g.const([0, *a.shape], np.int64))  # 0 keeps the batch
