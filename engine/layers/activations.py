"""Element-wise activation functions."""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels import activation as kern
from layerloom.engine.kernels.elementwise import gelu_backward, gelu_forward
from layerloom.engine.kernels.relu import relu_mask_grad
from layerloom.engine.registry import register
from layerloom.engine.spec import Choice, Example, Float, Int, Layer, ShapeError, TorchCode


@register
class ReLU(Layer):
    """Rectified linear unit: max(0, x)."""

    fusable_activation = True  # a fused Dense chain may absorb it
    category = "Activation"
    formula = "y = max(0, x), element by element"
    backward_formula = "dL/dx = dL/dy where x > 0, else 0"
    examples = (Example({}, ((3, 4),)),)

    @staticmethod
    def infer(a, x):
        return x

    @staticmethod
    def forward(a, p, ctx, x):
        if kern.kernel_dtype(x):  # one compiled pass; the output's sign is the mask
            y = kern.relu(x)
            ctx.save(y)
            return y
        mask = x > 0
        ctx.save(mask)
        return x * mask

    @staticmethod
    def backward(a, p, ctx, dy):
        (kept,) = ctx.saved  # the output, or the mask where x had no float type
        if kern.kernel_dtype(dy, kept):
            return (relu_mask_grad(np.ascontiguousarray(dy), kept),), {}
        return (dy * (kept > 0),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.relu({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Relu", x)


class _Elementwise(Layer):
    """Shape-preserving activations share their category, examples and shape rule."""

    category = "Activation"
    examples = (Example({}, ((3, 4),)), Example({}, ((2, 2, 3, 3),)))

    @staticmethod
    def infer(a, x):
        return x


@register
class LeakyReLU(_Elementwise):
    """Like ReLU, but lets a small slope through for negative inputs: x if x > 0 else slope·x."""

    formula = "y = x where x > 0, else {negative_slope}·x"
    backward_formula = "dL/dx = dL/dy where x > 0, else {negative_slope}·dL/dy"
    fusable_activation = True  # a fused Dense chain may absorb it
    attrs = {"negative_slope": Float(0.01, "slope for negative inputs", min=0.0, max=1.0)}
    examples = (Example({"negative_slope": 0.1}, ((3, 4),)), Example({}, ((2, 2, 3, 3),)))

    @staticmethod
    def forward(a, p, ctx, x):
        ctx.save(x)
        if kern.kernel_dtype(x):
            return kern.leaky_relu(x, a.negative_slope)
        return x * np.where(x > 0, 1.0, a.negative_slope).astype(x.dtype)

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        if kern.kernel_dtype(dy, x):
            return (kern.leaky_relu_grad(dy, x, a.negative_slope),), {}
        return (dy * np.where(x > 0, 1.0, a.negative_slope).astype(x.dtype),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.leaky_relu({{x}}, {a.negative_slope!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("LeakyRelu", x, alpha=float(a.negative_slope))


@register
class Sigmoid(_Elementwise):
    """Logistic function 1 / (1 + e^-x): squashes to (0, 1)."""

    formula = "y = σ(x) = 1 / (1 + e<sup>−x</sup>)"
    backward_formula = "dL/dx = dL/dy·y·(1 − y)"
    fusable_activation = True  # a fused Dense chain may absorb it

    @staticmethod
    def forward(a, p, ctx, x):
        if kern.kernel_dtype(x, float32_only=True):
            y = kern.sigmoid32(x)
        else:  # split by sign so exp never overflows
            e = np.exp(-np.abs(x))
            y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save(y)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        (y,) = ctx.saved
        if kern.kernel_dtype(dy, y):
            return (kern.sigmoid_grad(dy, y),), {}
        return (dy * y * (1 - y),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.sigmoid({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Sigmoid", x)


@register
class Tanh(_Elementwise):
    """Hyperbolic tangent: squashes to (-1, 1), zero-centred."""

    formula = "y = tanh(x) = (e<sup>x</sup> − e<sup>−x</sup>) / (e<sup>x</sup> + e<sup>−x</sup>)"
    backward_formula = "dL/dx = dL/dy·(1 − y<sup>2</sup>)"
    fusable_activation = True  # a fused Dense chain may absorb it

    @staticmethod
    def forward(a, p, ctx, x):
        y = np.tanh(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        (y,) = ctx.saved
        return (dy * (1 - y * y),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("torch.tanh({x})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Tanh", x)


@register
class GELU(_Elementwise):
    """Gaussian error linear unit x·Φ(x), the Transformer's activation (exact or tanh form)."""

    formula = ("y = x·Φ(x), Φ the standard normal CDF; approximate = '{approximate}' ('tanh': Φ(x)"
               " ≈ ½(1 + tanh(√(2/π)·(x + 0.044715·x<sup>3</sup>))))")
    backward_formula = ("dL/dx = dL/dy·(Φ(x) + x·φ(x)), φ the standard normal density (or the tanh"
                        " form's derivative)")
    fusable_activation = True  # a fused Dense chain may absorb it
    parallel_kernels = True  # numba-parallel kernels (kernels/elementwise.py)
    attrs = {"approximate": Choice("none", "'none' for the exact erf form, 'tanh' for the "
                                   "approximation (as torch.nn.GELU)", choices=("none", "tanh"))}
    examples = (Example({}, ((3, 4),)), Example({"approximate": "tanh"}, ((2, 5),)))

    @staticmethod
    def forward(a, p, ctx, x):
        x = np.ascontiguousarray(x)
        ctx.save(x)
        return gelu_forward(x.reshape(-1), a.approximate == "tanh").reshape(x.shape)

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        g = gelu_backward(x.reshape(-1), np.ascontiguousarray(dy).reshape(-1), a.approximate == "tanh")
        return (g.reshape(x.shape),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"F.gelu({{x}}, approximate={a.approximate!r})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        """x/2 · (1 + erf(x/√2)), or with "tanh" x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
        if a.approximate == "tanh":
            cube = g.op("Mul", g.op("Mul", x, x), x)
            inner = g.op("Add", x, g.op("Mul", cube, g.const(0.044715)))
            s = g.op("Tanh", g.op("Mul", inner, g.const(np.sqrt(2.0 / np.pi))))
        else:
            s = g.op("Erf", g.op("Mul", x, g.const(1.0 / np.sqrt(2.0))))
        return g.op("Mul", g.op("Mul", x, g.const(0.5)), g.op("Add", s, g.const(1.0)))


@register
class Softmax(_Elementwise):
    """Turns scores into probabilities along one axis (they are positive and sum to 1)."""

    formula = ("y<sub>i</sub> = e<sup>x<sub>i</sub></sup> / Σ<sub>j</sub> "
               "e<sup>x<sub>j</sub></sup> along dim {dim}")
    backward_formula = ("dL/dx<sub>i</sub> = y<sub>i</sub>·(dL/dy<sub>i</sub> − Σ<sub>j</sub> "
                        "dL/dy<sub>j</sub>·y<sub>j</sub>) along dim {dim}")
    attrs = {"dim": Int(-1, "axis to normalise over (-1 = last)")}
    examples = (Example({}, ((3, 4),)), Example({"dim": 1}, ((2, 3, 4),)))

    @staticmethod
    def infer(a, x):
        if not -len(x) <= a.dim < len(x):
            raise ShapeError(f"dim {a.dim} is out of range for {len(x)}-D input")
        return x

    @staticmethod
    def forward(a, p, ctx, x):
        e = np.exp(x - x.max(axis=a.dim, keepdims=True))
        y = e / e.sum(axis=a.dim, keepdims=True)
        ctx.save(y)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        (y,) = ctx.saved
        return (y * (dy - (dy * y).sum(axis=a.dim, keepdims=True)),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"torch.softmax({{x}}, dim={a.dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Softmax", x, axis=a.dim)
