"""Two-input element-wise arithmetic with numpy/PyTorch broadcasting: Multiply, Subtract, Divide,
Maximum, Minimum (``a * b``, ``a - b``, ``a / b``, ``torch.maximum``, ``torch.minimum``).

Gates (a sigmoid times a value), attention variants and custom blocks are drawn with these. The
output shape is the broadcast of the two inputs (see ``broadcast``); each input's gradient is
summed back over the axes it was broadcast along.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.layers.broadcast import broadcast_shapes, unbroadcast
from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Layer, TorchCode

BROADCAST_EXAMPLES = (Example({}, ((3, 4), (3, 4))), Example({}, ((2, 3, 4, 5), (2, 3, 1, 1))),
                      Example({}, ((2, 1, 4), (2, 3, 1))))


class _Binary(Layer):
    """Shared declarations: two inputs ``a`` and ``b`` broadcast against each other."""

    category = "Math"
    inputs = ("a", "b")
    examples = BROADCAST_EXAMPLES
    verb = "combine"

    @classmethod
    def infer(cls, a, x, y):
        return broadcast_shapes(x, y, cls.verb)

    @staticmethod
    def _grads(ctx, da, db, shapes) -> tuple:
        """Each input's gradient reduced to its own shape, None where nobody reads it."""
        needs = ctx.needs_input_grad or (True, True)
        return tuple(unbroadcast(np.asarray(d), s) if need else None
                     for d, s, need in zip((da, db), shapes, needs))


@register
class Multiply(_Binary):
    """Element-wise product a·b with broadcasting (a gate: values times a sigmoid)."""

    formula = "y = a·b, element by element, with broadcasting"
    backward_formula = ("dL/da = dL/dy·b, dL/db = dL/dy·a, each summed over the axes it was "
                        "broadcast along")
    verb = "multiply"

    @staticmethod
    def forward(a, p, ctx, x, y):
        ctx.save(x, y)
        return x * y

    @staticmethod
    def backward(a, p, ctx, dy):
        x, y = ctx.saved
        return _Binary._grads(ctx, dy * y, dy * x, (x.shape, y.shape)), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{a} * {b}")

    @staticmethod
    def to_onnx(a, in_shapes, g, x, y):
        return g.op("Mul", x, y)


@register
class Subtract(_Binary):
    """Element-wise difference a − b with broadcasting."""

    formula = "y = a − b, element by element, with broadcasting"
    backward_formula = ("dL/da = dL/dy, dL/db = −dL/dy, each summed over the axes it was broadcast"
                        " along")
    verb = "subtract"

    @staticmethod
    def forward(a, p, ctx, x, y):
        ctx.save(x.shape, y.shape)
        return x - y

    @staticmethod
    def backward(a, p, ctx, dy):
        return _Binary._grads(ctx, dy, -dy, ctx.saved), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{a} - {b}")

    @staticmethod
    def to_onnx(a, in_shapes, g, x, y):
        return g.op("Sub", x, y)


@register
class Divide(_Binary):
    """Element-wise quotient a / b with broadcasting (b = 0 gives ±inf, as in PyTorch)."""

    formula = "y = a / b, element by element, with broadcasting"
    backward_formula = ("dL/da = dL/dy / b, dL/db = −dL/dy·a / b<sup>2</sup>, each summed over the"
                        " axes it was broadcast along")
    verb = "divide"
    examples = (Example({}, ((3, 4), (3, 4))), Example({}, ((2, 3, 4), (2, 3, 1))))

    @staticmethod
    def forward(a, p, ctx, x, y):
        out = x / y
        ctx.save(out, y, x.shape)
        return out

    @staticmethod
    def backward(a, p, ctx, dy):
        out, y, x_shape = ctx.saved
        da = dy / y
        return _Binary._grads(ctx, da, -da * out, (x_shape, y.shape)), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{a} / {b}")

    @staticmethod
    def to_onnx(a, in_shapes, g, x, y):
        return g.op("Div", x, y)


class _Extremum(_Binary):
    """Maximum and Minimum: the winner takes the gradient; a tie splits it in half (PyTorch)."""

    pick = staticmethod(np.maximum)

    @classmethod
    def forward(cls, a, p, ctx, x, y):
        out = cls.pick(x, y)
        ctx.save(x, y)
        return out

    @classmethod
    def backward(cls, a, p, ctx, dy):
        x, y = ctx.saved
        first = (x > y) if cls.pick is np.maximum else (x < y)
        share = np.where(x == y, 0.5, first).astype(dy.dtype)
        return _Binary._grads(ctx, dy * share, dy * (1 - share), (x.shape, y.shape)), {}


@register
class Maximum(_Extremum):
    """Element-wise larger of a and b with broadcasting (torch.maximum)."""

    formula = "y = max(a, b), element by element, with broadcasting"
    backward_formula = ("dL/da = dL/dy where a > b, dL/db = dL/dy where b > a, half to each where "
                        "a = b, each summed over the axes it was broadcast along")
    verb = "compare"
    pick = staticmethod(np.maximum)

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.maximum({a}, {b})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x, y):
        return g.op("Max", x, y)


@register
class Minimum(_Extremum):
    """Element-wise smaller of a and b with broadcasting (torch.minimum)."""

    formula = "y = min(a, b), element by element, with broadcasting"
    backward_formula = ("dL/da = dL/dy where a &lt; b, dL/db = dL/dy where b &lt; a, half to each "
                        "where a = b, each summed over the axes it was broadcast along")
    verb = "compare"
    pick = staticmethod(np.minimum)

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.minimum({a}, {b})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x, y):
        return g.op("Min", x, y)
