"""Dropout, as ``torch.nn.Dropout``: inverted dropout in training, identity in inference."""
from __future__ import annotations

from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Example, Float, Layer, TorchCode


@register
class Dropout(Layer):
    """Zeroes a random fraction p of values while training (scaling the rest by 1/(1-p))."""

    formula = ("training: y = x·m / (1 − {p}), m<sub>i</sub> ~ Bernoulli(1 − {p}) drawn per value;"
               " inference: y = x")
    backward_formula = ("dL/dx = dL/dy·m / (1 − {p}) with the same mask (training), dL/dy "
                        "(inference)")
    category = "Regularisation"
    stochastic = True  # masks come from the run's generator, so PyTorch is compared in inference
    attrs = {"p": Float(0.5, "probability of dropping each value, in [0, 1)", min=0.0, max=1.0)}
    examples = (Example({"p": 0.3}, ((4, 5),)), Example({}, ((2, 3, 4, 4),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if a["p"] >= 1.0:
            raise AttrError(f"p: must be below 1 (p = 1 would drop every value), got {a['p']:g}")

    @classmethod
    def label(cls, a) -> str:
        return f"p={a['p']:g}"

    @staticmethod
    def infer(a, x):
        return x

    @staticmethod
    def forward(a, p, ctx, x):
        if not ctx.training or a.p == 0:
            ctx.save(None)
            return x
        # Inverted dropout (as PyTorch): scale the survivors now so inference needs no rescaling.
        draw = ctx.rng.random(x.shape, dtype=x.dtype if x.dtype.itemsize == 4 else "float64")
        mask = (draw >= a.p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - a.p))
        ctx.save(mask)
        return x * mask

    @staticmethod
    def backward(a, p, ctx, dy):
        (mask,) = ctx.saved
        return (dy if mask is None else dy * mask,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.Dropout({a.p!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Identity", x)
