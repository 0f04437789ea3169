"""Stride-1 convolution backward as matrix products over chunks of samples, for many taps and
filters (1-D convolutions over channels, most of all).

The direct backward of ``conv_flat`` makes one dot per (filter, tap) pair over a chunk's rows; with
Conv1d's usual shapes (32–64 channels × 3–7 taps, 64 filters, rows of 32–128 positions) that kept
it at a fraction of what the BLAS does with the same work as two products: a chunk's taps copied
into a (taps × positions) matrix (``conv_gemm``'s layout, several samples side by side), then
dW += dY · colsᵀ and dcols = Wᵀ · dY, whose columns are added back onto the input's positions.
Output position (r, q) of a sample lives at r·Wp + q of its segment (the flat layout); the gap
columns hold a zero gradient, so they add nothing. The chunks, whose bounds depend on the shapes
alone, are split over the cores by ``engine.threads.split_rows`` (not numba's ``prange``: its
OpenMP workers spin beside the engine's own, and a parfor costs seconds to compile), with
per-chunk weight gradients summed in order: results do not depend on the thread count.
Self-contained on purpose: numba's cache only notices edits to a kernel's own file.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so threadpoolctl can limit it)
from numba import njit

from layerloom.engine.kernels.conv_flat import chunk_bounds
from layerloom.engine.threads import split_rows

POSITIONS = 2048  # output positions per chunk: a (taps × 2048) float32 matrix stays in L2
MIN_TAPS, MIN_FILTERS = 24, 32


def wide(w_shape: tuple) -> bool:
    """Many filters over a fair number of taps (a pointwise 1×1 convolution over 32 channels, a
    3×3 stem over RGB, Conv1d's usual shapes): real matrix products, which the BLAS does
    1.5–2× faster than the direct kernels (measured forward and backward). LeNet's 6 and 16
    filters are not."""
    nf, c, kh, kw = w_shape
    return c * kh * kw >= MIN_TAPS and nf >= MIN_FILTERS


def prefers_gemm_backward(w_shape: tuple, out_positions: int, dtype=None) -> bool:
    """Whether the matrix-product backward beats the direct one: a wide convolution over maps
    of at most 32×32 positions (the range measured). Given ``dtype``, float32 2-D kernels of 3×3
    and up stay on the direct kernels' chunked backward, whose products run on the packed tile
    kernel (``conv_taps_packed``); these products ran at OpenBLAS's speed for short ones. At
    batch 64, one core, direct vs here: no input gradient (a stem) 3 → 32 on 32×32 5.95 vs 6.27
    ms, 3 → 64 11.5 vs 13.5; with it 3 → 32 12.6 vs 13.8, 8 → 32 14.7 vs 18.3, 4 → 32 on 28×28
    11.2 vs 14.8, 12 → 64 on 16×16 16.6 vs 19.6; 3 → 32 on 16×16 even (2.59 vs 2.56). Conv1d's
    1 × K kernels and the fused max-pool's backward (no ``dtype``) keep the rule above."""
    if dtype is not None and np.dtype(dtype) == np.float32 and min(w_shape[2:]) >= 3:
        return False
    return wide(w_shape) and out_positions <= 1024


@njit(cache=True, nogil=True)
def _gather(xp, s0, s1, kh, kw, size, cols, back):
    """cols[t, k·size : (k+1)·size] = sample s0+k's flat input at tap t's offset; with ``back``
    the reverse, added onto the input (folding dcols back)."""
    _, c, hp, wp = xp.shape
    for k in range(s1 - s0):
        xf = xp[s0 + k].reshape(c * hp * wp)
        t = 0
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    o = ch * hp * wp + i * wp + j
                    src, dst = xf[o:o + size], cols[t, k * size:(k + 1) * size]
                    if back:
                        for p in range(size):
                            src[p] += dst[p]
                    else:
                        for p in range(size):
                            dst[p] = src[p]
                    t += 1


@njit(cache=True, nogil=True)
def _products(xp, w2t, dz, s0, s1, kh, kw, size, dw_part, dxp, need_dx):
    """dw_part = dz · colsᵀ for the chunk s0:s1; with ``need_dx`` dxp[s0:s1] += fold(Wᵀ · dz)."""
    cols = np.empty((w2t.shape[0], dz.shape[1]), xp.dtype)
    _gather(xp, s0, s1, kh, kw, size, cols, False)
    np.dot(dz, cols.T, dw_part)
    if need_dx:
        np.dot(w2t, dz, cols)
        _gather(dxp, s0, s1, kh, kw, size, cols, True)


def _setup(xp, w, oh, ow, need_dx):
    """(row length, Wᵀ, chunk bounds, per-chunk dW and db, dxp) of a backward."""
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    size = (oh - 1) * wp + ow
    bounds = chunk_bounds(n, POSITIONS, size)
    k = len(bounds) - 1
    return (size, np.ascontiguousarray(w.reshape(nf, c * kh * kw).T), bounds,
            np.zeros((k, nf, c * kh * kw), xp.dtype), np.zeros((k, nf), xp.dtype),
            np.zeros((n if need_dx else 0, c, hp, wp), xp.dtype))


@njit(cache=True, nogil=True)
def flat_part(xp, w2t, dy, kh, kw, bounds, size, dw_parts, db_parts, dxp, need_dx, c0, c1):
    """Chunks c0..c1 of ``gemm_backward_flat``, serially: chunk ci's weight and bias gradients
    into dw_parts[ci] and db_parts[ci], its input gradient into dxp."""
    _, nf, oh, ow = dy.shape
    wp = xp.shape[3]
    for ci in range(c0, c1):
        s0, s1 = bounds[ci], bounds[ci + 1]
        dz = np.zeros((nf, (s1 - s0) * size), xp.dtype)  # dy in the flat layout, gaps at 0
        for s in range(s0, s1):
            for f in range(nf):
                acc = db_parts[ci, f]
                for r in range(oh):
                    src = dy[s, f, r]
                    dst = dz[f, (s - s0) * size + r * wp:(s - s0) * size + r * wp + ow]
                    for q in range(ow):
                        dst[q] = src[q]
                        acc += src[q]
                db_parts[ci, f] = acc
        _products(xp, w2t, dz, s0, s1, kh, kw, size, dw_parts[ci], dxp, need_dx)


@njit(cache=True, nogil=True)
def pooled_part(xp, w2t, dp, arg, kh, kw, bounds, size, dw_parts, db_parts, dxp, need_dx, c0, c1):
    """Chunks c0..c1 of ``gemm_backward_pooled``, as ``flat_part``."""
    _, nf, ph, pw = dp.shape
    for ci in range(c0, c1):
        s0, s1 = bounds[ci], bounds[ci + 1]
        dz = np.zeros((nf, (s1 - s0) * size), xp.dtype)
        for s in range(s0, s1):
            for f in range(nf):
                acc = db_parts[ci, f]
                for r in range(ph):
                    for q in range(pw):
                        at = arg[s, f, r, q]
                        if at >= 0:
                            dz[f, (s - s0) * size + at] += dp[s, f, r, q]
                            acc += dp[s, f, r, q]
                db_parts[ci, f] = acc
        _products(xp, w2t, dz, s0, s1, kh, kw, size, dw_parts[ci], dxp, need_dx)


def _sums(w, dxp, dw_parts, db_parts) -> tuple:
    """(dxp, dW, db): the per-chunk partials summed in chunk order, from zero."""
    dw = np.add.reduce(dw_parts, axis=0, initial=0).reshape(w.shape)
    return dxp, dw, np.add.reduce(db_parts, axis=0, initial=0)


def gemm_backward_flat(xp, w, dy, need_dx: bool) -> tuple:
    """(d padded input or empty, d weight, d bias) of the stride-1 convolution of ``xp``."""
    size, w2t, bounds, dw_parts, db_parts, dxp = _setup(xp, w, dy.shape[2], dy.shape[3], need_dx)
    kh, kw, need = w.shape[2], w.shape[3], bool(need_dx)
    split_rows(lambda c0, c1: flat_part(xp, w2t, dy, kh, kw, bounds, size, dw_parts, db_parts,
                                        dxp, need, c0, c1), len(bounds) - 1)
    return _sums(w, dxp, dw_parts, db_parts)


def gemm_backward_pooled(xp, w, dp, arg, oh, ow, need_dx: bool) -> tuple:
    """The same for ``conv_flat``'s fused conv + ReLU + max-pool: only the pool's winners
    (``arg``: flat index r·Wp + q, or −1 where ReLU clipped) get the pooled gradient ``dp``."""
    size, w2t, bounds, dw_parts, db_parts, dxp = _setup(xp, w, oh, ow, need_dx)
    kh, kw, need = w.shape[2], w.shape[3], bool(need_dx)
    split_rows(lambda c0, c1: pooled_part(xp, w2t, dp, arg, kh, kw, bounds, size, dw_parts,
                                          db_parts, dxp, need, c0, c1), len(bounds) - 1)
    return _sums(w, dxp, dw_parts, db_parts)
