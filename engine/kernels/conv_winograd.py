"""Stride-1 3×3 convolutions in float32 by Winograd's minimal filtering F(m×m, 3×3), m = 2 or 4.

A direct or im2col convolution does 9 multiply-adds per output, channel pair; Winograd's
F(4×4, 3×3) does 36 per 16 outputs (2.25, a 4× saving), F(2×2, 3×3) 16 per 4 (2.25×). Each
(m+2)×(m+2) input tile d of each channel becomes V = Bᵀ d B, each filter U = G g Gᵀ, and the
a² = (m+2)² element-wise products summed over input channels are a² matrix products, done by the
BLAS: M[p] (F × tiles) = U[p] (F × C) · V[p] (C × tiles); each output tile is Aᵀ M A. The tiles
of a chunk of samples (``conv_flat.chunk_bounds``: the shapes alone fix the chunks, so results do
not depend on the threads) go through the three stages while they are in cache, chunks in
parallel over numba's threads with the BLAS on one (``engine.threads``).

The transforms are written out (``_bt``, ``_at``: the products with the matrices' few non-zero
entries), each first along whole rows (contiguous, vectorised) and then per tile. The numpy twin
with the matrices themselves is ``winograd_reference``. The output is ``conv_gemm``'s flat layout
(output (r, q) of a sample at r·Wp + q of a row of length L = (OH−1)·Wp + OW), so the fused
ReLU + max-pool and ``flat_to_image`` take it as they take ``gemm_forward_flat``'s.

float32 only (the training dtype): F(4×4, 3×3)'s transforms lose a few bits (relative errors of
~1e-6 where the direct kernel has ~1e-7), far below what training in float32 notices; float64
stays on the exact direct kernels. Self-contained on purpose: numba's cache only notices edits
to a kernel's own file.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so threadpoolctl can limit it)
from numba import njit, prange

from layerloom.engine.kernels.conv_flat import chunk_bounds

# the transform matrices (Lavin & Gray 2016): Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A
MATRICES = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], np.float64)),
}
TILE_ELEMENTS = 1 << 19  # tiles × (C + F) × a² floats per chunk: ~2 MB of V and M, in L2/L3


def winograd_reference(xp: np.ndarray, w: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
    """The numpy twin: conv(xp) + b (N, F, OH, OW) by F(m×m, 3×3) with the matrices, in float64."""
    bt, g, at = MATRICES[m]
    a = m + 2
    n, c, hp, wp = xp.shape
    oh, ow = hp - 2, wp - 2
    th, tw = -(-oh // m), -(-ow // m)
    xe = np.zeros((n, c, th * m + 2, tw * m + 2))
    xe[:, :, :hp, :wp] = xp
    idx = (np.arange(th)[:, None] * m + np.arange(a)[None, :])  # (tiles, a) rows of each tile
    jdx = (np.arange(tw)[:, None] * m + np.arange(a)[None, :])
    d = xe[:, :, idx[:, :, None, None], jdx[None, None, :, :]]  # (N, C, th, a, tw, a)
    v = np.einsum("ri,ncxiyj,qj->ncxyrq", bt, d, bt)
    u = np.einsum("ri,fcij,qj->fcrq", g, w.astype(np.float64), g)
    mm = np.einsum("ncxyrq,fcrq->nfxyrq", v, u)
    y = np.einsum("ir,nfxyrq,jq->nfxiyj", at, mm, at).reshape(n, len(w), th * m, tw * m)
    return y[:, :, :oh, :ow] + np.asarray(b, np.float64).reshape(1, -1, 1, 1)


def filter_transform(w: np.ndarray, m: int) -> np.ndarray:
    """U (a², F, C): U[p, f, c] = (G w[f, c] Gᵀ)[p], in ``w``'s dtype."""
    g = MATRICES[m][1].astype(w.dtype)
    nf, c = w.shape[:2]
    a = m + 2
    t = (w.reshape(nf * c * 3, 3) @ g.T).reshape(nf * c, 3, a)  # along the columns
    t = g @ np.ascontiguousarray(t.transpose(1, 0, 2)).reshape(3, nf * c * a)  # along the rows
    return np.ascontiguousarray(t.reshape(a, nf * c, a).transpose(0, 2, 1)).reshape(a * a, nf, c)


def input_grad_transform(w: np.ndarray, m: int) -> np.ndarray:
    """U of the input gradient's convolution: the filters flipped, in and out swapped."""
    return filter_transform(np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), m)


MIN_CHANNELS = 16


def winograd_tile(w_shape: tuple, dtype, oh: int, ow: int) -> int:
    """m of the F(m×m, 3×3) that runs this stride-1 convolution, 0 for none: float32 3×3
    filters with enough channels in and out for the products to outweigh the transforms."""
    nf, c, kh, kw = w_shape
    if dtype != np.float32 or (kh, kw) != (3, 3) or min(nf, c) < MIN_CHANNELS or min(oh, ow) < 4:
        return 0
    return 4


# ------------------------------------------------------------------------- the 1-D transforms
@njit(inline="always")
def _bt4(d0, d1, d2, d3, d4, d5):
    """Bᵀ d of F(4, 3)."""
    return (4 * d0 - 5 * d2 + d4, -4 * (d1 + d2) + d3 + d4, 4 * (d1 - d2) - d3 + d4,
            2 * (d3 - d1) - d2 + d4, 2 * (d1 - d3) - d2 + d4, 4 * d1 - 5 * d3 + d5)


@njit(inline="always")
def _at4(m0, m1, m2, m3, m4, m5):
    """Aᵀ m of F(4, 3)."""
    s12, d12, s34, d34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + s12 + s34, d12 + 2 * d34, s12 + 4 * s34, d12 + 8 * d34 + m5


@njit(cache=True, nogil=True)
def _input_transform(xp, s0, s1, m, th, tw, rows, v):
    """v[(r, q), c, k] = (Bᵀ d B)[r, q] of tile k of channel c, the tiles of samples s0:s1 in
    order (sample, tile row, tile column) with one spare tile closing each tile row: tile k
    starts at m·k of a line of ``rows``, so the pass along the rows is one long loop.

    First along the columns, each tile row's a input rows at once into ``rows[r, c]`` (segments
    of m·(tw + 1) columns, zeros past the input); then along the rows, tile by tile."""
    _, c, hp, wp = xp.shape
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    for ch in range(c):
        r0, r1, r2 = rows[0, ch], rows[1, ch], rows[2, ch]
        r3, r4, r5 = rows[3, ch], rows[4, ch], rows[m + 1, ch]
        for s in range(s0, s1):
            xs = xp[s, ch]
            for ti in range(th):
                base = ((s - s0) * th + ti) * seg
                y = ti * m
                if y + m + 2 > hp:  # the last tile row runs past the input: zeros
                    for i in range(m + 2):
                        for x in range(seg):
                            rows[i, ch, base + x] = xs[y + i, x] if y + i < hp and x < wp else 0.0
                    if m == 4:
                        for x in range(base, base + seg):
                            t0, t1, t2, t3, t4, t5 = _bt4(r0[x], r1[x], r2[x], r3[x], r4[x], r5[x])
                            r0[x], r1[x], r2[x], r3[x], r4[x], r5[x] = t0, t1, t2, t3, t4, t5
                    else:
                        for x in range(base, base + seg):
                            d0, d1, d2, d3 = r0[x], r1[x], r2[x], r3[x]
                            r0[x], r1[x], r2[x], r3[x] = d0 - d2, d1 + d2, d2 - d1, d1 - d3
                    continue
                if m == 4:
                    for x in range(wp):
                        t0, t1, t2, t3, t4, t5 = _bt4(xs[y, x], xs[y + 1, x], xs[y + 2, x],
                                                      xs[y + 3, x], xs[y + 4, x], xs[y + 5, x])
                        q = base + x
                        r0[q], r1[q], r2[q], r3[q], r4[q], r5[q] = t0, t1, t2, t3, t4, t5
                    for q in range(base + wp, base + seg):
                        r0[q], r1[q], r2[q], r3[q], r4[q], r5[q] = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
                else:
                    for x in range(wp):
                        d0, d1, d2, d3 = xs[y, x], xs[y + 1, x], xs[y + 2, x], xs[y + 3, x]
                        q = base + x
                        r0[q], r1[q], r2[q], r3[q] = d0 - d2, d1 + d2, d2 - d1, d1 - d3
                    for q in range(base + wp, base + seg):
                        r0[q], r1[q], r2[q], r3[q] = 0.0, 0.0, 0.0, 0.0
    for r in range(a):
        p = r * a
        for ch in range(c):
            line = rows[r, ch]
            if m == 4:
                o0, o1, o2 = v[p, ch], v[p + 1, ch], v[p + 2, ch]
                o3, o4, o5 = v[p + 3, ch], v[p + 4, ch], v[p + 5, ch]
                for k in range(tcd):
                    x = 4 * k
                    t0, t1, t2, t3, t4, t5 = _bt4(line[x], line[x + 1], line[x + 2], line[x + 3],
                                                  line[x + 4], line[x + 5])
                    o0[k], o1[k], o2[k], o3[k], o4[k], o5[k] = t0, t1, t2, t3, t4, t5
            else:
                o0, o1, o2, o3 = v[p, ch], v[p + 1, ch], v[p + 2, ch], v[p + 3, ch]
                for k in range(tcd):
                    x = 2 * k
                    d0, d1, d2, d3 = line[x], line[x + 1], line[x + 2], line[x + 3]
                    o0[k], o1[k], o2[k], o3[k] = d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, nogil=True)
def _output_transform(mm, b, s0, s1, m, th, tw, oh, ow, wp, rows, out):
    """out[s, f, r·Wp + q] = (Aᵀ M A)[tile] + b[f] for samples s0:s1 (tiles as in
    ``_input_transform``; outputs past the image are cut, the gap columns get zeros). First
    along the rows, one long loop per (r, f) into ``rows[r, f]``; then along the columns."""
    nf = mm.shape[1]
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    for r in range(a):
        p = r * a
        for f in range(nf):
            line = rows[r, f]
            if m == 4:
                i0, i1, i2 = mm[p, f], mm[p + 1, f], mm[p + 2, f]
                i3, i4, i5 = mm[p + 3, f], mm[p + 4, f], mm[p + 5, f]
                for k in range(tcd):
                    y0, y1, y2, y3 = _at4(i0[k], i1[k], i2[k], i3[k], i4[k], i5[k])
                    x = 4 * k
                    line[x], line[x + 1], line[x + 2], line[x + 3] = y0, y1, y2, y3
            else:
                i0, i1, i2, i3 = mm[p, f], mm[p + 1, f], mm[p + 2, f], mm[p + 3, f]
                for k in range(tcd):
                    m0, m1, m2, m3 = i0[k], i1[k], i2[k], i3[k]
                    line[2 * k], line[2 * k + 1] = m0 + m1 + m2, m1 - m2 - m3
    for f in range(nf):
        bias = b[f]
        r0, r1, r2 = rows[0, f], rows[1, f], rows[2, f]
        r3, r4, r5 = rows[3, f], rows[4, f], rows[m + 1, f]
        for s in range(s0, s1):
            dst = out[s, f]
            for ti in range(th):
                base = ((s - s0) * th + ti) * seg
                o = ti * m * wp
                if m == 4 and ti * 4 + 4 <= oh:
                    for x in range(ow):
                        q = base + x
                        y0, y1, y2, y3 = _at4(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q])
                        dst[o + x] = y0 + bias
                        dst[o + wp + x] = y1 + bias
                        dst[o + 2 * wp + x] = y2 + bias
                        dst[o + 3 * wp + x] = y3 + bias
                elif m == 4:
                    for x in range(ow):
                        q = base + x
                        y0, y1, y2, y3 = _at4(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q])
                        dst[o + x] = y0 + bias
                        if ti * 4 + 1 < oh:
                            dst[o + wp + x] = y1 + bias
                        if ti * 4 + 2 < oh:
                            dst[o + 2 * wp + x] = y2 + bias
                else:
                    for x in range(ow):
                        q = base + x
                        dst[o + x] = r0[q] + r1[q] + r2[q] + bias
                    if ti * 2 + 1 < oh:
                        for x in range(ow):
                            q = base + x
                            dst[o + wp + x] = r1[q] - r2[q] - r3[q] + bias
            for r in range(oh - 1):  # the gap columns
                for x in range(ow, wp):
                    dst[r * wp + x] = 0.0


@njit(cache=True, nogil=True)
def _chunk_forward(xp, u, b, s0, s1, m, out):
    """``winograd_forward_flat`` for the samples s0:s1: transforms, a² products, transforms."""
    _, c, hp, wp = xp.shape
    pos, nf = u.shape[0], u.shape[1]
    oh, ow = hp - 2, wp - 2
    th, tw = (oh + m - 1) // m, (ow + m - 1) // m
    tcd = (s1 - s0) * th * (tw + 1)
    rows = np.empty((m + 2, max(c, nf), m * tcd + m), xp.dtype)
    v = np.empty((pos, c, tcd), xp.dtype)
    mm = np.empty((pos, nf, tcd), xp.dtype)
    _input_transform(xp, s0, s1, m, th, tw, rows, v)
    for p in range(pos):
        np.dot(u[p], v[p], mm[p])
    _output_transform(mm, b, s0, s1, m, th, tw, oh, ow, wp, rows, out)


@njit(cache=True, nogil=True, parallel=True)
def winograd_forward_flat(xp, u, b, m):
    """conv(xp) + b as flat rows (N, F, L) of an already padded, C-contiguous float32 batch,
    ``u`` being ``filter_transform(w, m)`` of the 3×3 filters."""
    n, c, hp, wp = xp.shape
    nf = u.shape[1]
    oh, ow = hp - 2, wp - 2
    tiles = ((oh + m - 1) // m) * ((ow + m - 1) // m + 1)
    out = np.empty((n, nf, (oh - 1) * wp + ow), xp.dtype)
    bounds = chunk_bounds(n, TILE_ELEMENTS, tiles * (c + nf) * (m + 2) * (m + 2))
    for ci in prange(len(bounds) - 1):
        _chunk_forward(xp, u, b, bounds[ci], bounds[ci + 1], m, out)
    return out


@njit(cache=True, nogil=True, parallel=True)
def unpool(dp, arg, oh, ow, wp):
    """The gradient (N, F, OH, OW) of a convolution's output from its fused ReLU + max-pool's:
    dp where ``arg`` (flat index r·Wp + q, −1 where ReLU clipped) says, zeros elsewhere."""
    n, nf, ph, pw = dp.shape
    dz = np.zeros((n, nf, oh, ow), dp.dtype)
    for s in prange(n):
        for f in range(nf):
            for r in range(ph):
                for q in range(pw):
                    at = arg[s, f, r, q]
                    if at >= 0:
                        dz[s, f, at // wp, at % wp] += dp[s, f, r, q]
    return dz
