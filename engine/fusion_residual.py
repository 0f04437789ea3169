"""A residual block's end as one plan step: Conv2D → BatchNorm2d → Add (the shortcut) → ReLU.

``fusion.ConvBatchNorm`` and ``fusion.AddReLU`` ran it as two steps: in inference the folded
convolution wrote its output, then the Add + ReLU read it back beside the shortcut and wrote a
third array (the bottleneck ResNet's first block: 16 MB each at batch 64). Here, where the
folded convolution runs as the BLAS's products a sample (a 1×1 onto maps of ≥ 8×8,
``conv_pointwise.blas_forward``), the shortcut is added and the ReLU taken in the pass that adds
the bias, while the sample's output is in cache. Every other convolution, and training, run the
two steps' code in one step: the same values bit for bit as the unfused nodes, each addition
rounding as theirs. The shortcut is the step's second input (the Add's other port; the sum is
commutative, so which port the chain arrives on does not change a bit).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.fusion import ConvBatchNorm
from layerloom.engine.kernels.conv import out_size
from layerloom.engine.kernels.conv_pointwise import blas_forward, pointwise_forward
from layerloom.engine.kernels.relu import add_relu, relu_mask_grad
from layerloom.engine.layers.conv import conv_run
from layerloom.engine.spec import Ctx, Layer


def _blas_route(conv, x_shape: tuple, w_shape: tuple, dtype) -> bool:
    """The folded convolution runs as ``pointwise_forward``'s BLAS products (no padding)."""
    if tuple(conv.padding) != (0, 0) or conv.groups != 1:
        return False
    out_hw = [out_size(n, 1, s) for n, s in zip(x_shape[2:], conv.stride)]
    return blas_forward(w_shape, 1, dtype, tuple(conv.stride), out_hw)


class ConvBatchNormAddReLU(Layer):
    """relu(batchnorm(conv(x)) + shortcut) as one step; reads its parameters by full key. Its
    attributes are ``ConvBatchNorm``'s (without a ReLU of their own)."""

    type_id = "Conv2D+BatchNorm2d+Add+ReLU"
    inputs = ("x", "shortcut")
    parallel_kernels = True  # the convolution's, the normalisation's and the ReLU's kernels

    @staticmethod
    def forward(a, p, ctx, x, shortcut):
        conv, bn, _, biased, _, _ = a
        r = np.ascontiguousarray(shortcut, dtype=x.dtype)
        sub = Ctx(ctx.training, ctx.rng, ctx.needs_input_grad[:1])  # ConvBatchNorm's own
        if ctx.training or not bn.track_running_stats:
            out = add_relu(np.ascontiguousarray(ConvBatchNorm.forward(a, p, sub, x)), r)
        else:
            folded = ConvBatchNorm.folded(a, p, x.dtype)
            w = folded["weight"]
            if _blas_route(conv, x.shape, w.shape, x.dtype):
                out = pointwise_forward(np.ascontiguousarray(x), w, folded["bias"],
                                        conv.stride, relu=True, residual=r)
            else:
                z = conv_run(biased, folded, Ctx(False, ctx.rng, (False,)), x, w, conv.padding,
                             conv.stride, conv.dilation)
                out = add_relu(np.ascontiguousarray(z), r)
            sub.save(None, x)  # a backward after this replays the unfolded pair
        ctx.save(sub, out, r)
        return out

    @staticmethod
    def backward(a, p, ctx, dy):
        sub, out, _ = ctx.saved
        g = relu_mask_grad(np.ascontiguousarray(dy, dtype=out.dtype), out)
        (dx,), grads = ConvBatchNorm.backward(a, p, sub, g)
        return (dx, g if ctx.needs_input_grad[1] else None), grads

    @staticmethod
    def member_outputs(a, p, ctx):
        """[conv, BatchNorm, Add, ReLU] outputs of the last training forward (the Add's as the
        ReLU's input, recomputed), or None after a folded one (the unfused layers replay it)."""
        sub, out, r = ctx.saved
        pair = ConvBatchNorm.member_outputs(a, p, sub)
        return None if pair is None else [*pair, pair[1] + r, out]
