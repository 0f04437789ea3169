"""The gradients of a transposed convolution (ConvTranspose1d/2d/3d) from the convolution's own
kernels: its forward is ``conv.conv_input_grad``, so its input gradient is a convolution of the
output gradient and its weight gradient the convolution's weight gradient with the roles of
input and output swapped.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv import _strided_gemm, conv_backward, conv_forward, pad_sides
from layerloom.engine.kernels.conv_gemm_strided import gemm_transposed_backward


def conv_transpose_grads(gp, w, x, stride: tuple, dilation: tuple = (1, 1), groups: int = 1,
                         need_dx: bool = True) -> tuple:
    """(dx or None, dW) of a transposed convolution of ``x`` (its forward is ``conv_input_grad``)
    from ``gp``, the gradient of its full output (before the padding was cropped): dx is the
    convolution of gp with W, dW the convolution's weight gradient with x as the output."""
    x = np.ascontiguousarray(x)
    if _strided_gemm(w.shape, stride, groups, gp.dtype, x.shape[2:]):
        dx, dw = gemm_transposed_backward(gp, np.ascontiguousarray(w), x, *stride, *dilation,
                                          groups, need_dx)
        return (dx if need_dx else None), dw
    h, wd = x.shape[2], x.shape[3]
    dx = None
    if need_dx:
        dx = conv_forward(gp, w, np.zeros(x.shape[1], gp.dtype), stride, dilation,
                          groups)[:, :, :h, :wd]
    hc, wc = [(f - d * (k - 1) - 1) // s + 1 for f, k, s, d in
              zip(gp.shape[2:], w.shape[2:], stride, dilation)]
    xs = pad_sides(x, 0, hc - h, 0, wc - wd)  # output_padding ≥ stride: rows no input made
    return dx, conv_backward(gp, w, xs, stride, dilation, groups, False)[1]
