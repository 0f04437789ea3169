"""Direct 2-D convolution kernels, plain and fused with ReLU + max-pool, beside numpy twins.

A direct loop beats im2col + BLAS for the few-channel convolutions of small image networks
(PLATFORM-NOTES: ~3× on LeNet's first layer). Stride-1 convolutions use the "flat" layout: one
sample's padded input is a flat vector and output (r, q) lives at r·Wp + q, so each filter tap
(c, i, j) is one contiguous axpy of length L = (OH−1)·Wp + OW from offset c·Hp·Wp + i·Wp + j; the
Wp − OW "gap" columns are computed and thrown away (forward) or held at zero (backward). Inner
loops run over pre-sliced arrays with the plain loop index, two filters × four taps per pass, so
numba vectorises them. Drivers are parallel over the batch; weight gradients sum per-chunk
partials in a fixed order, so results do not depend on the thread count. Other strides take the
row-by-row path in ``conv_strided``. Fused kernels live here too: numba's cache only notices edits
to a kernel's own file, so kernels that call each other share one. All release the GIL.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.conv_strided import backward_strided, forward_strided
from engine.kernels.conv_reference import (  # noqa: F401  the numpy twins, beside the kernels
    conv2d_forward_reference, conv2d_input_grad_reference, conv2d_weight_grad_reference,
    conv_relu_maxpool_reference)

CHUNKS = 16  # weight-gradient partials per call: a fixed split keeps sums thread-count-independent


def out_size(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


# ------------------------------------------------------------------ flat-layout building blocks
@njit(cache=True, nogil=True)
def flat_offsets(c, hp, wp, kh, kw):
    """Offset of each tap (c, i, j) in a sample's flat padded input, in weight order."""
    offs = np.empty(c * kh * kw, np.int64)
    t = 0
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                offs[t] = ch * hp * wp + i * wp + j
                t += 1
    return offs


@njit(cache=True, nogil=True, fastmath={"contract"})
def _fma_2x4(a, c, x0, x1, x2, x3, wa, wc, t, n):
    """a += Σ_k wa[t+k]·x_k and c += Σ_k wc[t+k]·x_k over n positions: 4 loads feed 8 FMAs."""
    w0, w1, w2, w3 = wa[t], wa[t + 1], wa[t + 2], wa[t + 3]
    v0, v1, v2, v3 = wc[t], wc[t + 1], wc[t + 2], wc[t + 3]
    for p in range(n):
        s0, s1, s2, s3 = x0[p], x1[p], x2[p], x3[p]
        a[p] += w0 * s0 + w1 * s1 + w2 * s2 + w3 * s3
        c[p] += v0 * s0 + v1 * s1 + v2 * s2 + v3 * s3


@njit(cache=True, nogil=True, fastmath={"contract"})
def taps_forward(xf, w2, offs, acc, n):
    """acc[f, :n] += Σ_t w2[f, t] · xf[offs[t] : offs[t] + n] for f < len(w2).

    acc holds the bias on entry and one spare row beyond the filters: an odd last filter is
    paired with that scratch row, so every pass runs two filters.
    """
    nf, nt = w2.shape
    for f in range(0, nf, 2):
        g = f + 1 if f + 1 < nf else nf
        a, c = acc[f], acc[g]
        wa, wc = w2[f], w2[min(g, nf - 1)]
        t = 0
        while t + 4 <= nt:
            o0, o1, o2, o3 = offs[t], offs[t + 1], offs[t + 2], offs[t + 3]
            _fma_2x4(a, c, xf[o0:o0 + n], xf[o1:o1 + n], xf[o2:o2 + n], xf[o3:o3 + n], wa, wc, t, n)
            t += 4
        while t < nt:
            x0 = xf[offs[t]:offs[t] + n]
            u, v = wa[t], wc[t]
            for p in range(n):
                a[p] += u * x0[p]
                c[p] += v * x0[p]
            t += 1


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dots_2x4(d0, d1, x0, x1, x2, x3, zero, n):
    """Eight dot products (two filters × four taps) in one pass: 6 loads feed 8 FMAs."""
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = zero
    for p in range(n):
        u, v = d0[p], d1[p]
        s0, s1, s2, s3 = x0[p], x1[p], x2[p], x3[p]
        a0 += u * s0
        a1 += u * s1
        a2 += u * s2
        a3 += u * s3
        b0 += v * s0
        b1 += v * s1
        b2 += v * s2
        b3 += v * s3
    return a0, a1, a2, a3, b0, b1, b2, b3


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def taps_weight_grad(xf, dz, offs, dw2, n):
    """dw2[f, t] += Σ_p dz[f, p] · xf[offs[t] + p], two filters × four taps a pass (odd: f, f)."""
    nf, nt = dw2.shape
    zero = np.zeros(1, dw2.dtype)[0]  # a float64 0.0 (or x * 0) would make float64 sums
    for f in range(0, nf, 2):
        g = min(f + 1, nf - 1)
        d0, d1 = dz[f], dz[g]
        t = 0
        while t + 4 <= nt:
            x0, x1 = xf[offs[t]:offs[t] + n], xf[offs[t + 1]:offs[t + 1] + n]
            x2, x3 = xf[offs[t + 2]:offs[t + 2] + n], xf[offs[t + 3]:offs[t + 3] + n]
            a0, a1, a2, a3, b0, b1, b2, b3 = _dots_2x4(d0, d1, x0, x1, x2, x3, zero, n)
            dw2[f, t], dw2[f, t + 1] = dw2[f, t] + a0, dw2[f, t + 1] + a1
            dw2[f, t + 2], dw2[f, t + 3] = dw2[f, t + 2] + a2, dw2[f, t + 3] + a3
            if g != f:
                dw2[g, t], dw2[g, t + 1] = dw2[g, t] + b0, dw2[g, t + 1] + b1
                dw2[g, t + 2], dw2[g, t + 3] = dw2[g, t + 2] + b2, dw2[g, t + 3] + b3
            t += 4
        while t < nt:
            x0 = xf[offs[t]:offs[t] + n]
            s0 = s1 = zero
            for p in range(n):
                s0 += d0[p] * x0[p]
                s1 += d1[p] * x0[p]
            dw2[f, t] += s0
            if g != f:
                dw2[g, t] += s1
            t += 1


@njit(cache=True, nogil=True, fastmath={"contract"})
def taps_input_grad(dz, w2, offs, dxf, n):
    """dxf[offs[t] + p] += Σ_f w2[f, t] · dz[f, p]: four filters per pass over a tap's window."""
    nf, nt = w2.shape
    for t in range(nt):
        dx = dxf[offs[t]:offs[t] + n]
        f = 0
        while f + 4 <= nf:
            d0, d1, d2, d3 = dz[f], dz[f + 1], dz[f + 2], dz[f + 3]
            w0, w1, w2_, w3 = w2[f, t], w2[f + 1, t], w2[f + 2, t], w2[f + 3, t]
            for p in range(n):
                dx[p] += w0 * d0[p] + w1 * d1[p] + w2_ * d2[p] + w3 * d3[p]
            f += 4
        while f < nf:
            d0, w0 = dz[f], w2[f, t]
            for p in range(n):
                dx[p] += w0 * d0[p]
            f += 1


@njit(cache=True, nogil=True)
def _to_flat(src, dst, wp):
    """(F, OH, OW) -> (F, L) flat rows of pitch wp; the gap columns are left untouched."""
    nf, oh, ow = src.shape
    for f in range(nf):
        for r in range(oh):
            s, d = src[f, r], dst[f, r * wp:r * wp + ow]
            for q in range(ow):
                d[q] = s[q]


@njit(cache=True, nogil=True)
def _from_flat(src, dst, wp):
    nf, oh, ow = dst.shape
    for f in range(nf):
        for r in range(oh):
            s, d = src[f, r * wp:r * wp + ow], dst[f, r]
            for q in range(ow):
                d[q] = s[q]


@njit(cache=True, nogil=True)
def _chunk_bounds(n):
    k = min(n, CHUNKS)
    bounds = np.empty(k + 1, np.int64)
    for i in range(k + 1):
        bounds[i] = (i * n) // k
    return bounds


@njit(cache=True, nogil=True)
def _sum_parts(parts):
    out = parts[0].copy()
    for i in range(1, len(parts)):
        out += parts[i]
    return out


# ------------------------------------------------------------------------- plain convolution
@njit(cache=True, nogil=True, parallel=True)
def _forward_flat(xp, w, b):
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = hp - kh + 1, wp - kw + 1
    size = (oh - 1) * wp + ow
    offs = flat_offsets(c, hp, wp, kh, kw)
    w2 = w.reshape(nf, c * kh * kw)
    out = np.empty((n, nf, oh, ow), xp.dtype)
    for s in prange(n):
        acc = np.empty((nf + 1, size), xp.dtype)
        for f in range(nf):
            acc[f, :] = b[f]
        taps_forward(xp[s].reshape(c * hp * wp), w2, offs, acc, size)
        _from_flat(acc, out[s], wp)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _backward_flat(xp, w, dy, need_dx):
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = dy.shape[2], dy.shape[3]
    size = (oh - 1) * wp + ow
    offs = flat_offsets(c, hp, wp, kh, kw)
    w2 = w.reshape(nf, c * kh * kw)
    bounds = _chunk_bounds(n)
    k = len(bounds) - 1
    dw_parts = np.zeros((k, nf, c * kh * kw), xp.dtype)
    db_parts = np.zeros((k, nf), xp.dtype)
    dxp = np.zeros((n if need_dx else 0, c, hp, wp), xp.dtype)
    for ci in prange(k):
        dz = np.zeros((nf, size), xp.dtype)  # gap columns stay zero
        for s in range(bounds[ci], bounds[ci + 1]):
            _to_flat(dy[s], dz, wp)
            taps_weight_grad(xp[s].reshape(c * hp * wp), dz, offs, dw_parts[ci], size)
            for f in range(nf):
                acc = db_parts[ci, f]
                for r in range(oh):
                    row = dy[s, f, r]
                    for q in range(ow):
                        acc += row[q]
                db_parts[ci, f] = acc
            if need_dx:
                taps_input_grad(dz, w2, offs, dxp[s].reshape(c * hp * wp), size)
    return dxp, _sum_parts(dw_parts).reshape(nf, c, kh, kw), _sum_parts(db_parts)


def conv2d_forward(xp: np.ndarray, w: np.ndarray, b: np.ndarray, sh: int, sw: int) -> np.ndarray:
    """conv(xp) + b over an already zero-padded, C-contiguous batch (N, C, Hp, Wp)."""
    if sh == 1 and sw == 1:
        return _forward_flat(xp, w, b)
    return forward_strided(xp, w, b, sh, sw)


def conv2d_backward(xp, w, dy, sh: int, sw: int, need_dx: bool) -> tuple:
    """(d padded input or None, d weight, d bias) for ``conv2d_forward``."""
    dy = np.ascontiguousarray(dy)
    if sh == 1 and sw == 1:
        dxp, dw, db = _backward_flat(xp, w, dy, need_dx)
    else:
        dxp, dw, db = backward_strided(xp, w, dy, sh, sw, need_dx)
    return (dxp if need_dx else None), dw, db


# ------------------------------------------------------------- fused conv + bias + ReLU + max-pool
@njit(cache=True, nogil=True)
def _beats(u, v):
    """u wins over v in a max-pool window: larger, or NaN against a number (NaN propagates)."""
    return (u > v) | ((u != u) & (v == v))


@njit(cache=True, nogil=True)
def _relu_pool_store(o, g, q, best, where, zero):
    keep = best > 0
    o[q] = best if keep | (best != best) else zero
    g[q] = where if keep else -1


@njit(cache=True, nogil=True)
def relu_maxpool_flat(acc, out, arg, wp, pkh, pkw, psh, psw):
    """Pool each filter's flat map, keeping the first maximum in row-major order as PyTorch does;
    ReLU folds into the result. 2×2 windows at stride 2 take a branch-free two-pass path."""
    nf, ph, pw = out.shape
    zero = np.zeros(1, acc.dtype)[0]
    pair = pkh == 2 and pkw == 2 and psh == 2 and psw == 2
    vm = np.empty(2 * pw, acc.dtype)
    vi = np.empty(2 * pw, np.int64)
    for f in range(nf):
        a = acc[f]
        for r in range(ph):
            o, g = out[f, r], arg[f, r]
            if pair:
                r0 = 2 * r * wp
                ra, rb = a[r0:r0 + 2 * pw], a[r0 + wp:r0 + wp + 2 * pw]
                for x in range(2 * pw):  # rows first: the lower row wins only when it beats
                    lower = _beats(rb[x], ra[x])
                    vm[x] = rb[x] if lower else ra[x]
                    vi[x] = r0 + wp + x if lower else r0 + x
                for q in range(pw):  # then columns; a tie goes to the earlier position
                    c0, c1, i0, i1 = vm[2 * q], vm[2 * q + 1], vi[2 * q], vi[2 * q + 1]
                    right = _beats(c1, c0) | (~_beats(c0, c1) & (i1 < i0))
                    _relu_pool_store(o, g, q, c1 if right else c0, i1 if right else i0, zero)
                continue
            for q in range(pw):
                base = r * psh * wp + q * psw
                best, where = a[base], base
                for i in range(pkh):
                    row = base + i * wp
                    for j in range(pkw):
                        if _beats(a[row + j], best):
                            best, where = a[row + j], row + j
                _relu_pool_store(o, g, q, best, where, zero)


@njit(cache=True, nogil=True)
def _crm_sample(xs, w2, offs, b, out_s, arg_s, size, wp, pkh, pkw, psh, psw):
    """One sample of ``conv_relu_maxpool_forward``: its flat conv rows, then pool + ReLU."""
    nf = w2.shape[0]
    acc = np.empty((nf + 1, size), xs.dtype)
    for f in range(nf):
        acc[f, :] = b[f]
    taps_forward(xs, w2, offs, acc, size)
    relu_maxpool_flat(acc, out_s, arg_s, wp, pkh, pkw, psh, psw)


@njit(cache=True, nogil=True)
def _crm_setup(xp, w, pkh, pkw, psh, psw, want_arg):
    """Tap offsets, flat weights, outputs and the flat row length of the fused forward."""
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = hp - kh + 1, wp - kw + 1
    ph, pw = (oh - pkh) // psh + 1, (ow - pkw) // psw + 1
    out = np.empty((n, nf, ph, pw), xp.dtype)
    arg = np.empty((n if want_arg else 0, nf, ph, pw), np.int32)
    return (flat_offsets(c, hp, wp, kh, kw), w.reshape(nf, c * kh * kw), out, arg,
            np.empty((nf, ph, pw), np.int32), (oh - 1) * wp + ow)


@njit(cache=True, nogil=True, parallel=True)
def conv_relu_maxpool_forward(xp, w, b, pkh, pkw, psh, psw, want_arg):
    """maxpool(relu(conv(xp) + b)) without storing the convolution's output.

    ``arg`` holds, per pooled value, the flat index (r·Wp + q) of the window's first maximum of
    the pre-activation, or −1 where ReLU clipped it (max ≤ 0): the backward touches only these.
    NaN wins a window, as in PyTorch, so a non-finite value is never pooled away.
    """
    n, c, hp, wp = xp.shape
    offs, w2, out, arg, scratch, size = _crm_setup(xp, w, pkh, pkw, psh, psw, want_arg)
    for s in prange(n):
        _crm_sample(xp[s].reshape(c * hp * wp), w2, offs, b, out[s],
                    arg[s] if want_arg else scratch, size, wp, pkh, pkw, psh, psw)
    return out, arg


@njit(cache=True, nogil=True)
def conv_relu_maxpool_forward_serial(xp, w, b, pkh, pkw, psh, psw, want_arg):
    """``conv_relu_maxpool_forward`` on the calling thread: for a batch of one, waking the
    parallel pool costs more than the work."""
    n, c, hp, wp = xp.shape
    offs, w2, out, arg, scratch, size = _crm_setup(xp, w, pkh, pkw, psh, psw, want_arg)
    for s in range(n):
        _crm_sample(xp[s].reshape(c * hp * wp), w2, offs, b, out[s],
                    arg[s] if want_arg else scratch, size, wp, pkh, pkw, psh, psw)
    return out, arg


def conv_relu_maxpool(xp, w, b, pkh: int, pkw: int, psh: int, psw: int, want_arg: bool):
    """The fused forward, serial for a single sample and parallel over the batch otherwise."""
    run = conv_relu_maxpool_forward_serial if len(xp) == 1 else conv_relu_maxpool_forward
    return run(xp, w, b, pkh, pkw, psh, psw, want_arg)


@njit(cache=True, nogil=True, parallel=True)
def conv_relu_maxpool_backward(xp, w, dp, arg, need_dx):
    """(d padded input or empty, d weight, d bias) given the pooled gradient and ``arg``."""
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = hp - kh + 1, wp - kw + 1
    ph, pw = dp.shape[2], dp.shape[3]
    size = (oh - 1) * wp + ow
    offs = flat_offsets(c, hp, wp, kh, kw)
    w2 = w.reshape(nf, c * kh * kw)
    bounds = _chunk_bounds(n)
    k = len(bounds) - 1
    dw_parts = np.zeros((k, nf, c * kh * kw), xp.dtype)
    db_parts = np.zeros((k, nf), xp.dtype)
    dxp = np.zeros((n if need_dx else 0, c, hp, wp), xp.dtype)
    for ci in prange(k):
        dz = np.zeros((nf, size), xp.dtype)
        for s in range(bounds[ci], bounds[ci + 1]):
            for f in range(nf):
                acc = db_parts[ci, f]
                for r in range(ph):
                    for q in range(pw):
                        at = arg[s, f, r, q]
                        if at >= 0:
                            g = dp[s, f, r, q]
                            dz[f, at] += g
                            acc += g
                db_parts[ci, f] = acc
            taps_weight_grad(xp[s].reshape(c * hp * wp), dz, offs, dw_parts[ci], size)
            if need_dx:
                taps_input_grad(dz, w2, offs, dxp[s].reshape(c * hp * wp), size)
            for f in range(nf):  # clear only what was written: cheaper than a full reset
                for r in range(ph):
                    for q in range(pw):
                        at = arg[s, f, r, q]
                        if at >= 0:
                            dz[f, at] = 0
    return dxp, _sum_parts(dw_parts).reshape(nf, c, kh, kw), _sum_parts(db_parts)
