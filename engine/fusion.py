"""Fused plan steps: what the plan runs in place of a chain of consecutive nodes.

They are not registered layers (nobody places them on the canvas): ``engine.plan`` builds them
where a known pattern appears and the unfused nodes stay the reference the tests compare against.
Plan-level objects built from layers and kernels, so they live beside ``plan.py``: ``kernels/``
stays below ``layers/`` and never imports them.

- ``ConvReluMaxPool``: Conv2D (stride 1) → ReLU → MaxPool2D (no padding), or the same in 1-D
  (Conv1d → ReLU → MaxPool1d, as one-row images), in one numba kernel that never stores the
  convolution's output; its backward touches only the positions that won the pool.
- ``DenseChain``: Dense layers, each optionally followed by an element-wise activation, each
  feeding the next (an MLP's Dense → ReLU → Dense → ReLU → Dense) in one step; the activations
  it may absorb say so themselves (``Layer.fusable_activation``). ReLU runs in the
  same pass as the bias; any other activation through its own layer functions. At batch 1 the
  executor's cost per node was as large as the products themselves; one step per chain saves it.

- ``BatchNormReLU``: BatchNorm1d/2d/3d → ReLU, the ReLU in the normalisation's output pass and
  its mask read from the output's sign in the backward (``kernels/batchnorm``): no mask and no
  second activation array are kept.
- ``ConvBatchNorm``: Conv2D → BatchNorm2d [→ ReLU] (a ResNet's conv–BN–ReLU). Training runs the
  convolution, then the normalisation with the ReLU in its output pass. In inference with running
  statistics the normalisation is folded into the convolution (W·γ/σ, (b − μ)·γ/σ + β): one
  convolution and nothing else, as deployment tools do it.
- ``ConvReLU``: Conv2D → ReLU where no pool follows (a VGG stage's first convolution, a strided
  one): the ReLU clips the convolution's output in place and its backward reads the mask from the
  output's sign: no mask and no second activation array.
- ``AddReLU``: a residual Add of two same-shape tensors → ReLU in one pass; the backward masks
  the gradient once and hands the same array to both inputs.

Attributes arrive as plain tuples (``conv_pool_attrs`` / ``dense_chain_attrs``) so the hot path
reads no ``AttrValues``.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv import (conv_relu_maxpool, conv_relu_maxpool_grads,
                                          pad_free_route, pooled_filters)
from layerloom.engine.kernels.dense import linear
from layerloom.engine.kernels.relu import add_relu, relu_mask_grad
from layerloom.engine.layers.conv import conv_grads, conv_run
from layerloom.engine.layers.dense import Dense
from layerloom.engine.layers.norm import batch_norm_grads, batch_norm_inference, batch_norm_run
from layerloom.engine.layers.pool import windows
from layerloom.engine.spec import AttrValues, Ctx, Layer


def conv_pool_attrs(conv, pool) -> tuple:
    """(padding, (pool kh, kw, sh, sw), has bias, 1-D) from the two nodes' attributes; a 1-D
    chain (Conv1d → ReLU → MaxPool1d) runs as one-row images."""
    (kh, kw), (sh, sw), _, _ = windows(pool)
    one_d = not isinstance(pool.kernel_size, tuple)
    padding = (0, conv.padding) if one_d else tuple(conv.padding)
    return padding, (kh, kw, sh, sw), bool(conv.bias), one_d


def dense_chain_attrs(members: tuple) -> tuple:
    """One link per Dense member: (its attributes, weight key, bias key or None, the activation's
    layer class or None, its attributes, whether it is ReLU). ``members`` are plan Steps."""
    links = []
    for m in members:
        if m.layer.type_id == "Dense":
            bias = f"{m.node_id}.bias" if m.attrs.bias else None
            links.append([m.attrs, f"{m.node_id}.weight", bias, None, None, False])
        else:
            links[-1][3:] = [m.layer, m.attrs, m.layer.type_id == "ReLU"]
    return tuple(tuple(link) for link in links)


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
    parallel_kernels = True  # the fused conv kernels split the batch over the engine's cores

    @staticmethod
    def forward(a, p, ctx, x):
        (ph, pw), (kh, kw, sh, sw), bias, one_d = a
        x4, w = (x[:, :, None, :], p["weight"][:, :, None, :]) if one_d else (x, p["weight"])
        w = np.ascontiguousarray(w, dtype=x.dtype)
        b = p["bias"] if bias else np.zeros(len(w), x.dtype)
        # Winograd (3×3 and 5×5) reads the padding in place: x goes unpadded, and so comes its
        # gradient
        pad = (ph, pw) if pad_free_route(x4.shape, w.shape, x.dtype, (ph, pw), (1, 1)) else None
        xp = np.ascontiguousarray(x4) if pad else zero_pad(x4, ph, pw)
        u = pooled_filters(xp, w, pad or (0, 0))  # once a step, for both ways
        y, arg = conv_relu_maxpool(xp, w, np.ascontiguousarray(b, dtype=x.dtype),
                                   kh, kw, sh, sw, True, pad or (0, 0), u)
        ctx.save(xp, w, arg, x4.shape, pad, u)
        return y[:, :, 0, :] if one_d else y

    @staticmethod
    def backward(a, p, ctx, dy):
        (ph, pw), _, bias, one_d = a
        xp, w, arg, shape, pad, u = ctx.saved
        need = bool(ctx.needs_input_grad[0])
        dy4 = dy[:, :, None, :] if one_d else dy
        dxp, dw, db = conv_relu_maxpool_grads(xp, w, np.ascontiguousarray(dy4, dtype=xp.dtype),
                                              arg, need, pad or (0, 0), u)
        dx = (dxp if pad else dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]]) if need else None
        if one_d:
            dx, dw = (None if dx is None else dx[:, :, 0, :]), dw[:, :, 0, :]
        return (dx,), ({"weight": dw, "bias": db} if bias else {"weight": dw})


class DenseChain(Layer):
    """Dense [→ activation] links as one step; parameters are keyed by their full keys
    ("fc1.weight"), since several Dense nodes share the step."""

    type_id = "Dense chain"

    @staticmethod
    def forward(a, p, ctx, x):
        h = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])  # (N, T, D) as one (N·T, D) product
        saved = []
        for _, w_key, b_key, act, act_attrs, relu in a:
            z = linear(h, p[w_key], None if b_key is None else p[b_key], relu)
            if act is None or relu:  # ReLU's mask is z > 0 afterwards (see add_bias_relu)
                saved.append((h, z))
                h = z
            else:
                sub = Ctx(ctx.training, ctx.rng, (True,))
                saved.append((h, sub))
                h = act.forward(act_attrs, {}, sub, z)
        ctx.save(x.shape, saved)
        return h if x.ndim == 2 else h.reshape(*x.shape[:-1], h.shape[1])

    @staticmethod
    def backward(a, p, ctx, dy):
        grads, dx = {}, None
        for _, dx, member_grads in DenseChain.members_backward(a, p, ctx, dy):
            grads.update(member_grads)
        return (dx,), grads

    @staticmethod
    def members_backward(a, p, ctx, dy):
        """The chain's unfused backward from the values its forward saved, last member first:
        yields (member position, the gradient into that member, its parameter gradients). The
        executor walks it to name the member where a gradient first turned non-finite."""
        shape, saved = ctx.saved
        g = dy.reshape(-1, dy.shape[-1])
        pos = sum(1 if link[3] is None else 2 for link in a) - 1
        for (dense, w_key, b_key, act, act_attrs, relu), (h, kept) in zip(reversed(a),
                                                                          reversed(saved)):
            if act is not None:
                if relu:
                    g = g * (kept > 0)
                else:
                    (g,), _ = act.backward(act_attrs, {}, kept, g)
                yield pos, g, {}
                pos -= 1
            inner = Ctx(ctx.training, ctx.rng, (pos > 0 or ctx.needs_input_grad[0],))
            inner.save(h)
            (g,), dense_grads = Dense.backward(dense, {"weight": p[w_key]}, inner, g)
            member_grads = {w_key: dense_grads["weight"]}
            if b_key is not None:
                member_grads[b_key] = dense_grads["bias"]
            if pos == 0 and g is not None:
                g = g.reshape(shape)
            yield pos, g, member_grads
            pos -= 1


class BatchNormReLU(Layer):
    """relu(batchnorm(x)) as one step; parameters and buffers are the BatchNorm's."""

    type_id = "BatchNorm+ReLU"
    parallel_kernels = True  # numba-parallel over channels

    @staticmethod
    def forward(a, p, ctx, x):
        return batch_norm_run(a, p, ctx, x, relu=True)

    @staticmethod
    def backward(a, p, ctx, dy):
        return batch_norm_grads(a, p, ctx, dy, relu=True)

    @staticmethod
    def member_outputs(a, p, ctx) -> list:
        """[the BatchNorm's output, the ReLU's] of the last forward, from what it saved: a
        replay through the unfused layers would normalise with the running statistics."""
        x3, y3, mean, inv_std, _, shape = ctx.saved
        none = np.zeros(0, x3.dtype)
        w = np.ascontiguousarray(p["weight"], dtype=x3.dtype) if a.affine else none
        b = np.ascontiguousarray(p["bias"], dtype=x3.dtype) if a.affine else none
        return [batch_norm_inference(x3, w, b, mean, inv_std, False).reshape(shape),
                y3.reshape(shape)]


def conv_bn_attrs(conv: Step, bn: Step, relu: bool) -> tuple:
    """(conv attrs, BN attrs, ReLU?, the conv's attrs with a bias (the folded form has one),
    {conv param: full key}, {BN param or buffer: full key}) of the two plan Steps."""
    keys = lambda s: dict(zip(s.param_names, s.param_keys))  # noqa: E731
    return (conv.attrs, bn.attrs, relu, AttrValues({**conv.attrs, "bias": True}), keys(conv),
            keys(bn))


class ConvBatchNorm(Layer):
    """[relu](batchnorm(conv(x))) as one step; reads its parameters by full key."""

    type_id = "Conv2D+BatchNorm2d"
    parallel_kernels = True  # the convolution's and the normalisation's numba kernels

    @staticmethod
    def forward(a, p, ctx, x):
        conv, bn, relu, biased, ck, bk = a
        if ctx.training or not bn.track_running_stats:
            return ConvBatchNorm._unfolded(a, p, ctx, x)
        folded = ConvBatchNorm.folded(a, p, x.dtype)
        z = conv_run(biased, folded, Ctx(False, ctx.rng, (False,)), x, folded["weight"],
                     conv.padding, conv.stride, conv.dilation, relu)
        ctx.save(None, x)
        return z

    @staticmethod
    def folded(a, p, dtype) -> dict:
        """The convolution's weight and bias with the normalisation's running statistics (and
        its affine) folded in: W·γ/σ, (b − μ)·γ/σ + β, computed in float64."""
        conv, bn, _, _, ck, bk = a
        scale = 1.0 / np.sqrt(p[bk["running_var"]].astype(np.float64) + bn.eps)
        shift = -p[bk["running_mean"]].astype(np.float64) * scale
        if bn.affine:
            scale = scale * p[bk["weight"]]
            shift = shift * p[bk["weight"]] + p[bk["bias"]]
        if conv.bias:
            shift = shift + p[ck["bias"]] * scale
        w = (p[ck["weight"]] * scale[:, None, None, None]).astype(dtype)
        return {"weight": w, "bias": shift.astype(dtype)}

    @staticmethod
    def _unfolded(a, p, ctx, x):
        """The convolution, then the normalisation (+ ReLU) in its own kernel's pass."""
        conv, bn, relu, _, ck, bk = a
        c_ctx, b_ctx = Ctx(True, ctx.rng, ctx.needs_input_grad), Ctx(ctx.training, ctx.rng, (True,))
        z = conv_run(conv, {k: p[v] for k, v in ck.items()}, c_ctx, x, p[ck["weight"]],
                     conv.padding, conv.stride, conv.dilation)
        y = batch_norm_run(bn, {k: p[v] for k, v in bk.items()}, b_ctx, z, relu)
        ctx.save(c_ctx, b_ctx)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        conv, bn, relu, _, ck, bk = a
        if ctx.saved[0] is None:  # a backward after a folded (inference) forward: replay it
            ConvBatchNorm._unfolded(a, p, ctx, ctx.saved[1])
        c_ctx, b_ctx = ctx.saved
        (dz,), bn_grads = batch_norm_grads(bn, {k: p[v] for k, v in bk.items()}, b_ctx, dy, relu)
        dx, dw, db = conv_grads(conv, c_ctx, dz, conv.padding, conv.stride, conv.dilation)
        grads = {bk[k]: g for k, g in bn_grads.items()}
        grads[ck["weight"]] = dw
        if conv.bias:
            grads[ck["bias"]] = db
        return (dx,), grads

    @staticmethod
    def member_outputs(a, p, ctx):
        """[conv, BatchNorm, (ReLU)] outputs of the last training forward from what it saved, or
        None after a folded one (then the unfused layers replay it in inference)."""
        if ctx.saved[0] is None:
            return None
        _, bn, relu, _, _, bk = a
        x3, y3, mean, inv_std, _, shape = ctx.saved[1].saved
        none = np.zeros(0, x3.dtype)
        w = np.ascontiguousarray(p[bk["weight"]], dtype=x3.dtype) if bn.affine else none
        b = np.ascontiguousarray(p[bk["bias"]], dtype=x3.dtype) if bn.affine else none
        outs = [x3.reshape(shape), batch_norm_inference(x3, w, b, mean, inv_std, False).reshape(shape)]
        return outs + [y3.reshape(shape)] if relu else outs


class ConvReLU(Layer):
    """relu(conv(x)) as one step; parameters are the convolution's (any stride, padding, groups)."""

    type_id = "Conv2D+ReLU"
    parallel_kernels = True  # the convolution's numba kernels

    @staticmethod
    def forward(a, p, ctx, x):
        c_ctx = Ctx(ctx.training, ctx.rng, ctx.needs_input_grad)
        z = conv_run(a, p, c_ctx, x, p["weight"], a.padding, a.stride, a.dilation, relu=True)
        ctx.save(c_ctx, z)  # NaN stays NaN, as x · (x > 0)
        return z

    @staticmethod
    def backward(a, p, ctx, dy):
        c_ctx, out = ctx.saved
        dz = relu_mask_grad(np.ascontiguousarray(dy, dtype=out.dtype), out)
        dx, dw, db = conv_grads(a, c_ctx, dz, a.padding, a.stride, a.dilation)
        return (dx,), ({"weight": dw, "bias": db} if a.bias else {"weight": dw})


class AddReLU(Layer):
    """relu(a + b) of two same-shape tensors (a residual connection) as one step."""

    type_id = "Add+ReLU"
    inputs = ("a", "b")
    parallel_kernels = True  # numba-parallel element-wise kernels

    @staticmethod
    def forward(a, p, ctx, x, y):
        out = add_relu(np.ascontiguousarray(x), np.ascontiguousarray(y, dtype=x.dtype))
        ctx.save(out)
        return out

    @staticmethod
    def backward(a, p, ctx, dy):
        (out,) = ctx.saved
        g = relu_mask_grad(np.ascontiguousarray(dy, dtype=out.dtype), out)
        return (g, g), {}
