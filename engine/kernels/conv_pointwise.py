"""1×1 convolutions (any stride) as one matrix product per sample through the BLAS.

A 1×1 convolution of sample n is W (F × C) · X_n (C × H·W): a product only C deep. The direct
kernels built for wide windows spent most of their time around it: copying each sample into
their flat or row layouts, zeroing gap columns, stride-2 gathers in im2col. Here the stride's
samples are taken once (``x[:, :, ::sh, ::sw]``, a copy), then numpy's stacked matmul runs one
BLAS call per sample; the weight gradient is Σ_n dY_n · X_nᵀ (one product per sample, then the
sum over samples in order: the same for any split of the batch), the input gradient Wᵀ · dY_n
put back at the stride's positions. The batch is split over the engine's cores (the BLAS runs
on one thread in graphs with numba-parallel layers). In float32, forwards of many filters, input
gradients onto many channels and weight gradients of enough weights beat these products on
the packed tile kernel instead (``conv_pointwise_packed``).

``pointwise`` has the rule, with its measurements.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.blas import NO_TRANS, gemm
from layerloom.engine.kernels.conv_pointwise_packed import (_taken, packed_forward,
                                                            packed_input_grad,
                                                            packed_input_grad_wins,
                                                            packed_pointwise, packed_weight_grad,
                                                            packed_weight_grad_wins)
from layerloom.engine.kernels.packed import keep_alive
from layerloom.engine.threads import split_rows


# Measured at batch 64 on one and two cores against the routes before (forward / backward):
# products of ≤ 16 k weights won 1.05-2.1× / 1.1-3.9× (16 → 32 at stride 2 onto 16×16 maps
# 0.73 → 0.39 / 2.01 → 0.73 ms on one core); the forward lost on maps of 32×32 outputs
# (32 → 128 0.84×) and the backward on maps of < 8×8 (one stacked product per sample too
# small: 64 → 128 on 4×4 0.87×). More weights lost both ways (256 → 256 on 8×8 0.9×, 256 → 512
# at stride 2 0.64-0.86×): the routes before keep those. Larger maps' forward still comes here
# while a sample's output is small (F·OH·OW ≤ MAX_FORWARD_OUT, 128 KB): on 32×32 maps, one
# core / two, 16 → 16 1.54 → 0.64 / 0.59 → 0.34 ms, 32 → 16 2.68 → 0.94 / 1.04 → 0.48, 16 → 32
# 2.98 → 1.27 / 1.35 → 0.95, 64 → 32 and 128 → 32 1.03-1.08× (32 → 32 1.04× / 0.98×); 64
# filters there lost on two cores (0.85-0.94×), and on 64×64 maps 16 filters tied.
MAX_WEIGHTS, MAX_FORWARD_MAP, MIN_BACKWARD_MAP = 1 << 14, 256, 64
MAX_FORWARD_OUT = 1 << 15  # floats of one sample's output
MIN_WIDE_OUTPUTS = 64  # ``_wide``


def pointwise(w_shape: tuple, groups: int, out_hw, backward: bool = False, dtype=None,
              stride: tuple = (1, 1)) -> bool:
    """A 1×1 convolution without groups (dilation does not matter for one tap) this module
    runs faster than the other routes: the BLAS's rule above; for the forward of ``dtype`` at
    ``stride``, the packed kernel's (``conv_pointwise_packed.packed_pointwise``), which
    ``pointwise_forward`` asks first, or ``_wide``."""
    return _blas(w_shape, groups, out_hw, backward) or (
        not backward and dtype is not None
        and (packed_pointwise(w_shape, groups, dtype, stride, out_hw)
             or _wide(w_shape, groups, dtype, stride, out_hw)))


def _wide(w_shape: tuple, groups: int, dtype, stride: tuple, out_hw) -> bool:
    """float32 at stride 1 onto maps of ≥ 8×8 (MIN_WIDE_OUTPUTS), any weights: the BLAS's
    product a sample with the bias and the ReLU in its pass (``forward_part``). Measured at
    batch 64 on an AVX2 VM (one core / two) against the packed kernel, which had these
    shapes: 64 → 32 on 32×32 1.86× / 1.8-2.3×, 32 → 64 1.55× / 1.5×, 32 → 128 1.42× / 1.56×,
    16 → 32 on 64×64 1.59× / 1.4×, 32 → 32 on 16×16 1.7× / 1.6×, 64 → 128 1.34× / 1.4-2.4×,
    128 → 128 1.3× / 1.3-1.6×, 64 → 256 on 8×8 1.2× / 1.27×, 512 → 128 1.1-1.16× / 1.16×,
    256 → 256 1.07-1.14× / 1.05-1.1×, 128 → 512 1.1× / 0.96-1.16×. On 4×4 maps the packed
    kernel keeps its lead (``packed_pointwise``)."""
    return (np.dtype(dtype) == np.float32 and tuple(w_shape[2:]) == (1, 1) and groups == 1
            and tuple(stride) == (1, 1) and out_hw[0] * out_hw[1] >= MIN_WIDE_OUTPUTS)


def _blas(w_shape: tuple, groups: int, out_hw, backward: bool = False) -> bool:
    """The BLAS's rule above: the stacked products beat the other routes."""
    nf, c, kh, kw = w_shape
    if kh != 1 or kw != 1 or groups != 1 or nf * c > MAX_WEIGHTS:
        return False
    outputs = out_hw[0] * out_hw[1]
    if backward:
        return outputs >= MIN_BACKWARD_MAP
    return outputs <= MAX_FORWARD_MAP or nf * outputs <= MAX_FORWARD_OUT


def _take(xp: np.ndarray, stride: tuple, xs: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Samples lo..hi of the input at the stride's positions (output (r, q) reads xp[r·sh,
    q·sw]), as (samples, C, OH·OW): xp's own rows at stride 1, else copied into ``xs``."""
    sh, sw = stride
    if sh == sw == 1:
        part = xp[lo:hi]
    else:
        part = xs[lo:hi]
        part[...] = xp[lo:hi, :, ::sh, ::sw]
    return part.reshape(hi - lo, xp.shape[1], -1)


def _taken_buffer(xp: np.ndarray, stride: tuple) -> np.ndarray:
    """Where ``_take`` copies the stride's positions (N, C, OH, OW), or xp itself at stride 1."""
    if tuple(stride) == (1, 1):
        return xp
    n, c, hp, wp = xp.shape
    return np.empty((n, c, (hp - 1) // stride[0] + 1, (wp - 1) // stride[1] + 1), xp.dtype)


def pointwise_forward(xp: np.ndarray, w: np.ndarray, b: np.ndarray, stride: tuple,
                      relu: bool = False, residual: np.ndarray | None = None) -> np.ndarray:
    """conv(xp) + b [+ residual] for a 1×1 ``w`` (F, C, 1, 1), then max(·, 0) as ``np.maximum``
    if ``relu``. ``xp`` C-contiguous. Through the packed kernel where its rule holds, except with
    a ``residual`` (the output's shape), which the BLAS's route adds in its pass
    (``blas_forward`` says where that route runs anyway)."""
    out_hw = [(p - 1) // s + 1 for p, s in zip(xp.shape[2:], stride)]
    if residual is None and packed_pointwise(w.shape, 1, np.result_type(xp, w), stride, out_hw):
        return packed_forward(xp, w, b, stride, relu)
    xp = np.ascontiguousarray(xp)
    n, c = xp.shape[:2]
    dtype = np.result_type(xp, w)
    y = np.empty((n, len(w), out_hw[0] * out_hw[1]), dtype)
    x, w2 = xp.astype(dtype, copy=False), np.ascontiguousarray(w.reshape(len(w), c), dtype)
    b = np.ascontiguousarray(b, dtype)
    r = (np.zeros((0, 0, 0), dtype) if residual is None
         else np.ascontiguousarray(residual, dtype).reshape(y.shape))
    sh, sw, relu = int(stride[0]), int(stride[1]), bool(relu)
    split_rows(lambda lo, hi: forward_part(x, w2, b, sh, sw, y, relu, lo, hi, r), n)
    return y.reshape(n, len(w), *out_hw)


def blas_forward(w_shape: tuple, groups: int, dtype, stride: tuple, out_hw) -> bool:
    """True when ``conv_forward`` runs this convolution's forward as ``pointwise_forward``'s
    BLAS products (where a residual can join their pass)."""
    return (pointwise(w_shape, groups, out_hw, dtype=dtype, stride=stride)
            and not packed_pointwise(w_shape, groups, dtype, stride, out_hw))


@njit(cache=True, nogil=True)
def forward_part(xp, w2, b, sh, sw, y, relu, s0, s1, r):
    """y[s] = w2 · xp[s] at the stride's positions, + b, [+ r[s] when r has samples,] then
    ``np.maximum(·, 0)`` if ``relu``, for s0 ≤ s < s1: one BLAS product a sample (the bits of
    numpy's stacked ``matmul``), the bias, the residual and the ReLU in one pass over the
    sample's output while it is in cache (as whole-batch numpy passes they read and wrote it
    from memory twice: the bottleneck ResNet's 32 → 16 on 32×32 with its ReLU, one core / two,
    2.8 → 1.9 / 1.7 → 1.1 ms). Each addition rounds as the unfused layers' do."""
    c = xp.shape[1]
    nf, hw = y.shape[1], y.shape[2]
    strided = sh != 1 or sw != 1
    xs = np.empty((c if strided else 0, hw), xp.dtype)
    double = xp.itemsize == 8
    zero = xp.dtype.type(0)
    add = len(r) > 0
    for s in range(s0, s1):
        if strided:
            _taken(xp[s], sh, sw, xs)
        src = xs.ctypes.data if strided else xp[s].ctypes.data
        gemm(NO_TRANS, NO_TRANS, nf, hw, c, w2.ctypes.data, c, src, hw, 0.0, y[s].ctypes.data,
             hw, double)
        for f in range(nf):
            row, bias = y[s, f], b[f]
            res = r[s, f] if add else row
            for i in range(hw):
                v = row[i] + bias
                if add:
                    v = v + res[i]
                row[i] = v if not relu or v > zero or v != v else zero  # np.maximum's
    keep_alive(xs)  # read by the BLAS through its address


def pointwise_backward(xp: np.ndarray, w: np.ndarray, dy: np.ndarray, stride: tuple,
                       need_dx: bool, need_db: bool = True) -> tuple:
    """(d padded input or None, d weight, d bias) of ``pointwise_forward``. Each sample's
    weight and bias gradients are made whole in its part, then summed over the samples in
    order (the packed kernel's weight gradient over fixed runs of samples): the same sums for
    any split of the batch. A convolution without bias (before a BatchNorm) says
    ``need_db=False`` and gets zeros: the sums were a pass over dY from memory, 3-24 % of the
    backward on 32×32 maps (one core, 16 → 64 8.4 → 6.8 ms, 32 → 64 11.2 → 10.4)."""
    xs = _taken_buffer(xp, stride)
    n, c, oh, ow = xs.shape
    strided = xs is not xp
    nf = len(w)
    d3 = np.ascontiguousarray(dy).reshape(n, nf, oh * ow)
    wt = w.reshape(nf, c).T
    dtype = np.result_type(xp, dy)
    packed_dw = packed_weight_grad_wins(w.shape, np.result_type(dtype, w), stride)
    packed_dx = need_dx and packed_input_grad_wins(w.shape, np.result_type(dtype, w), oh * ow)
    per = np.empty((0 if packed_dw else n, nf, c), dtype)  # each sample's dY_n · X_nᵀ
    sums = (np.empty if need_db else np.zeros)((n, nf, 1), dtype)  # each sample's Σ dY_n
    ones = np.ones((oh * ow, 1), dtype)
    dxp = np.empty(xp.shape, dtype) if need_dx and not packed_dx else None

    def part(lo: int, hi: int) -> None:
        if not packed_dw:
            np.matmul(d3[lo:hi], _take(xp, stride, xs, lo, hi).transpose(0, 2, 1),
                      out=per[lo:hi])
        if need_db:
            np.matmul(d3[lo:hi], ones, out=sums[lo:hi])
        if dxp is not None and strided:
            dxp[lo:hi] = 0
            dxp[lo:hi, :, ::stride[0], ::stride[1]] = np.matmul(wt, d3[lo:hi]).reshape(
                hi - lo, c, oh, ow)
        elif dxp is not None:
            np.matmul(wt, d3[lo:hi], out=dxp[lo:hi].reshape(hi - lo, c, oh * ow))
    split_rows(part, n)
    if packed_dx:
        dxp = packed_input_grad(dy, w, xp.shape[2:], stride)
    dw = (packed_weight_grad(xp, dy, stride) if packed_dw
          else np.add.reduce(per, axis=0).reshape(w.shape))
    return dxp, dw, np.add.reduce(sums, axis=0)[:, 0]
