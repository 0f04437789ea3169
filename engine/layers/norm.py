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

from layerloom.engine.kernels.batchnorm import (batch_norm_backward, batch_norm_forward,
                                                batch_norm_inference)
from layerloom.engine.kernels.norm import layer_norm_backward, layer_norm_forward
from layerloom.engine.registry import register
from layerloom.engine.spec import Bool, Example, Float, Layer, ShapeError, TorchCode, fmt_shape


def batch_norm_run(a, p, ctx, x, relu: bool = False) -> np.ndarray:
    """BatchNorm's forward (``relu``: then max(·, 0), the fused BatchNorm → ReLU step) over x
    viewed as (N, C, positions); saves the input and two numbers per channel for the backward."""
    x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    none = np.zeros(0, x.dtype)
    w = np.ascontiguousarray(p["weight"], dtype=x.dtype) if a.affine else none
    b = np.ascontiguousarray(p["bias"], dtype=x.dtype) if a.affine else none
    batch_stats = ctx.training or not a.track_running_stats
    if batch_stats:
        count = x3.shape[0] * x3.shape[2]
        if count < 2 and ctx.training:
            raise ShapeError(f"needs more than one value per channel in training, got "
                             f"{fmt_shape(x.shape)}: use a batch size above 1")
        y, mean, var, inv_std = batch_norm_forward(x3, w, b, float(a.eps), relu)
        if ctx.training and a.track_running_stats:
            rm, rv = p["running_mean"], p["running_var"]
            rm *= 1 - a.momentum
            rm += a.momentum * mean
            rv *= 1 - a.momentum
            rv += a.momentum * var * (count / max(count - 1, 1))
    else:
        mean = p["running_mean"].astype(np.float64)
        inv_std = (1.0 / np.sqrt(p["running_var"] + a.eps)).astype(x.dtype)
        y = batch_norm_inference(x3, w, b, mean, inv_std, relu)
    ctx.save(x3, y if relu else x3, mean, inv_std, batch_stats, x.shape)
    return y.reshape(x.shape)


def batch_norm_grads(a, p, ctx, dy, relu: bool = False) -> tuple:
    """((dx or None,), parameter gradients) of ``batch_norm_run``."""
    x3, y3, mean, inv_std, batch_stats, _ = ctx.saved
    none = np.zeros(0, x3.dtype)
    w = np.ascontiguousarray(p["weight"], dtype=x3.dtype) if a.affine else none
    need = bool(ctx.needs_input_grad[0])
    dx, dw, db = batch_norm_backward(x3, y3, np.ascontiguousarray(dy, dtype=x3.dtype).reshape(
        x3.shape), mean, inv_std, w, batch_stats, relu, need)
    return (dx.reshape(dy.shape) if need else None,), ({"weight": dw, "bias": db} if a.affine
                                                       else {})


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
    parallel_kernels = True  # its channels split over the cores (kernels/batchnorm.py)
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
    def forward(a, p, ctx, x):
        return batch_norm_run(a, p, ctx, x)

    @staticmethod
    def backward(a, p, ctx, dy):
        return batch_norm_grads(a, p, ctx, dy)

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
