"""Normalisation layers as ``torch.nn.LayerNorm``, ``BatchNorm1d``, ``BatchNorm2d`` and ``BatchNorm3d``.

Both rescale activations to zero mean and unit variance and then apply a learned gain (``weight``)
and shift (``bias``). LayerNorm normalises each sample over its last axis (the Transformer's
choice: it does not depend on the batch). BatchNorm normalises each channel over the batch (and
length / height / width); in training it also folds the batch statistics into
``running_mean``/``running_var`` (buffers: changed by forward, never given gradients), which
inference then uses instead. The variance folded in is the unbiased one, as PyTorch's.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.norm import layer_norm_backward, layer_norm_forward
from layerloom.engine.registry import register
from layerloom.engine.spec import Bool, Example, Float, Layer, ShapeError, TorchCode, fmt_shape


def _normalise_backward(dxhat: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray, axes) -> np.ndarray:
    """dx of xhat = (x - mean) * inv_std, statistics over ``axes``, given d loss / d xhat."""
    return inv_std * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                      - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))


@register
class LayerNorm(Layer):
    """Normalises each position's features (the last axis) to zero mean and unit variance."""

    formula = ("y = (x − E[x]) / √(Var[x] + {eps})·γ + β, E and the biased Var over the last axis;"
               " γ, β learned per feature (elementwise_affine = {elementwise_affine})")
    backward_formula = ("x̂ = (x − E[x]) / σ, g = dL/dy·γ: dL/dx = (g − mean(g) − x̂·mean(g·x̂)) /"
                        " σ over the last axis; dL/dγ = Σ dL/dy·x̂, dL/dβ = Σ dL/dy over all "
                        "positions")
    parallel_kernels = True  # numba-parallel kernels (kernels/norm.py)
    category = "Normalisation"
    attrs = {
        "eps": Float(1e-5, "added to the variance so the division is never by zero", min=0.0),
        "elementwise_affine": Bool(True, "learn a gain (weight) and a shift (bias) per feature"),
        "bias": Bool(True, "learn the shift (only with elementwise_affine)"),
    }
    examples = (Example({}, ((4, 6),)), Example({"eps": 1e-3}, ((2, 3, 5),)),
                Example({"elementwise_affine": False}, ((3, 4),)),
                Example({"bias": False}, ((2, 2, 4),)))

    @staticmethod
    def infer(a, x):
        if len(x) < 2:
            raise ShapeError(f"expects (N, ..., features), got {fmt_shape(x)}")
        return x

    @staticmethod
    def param_shapes(a, in_shapes):
        d = (in_shapes[0][-1],)
        if not a.elementwise_affine:
            return {}
        return {"weight": d, "bias": d} if a.bias else {"weight": d}

    @staticmethod
    def init(a, in_shapes, rng):
        shapes = LayerNorm.param_shapes(a, in_shapes)  # a unit gain and a zero shift, as torch
        return {k: (np.ones if k == "weight" else np.zeros)(s) for k, s in shapes.items()}

    @staticmethod
    def forward(a, p, ctx, x):
        rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        none = np.zeros(0, x.dtype)
        y, xhat, inv_std = layer_norm_forward(rows, p.get("weight", none), p.get("bias", none),
                                              a.eps)
        ctx.save(xhat, inv_std)
        return y.reshape(x.shape)

    @staticmethod
    def backward(a, p, ctx, dy):
        xhat, inv_std = ctx.saved
        rows = np.ascontiguousarray(dy).reshape(xhat.shape)
        weight = p.get("weight", np.zeros(0, dy.dtype))
        dx, dw, db = layer_norm_backward(rows, xhat, inv_std, weight)
        grads = {}
        if "weight" in p:
            grads["weight"] = dw
            if "bias" in p:
                grads["bias"] = db
        return (dx.reshape(dy.shape) if ctx.needs_input_grad[0] else None,), grads

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.LayerNorm({in_shapes[0][-1]}, eps={a.eps!r}, "
                                     f"elementwise_affine={a.elementwise_affine}, bias={a.bias})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        d = in_shapes[0][-1]
        scale = g.param("weight") if a.elementwise_affine else g.const(np.ones(d))
        bias = g.param("bias") if a.elementwise_affine and a.bias else ""
        return g.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=float(a.eps))


class _BatchNorm(Layer):
    formula = ("y = (x − E[x]) / √(Var[x] + {eps})·γ + β per channel, E and the biased Var over "
               "the batch (and positions) while training; running estimates, updated with momentum"
               " {momentum}, replace them in inference (track_running_stats = "
               "{track_running_stats})")
    backward_formula = ("batch statistics: x̂ = (x − E[x]) / σ, g = dL/dy·γ, dL/dx = (g − mean(g) "
                        "− x̂·mean(g·x̂)) / σ, means per channel; running statistics: dL/dx = g / "
                        "√(running_var + {eps}); dL/dγ = Σ dL/dy·x̂, dL/dβ = Σ dL/dy per channel")
    category = "Normalisation"
    buffers = ("running_mean", "running_var")
    ranks: tuple = ()  # accepted input ranks, batch included
    attrs = {
        "eps": Float(1e-5, "added to the variance so the division is never by zero", min=0.0),
        "momentum": Float(0.1, "weight of each new batch in the running statistics",
                          min=0.0, max=1.0),
        "affine": Bool(True, "learn a gain (weight) and a shift (bias) per channel"),
        "track_running_stats": Bool(True, "keep running statistics and use them in inference "
                                          "(off: batch statistics always)"),
    }

    @classmethod
    def infer(cls, a, x):
        if len(x) not in cls.ranks:
            want = " or ".join(("(N, C)", "(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)")[r - 2]
                               for r in cls.ranks)
            raise ShapeError(f"expects {want}, got {fmt_shape(x)}")
        return x

    @staticmethod
    def param_shapes(a, in_shapes):
        names = (("weight", "bias") if a.affine else ()) + \
            (("running_mean", "running_var") if a.track_running_stats else ())
        return {name: (in_shapes[0][1],) for name in names}

    @staticmethod
    def init(a, in_shapes, rng):
        ones = ("weight", "running_var")  # a unit gain and variance, zero shift and mean: torch's
        return {k: (np.ones if k in ones else np.zeros)(s)
                for k, s in _BatchNorm.param_shapes(a, in_shapes).items()}

    @staticmethod
    def _axes(x) -> tuple:
        return (0, *range(2, x.ndim))

    @classmethod
    def forward(cls, a, p, ctx, x):
        axes, bshape = cls._axes(x), (1, -1) + (1,) * (x.ndim - 2)
        if ctx.training or not a.track_running_stats:
            count = x.size // x.shape[1]
            if count < 2 and ctx.training:
                raise ShapeError(f"needs more than one value per channel in training, got "
                                 f"{fmt_shape(x.shape)}: use a batch size above 1")
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(bshape)
            var = (xc * xc).mean(axis=axes)
            if ctx.training and a.track_running_stats:
                m = a.momentum
                rm, rv = p["running_mean"], p["running_var"]
                rm *= 1 - m
                rm += m * mean
                rv *= 1 - m
                rv += m * var * (count / max(count - 1, 1))
            batch_stats = True
        else:
            xc = x - p["running_mean"].reshape(bshape)
            var, batch_stats = p["running_var"], False
        inv_std = (1.0 / np.sqrt(var + a.eps)).astype(x.dtype).reshape(bshape)
        xhat = xc * inv_std
        ctx.save(xhat, inv_std, batch_stats)
        if not a.affine:
            return xhat
        return xhat * p["weight"].reshape(bshape) + p["bias"].reshape(bshape)

    @classmethod
    def backward(cls, a, p, ctx, dy):
        xhat, inv_std, batch_stats = ctx.saved
        axes, grads = cls._axes(dy), {}
        if a.affine:
            grads["weight"] = (dy * xhat).sum(axis=axes)
            grads["bias"] = dy.sum(axis=axes)
            dy = dy * p["weight"].reshape(inv_std.shape)
        if not ctx.needs_input_grad[0]:
            return (None,), grads
        if batch_stats:
            return (_normalise_backward(dy, xhat, inv_std, axes),), grads
        return (dy * inv_std,), grads  # running statistics are constants

    @classmethod
    def to_torch(cls, a, in_shapes):
        return TorchCode("{m}({x})", f"nn.{cls.__name__}({in_shapes[0][1]}, eps={a.eps!r}, "
                                     f"momentum={a.momentum!r}, affine={a.affine}, "
                                     f"track_running_stats={a.track_running_stats})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        """Running statistics (ONNX's inference batch norm), or, without them, the batch's own,
        as the forward pass uses them in inference."""
        c, ndim = in_shapes[0][1], len(in_shapes[0])
        if a.track_running_stats:
            scale = g.param("weight") if a.affine else g.const(np.ones(c))
            shift = g.param("bias") if a.affine else g.const(np.zeros(c))
            return g.op("BatchNormalization", x, scale, shift, g.param("running_mean"),
                        g.param("running_var"), epsilon=float(a.eps))
        scale = g.value("weight") if a.affine else np.ones(c)
        shift = g.value("bias") if a.affine else np.zeros(c)
        axes = [0, *range(2, ndim)]
        centred = g.op("Sub", x, g.op("ReduceMean", x, axes=axes, keepdims=1))
        var = g.op("ReduceMean", g.op("Mul", centred, centred), axes=axes, keepdims=1)
        y = g.op("Div", centred, g.op("Sqrt", g.op("Add", var, g.const(a.eps))))
        per_channel = (c,) + (1,) * (ndim - 2)
        return g.op("Add", g.op("Mul", y, g.const(scale.reshape(per_channel))),
                    g.const(shift.reshape(per_channel)))


@register
class BatchNorm1d(_BatchNorm):
    """Normalises each channel over the batch (and length) of (N, C) or (N, C, L) inputs."""

    ranks = (2, 3)
    examples = (Example({}, ((5, 3),)), Example({"momentum": 0.3}, ((3, 2, 4),)),
                Example({"affine": False, "track_running_stats": False}, ((4, 3),)))


@register
class BatchNorm2d(_BatchNorm):
    """Normalises each channel of (N, C, H, W) images over the batch and all positions."""

    ranks = (4,)
    examples = (Example({}, ((2, 3, 4, 4),)),
                Example({"affine": False, "eps": 1e-3}, ((3, 2, 3, 3),)))


@register
class BatchNorm3d(_BatchNorm):
    """Normalises each channel of (N, C, D, H, W) volumes over the batch and all positions."""

    ranks = (5,)
    examples = (Example({}, ((2, 3, 2, 3, 3),)), Example({"momentum": 0.5}, ((3, 2, 2, 2, 2),)))
