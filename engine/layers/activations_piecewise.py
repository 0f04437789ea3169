"""Piecewise activations: PReLU (a learned slope), Hardtanh, Hardswish, Hardsigmoid, Softsign,
Hardshrink and Softshrink.

Each follows ``torch.nn``: names, defaults, and where the gradient is 0 at a kink (Hardtanh's
ends pass none, Hardswish's upper end at 3 takes the middle piece's slope), so that gradients
match PyTorch's exactly.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels import activation as kern
from layerloom.engine.kernels.channels import prelu, prelu_grads
from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Example, Float, Int, Layer, ShapeError, TorchCode, fmt_shape

SHAPES = (Example({}, ((3, 4),)), Example({}, ((2, 2, 3, 3),)))


class _Piecewise(Layer):
    category = "Activation"
    fusable_activation = True  # element-wise, no parameters: a fused Dense chain may absorb it
    examples = SHAPES

    @staticmethod
    def infer(a, x):
        return x


@register
class PReLU(_Piecewise):
    """Leaky ReLU whose negative slope is learned: one for all channels, or one per channel (dim 1)."""

    formula = ("y = x where x > 0, else a·x, a the learned slope ({num_parameters}: one per "
               "channel when more than 1), starting at {init}")
    backward_formula = ("dL/dx = dL/dy where x > 0, else a·dL/dy; dL/da = Σ dL/dy·x where x ≤ 0 "
                        "(per channel when several)")
    fusable_activation = False  # it has parameters (its slopes)
    attrs = {"num_parameters": Int(1, "1 (one shared slope) or the number of channels (dim 1)",
                                   min=1),
             "init": Float(0.25, "the slopes' starting value")}
    examples = (Example({}, ((3, 4),)), Example({"num_parameters": 2}, ((2, 2, 3, 3),)),
                Example({"num_parameters": 3, "init": 0.1}, ((2, 3, 5),)))

    @classmethod
    def label(cls, a) -> str:
        return "per channel" if a["num_parameters"] > 1 else ""

    @staticmethod
    def infer(a, x):
        if a.num_parameters > 1 and (len(x) < 2 or x[1] != a.num_parameters):
            raise ShapeError(f"num_parameters {a.num_parameters} must be 1 or the channels "
                             f"(dim 1) of {fmt_shape(x)}")
        return x

    @staticmethod
    def param_shapes(a, in_shapes):
        return {"weight": (a.num_parameters,)}

    @staticmethod
    def init(a, in_shapes, rng):
        return {"weight": np.full(a.num_parameters, a.init)}

    @staticmethod
    def _slopes(p, x) -> np.ndarray:
        w = p["weight"]
        return w.reshape((1, -1) + (1,) * (x.ndim - 2)) if w.size > 1 else w.reshape(())

    @staticmethod
    def _compiled(x, w) -> bool:
        return kern.kernel_dtype(x, w) and x.ndim >= 2  # one pass (kernels.channels)

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        if PReLU._compiled(x, p["weight"]):
            return prelu(x, p["weight"])
        return np.where(x > 0, x, PReLU._slopes(p, x) * x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        if PReLU._compiled(x, p["weight"]) and kern.kernel_dtype(dy, x):
            dx, dw = prelu_grads(dy, x, p["weight"], bool(ctx.needs_input_grad[0]))
            return (dx,), {"weight": dw.reshape(p["weight"].shape)}
        positive = x > 0
        w = PReLU._slopes(p, x)
        dx = np.where(positive, dy, w * dy) if ctx.needs_input_grad[0] else None
        contrib = np.where(positive, 0, x * dy)
        axes = tuple(i for i in range(x.ndim) if i != 1) if w.ndim else None
        dw = contrib.sum(axis=axes).reshape(p["weight"].shape)
        return (dx,), {"weight": dw}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.PReLU({a.num_parameters}, init={a.init!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        """ONNX broadcasts the slope from the right: (C, 1, …) lines it up with dim 1."""
        rank = len(in_shapes[0])
        shape = [a.num_parameters] + [1] * (rank - 2) if a.num_parameters > 1 else [1]
        return g.op("PRelu", x, g.op("Reshape", g.param("weight"), g.const(shape, np.int64)))


@register
class Hardtanh(_Piecewise):
    """Clips to [min_val, max_val] (default [-1, 1]); ReLU6 is Hardtanh(0, 6)."""

    formula = "y = min(max(x, {min_val}), {max_val})"
    backward_formula = "dL/dx = dL/dy where {min_val} &lt; x &lt; {max_val}, else 0"
    attrs = {"min_val": Float(-1.0, "lower end"), "max_val": Float(1.0, "upper end")}
    examples = (Example({}, ((3, 4),)), Example({"min_val": 0.0, "max_val": 0.5}, ((2, 2, 3, 3),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if a["max_val"] <= a["min_val"]:
            raise AttrError(f"max_val must exceed min_val, got {a['max_val']} <= {a['min_val']}")

    @classmethod
    def label(cls, a) -> str:
        return f"[{a['min_val']:g}, {a['max_val']:g}]"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save((x > a.min_val) & (x < a.max_val))
        return np.clip(x, a.min_val, a.max_val).astype(x.dtype, copy=False)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy * ctx.saved[0],), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.hardtanh({{x}}, {a.min_val!r}, {a.max_val!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Clip", x, g.const(a.min_val), g.const(a.max_val))


@register
class Hardswish(_Piecewise):
    """x·relu6(x + 3)/6, MobileNetV3's cheap swish."""

    formula = "y = x·ReLU6(x + 3) / 6: 0 for x ≤ −3, x for x ≥ 3, x·(x + 3) / 6 between"
    backward_formula = "dL/dx = dL/dy·(0 where x &lt; −3, x/3 + ½ where −3 ≤ x ≤ 3, 1 above)"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        if kern.kernel_dtype(x):
            return kern.hardswish(x)
        return x * np.clip(x + 3, 0, 6) / 6

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        if kern.kernel_dtype(dy, x):
            return (kern.hardswish_grad(dy, x),), {}
        slope = np.where(x < -3, 0.0, np.where(x <= 3, x / 3 + 0.5, 1.0)).astype(dy.dtype)
        return (dy * slope,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.hardswish({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("HardSwish", x)


@register
class Hardsigmoid(_Piecewise):
    """relu6(x + 3)/6: a piecewise-linear sigmoid."""

    formula = "y = ReLU6(x + 3) / 6 = min(max(x/6 + ½, 0), 1)"
    backward_formula = "dL/dx = dL/dy / 6 where −3 &lt; x &lt; 3, else 0"

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        if kern.kernel_dtype(x):
            return kern.hardsigmoid(x)
        return np.clip(x + 3, 0, 6) / 6

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        if kern.kernel_dtype(dy, x):
            return (kern.hardsigmoid_grad(dy, x),), {}
        return (dy * ((x > -3) & (x < 3)) / 6,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.hardsigmoid({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("HardSigmoid", x, alpha=1.0 / 6, beta=0.5)


@register
class Softsign(_Piecewise):
    """x / (1 + |x|): squashes to (-1, 1) more gently than tanh."""

    formula = "y = x / (1 + |x|)"
    backward_formula = "dL/dx = dL/dy / (1 + |x|)<sup>2</sup>"

    @staticmethod
    def forward(a, p, ctx, x):
        d = 1 + np.abs(x)
        ctx.save(d)
        return x / d

    @staticmethod
    def backward(a, p, ctx, dy):
        (d,) = ctx.saved
        return (dy / (d * d),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("F.softsign({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Softsign", x)


class _Shrink(_Piecewise):
    """Hardshrink and Softshrink: zero inside [-lambd, lambd], ONNX's Shrink with bias 0 or lambd."""

    attrs = {"lambd": Float(0.5, "half the width of the band around 0 that becomes 0", min=0.0)}
    examples = (Example({}, ((3, 4),)), Example({"lambd": 0.2}, ((2, 2, 3, 3),)))
    soft = False

    @classmethod
    def forward(cls, a, p, ctx, x):
        outside = (x > a.lambd) | (x < -a.lambd)
        ctx.save(outside)
        shifted = x - np.sign(x) * x.dtype.type(a.lambd) if cls.soft else x
        return np.where(outside, shifted, 0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (dy * ctx.saved[0],), {}

    @classmethod
    def to_torch(cls, a, in_shapes):
        return TorchCode(f"F.{cls.__name__.lower()}({{x}}, {a.lambd!r})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        return g.op("Shrink", x, bias=float(a.lambd) if cls.soft else 0.0, lambd=float(a.lambd))


@register
class Hardshrink(_Shrink):
    """x where |x| > lambd, else 0."""

    formula = "y = x where |x| &gt; {lambd}, else 0"
    backward_formula = "dL/dx = dL/dy where |x| &gt; {lambd}, else 0"


@register
class Softshrink(_Shrink):
    """Moves x toward 0 by lambd, and to 0 inside [-lambd, lambd] (a soft threshold)."""

    formula = "y = x − {lambd}·sign(x) where |x| &gt; {lambd}, else 0"
    backward_formula = "dL/dx = dL/dy where |x| &gt; {lambd}, else 0"
    soft = True
