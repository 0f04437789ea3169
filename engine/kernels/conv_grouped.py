"""Grouped and dilated 2-D convolution kernels (depthwise, ResNeXt-style groups, atrous filters).

``conv.py`` sends a convolution here when it has groups or dilation; plain ones keep the tuned
kernels of ``conv_flat``. Weights are PyTorch's (F, C / groups, KH, KW): filter f reads the
C / groups input channels of its group f // (F / groups). Stride 1 uses the flat layout of
``conv_flat`` (a sample's padded plane as one vector, output (r, q) at r·Wp + q, so each tap is one
contiguous axpy or dot over L = (OH−1)·Wp + OW positions, four taps a pass); other strides go row
by row. The input gradient of a stride-1 convolution is the forward kernel run on the padded
output gradient with flipped, transposed weights (``flipped_transposed``). Each driver is a serial
``_part`` over a range of samples (forward, input gradient) or of filters (weight gradient), so
no two parts write one value and results do not depend on the thread count; its Python wrapper
splits the range over the cores with ``engine.threads.split_rows``, not numba's ``prange`` (an
OpenMP pool's spinning workers took the second core from the engine's row threads, and a parfor
costs seconds to compile).
Self-contained on purpose: numba's cache only notices edits to a kernel's own file.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows


@njit(cache=True, nogil=True)
def _offsets(cpg, hp, wp, kh, kw, dh, dw):
    """Offset of tap (c, i, j) in a group's flat padded planes, in weight order."""
    offs = np.empty(cpg * kh * kw, np.int64)
    t = 0
    for ch in range(cpg):
        for i in range(kh):
            for j in range(kw):
                offs[t] = ch * hp * wp + i * dh * wp + j * dw
                t += 1
    return offs


@njit(cache=True, nogil=True, fastmath={"contract"})
def _axpy_taps(acc, xg, wf, offs, n):
    """acc[:n] += Σ_t wf[t] · xg[offs[t] : offs[t] + n], four taps a pass over acc."""
    nt, t = len(offs), 0
    while t + 4 <= nt:
        o0, o1, o2, o3 = offs[t], offs[t + 1], offs[t + 2], offs[t + 3]
        x0, x1, x2, x3 = xg[o0:o0 + n], xg[o1:o1 + n], xg[o2:o2 + n], xg[o3:o3 + n]
        w0, w1, w2, w3 = wf[t], wf[t + 1], wf[t + 2], wf[t + 3]
        for p in range(n):
            acc[p] += w0 * x0[p] + w1 * x1[p] + w2 * x2[p] + w3 * x3[p]
        t += 4
    while t < nt:
        x0, w0 = xg[offs[t]:offs[t] + n], wf[t]
        for p in range(n):
            acc[p] += w0 * x0[p]
        t += 1


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot_taps(dz, xg, offs, out, zero, n):
    """out[t] += Σ_p dz[p] · xg[offs[t] + p] for every tap, four taps a pass over dz."""
    nt, t = len(offs), 0
    while t + 4 <= nt:
        o0, o1, o2, o3 = offs[t], offs[t + 1], offs[t + 2], offs[t + 3]
        x0, x1, x2, x3 = xg[o0:o0 + n], xg[o1:o1 + n], xg[o2:o2 + n], xg[o3:o3 + n]
        a0 = a1 = a2 = a3 = zero
        for p in range(n):
            d = dz[p]
            a0 += d * x0[p]
            a1 += d * x1[p]
            a2 += d * x2[p]
            a3 += d * x3[p]
        out[t], out[t + 1], out[t + 2], out[t + 3] = (out[t] + a0, out[t + 1] + a1,
                                                      out[t + 2] + a2, out[t + 3] + a3)
        t += 4
    while t < nt:
        x0, a0 = xg[offs[t]:offs[t] + n], zero
        for p in range(n):
            a0 += dz[p] * x0[p]
        out[t] += a0
        t += 1


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _plane_sum(v, zero):
    """Σ v, vectorised: a bias gradient's sum over one output plane. Added to a running sum one
    element at a time inside the copy loop, it kept that loop scalar (a depthwise 3×3
    backward of 64 channels on 16×16 maps, batch 64, one core: 3.1 → 2.7 ms)."""
    a = zero
    for i in range(len(v)):
        a += v[i]
    return a


@njit(cache=True, nogil=True)
def grouped_forward_flat_part(xp, w, b, dh, dw, groups, out, s0, s1):
    """Samples s0..s1 of ``grouped_forward_flat``."""
    c, hp, wp = xp.shape[1], xp.shape[2], xp.shape[3]
    nf, cpg, kh, kw = w.shape
    fpg = nf // groups
    oh, ow = out.shape[2], out.shape[3]
    size = (oh - 1) * wp + ow
    offs = _offsets(cpg, hp, wp, kh, kw, dh, dw)
    w2 = w.reshape(nf, cpg * kh * kw)
    plane = cpg * hp * wp
    for s in range(s0, s1):
        xs = xp[s].reshape(c * hp * wp)
        acc = np.empty(size, xp.dtype)
        for f in range(nf):
            g = f // fpg
            acc[:] = b[f]
            _axpy_taps(acc, xs[g * plane:(g + 1) * plane], w2[f], offs, size)
            for r in range(oh):
                src, dst = acc[r * wp:r * wp + ow], out[s, f, r]
                for q in range(ow):
                    dst[q] = src[q]


def grouped_forward_flat(xp, w, b, dh, dw, groups):
    """Stride-1 conv(xp) + b of an already padded, C-contiguous batch; ``w`` C-contiguous."""
    n, _, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    out = np.empty((n, nf, hp - dh * (kh - 1), wp - dw * (kw - 1)), xp.dtype)
    split_rows(lambda s0, s1: grouped_forward_flat_part(xp, w, b, dh, dw, groups, out, s0, s1), n)
    return out


@njit(cache=True, nogil=True)
def grouped_weight_grad_flat_part(xp, dy, kh, kw, dh, dw, groups, dw2, db, f0, f1):
    """Filters f0..f1 of ``grouped_weight_grad_flat`` into ``dw2`` (F, taps) and ``db`` (zeros)."""
    n, c, hp, wp = xp.shape
    nf, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    cpg, fpg = c // groups, nf // groups
    size = (oh - 1) * wp + ow
    offs = _offsets(cpg, hp, wp, kh, kw, dh, dw)
    plane = cpg * hp * wp
    zero = np.zeros(1, xp.dtype)[0]  # a float64 0.0 would make float64 sums
    for f in range(f0, f1):
        g = f // fpg
        dz = np.zeros(size, xp.dtype)  # dy[s, f] in the flat layout; the gap columns stay 0
        acc = zero
        for s in range(n):
            for r in range(oh):
                src, dst = dy[s, f, r], dz[r * wp:r * wp + ow]
                for q in range(ow):
                    dst[q] = src[q]
            acc += _plane_sum(dy[s, f].reshape(oh * ow), zero)
            xs = xp[s].reshape(c * hp * wp)
            _dot_taps(dz, xs[g * plane:(g + 1) * plane], offs, dw2[f], zero, size)
        db[f] = acc


def grouped_weight_grad_flat(xp, dy, kh, kw, dh, dw, groups):
    """(d weight, d bias) of the stride-1 grouped convolution, filters split over the cores."""
    nf, cpg = dy.shape[1], xp.shape[1] // groups
    dw2, db = np.zeros((nf, cpg * kh * kw), xp.dtype), np.zeros(nf, xp.dtype)
    split_rows(lambda f0, f1: grouped_weight_grad_flat_part(xp, dy, kh, kw, dh, dw, groups, dw2,
                                                            db, f0, f1), nf)
    return dw2.reshape(nf, cpg, kh, kw), db


@njit(cache=True, nogil=True)
def grouped_forward_rows_part(xp, w, b, sh, sw, dh, dw, groups, out, s0, s1):
    """Samples s0..s1 of ``grouped_forward_rows``."""
    nf, cpg, kh, kw = w.shape
    fpg = nf // groups
    oh, ow = out.shape[2], out.shape[3]
    for s in range(s0, s1):
        for f in range(nf):
            g = f // fpg
            out[s, f] = b[f]
            for cc in range(cpg):
                ch = g * cpg + cc
                for i in range(kh):
                    for j in range(kw):
                        wv = w[f, cc, i, j]
                        for r in range(oh):
                            orow, xrow = out[s, f, r], xp[s, ch, r * sh + i * dh]
                            for q in range(ow):
                                orow[q] += wv * xrow[j * dw + q * sw]


def grouped_forward_rows(xp, w, b, sh, sw, dh, dw, groups):
    """conv(xp) + b for any stride, row by row."""
    n, _, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.empty((n, nf, oh, ow), xp.dtype)
    split_rows(lambda s0, s1: grouped_forward_rows_part(xp, w, b, sh, sw, dh, dw, groups, out, s0,
                                                        s1), n)
    return out


@njit(cache=True, nogil=True)
def grouped_input_grad_rows_part(dy, w, sh, sw, dh, dw, groups, dxp, s0, s1):
    """Samples s0..s1 of ``grouped_input_grad_rows`` into ``dxp`` (zeros)."""
    nf, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    _, cpg, kh, kw = w.shape
    fpg = nf // groups
    for s in range(s0, s1):
        for f in range(nf):
            g = f // fpg
            for cc in range(cpg):
                ch = g * cpg + cc
                for i in range(kh):
                    for j in range(kw):
                        wv = w[f, cc, i, j]
                        for r in range(oh):
                            drow, xrow = dy[s, f, r], dxp[s, ch, r * sh + i * dh]
                            for q in range(ow):
                                xrow[j * dw + q * sw] += wv * drow[q]


def grouped_input_grad_rows(dy, w, hp, wp, sh, sw, dh, dw, groups):
    """d padded input of the convolution for any stride, row by row."""
    n = len(dy)
    dxp = np.zeros((n, w.shape[1] * groups, hp, wp), dy.dtype)
    split_rows(lambda s0, s1: grouped_input_grad_rows_part(dy, w, sh, sw, dh, dw, groups, dxp, s0,
                                                           s1), n)
    return dxp


@njit(cache=True, nogil=True)
def grouped_weight_grad_rows_part(xp, dy, sh, sw, dh, dw, groups, dwt, db, f0, f1):
    """Filters f0..f1 of ``grouped_weight_grad_rows`` into ``dwt`` and ``db`` (zeros)."""
    n, c = xp.shape[0], xp.shape[1]
    nf, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    cpg, fpg = c // groups, nf // groups
    kh, kw = dwt.shape[2], dwt.shape[3]
    zero = np.zeros(1, xp.dtype)[0]
    for f in range(f0, f1):
        g = f // fpg
        acc = zero
        for s in range(n):
            acc += _plane_sum(dy[s, f].reshape(oh * ow), zero)
            for cc in range(cpg):
                ch = g * cpg + cc
                for i in range(kh):
                    for j in range(kw):
                        a = zero
                        for r in range(oh):
                            drow, xrow = dy[s, f, r], xp[s, ch, r * sh + i * dh]
                            for q in range(ow):
                                a += drow[q] * xrow[j * dw + q * sw]
                        dwt[f, cc, i, j] += a
        db[f] = acc


def grouped_weight_grad_rows(xp, dy, kh, kw, sh, sw, dh, dw, groups):
    """(d weight, d bias) for any stride, filters split over the cores."""
    nf = dy.shape[1]
    dwt = np.zeros((nf, xp.shape[1] // groups, kh, kw), xp.dtype)
    db = np.zeros(nf, xp.dtype)
    split_rows(lambda f0, f1: grouped_weight_grad_rows_part(xp, dy, sh, sw, dh, dw, groups, dwt,
                                                            db, f0, f1), nf)
    return dwt, db


def flipped_transposed(w: np.ndarray, groups: int) -> np.ndarray:
    """The weights whose stride-1 forward over the padded output gradient is the input gradient:
    (C, F / groups, KH, KW) with wt[g·cpg + c, f, i, j] = w[g·fpg + f, c, KH−1−i, KW−1−j]."""
    nf, cpg, kh, kw = w.shape
    fpg = nf // groups
    wt = w[:, :, ::-1, ::-1].reshape(groups, fpg, cpg, kh, kw).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(wt.reshape(groups * cpg, fpg, kh, kw))
