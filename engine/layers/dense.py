"""Dense (fully connected) layer, as ``torch.nn.Linear``: y = x Wᵀ + b over the last axis."""
from __future__ import annotations

from layerloom.engine.kernels.dense import linear, matmul
from layerloom.engine.kernels.sums import column_sums
from layerloom.engine.registry import register
from layerloom.engine.spec import Bool, Example, Int, Layer, ShapeError, TorchCode, fmt_shape, uniform_fan_in


@register
class Dense(Layer):
    """Fully connected layer: every output is a weighted sum of all inputs plus a bias."""

    category = "Dense"
    # the Explain tab's formulas ({name} is the node's attribute value)
    formula = "y = x·W<sup>T</sup> + b, with W of {out_features} rows (one per output)"
    backward_formula = ("dL/dx = dL/dy·W, dL/dW = (dL/dy)<sup>T</sup>·x, dL/db = Σ<sub>batch</sub> "
                        "dL/dy")
    attrs = {
        "out_features": Int(64, "number of outputs", min=1, max=1_000_000),
        "bias": Bool(True, "add a learned bias"),
    }
    examples = (Example({"out_features": 3}, ((4, 5),)),
                Example({"out_features": 2, "bias": False}, ((2, 3, 4),)))

    @classmethod
    def label(cls, a) -> str:
        return f"{a['out_features']}"

    @staticmethod
    def infer(a, x):
        if len(x) == 2 or len(x) == 3:
            return (*x[:-1], a.out_features)
        if len(x) < 2:
            raise ShapeError(f"expects vectors, got {fmt_shape(x)}")
        raise ShapeError(f"expects a vector, got {fmt_shape(x)} — add Flatten", fix="Flatten")

    @staticmethod
    def param_shapes(a, in_shapes):
        fan_in = in_shapes[0][-1]
        return {"weight": (a.out_features, fan_in), **({"bias": (a.out_features,)} if a.bias else {})}

    @staticmethod
    def init(a, in_shapes, rng):
        fan_in = in_shapes[0][-1]
        p = {"weight": uniform_fan_in(rng, (a.out_features, fan_in), fan_in)}
        if a.bias:
            p["bias"] = uniform_fan_in(rng, (a.out_features,), fan_in)
        return p

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        # (N, T, D) as one (N·T, D) product: numpy runs 3-D @ 2-D as N products (2× slower)
        flat = x.ndim == 2
        y = linear(x if flat else x.reshape(-1, x.shape[-1]), p["weight"],
                   p["bias"] if a.bias else None, False)
        return y if flat else y.reshape(*x.shape[:-1], -1)

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        grads = {"weight": matmul(dy2.T, x2)}
        if a.bias:
            grads["bias"] = column_sums(dy2)
        # (N, T, D) as one (N·T, D) product, as forward
        dx = matmul(dy2, p["weight"]).reshape(x.shape) if ctx.needs_input_grad[0] else None
        return (dx,), grads

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})",
                         f"nn.Linear({in_shapes[0][-1]}, {a.out_features}, bias={a.bias})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        bias = g.param("bias") if a.bias else ""
        if len(in_shapes[0]) == 2:
            return g.op("Gemm", x, g.param("weight"), bias, transB=1)
        y = g.op("MatMul", x, g.op("Transpose", g.param("weight"), perm=[1, 0]))
        return g.op("Add", y, bias) if a.bias else y
