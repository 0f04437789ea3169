"""Direct 2-D convolution, plain and fused with ReLU + max-pool: the entry points the layers use.

A direct loop beats im2col + BLAS for the few-channel convolutions of small image networks
(PLATFORM-NOTES: ~3× on LeNet's first layer). Stride-1 convolutions run the numba kernels of
``conv_flat`` (flat layout forward, chunked row layout backward), the forward of those with
many taps and filters as matrix products (``conv_gemm``); other strides take the
row-by-row path in ``conv_strided``. The numpy twins that define them live in
``conv_reference``; all three are re-exported here.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv_flat import (  # noqa: F401  the kernels, re-exported for tests and tools
    backward_flat,
    conv_relu_maxpool_backward,
    conv_relu_maxpool_forward,
    conv_relu_maxpool_forward_serial,
    flat_offsets,
    forward_flat,
    relu_maxpool_batch,
    relu_maxpool_flat,
    taps_forward,
    taps_weight_grad,
)
from layerloom.engine.kernels.conv_reference import (  # noqa: F401  the numpy twins, beside the kernels
    conv2d_forward_reference,
    conv2d_input_grad_reference,
    conv2d_weight_grad_reference,
    conv_relu_maxpool_reference,
)
from layerloom.engine.kernels.conv_gemm import flat_to_image, gemm_forward_flat, prefers_gemm
from layerloom.engine.kernels.conv_strided import backward_strided, forward_strided


def out_size(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


def _conv_out(xp: np.ndarray, w: np.ndarray) -> tuple[int, int]:
    """(OH, OW) of a stride-1 convolution of the padded batch ``xp``."""
    return out_size(xp.shape[2], w.shape[2], 1), out_size(xp.shape[3], w.shape[3], 1)


def conv2d_forward(xp: np.ndarray, w: np.ndarray, b: np.ndarray, sh: int, sw: int) -> np.ndarray:
    """conv(xp) + b over an already zero-padded, C-contiguous batch (N, C, Hp, Wp)."""
    if sh == 1 and sw == 1:
        if prefers_gemm(w.shape, len(xp)):
            oh, ow = _conv_out(xp, w)
            return flat_to_image(gemm_forward_flat(xp, w, b), oh, ow, xp.shape[3])
        return forward_flat(xp, w, b)
    return forward_strided(xp, w, b, sh, sw)


def conv2d_backward(xp, w, dy, sh: int, sw: int, need_dx: bool) -> tuple:
    """(d padded input or None, d weight, d bias) for ``conv2d_forward``."""
    dy = np.ascontiguousarray(dy)
    if sh == 1 and sw == 1:
        dxp, dw, db = backward_flat(xp, w, dy, need_dx)
    else:
        dxp, dw, db = backward_strided(xp, w, dy, sh, sw, need_dx)
    return (dxp if need_dx else None), dw, db


def conv_relu_maxpool(xp, w, b, pkh: int, pkw: int, psh: int, psw: int, want_arg: bool):
    """The fused forward: serial for a single sample, else parallel over the batch, with the
    convolution as matrix products where that is faster (``conv_gemm``)."""
    if prefers_gemm(w.shape, len(xp)):
        oh, ow = _conv_out(xp, w)
        return relu_maxpool_batch(gemm_forward_flat(xp, w, b), xp.shape[3], pkh, pkw, psh, psw,
                                  out_size(oh, pkh, psh), out_size(ow, pkw, psw))
    run = conv_relu_maxpool_forward_serial if len(xp) == 1 else conv_relu_maxpool_forward
    return run(xp, w, b, pkh, pkw, psh, psw, want_arg)
