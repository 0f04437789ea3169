"""Stride-1 direct convolution kernels, plain and fused with ReLU + max-pool (``conv`` wraps them).

Forward, "flat" layout: one sample's padded input is a flat vector and output (r, q) lives
at r·Wp + q, so each filter tap (c, i, j) is one contiguous axpy of length L = (OH−1)·Wp + OW
from offset c·Hp·Wp + i·Wp + j; the Wp − OW "gap" columns are computed and thrown away.
Backward, "row" layout (``conv_flat_back``): a chunk of samples is copied into C·KH rows so
that each tap is one dot over the whole chunk (not over one sample's 136 positions: LeNet's
conv2); the input gradient is the forward kernel run on the output gradient; float32 with ≥ 16
filters runs both as products on the packed tile kernel (``conv_taps_packed``). Inner loops run
over pre-sliced arrays, two filters × four taps a pass, so numba vectorises them. The batch is
split over the cores by ``split_rows`` (one serial kernel per core, without the GIL; numba's
``parallel=True`` compiled ~4 s on a fresh install). Weight gradients sum per-chunk partials in
a fixed order: results do not depend on the thread count. Kernels that call each other share
this file (the 2×2 pool's are ``pool``'s; an edit there recompiles these: ``kernels.cache_stamp``);
each calls as few others as it can (a callee is compiled again inside every caller).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.packed import PANEL, gemm_at
from layerloom.engine.kernels.pool import beats, pair_scratch, pair_winners, relu_pool_store
from layerloom.engine.threads import split_rows

CHUNK = 2304  # most positions per chunk row: long rows amortise each pass, too long leave L2


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
def taps_forward(xf, w2, offs, acc, at, n):
    """acc[f, at:at + n] += Σ_t w2[f, t] · xf[offs[t] : offs[t] + n] for f < len(w2).

    acc holds the bias on entry and one spare row beyond the filters: an odd last filter is
    paired with that scratch row, so every pass runs two filters.
    """
    nf, nt = w2.shape
    for f in range(0, nf, 2):
        g = f + 1 if f + 1 < nf else nf
        a, c = acc[f, at:at + n], acc[g, at:at + n]
        wa, wc = w2[f], w2[min(g, nf - 1)]
        for t in range(0, nt - 3, 4):  # range, not a counter from 0: a callee would compile
            o0, o1, o2, o3 = offs[t], offs[t + 1], offs[t + 2], offs[t + 3]  # for Literal 0 too
            _fma_2x4(a, c, xf[o0:o0 + n], xf[o1:o1 + n], xf[o2:o2 + n], xf[o3:o3 + n], wa, wc, t, n)
        for t in range(nt - nt % 4, nt):
            x0 = xf[offs[t]:offs[t] + n]
            u, v = wa[t], wc[t]
            for p in range(n):
                a[p] += u * x0[p]
                c[p] += v * x0[p]


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
def taps_weight_grad(xf, dz, at, offs, dw2, n):
    """dw2[f, t] += Σ_p dz[f, at + p] · xf[offs[t] + p], two filters × four taps a pass."""
    nf, nt = dw2.shape
    zero = np.zeros(1, dw2.dtype)[0]  # a float64 0.0 (or x * 0) would make float64 sums
    for f in range(0, nf, 2):
        g = min(f + 1, nf - 1)
        d0, d1 = dz[f, at:at + n], dz[g, at:at + n]
        for t in range(0, nt - 3, 4):
            x0, x1 = xf[offs[t]:offs[t] + n], xf[offs[t + 1]:offs[t + 1] + n]
            x2, x3 = xf[offs[t + 2]:offs[t + 2] + n], xf[offs[t + 3]:offs[t + 3] + n]
            a0, a1, a2, a3, b0, b1, b2, b3 = _dots_2x4(d0, d1, x0, x1, x2, x3, zero, n)
            dw2[f, t], dw2[f, t + 1] = dw2[f, t] + a0, dw2[f, t + 1] + a1
            dw2[f, t + 2], dw2[f, t + 3] = dw2[f, t + 2] + a2, dw2[f, t + 3] + a3
            if g != f:
                dw2[g, t], dw2[g, t + 1] = dw2[g, t] + b0, dw2[g, t + 1] + b1
                dw2[g, t + 2], dw2[g, t + 3] = dw2[g, t + 2] + b2, dw2[g, t + 3] + b3
        for t in range(nt - nt % 4, nt):
            x0 = xf[offs[t]:offs[t] + n]
            s0 = s1 = zero
            for p in range(n):
                s0 += d0[p] * x0[p]
                s1 += d1[p] * x0[p]
            dw2[f, t] += s0
            if g != f:
                dw2[g, t] += s1


@njit(cache=True, nogil=True)
def from_flat(src, dst, wp, relu):
    """dst (F, OH, OW) = src's flat rows, gap columns dropped; through max(·, 0) as
    ``np.maximum`` does it (NaN and −0 kept) when ``relu``: the ReLU in this copy, not in a
    pass of its own over the whole batch (a ResNet stem's 8 MB). ``conv_gemm``'s image path
    copies its samples out with it too."""
    nf, oh, ow = dst.shape
    zero = np.zeros(1, dst.dtype)[0]
    for f in range(nf):
        for r in range(oh):
            s, d = src[f, r * wp:r * wp + ow], dst[f, r]
            if relu:
                for q in range(ow):
                    v = s[q]
                    d[q] = v if v >= zero or v != v else zero
            else:
                for q in range(ow):
                    d[q] = s[q]


# ------------------------------------------------------------------------- plain convolution
@njit(cache=True, nogil=True)
def forward_part(xp, w, b, out, relu, s0, s1):
    """Samples s0..s1 of ``forward_flat``."""
    _, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = hp - kh + 1, wp - kw + 1
    size = (oh - 1) * wp + ow
    offs, w2, padded = flat_offsets(c, hp, wp, kh, kw), w.reshape(nf, c * kh * kw), _spare(xp)
    for s in range(s0, s1):
        from_flat(_flat_sample(xp, s, w2, b, offs, size, padded), out[s], wp, relu)


def forward_flat(xp, w, b, relu: bool = False):
    """conv(xp) + b of an already padded, C-contiguous batch (N, C, Hp, Wp), stride 1; then
    max(·, 0) when ``relu`` (as ``np.maximum``, in each sample's copy out of its rows)."""
    n, _, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    out = np.empty((n, nf, hp - kh + 1, wp - kw + 1), xp.dtype)
    relu = bool(relu)
    split_rows(lambda s0, s1: forward_part(xp, w, b, out, relu, s0, s1), n)
    return out


# ------------------------------------------------------------- fused conv + bias + ReLU + max-pool
@njit(cache=True, nogil=True)
def relu_maxpool_flat(acc, at, out, arg, wp, pkh, pkw, psh, psw):
    """Pool each filter's flat map, keeping the first maximum in row-major order as PyTorch does;
    ReLU folds into the result. 2×2 windows at stride 2 take ``pool.pair_winners``."""
    nf, ph, pw = out.shape
    zero = np.zeros(1, acc.dtype)[0]
    if pkh == 2 and pkw == 2 and psh == 2 and psw == 2:
        vv, vk = pair_scratch(ph, pw, wp, acc.dtype)
        for f in range(nf):
            pair_winners(acc[f, at:], wp, out[f], arg[f], True, vv, vk)
        return
    for f in range(nf):
        a = acc[f, at:]
        for r in range(ph):
            o, g = out[f, r], arg[f, r]
            for q in range(pw):
                base = r * psh * wp + q * psw
                best, where = a[base], base
                for i in range(pkh):
                    row = base + i * wp
                    for j in range(pkw):
                        if beats(a[row + j], best):
                            best, where = a[row + j], row + j
                relu_pool_store(o, g, q, best, where, zero)


@njit(cache=True, nogil=True)
def _spare(xp):
    """``_flat_sample``'s copy of one float32 sample with a panel's room after it (the tile
    kernel's last panel reads on past the sample); empty for float64 (the axpy passes)."""
    return np.zeros(xp[0].size + PANEL if xp.itemsize == 4 else 0, xp.dtype)


@njit(cache=True, nogil=True)
def _flat_sample(xp, s, w2, b, offs, size, padded):
    """Sample s's convolution in the flat layout: (F + 1) rows (taps_forward's spare last) of
    b + w2 · the taps' windows, ``size`` columns or more. float32 (a non-empty ``padded``)
    runs on the packed tile kernel reading the windows in place from ``padded``, a copy of the
    sample; float64 the taps' axpy passes."""
    nf, n = len(w2), xp[s].size
    width = -(-size // PANEL) * PANEL if len(padded) else size
    acc = np.empty((nf + 1, width), xp.dtype)
    for f in range(nf):
        acc[f, :] = b[f]
    if len(padded):
        padded[:n] = xp[s].reshape(n)
        gemm_at(np.int64(w2.ctypes.data), len(offs), nf, len(offs),
                np.int64(padded.ctypes.data), PANEL, width // PANEL, offs,
                np.int64(acc.ctypes.data), width, True)
    else:
        taps_forward(xp[s].reshape(n), w2, offs, acc, 0, size)
    return acc


@njit(cache=True, nogil=True)
def crm_part(xp, w, b, pkh, pkw, psh, psw, out, arg, s0, s1):
    """Samples s0..s1 of ``conv_relu_maxpool_forward`` (``arg`` empty: winners not kept)."""
    _, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    size = (hp - kh) * wp + wp - kw + 1
    offs, w2 = flat_offsets(c, hp, wp, kh, kw), w.reshape(nf, c * kh * kw)
    scratch, padded = np.empty(out.shape[1:], np.int32), _spare(xp)
    for s in range(s0, s1):
        acc = _flat_sample(xp, s, w2, b, offs, size, padded)
        relu_maxpool_flat(acc, 0, out[s], arg[s] if len(arg) else scratch, wp, pkh, pkw, psh,
                          psw)


def conv_relu_maxpool_forward(xp, w, b, pkh: int, pkw: int, psh: int, psw: int, want_arg: bool):
    """maxpool(relu(conv(xp) + b)) without storing the convolution's output: (out, arg), ``arg``
    per pooled value the flat index (r·Wp + q) of the window's first maximum of the
    pre-activation, or −1 where ReLU clipped it (max ≤ 0): the backward touches only these.
    NaN wins a window, as in PyTorch, so a non-finite value is never pooled away. One sample
    runs on the calling thread (waking another costs more)."""
    n, _, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    ph, pw = (hp - kh + 1 - pkh) // psh + 1, (wp - kw + 1 - pkw) // psw + 1
    out = np.empty((n, nf, ph, pw), xp.dtype)
    arg = np.empty((n if want_arg else 0, nf, ph, pw), np.int32)
    if n == 1:  # an inference view's query: no hand-over, no thread count asked
        crm_part(xp, w, b, pkh, pkw, psh, psw, out, arg, 0, 1)
    else:
        split_rows(lambda s0, s1: crm_part(xp, w, b, pkh, pkw, psh, psw, out, arg, s0, s1), n)
    return out, arg


@njit(cache=True, nogil=True)
def relu_maxpool_part(acc, wp, pkh, pkw, psh, psw, out, arg, s0, s1):
    """Samples s0..s1 of ``relu_maxpool_batch``."""
    for s in range(s0, s1):
        relu_maxpool_flat(acc[s], 0, out[s], arg[s], wp, pkh, pkw, psh, psw)


def relu_maxpool_batch(acc, wp: int, pkh: int, pkw: int, psh: int, psw: int, ph: int, pw: int):
    """``relu_maxpool_flat`` over a batch of flat conv rows (N, F, L), e.g. ``conv_gemm``'s."""
    n, nf = acc.shape[0], acc.shape[1]
    out, arg = np.empty((n, nf, ph, pw), acc.dtype), np.empty((n, nf, ph, pw), np.int32)
    split_rows(lambda s0, s1: relu_maxpool_part(acc, wp, pkh, pkw, psh, psw, out, arg, s0, s1), n)
    return out, arg


# ------------------------------------------------------------------ backward in the row layout
CORES_ROUND = 2  # chunk counts round up to a multiple of this: equal parts on two cores (four
# made a 64-channel Winograd layer's 5 chunks of ~190 tiles 8 of 120, narrow per-point products)


def chunk_bounds(n: int, positions: int, size: int) -> np.ndarray:
    """Near-equal chunks of ≤ positions // size samples (at least one), at least four and an
    even number of them if n allows (two cores' parts then hold equal runs of chunks: 11 chunks
    of a 16-channel Winograd layer on 32×32 maps made parts of 29 and 35 samples, and the
    caller waited ~9 % of each call for the other core): a function of the shapes alone, so
    weight-gradient partials do not depend on the threads. Every chunked convolution kernel
    splits its batch with this. Plain Python: compiled, called from Python and from kernels of
    other modules, with numba's cache holding them all a call from Python failed to box its
    array ("'descr' is NULL")."""
    per = max(1, positions // size)  # LeNet's row layout: conv1 2 samples, conv2 16
    k = max(-(-n // per), 4)
    k = min(n, -(-k // CORES_ROUND) * CORES_ROUND)  # rounded up to even, at most one a sample
    return (np.arange(k + 1, dtype=np.int64) * n) // k
