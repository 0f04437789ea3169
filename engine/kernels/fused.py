"""Fused plan steps: what the plan runs in place of a chain of consecutive nodes.

They are not registered layers (nobody places them on the canvas): ``engine.plan`` builds them
where a known pattern appears and the unfused nodes stay the reference the tests compare against.

- ``ConvReluMaxPool``: Conv2D (stride 1) → ReLU → MaxPool2D (no padding) in one numba kernel that
  never stores the convolution's output; its backward touches only the positions that won the pool.
- ``DenseActivation``: Dense → an element-wise activation in one step (ReLU in place; any other
  activation through its own layer functions), saving an executor step and a temporary.

Attributes arrive as plain tuples (``conv_pool_attrs`` / ``dense_act_attrs``) so the hot path
reads no ``AttrValues``.
"""
from __future__ import annotations

import numpy as np

from engine.kernels.conv import conv_relu_maxpool, conv_relu_maxpool_backward
from engine.kernels.dense import add_bias, add_bias_relu
from engine.layers.dense import Dense
from engine.layers.pool import geometry
from engine.spec import Ctx, Layer

ACTIVATIONS = ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU")


def conv_pool_attrs(conv, pool) -> tuple:
    """(padding, (pool kh, kw, sh, sw), has bias) from the two nodes' attributes."""
    kh, kw, sh, sw, _, _ = geometry(pool)
    return tuple(conv.padding), (kh, kw, sh, sw), bool(conv.bias)


def dense_act_attrs(dense, act_layer, act_attrs) -> tuple:
    """(the Dense node's attributes, the activation's layer class, its attributes)."""
    return dense, act_layer, act_attrs


def zero_pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """``engine.layers.image_ops.pad2d`` with zeros, without ``np.pad``'s ~50 µs of Python per call."""
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x)
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


class ConvReluMaxPool(Layer):
    """maxpool(relu(conv(x) + b)) as one step; parameters are the convolution's."""

    type_id = "Conv2D+ReLU+MaxPool2D"

    @staticmethod
    def forward(a, p, ctx, x):
        (ph, pw), (kh, kw, sh, sw), bias = a
        xp = zero_pad(x, ph, pw)
        w = np.ascontiguousarray(p["weight"], dtype=x.dtype)
        b = p["bias"] if bias else np.zeros(len(w), x.dtype)
        y, arg = conv_relu_maxpool(xp, w, np.ascontiguousarray(b, dtype=x.dtype),
                                           kh, kw, sh, sw, True)
        ctx.save(xp, w, arg, x.shape)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        (ph, pw), _, bias = a
        xp, w, arg, shape = ctx.saved
        need = bool(ctx.needs_input_grad[0])
        dxp, dw, db = conv_relu_maxpool_backward(xp, w, np.ascontiguousarray(dy, dtype=xp.dtype),
                                                 arg, need)
        dx = dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]] if need else None
        return (dx,), ({"weight": dw, "bias": db} if bias else {"weight": dw})


class DenseActivation(Layer):
    """act(x Wᵀ + b) as one step; parameters are the Dense node's."""

    type_id = "Dense+activation"

    @staticmethod
    def forward(a, p, ctx, x):
        dense, act, act_attrs = a
        z = x.reshape(-1, x.shape[-1]) @ p["weight"].T
        shape = (*x.shape[:-1], z.shape[1])
        if act.type_id == "ReLU":  # the same x·(x > 0) as the ReLU layer, in place, one pass
            mask = np.empty(z.shape, np.bool_)
            add_bias_relu(z, p["bias"] if dense["bias"] else np.empty(0, z.dtype), mask)
            ctx.save(x, mask.reshape(shape))
            return z.reshape(shape)
        if dense["bias"]:
            add_bias(z, p["bias"])
        z = z.reshape(shape)
        sub = Ctx(ctx.training, ctx.rng, (True,))
        y = act.forward(act_attrs, {}, sub, z)
        ctx.save(x, sub)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        dense, act, act_attrs = a
        x, saved = ctx.saved
        if act.type_id == "ReLU":
            dz = dy * saved
        else:
            (dz,), _ = act.backward(act_attrs, {}, saved, dy)
        inner = Ctx(ctx.training, ctx.rng, ctx.needs_input_grad)
        inner.save(x)
        return Dense.backward(dense, p, inner, dz)
