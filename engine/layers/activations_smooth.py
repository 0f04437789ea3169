"""Smooth activations built on the exponential: ELU, SELU, CELU, SiLU, Mish, Softplus, LogSigmoid.

Each follows ``torch.nn`` (names, defaults, and the exact formulas, thresholds included) and
keeps the input's shape. Exponentials are split by sign or go through ``expm1``/``logaddexp`` so
that nothing overflows for large inputs.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels import activation as kern
from layerloom.engine.kernels import activation_log as klog
from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Example, Float, Layer, TorchCode

SHAPES = (Example({}, ((3, 4),)), Example({}, ((2, 2, 3, 3),)))
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class _Smooth(Layer):
    category = "Activation"
    fusable_activation = True  # element-wise, no parameters: a fused Dense chain may absorb it
    examples = SHAPES

    @staticmethod
    def infer(a, x):
        return x


def _negative_exp(x: np.ndarray, alpha: float, inner: float = 1.0):
    """(alpha·(e^(x/inner) − 1) for x ≤ 0 else x, and its slope): ELU's, SELU's, CELU's shape;
    float32 in one compiled pass (``kernels.activation``)."""
    if kern.kernel_dtype(x, float32_only=True):
        return kern.elu32(x, alpha, inner)
    neg = np.minimum(x, 0) / inner
    y = np.where(x > 0, x, alpha * np.expm1(neg))
    slope = np.where(x > 0, 1.0, alpha / inner * np.exp(neg)).astype(x.dtype)
    return y.astype(x.dtype, copy=False), slope


def _times_slope(dy: np.ndarray, slope: np.ndarray, scale: float | None = None) -> np.ndarray:
    """dy·slope (·scale): one compiled pass for float arrays of one type."""
    if kern.kernel_dtype(dy, slope):
        return kern.scaled_product(dy, slope, 1.0 if scale is None else scale)
    return dy * slope if scale is None else dy * slope * dy.dtype.type(scale)


@register
class ELU(_Smooth):
    """Exponential linear unit: x if x > 0 else alpha·(eˣ − 1)."""

    formula = "y = x where x > 0, else {alpha}·(e<sup>x</sup> − 1)"
    backward_formula = "dL/dx = dL/dy where x > 0, else {alpha}·e<sup>x</sup>·dL/dy"
    attrs = {"alpha": Float(1.0, "the value negative inputs approach")}
    examples = (Example({}, ((3, 4),)), Example({"alpha": 0.5}, ((2, 2, 3, 3),)))

    @staticmethod
    def forward(a, p, ctx, x):
        y, slope = _negative_exp(x, a.alpha)
        ctx.save(slope)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        return (_times_slope(dy, ctx.saved[0]),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.elu({{x}}, {a.alpha!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Elu", x, alpha=float(a.alpha))


@register
class SELU(_Smooth):
    """Scaled ELU with PyTorch's fixed constants (self-normalising networks)."""

    formula = ("y = λ·x where x > 0, else λ·α·(e<sup>x</sup> − 1), with λ = 1.0507009873554805, α "
               "= 1.6732632423543772")
    backward_formula = "dL/dx = λ·dL/dy where x > 0, else λ·α·e<sup>x</sup>·dL/dy"

    @staticmethod
    def forward(a, p, ctx, x):
        if kern.kernel_dtype(x, float32_only=True):  # the scale in the same pass
            y, slope = kern.elu32(x, SELU_ALPHA, 1.0, SELU_SCALE)
            ctx.save(slope)
            return y
        y, slope = _negative_exp(x, SELU_ALPHA)
        ctx.save(slope)
        return y * x.dtype.type(SELU_SCALE)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (_times_slope(dy, ctx.saved[0], SELU_SCALE),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.selu({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Selu", x, alpha=SELU_ALPHA, gamma=SELU_SCALE)


@register
class CELU(_Smooth):
    """Continuously differentiable ELU: x if x > 0 else alpha·(e^(x/alpha) − 1)."""

    formula = "y = max(0, x) + min(0, {alpha}·(e<sup>x/{alpha}</sup> − 1))"
    backward_formula = "dL/dx = dL/dy where x > 0, else e<sup>x/{alpha}</sup>·dL/dy"
    attrs = {"alpha": Float(1.0, "the value negative inputs approach (not 0)")}
    examples = (Example({}, ((3, 4),)), Example({"alpha": 2.0}, ((2, 2, 3, 3),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if a["alpha"] == 0:
            raise AttrError("alpha: must not be 0")

    @staticmethod
    def forward(a, p, ctx, x):
        y, slope = _negative_exp(x, a.alpha, a.alpha)
        ctx.save(slope)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        return (_times_slope(dy, ctx.saved[0]),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.celu({{x}}, {a.alpha!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Celu", x, alpha=float(a.alpha))


@register
class SiLU(_Smooth):
    """Sigmoid-weighted linear unit (swish): x·σ(x)."""

    formula = "y = x·σ(x), σ(x) = 1 / (1 + e<sup>−x</sup>)"
    backward_formula = "dL/dx = dL/dy·σ(x)·(1 + x·(1 − σ(x)))"

    @staticmethod
    def forward(a, p, ctx, x):
        if kern.kernel_dtype(x, float32_only=True):
            y, s = kern.silu32(x)
        else:
            s = _sigmoid(x)
            y = x * s
        ctx.save(x, s)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        x, s = ctx.saved
        if kern.kernel_dtype(dy, x, s):
            return (kern.silu_grad(dy, x, s),), {}
        return (dy * s * (1 + x * (1 - s)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.silu({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Mul", x, g.op("Sigmoid", x))


@register
class Mish(_Smooth):
    """x·tanh(softplus(x)), a smooth ReLU-like activation."""

    formula = "y = x·tanh(softplus(x)), softplus(x) = ln(1 + e<sup>x</sup>)"
    backward_formula = ("dL/dx = dL/dy·(tanh(s) + x·σ(x)·(1 − tanh<sup>2</sup>(s))), s = "
                        "softplus(x)")

    @staticmethod
    def forward(a, p, ctx, x):
        if kern.kernel_dtype(x, float32_only=True):
            y, t = klog.mish32(x)
        else:
            t = np.tanh(np.logaddexp(0, x))
            y = x * t
        ctx.save(x, t)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        x, t = ctx.saved
        if kern.kernel_dtype(dy, x, t, float32_only=True):
            return (klog.mish_grad32(dy, x, t),), {}
        return (dy * (t + x * (1 - t * t) * _sigmoid(x)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.mish({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Mul", x, g.op("Tanh", g.op("Softplus", x)))


@register
class Softplus(_Smooth):
    """A smooth ReLU: log(1 + e^(beta·x)) / beta, and x itself where beta·x > threshold."""

    formula = "y = ln(1 + e<sup>{beta}·x</sup>) / {beta}, and y = x where {beta}·x > {threshold}"
    backward_formula = "dL/dx = dL/dy·σ({beta}·x), and dL/dy where {beta}·x > {threshold}"
    attrs = {"beta": Float(1.0, "sharpness (larger is closer to ReLU; not 0)"),
             "threshold": Float(20.0, "above beta·x of this the output is x (as PyTorch)")}
    examples = (Example({}, ((3, 4),)), Example({"beta": 2.0, "threshold": 1.0}, ((2, 2, 3, 3),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if a["beta"] == 0:
            raise AttrError("beta: must not be 0")

    @staticmethod
    def forward(a, p, ctx, x):
        if kern.kernel_dtype(x, float32_only=True):
            y, z = klog.softplus32(x, a.beta, a.threshold)
            ctx.save(z)
            return y
        z = x * x.dtype.type(a.beta)
        ctx.save(z)
        return np.where(z > a.threshold, x, np.logaddexp(0, z) / a.beta).astype(x.dtype,
                                                                                copy=False)

    @staticmethod
    def backward(a, p, ctx, dy):
        (z,) = ctx.saved
        if kern.kernel_dtype(dy, z, float32_only=True):
            return (klog.softplus_grad32(dy, z, a.threshold),), {}
        linear = z > a.threshold
        return (dy * np.where(linear, 1.0, _sigmoid(z)).astype(dy.dtype, copy=False),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.softplus({{x}}, {a.beta!r}, {a.threshold!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        z = g.op("Mul", x, g.const(a.beta))
        smooth = g.op("Div", g.op("Softplus", z), g.const(a.beta))
        return g.op("Where", g.op("Greater", z, g.const(a.threshold)), x, smooth)


@register
class LogSigmoid(_Smooth):
    """log σ(x), computed without overflow (a log-probability from a logit)."""

    formula = "y = ln σ(x) = −ln(1 + e<sup>−x</sup>)"
    backward_formula = "dL/dx = dL/dy·(1 − σ(x))"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        if kern.kernel_dtype(x, float32_only=True):
            return klog.logsigmoid32(x)
        return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        if kern.kernel_dtype(dy, x, float32_only=True):
            return (klog.logsigmoid_grad32(dy, x),), {}
        return (dy * _sigmoid(-x),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.logsigmoid({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Neg", g.op("Softplus", g.op("Neg", x)))
