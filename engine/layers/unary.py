"""One-input element-wise math: Scale and Bias by a constant, Abs, Exp, Log, Sqrt, Pow, Clamp.

Each is the PyTorch expression of the same name (``x * 2.0``, ``torch.exp(x)``, ``x ** 3``,
``torch.clamp(x, min, max)``) and keeps the input's shape. Log and Sqrt of negative values give
NaN as in PyTorch; the executor then names the node.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Example, Float, Layer, RangeInput, TorchCode

SHAPES = (Example({}, ((3, 4),)), Example({}, ((2, 3, 2, 2),)))
POSITIVE = (Example({}, (RangeInput((3, 4), 0.2, 3.0),)),
            Example({}, (RangeInput((2, 3, 2, 2), 0.2, 3.0),)))
NO_BOUND = 3.4028234663852886e38  # float32's largest value: "no bound" for Clamp


class _Unary(Layer):
    category = "Math"
    examples = SHAPES

    @staticmethod
    def infer(a, x):
        return x


@register
class Scale(_Unary):
    """Multiplies by a constant: x · factor."""

    formula = "y = {factor}·x"
    backward_formula = "dL/dx = {factor}·dL/dy"
    attrs = {"factor": Float(2.0, "the constant to multiply by")}
    examples = (Example({"factor": -0.5}, ((3, 4),)),)

    @classmethod
    def label(cls, a) -> str:
        return f"×{a['factor']:g}"

    @staticmethod
    def forward(a, p, ctx, x):
        return x * x.dtype.type(a.factor)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy * dy.dtype.type(a.factor),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"{{x}} * {a.factor!r}")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Mul", x, g.const(a.factor))


@register
class Bias(_Unary):
    """Adds a constant: x + value."""

    formula = "y = x + {value}"
    backward_formula = "dL/dx = dL/dy"
    attrs = {"value": Float(1.0, "the constant to add")}
    examples = (Example({"value": 0.75}, ((3, 4),)),)

    @classmethod
    def label(cls, a) -> str:
        return f"{a['value']:+g}"

    @staticmethod
    def forward(a, p, ctx, x):
        return x + x.dtype.type(a.value)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"{{x}} + {a.value!r}")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Add", x, g.const(a.value))


@register
class Abs(_Unary):
    """Absolute value |x| (its gradient at 0 is 0, as PyTorch's sign)."""

    formula = "y = |x|"
    backward_formula = "dL/dx = dL/dy·sign(x) (0 at x = 0)"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(np.sign(x))
        return np.abs(x)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy * ctx.saved[0],), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.abs({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Abs", x)


@register
class Exp(_Unary):
    """e to the power x."""

    formula = "y = e<sup>x</sup>"
    backward_formula = "dL/dx = dL/dy·y"

    @staticmethod
    def forward(a, p, ctx, x):
        y = np.exp(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy * ctx.saved[0],), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.exp({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Exp", x)


@register
class Log(_Unary):
    """Natural logarithm (of positive values; 0 gives -inf and negatives NaN, as in PyTorch)."""

    formula = "y = ln x"
    backward_formula = "dL/dx = dL/dy / x"
    examples = POSITIVE

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        with np.errstate(divide="ignore", invalid="ignore"):  # the executor reports non-finite
            return np.log(x)

    @staticmethod
    def backward(a, p, ctx, dy):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (dy / ctx.saved[0],), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.log({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Log", x)


@register
class Sqrt(_Unary):
    """Square root (of non-negative values; negatives give NaN, as in PyTorch)."""

    formula = "y = √x"
    backward_formula = "dL/dx = dL/dy / (2·y)"
    examples = POSITIVE

    @staticmethod
    def forward(a, p, ctx, x):
        with np.errstate(invalid="ignore"):
            y = np.sqrt(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (dy / (2 * ctx.saved[0]),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.sqrt({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Sqrt", x)


@register
class Pow(_Unary):
    """x to a constant power (x ** exponent); a fractional power of a negative value is NaN."""

    formula = "y = x<sup>{exponent}</sup>"
    backward_formula = "dL/dx = {exponent}·x<sup>{exponent} − 1</sup>·dL/dy"
    attrs = {"exponent": Float(2.0, "the constant power")}
    examples = (Example({}, ((3, 4),)), Example({"exponent": 3.0}, ((2, 3, 2),)),
                Example({"exponent": 0.5}, (RangeInput((3, 4), 0.2, 3.0),)),
                Example({"exponent": -1.5}, (RangeInput((2, 5), 0.5, 2.0),)))

    @classmethod
    def label(cls, a) -> str:
        return f"^{a['exponent']:g}"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.power(x, x.dtype.type(a.exponent))

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        if a.exponent == 0:  # PyTorch: the gradient of x ** 0 is 0 everywhere
            return (np.zeros_like(dy),), {}
        with np.errstate(divide="ignore", invalid="ignore"):
            k = dy.dtype.type(a.exponent)
            return (dy * k * np.power(x, k - 1),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.pow({{x}}, {a.exponent!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Pow", x, g.const(a.exponent))


@register
class Clamp(_Unary):
    """Limits values to [min, max] (torch.clamp); the gradient passes where min ≤ x ≤ max."""

    formula = "y = min(max(x, {min}), {max})"
    backward_formula = "dL/dx = dL/dy where {min} ≤ x ≤ {max}, else 0"
    attrs = {"min": Float(-1.0, f"lower bound (-{NO_BOUND:.4g} for none)"),
             "max": Float(1.0, f"upper bound ({NO_BOUND:.4g} for none)")}
    examples = (Example({}, ((3, 4),)), Example({"min": -0.5, "max": 0.25}, ((2, 3, 2, 2),)),
                Example({"min": 0.0, "max": NO_BOUND}, ((3, 5),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if a["min"] > a["max"]:
            raise AttrError(f"min must not exceed max, got {a['min']} > {a['max']}")

    @classmethod
    def label(cls, a) -> str:
        low = "" if a["min"] <= -NO_BOUND else f"{a['min']:g}"
        high = "" if a["max"] >= NO_BOUND else f"{a['max']:g}"
        return f"[{low}, {high}]"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        return np.clip(x, a.min, a.max).astype(x.dtype, copy=False)

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        return (dy * ((x >= a.min) & (x <= a.max)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.clamp({{x}}, {a.min!r}, {a.max!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Clip", x, g.const(a.min), g.const(a.max))
