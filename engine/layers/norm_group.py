"""Per-sample normalisations of channels as ``torch.nn.InstanceNorm1d/2d/3d`` and ``GroupNorm``.

InstanceNorm normalises each channel of each sample over its positions; GroupNorm each group of
``C / num_groups`` channels of each sample over those channels and their positions. Neither
depends on the batch, which is why style transfer (InstanceNorm) and small-batch detection
(GroupNorm) use them. Both are a LayerNorm over rows of a (N·groups, values) view of the input,
so they run on LayerNorm's numba kernels, with the per-channel gain and shift applied after.

PyTorch's defaults differ and are kept: InstanceNorm learns no gain or shift and keeps no
running statistics unless asked (``affine``, ``track_running_stats``); GroupNorm learns both.
With ``track_running_stats`` an InstanceNorm folds each batch's per-sample statistics into
running ones in training (their mean over the batch; unbiased variances) and uses those in
inference, as PyTorch does.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.activation import kernel_dtype
from layerloom.engine.kernels.channels import channel_affine, channel_affine_grads
from layerloom.engine.kernels.norm import layer_norm_backward, layer_norm_forward
from layerloom.engine.registry import register
from layerloom.engine.spec import Bool, Example, Float, Int, Layer, ShapeError, TorchCode, fmt_shape

EPS = Float(1e-5, "added to the variance so the division is never by zero", min=0.0)
RANK_NAMES = {3: "(N, C, L)", 4: "(N, C, H, W)", 5: "(N, C, D, H, W)"}


def _rows_forward(x: np.ndarray, groups: int, eps: float) -> tuple:
    """(xhat shaped as x, xhat rows, inv_std per row) for rows of N·groups."""
    rows = np.ascontiguousarray(x).reshape(x.shape[0] * groups, -1)
    none = np.zeros(0, x.dtype)
    _, xhat, inv_std = layer_norm_forward(rows, none, none, eps)
    return xhat.reshape(x.shape), xhat, inv_std


def _rows_backward(dxhat: np.ndarray, xhat_rows: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(dxhat).reshape(xhat_rows.shape)
    dx, _, _ = layer_norm_backward(rows, xhat_rows, inv_std, np.zeros(0, dxhat.dtype))
    return dx.reshape(dxhat.shape)


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _affine(xhat: np.ndarray, p: dict) -> np.ndarray:
    """xhat·w + b per channel (``kernels.channels``: one pass, not numpy's broadcasts)."""
    w, b = p["weight"], p["bias"]
    if kernel_dtype(xhat, w, b):
        return channel_affine(xhat, w, b)
    return xhat * _per_channel(w, xhat.ndim) + _per_channel(b, xhat.ndim)


def _affine_backward(dy: np.ndarray, xhat: np.ndarray, p: dict, need_dx: bool) -> tuple:
    """(the gradient into xhat or None, {"weight", "bias"}) of ``_affine``."""
    w = p["weight"]
    if kernel_dtype(dy, xhat, w):
        dxhat, dw, db = channel_affine_grads(dy, xhat, w, need_dx)
        return dxhat, {"weight": dw, "bias": db}
    axes = (0, *range(2, dy.ndim))
    grads = {"weight": (dy * xhat).sum(axis=axes), "bias": dy.sum(axis=axes)}
    return (dy * _per_channel(w, dy.ndim) if need_dx else None), grads


class _InstanceNorm(Layer):
    formula = ("y = (x − E[x]) / √(Var[x] + {eps})·γ + β, E and the biased Var per sample and "
               "channel over the positions; γ, β per channel when affine = {affine}; running "
               "estimates (momentum {momentum}) used in inference when track_running_stats = "
               "{track_running_stats}")
    backward_formula = ("x̂ = (x − E[x]) / σ, g = dL/dy·γ: dL/dx = (g − mean(g) − x̂·mean(g·x̂)) /"
                        " σ, means per sample and channel; dL/dγ = Σ dL/dy·x̂, dL/dβ = Σ dL/dy per"
                        " channel")
    category = "Normalisation"
    formula = ("y = (x − μ) / √(σ<sup>2</sup> + {eps}) · w + b, μ and σ<sup>2</sup> per channel "
               "of each sample (running ones in inference with track_running_stats)")
    backward_formula = ("dL/dx = (g − mean(g) − x̂·mean(g·x̂)) / √(σ<sup>2</sup> + {eps}), g = "
                        "dL/dy·w, means per channel")
    parallel_kernels = True  # LayerNorm's numba-parallel kernels (kernels/norm.py)
    buffers = ("running_mean", "running_var")
    rank = 4
    attrs = {
        "eps": EPS,
        "momentum": Float(0.1, "weight of each new batch in the running statistics",
                          min=0.0, max=1.0),
        "affine": Bool(False, "learn a gain (weight) and a shift (bias) per channel"),
        "track_running_stats": Bool(False, "keep running statistics and use them in inference"),
    }

    @classmethod
    def infer(cls, a, x):
        if len(x) != cls.rank:
            raise ShapeError(f"expects {RANK_NAMES[cls.rank]}, got {fmt_shape(x)}")
        return x

    @staticmethod
    def param_shapes(a, in_shapes):
        names = (("weight", "bias") if a.affine else ()) + \
            (("running_mean", "running_var") if a.track_running_stats else ())
        return {name: (in_shapes[0][1],) for name in names}

    @staticmethod
    def init(a, in_shapes, rng):
        c = in_shapes[0][1]
        p = {}
        if a.affine:
            p.update(weight=np.ones(c), bias=np.zeros(c))
        if a.track_running_stats:
            p.update(running_mean=np.zeros(c), running_var=np.ones(c))
        return p

    @classmethod
    def forward(cls, a, p, ctx, x):
        n, c = x.shape[:2]
        if ctx.training or not a.track_running_stats:
            if ctx.training and x[0, 0].size < 2:
                raise ShapeError(f"needs more than one value per channel in training, got "
                                 f"{fmt_shape(x.shape)}")
            xhat, rows, inv_std = _rows_forward(x, c, a.eps)
            if ctx.training and a.track_running_stats:
                flat = x.reshape(n, c, -1)
                m = a.momentum
                p["running_mean"] *= 1 - m
                p["running_mean"] += m * flat.mean(axis=2).mean(axis=0)
                p["running_var"] *= 1 - m
                p["running_var"] += m * flat.var(axis=2, ddof=1).mean(axis=0)
            ctx.save(xhat, rows, inv_std)
        else:
            inv = _per_channel(1.0 / np.sqrt(p["running_var"] + a.eps), x.ndim).astype(x.dtype)
            xhat = (x - _per_channel(p["running_mean"], x.ndim)) * inv
            ctx.save(xhat, None, inv)
        return _affine(xhat, p) if a.affine else xhat

    @classmethod
    def backward(cls, a, p, ctx, dy):
        xhat, rows, inv_std = ctx.saved
        need = bool(ctx.needs_input_grad[0])
        dxhat, grads = _affine_backward(dy, xhat, p, need) if a.affine else (dy, {})
        if not need:
            return (None,), grads
        if rows is None:  # running statistics are constants
            return (dxhat * inv_std,), grads
        return (_rows_backward(dxhat, rows, inv_std),), grads

    @classmethod
    def to_torch(cls, a, in_shapes):
        return TorchCode("{m}({x})", f"nn.{cls.__name__}({in_shapes[0][1]}, eps={a.eps!r}, "
                                     f"momentum={a.momentum!r}, affine={a.affine}, "
                                     f"track_running_stats={a.track_running_stats})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        c = in_shapes[0][1]
        scale = g.param("weight") if a.affine else g.const(np.ones(c))
        shift = g.param("bias") if a.affine else g.const(np.zeros(c))
        if a.track_running_stats:  # inference uses the running statistics: a batch norm
            return g.op("BatchNormalization", x, scale, shift, g.param("running_mean"),
                        g.param("running_var"), epsilon=float(a.eps))
        return g.op("InstanceNormalization", x, scale, shift, epsilon=float(a.eps))


@register
class InstanceNorm1d(_InstanceNorm):
    """Normalises each channel of each sequence (N, C, L) over its length."""

    rank = 3
    examples = (Example({}, ((2, 3, 5),)), Example({"affine": True, "eps": 1e-3}, ((3, 2, 4),)))


@register
class InstanceNorm2d(_InstanceNorm):
    """Normalises each channel of each image (N, C, H, W) over its positions (style transfer)."""

    rank = 4
    examples = (Example({}, ((2, 3, 4, 4),)), Example({"affine": True}, ((2, 2, 3, 5),)),
                Example({"affine": True, "track_running_stats": True, "momentum": 0.3},
                        ((3, 2, 3, 3),)))


@register
class InstanceNorm3d(_InstanceNorm):
    """Normalises each channel of each volume (N, C, D, H, W) over its positions."""

    rank = 5
    examples = (Example({"affine": True}, ((2, 2, 2, 3, 3),)),)


@register
class GroupNorm(Layer):
    """Normalises groups of channels of each sample (N, C, …) over those channels and positions."""

    formula = ("y = (x − E[x]) / √(Var[x] + {eps})·γ + β, the channels in {num_groups} groups, E "
               "and the biased Var per sample over each group's channels and positions; γ, β per "
               "channel when affine = {affine}")
    backward_formula = ("x̂ = (x − E[x]) / σ, g = dL/dy·γ: dL/dx = (g − mean(g) − x̂·mean(g·x̂)) /"
                        " σ, means per sample and group; dL/dγ = Σ dL/dy·x̂, dL/dβ = Σ dL/dy per "
                        "channel")
    category = "Normalisation"
    parallel_kernels = True  # LayerNorm's numba-parallel kernels (kernels/norm.py)
    attrs = {"num_groups": Int(2, "how many groups the channels split into (divides C)", min=1),
             "eps": EPS,
             "affine": Bool(True, "learn a gain (weight) and a shift (bias) per channel")}
    examples = (Example({}, ((2, 4, 3, 3),)), Example({"num_groups": 3, "eps": 1e-3}, ((3, 6, 5),)),
                Example({"num_groups": 1, "affine": False}, ((2, 4, 2, 2),)),
                Example({"num_groups": 4}, ((2, 4, 3),)))

    @classmethod
    def label(cls, a) -> str:
        return f"{a['num_groups']} groups"

    @staticmethod
    def infer(a, x):
        if len(x) < 2:
            raise ShapeError(f"expects (N, C, …), got {fmt_shape(x)}")
        if x[1] % a.num_groups:
            raise ShapeError(f"{x[1]} channels do not split into {a.num_groups} groups")
        return x

    @staticmethod
    def param_shapes(a, in_shapes):
        return {"weight": (in_shapes[0][1],), "bias": (in_shapes[0][1],)} if a.affine else {}

    @staticmethod
    def init(a, in_shapes, rng):
        c = in_shapes[0][1]
        return {"weight": np.ones(c), "bias": np.zeros(c)} if a.affine else {}

    @staticmethod
    def forward(a, p, ctx, x):
        xhat, rows, inv_std = _rows_forward(x, a.num_groups, a.eps)
        ctx.save(xhat, rows, inv_std)
        return _affine(xhat, p) if a.affine else xhat

    @staticmethod
    def backward(a, p, ctx, dy):
        xhat, rows, inv_std = ctx.saved
        need = bool(ctx.needs_input_grad[0])
        dxhat, grads = _affine_backward(dy, xhat, p, need) if a.affine else (dy, {})
        if not need:
            return (None,), grads
        return (_rows_backward(dxhat, rows, inv_std),), grads

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.GroupNorm({a.num_groups}, {in_shapes[0][1]}, "
                                     f"eps={a.eps!r}, affine={a.affine})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        """As PyTorch exports it (opset 17 has no GroupNormalization): an instance norm of the
        groups, then the per-channel gain and shift; the import puts it back together."""
        shape = in_shapes[0]
        groups = g.op("Reshape", x, g.const([0, a.num_groups, -1], np.int64))
        normed = g.op("InstanceNormalization", groups, g.const(np.ones(a.num_groups)),
                      g.const(np.zeros(a.num_groups)), epsilon=float(a.eps))
        y = g.op("Reshape", normed, g.const([0, *shape[1:]], np.int64))
        if not a.affine:
            return y
        per_channel = g.const([shape[1]] + [1] * (len(shape) - 2), np.int64)
        weight = g.op("Reshape", g.param("weight"), per_channel)
        bias = g.op("Reshape", g.param("bias"), per_channel)
        return g.op("Add", g.op("Mul", y, weight), bias)
