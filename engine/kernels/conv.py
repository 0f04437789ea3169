"""Direct 2-D convolution kernels (forward, input gradient, weight gradient) beside numpy twins.

A direct loop beats im2col + BLAS for the few-channel convolutions of small image networks
(PLATFORM-NOTES: ~3× on LeNet's first layer). Inputs arrive already zero-padded; the innermost
loops run over pre-sliced contiguous rows so numba vectorises them. Forward and the input
gradient parallelise over the batch, the weight gradient over output channels (no write races).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import sliding_window_view


def out_size(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


# ------------------------------------------------------------------------- numpy twins
def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) view of every receptive field."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def conv2d_forward_reference(xp, w, sh, sw):
    return np.einsum("ncijkl,ockl->noij", _windows(xp, w.shape[2], w.shape[3], sh, sw), w)


def conv2d_weight_grad_reference(xp, dy, kh, kw, sh, sw):
    return np.einsum("ncijkl,noij->ockl", _windows(xp, kh, kw, sh, sw), dy)


def conv2d_input_grad_reference(dy, w, hp, wp, sh, sw):
    n, _, oh, ow = dy.shape
    dxp = np.zeros((n, w.shape[1], hp, wp), dtype=dy.dtype)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += np.einsum("noab,oc->ncab", dy, w[:, :, i, j])
    return dxp


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True, parallel=True)
def conv2d_forward(xp, w, sh, sw):
    n, c, hp, wp = xp.shape
    o, _, kh, kw = w.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=xp.dtype)
    for b in prange(n):
        for f in range(o):
            for ch in range(c):
                for i in range(kh):
                    for j in range(kw):
                        wv = w[f, ch, i, j]
                        for r in range(oh):
                            orow = out[b, f, r]
                            if sw == 1:  # a unit-step slice is known contiguous: it vectorises
                                xrow = xp[b, ch, r * sh + i, j:j + ow]
                                for q in range(ow):
                                    orow[q] += wv * xrow[q]
                            else:
                                xrow = xp[b, ch, r * sh + i, j:j + sw * (ow - 1) + 1:sw]
                                for q in range(ow):
                                    orow[q] += wv * xrow[q]
    return out


@njit(cache=True, nogil=True, parallel=True)
def conv2d_weight_grad(xp, dy, kh, kw, sh, sw):
    n, c, hp, wp = xp.shape
    _, o, oh, ow = dy.shape
    dw = np.zeros((o, c, kh, kw), dtype=xp.dtype)
    for f in prange(o):
        for b in range(n):
            for ch in range(c):
                for i in range(kh):
                    for j in range(kw):
                        acc = dw[f, ch, i, j]  # dtype-matched: a float64 0.0 would stop vectorising
                        for r in range(oh):
                            drow = dy[b, f, r]
                            if sw == 1:
                                xrow = xp[b, ch, r * sh + i, j:j + ow]
                                for q in range(ow):
                                    acc += drow[q] * xrow[q]
                            else:
                                xrow = xp[b, ch, r * sh + i, j:j + sw * (ow - 1) + 1:sw]
                                for q in range(ow):
                                    acc += drow[q] * xrow[q]
                        dw[f, ch, i, j] = acc
    return dw


@njit(cache=True, nogil=True, parallel=True)
def conv2d_input_grad(dy, w, hp, wp, sh, sw):
    n, o, oh, ow = dy.shape
    _, c, kh, kw = w.shape
    dxp = np.zeros((n, c, hp, wp), dtype=dy.dtype)
    for b in prange(n):
        for f in range(o):
            for ch in range(c):
                for i in range(kh):
                    for j in range(kw):
                        wv = w[f, ch, i, j]
                        for r in range(oh):
                            drow = dy[b, f, r]
                            if sw == 1:
                                xrow = dxp[b, ch, r * sh + i, j:j + ow]
                                for q in range(ow):
                                    xrow[q] += wv * drow[q]
                            else:
                                xrow = dxp[b, ch, r * sh + i, j:j + sw * (ow - 1) + 1:sw]
                                for q in range(ow):
                                    xrow[q] += wv * drow[q]
    return dxp
