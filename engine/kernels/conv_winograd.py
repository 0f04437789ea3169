"""Stride-1 3×3 convolutions in float32 by Winograd's minimal filtering F(4×4, 3×3) (m = 4).

F(4×4, 3×3) does 36 multiply-adds per 16 outputs and channel pair where a direct convolution
does 144. Each (m+2)×(m+2) input tile d of each channel becomes V = Bᵀ d B, each filter U = G g Gᵀ
(``conv_winograd_plan``), and the a² = (m+2)² element-wise products summed over the input channels
are BLAS products M[p] (F × tiles) = U[p] (F × C) · V[p] (C × tiles); an output tile is Aᵀ M A.
The backward is the adjoint: dM = A dY Aᵀ, dU[p] = dM[p] · V[p]ᵀ (dW = Gᵀ dU G), dV[p] = U[p]ᵀ ·
dM[p], and B dV Bᵀ added back at each tile's place. Chunks of samples (``conv_flat.chunk_bounds``:
the shapes alone fix them, so results do not depend on the threads) go through all steps in cache,
one contiguous run of chunks per core (``engine.threads.split_rows``, not numba's ``prange``:
its OpenMP workers spin after a kernel and take the core from the engine's row workers, and a
parfor costs seconds to compile) with the BLAS on one thread; per-chunk dU are summed in order.

The transforms are written out (``_bt4``, ``_at4``, ``_a4``, ``_b4``: the non-zero entries),
first along the columns over whole rows, then along the rows over one line per (position,
channel): each tile row gets m·(tw + 1) columns, one spare tile closing it, so tile k starts at
column m·k and the loop vectorises (the spare tiles cost 1/tw more products). The numpy twin is
``conv_reference.winograd_reference``. The forward writes ``conv_gemm``'s flat layout (pitch Wp)
for the fused ReLU + max-pool, or the image itself.

float32 only (the training dtype): F(4×4, 3×3)'s transforms cost a few bits (relative errors of
~1e-6 where the direct kernel has ~1e-7), far below what training in float32 notices; float64
stays on the exact direct kernels. Self-contained on purpose: numba's cache only notices edits
to a kernel's own file.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so threadpoolctl can limit it)
from numba import njit

from layerloom.engine.kernels.conv_flat import chunk_bounds
from layerloom.engine.threads import split_rows

M = 4  # the kernels' output tile: F(4×4, 3×3) (the numpy twin and the filter side take 2 too)
TILE_ELEMENTS = 1 << 19  # tiles × (C + F) × a² floats per chunk: ~2 MB of V and M, in L2/L3


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
            xf = xs.ravel()
            for ti in range(th):
                base = ((s - s0) * th + ti) * seg
                y = ti * m
                if y + m + 2 > hp:  # the last tile row runs past the input: zeros
                    for i in range(m + 2):
                        for x in range(seg):
                            rows[i, ch, base + x] = xs[y + i, x] if y + i < hp and x < wp else 0.0
                    for x in range(base, base + seg):
                        t0, t1, t2, t3, t4, t5 = _bt4(r0[x], r1[x], r2[x], r3[x], r4[x], r5[x])
                        r0[x], r1[x], r2[x], r3[x], r4[x], r5[x] = t0, t1, t2, t3, t4, t5
                    continue
                # one output row per loop: 1.5× faster than the six stores of _bt4 in one
                o0 = y * wp
                o1, o2, o3, o4 = o0 + wp, o0 + 2 * wp, o0 + 3 * wp, o0 + 4 * wp
                for x in range(wp):
                    r0[base + x] = 4 * xf[o0 + x] - 5 * xf[o2 + x] + xf[o4 + x]
                for x in range(wp):
                    r1[base + x] = xf[o3 + x] + xf[o4 + x] - 4 * (xf[o1 + x] + xf[o2 + x])
                for x in range(wp):
                    r2[base + x] = 4 * (xf[o1 + x] - xf[o2 + x]) - xf[o3 + x] + xf[o4 + x]
                for x in range(wp):
                    r3[base + x] = 2 * (xf[o3 + x] - xf[o1 + x]) - xf[o2 + x] + xf[o4 + x]
                for x in range(wp):
                    r4[base + x] = 2 * (xf[o1 + x] - xf[o3 + x]) - xf[o2 + x] + xf[o4 + x]
                for x in range(wp):
                    r5[base + x] = 4 * xf[o1 + x] - 5 * xf[o3 + x] + xf[o4 + wp + x]
                for q in range(base + wp, base + seg):
                    r0[q], r1[q], r2[q], r3[q], r4[q], r5[q] = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for r in range(a):
        p = r * a
        for ch in range(c):
            line = rows[r, ch]
            for x in range(m * tcd, m * tcd + m):  # read by the last spare tile only
                line[x] = 0.0
            o0, o1, o2 = v[p, ch], v[p + 1, ch], v[p + 2, ch]
            o3, o4, o5 = v[p + 3, ch], v[p + 4, ch], v[p + 5, ch]
            for k in range(tcd):
                x = 4 * k
                t0, t1, t2, t3, t4, t5 = _bt4(line[x], line[x + 1], line[x + 2], line[x + 3],
                                              line[x + 4], line[x + 5])
                o0[k], o1[k], o2[k], o3[k], o4[k], o5[k] = t0, t1, t2, t3, t4, t5
@njit(cache=True, nogil=True)
def _output_transform(mm, b, s0, s1, m, th, tw, oh, ow, wp, rows, out):
    """out[s, f, r·wp + q] = (Aᵀ M A)[tile] + b[f] for samples s0:s1, ``wp`` the output's row
    pitch (tiles as in ``_input_transform``; outputs past the image are cut, the gap columns
    between OW and the pitch get zeros). First along the rows, one long loop per (r, f) into
    ``rows[r, f]``; then along the columns."""
    nf = mm.shape[1]
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    for r in range(a):
        p = r * a
        for f in range(nf):
            line = rows[r, f]
            i0, i1, i2 = mm[p, f], mm[p + 1, f], mm[p + 2, f]
            i3, i4, i5 = mm[p + 3, f], mm[p + 4, f], mm[p + 5, f]
            for k in range(tcd):
                y0, y1, y2, y3 = _at4(i0[k], i1[k], i2[k], i3[k], i4[k], i5[k])
                x = 4 * k
                line[x], line[x + 1], line[x + 2], line[x + 3] = y0, y1, y2, y3
    for f in range(nf):
        bias = b[f]
        r0, r1, r2 = rows[0, f], rows[1, f], rows[2, f]
        r3, r4, r5 = rows[3, f], rows[4, f], rows[m + 1, f]
        for s in range(s0, s1):
            dst = out[s, f]
            for ti in range(th):
                base = ((s - s0) * th + ti) * seg
                o = ti * m * wp
                last = oh - ti * m  # output rows left: the last tile row may be cut
                for x in range(ow):
                    q = base + x
                    y0, y1, y2, y3 = _at4(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q])
                    dst[o + x] = y0 + bias
                    if last > 1:
                        dst[o + wp + x] = y1 + bias
                    if last > 2:
                        dst[o + 2 * wp + x] = y2 + bias
                    if last > 3:
                        dst[o + 3 * wp + x] = y3 + bias
            for r in range(oh - 1):  # the gap columns
                for x in range(ow, wp):
                    dst[r * wp + x] = 0.0


@njit(cache=True, nogil=True)
def _geometry(xp, u, m, per_chunk):
    """(chunk bounds, th, tw, tiles of the largest chunk): each part sizes its buffers by the
    largest chunk (``_views``)."""
    n, c, hp, wp = xp.shape
    pos, nf = u.shape[0], u.shape[1]
    th, tw = (hp - 2 + m - 1) // m, (wp - 2 + m - 1) // m
    bounds = chunk_bounds(n, per_chunk, th * (tw + 1) * (c + nf) * pos)
    most = 0
    for i in range(len(bounds) - 1):
        most = max(most, bounds[i + 1] - bounds[i])
    return bounds, th, tw, most * th * (tw + 1)


@njit(cache=True, nogil=True)
def _views(rbuf, vbuf, mbuf, m, c, nf, pos, tcd):
    """rows (a, max(C, F), m·tcd + m), V (a², C, tcd) and M (a², F, tcd) over a part's buffers."""
    rows = rbuf[:(m + 2) * max(c, nf) * (m * tcd + m)].reshape((m + 2, max(c, nf), m * tcd + m))
    return rows, vbuf[:pos * c * tcd].reshape((pos, c, tcd)), mbuf[:pos * nf * tcd].reshape((pos, nf, tcd))


@njit(cache=True, nogil=True)
def _chunk_forward(xp, u, b, s0, s1, m, th, tw, pitch, out, rbuf, vbuf, mbuf):
    """``winograd_forward_flat`` for the samples s0:s1: transforms, a² products, transforms."""
    _, c, hp, wp = xp.shape
    pos, nf = u.shape[0], u.shape[1]
    rows, v, mm = _views(rbuf, vbuf, mbuf, m, c, nf, pos, (s1 - s0) * th * (tw + 1))
    _input_transform(xp, s0, s1, m, th, tw, rows, v)
    for p in range(pos):
        np.dot(u[p], v[p], mm[p])
    _output_transform(mm, b, s0, s1, m, th, tw, hp - 2, wp - 2, pitch, rows, out)


@njit(cache=True, nogil=True)
def forward_part(xp, u, b, pitch, geo, out, c0, c1):
    """Chunks c0..c1 of ``winograd_forward_flat``, serially, on buffers allocated once for the
    largest chunk: fresh multi-megabyte arrays per chunk cost page faults that took longer than
    a chunk's arithmetic."""
    bounds, th, tw, tcd = geo
    m = M
    c, pos, nf = xp.shape[1], u.shape[0], u.shape[1]
    rbuf = np.empty((m + 2) * max(c, nf) * (m * tcd + m), xp.dtype)
    vbuf, mbuf = np.empty(pos * c * tcd, xp.dtype), np.empty(pos * nf * tcd, xp.dtype)
    for ci in range(c0, c1):
        _chunk_forward(xp, u, b, bounds[ci], bounds[ci + 1], m, th, tw, pitch, out, rbuf, vbuf,
                       mbuf)


def winograd_forward_flat(xp, u, b, pitch):
    """conv(xp) + b as rows (N, F, L = (OH−1)·pitch + OW) of an already padded, C-contiguous
    float32 batch, ``u`` being ``conv_winograd_plan.filter_transform(w, m)`` of the 3×3 filters:
    pitch Wp is ``conv_gemm``'s flat layout, pitch OW the (N, F, OH, OW) image itself. The
    chunks are split over the cores by ``engine.threads.split_rows``, one contiguous run each."""
    n, _, hp, wp = xp.shape
    out = np.empty((n, u.shape[1], (hp - 3) * pitch + wp - 2), xp.dtype)
    geo = _geometry(xp, u, M, TILE_ELEMENTS)
    split_rows(lambda c0, c1: forward_part(xp, u, b, pitch, geo, out, c0, c1), len(geo[0]) - 1)
    return out


# --------------------------------------------------------------------------------- backward
@njit(inline="always")
def _a4(y0, y1, y2, y3):
    """A y of F(4, 3) (the output transform's adjoint)."""
    return (y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + 2 * y1 + 4 * y2 + 8 * y3,
            y0 - 2 * y1 + 4 * y2 - 8 * y3, y3)


@njit(inline="always")
def _b4(v0, v1, v2, v3, v4, v5):
    """B v of F(4, 3) (the input transform's adjoint)."""
    return (4 * v0, 4 * (v2 - v1 + v5) + 2 * (v4 - v3), -5 * v0 - 4 * (v1 + v2) - v3 - v4,
            v1 - v2 + 2 * (v3 - v4) - 5 * v5, v0 + v1 + v2 + v3 + v4, v5)


@njit(cache=True, nogil=True)
def _grad_transform(dy, s0, s1, m, th, tw, rows, dm, db):
    """dm[(r, q), f, k] = (A dY Aᵀ)[r, q] of output tile k (tiles as in ``_input_transform``, the
    spare ones and the parts past the output zero); db[f] += Σ dy[s0:s1, f]."""
    _, nf, oh, ow = dy.shape
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    for f in range(nf):
        acc = 0.0
        l0, l1, l2 = rows[0, f], rows[1, f], rows[2, f]
        l3, l4, l5 = rows[3, f], rows[4, f], rows[m + 1, f]
        for s in range(s0, s1):
            ys = dy[s, f]
            for ti in range(th):
                base = ((s - s0) * th + ti) * seg
                y = ti * m
                for x in range(seg):
                    q = base + x
                    y0 = ys[y, x] if x < ow else 0.0
                    y1 = ys[y + 1, x] if x < ow and y + 1 < oh else 0.0
                    y2 = ys[y + 2, x] if x < ow and y + 2 < oh else 0.0
                    y3 = ys[y + 3, x] if x < ow and y + 3 < oh else 0.0
                    acc += y0 + y1 + y2 + y3
                    t0, t1, t2, t3, t4, t5 = _a4(y0, y1, y2, y3)
                    l0[q], l1[q], l2[q], l3[q], l4[q], l5[q] = t0, t1, t2, t3, t4, t5
        db[f] += acc
    for r in range(a):
        p = r * a
        for f in range(nf):
            line = rows[r, f]
            o0, o1, o2 = dm[p, f], dm[p + 1, f], dm[p + 2, f]
            o3, o4, o5 = dm[p + 3, f], dm[p + 4, f], dm[p + 5, f]
            for k in range(tcd):
                x = 4 * k
                t0, t1, t2, t3, t4, t5 = _a4(line[x], line[x + 1], line[x + 2], line[x + 3])
                o0[k], o1[k], o2[k], o3[k], o4[k], o5[k] = t0, t1, t2, t3, t4, t5
@njit(cache=True, nogil=True)
def _input_adjoint(dv, s0, s1, m, th, tw, rows, dxp):
    """dxp[s0:s1] = the sum over tiles of B dV Bᵀ at each tile's place (the input transform's
    adjoint; positions past the padded input are dropped). Along the rows first: a tile's last
    two columns are the next tile's first two, so each column gathers from two tiles."""
    _, c, hp, wp = dxp.shape
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    for r in range(a):
        p = r * a
        for ch in range(c):
            line = rows[r, ch]
            v0, v1, v2 = dv[p, ch], dv[p + 1, ch], dv[p + 2, ch]
            v3, v4, v5 = dv[p + 3, ch], dv[p + 4, ch], dv[p + 5, ch]
            t0, t1, t2, t3, t4, t5 = _b4(v0[0], v1[0], v2[0], v3[0], v4[0], v5[0])
            line[0], line[1], line[2], line[3] = t0, t1, t2, t3
            for k in range(1, tcd):
                t0, t1, t2, t3, t4, t5 = _b4(v0[k], v1[k], v2[k], v3[k], v4[k], v5[k])
                u0, u1, u2, u3, u4, u5 = _b4(v0[k - 1], v1[k - 1], v2[k - 1], v3[k - 1],
                                             v4[k - 1], v5[k - 1])
                x = 4 * k
                line[x], line[x + 1], line[x + 2], line[x + 3] = t0 + u4, t1 + u5, t2, t3
    for ch in range(c):
        l0, l1, l2 = rows[0, ch], rows[1, ch], rows[2, ch]
        l3, l4, l5 = rows[3, ch], rows[4, ch], rows[m + 1, ch]
        for s in range(s0, s1):
            xs = dxp[s, ch]
            for y in range(hp):
                for x in range(wp):
                    xs[y, x] = 0.0
            for ti in range(th):
                base = ((s - s0) * th + ti) * seg
                y = ti * m
                for x in range(wp):
                    q = base + x
                    t0, t1, t2, t3, t4, t5 = _b4(l0[q], l1[q], l2[q], l3[q], l4[q], l5[q])
                    xs[y, x] += t0
                    xs[y + 1, x] += t1
                    xs[y + 2, x] += t2
                    if y + 3 < hp:
                        xs[y + 3, x] += t3
                    if y + 4 < hp:
                        xs[y + 4, x] += t4
                    if y + 5 < hp:
                        xs[y + 5, x] += t5
@njit(cache=True, nogil=True)
def _chunk_backward(xp, u, dy, s0, s1, m, th, tw, du, db, dxp, need_dx, rbuf, vbuf, mbuf):
    """``winograd_backward`` for the samples s0:s1: du = Σ_tiles dM · Vᵀ, dxp from Uᵀ · dM."""
    _, c, hp, wp = xp.shape
    pos, nf = u.shape[0], u.shape[1]
    rows, v, dm = _views(rbuf, vbuf, mbuf, m, c, nf, pos, (s1 - s0) * th * (tw + 1))
    _grad_transform(dy, s0, s1, m, th, tw, rows, dm, db)
    _input_transform(xp, s0, s1, m, th, tw, rows, v)
    for p in range(pos):
        np.dot(dm[p], v[p].T, du[p])
        if need_dx:
            np.dot(u[p].T, dm[p], v[p])
    if need_dx:
        _input_adjoint(v, s0, s1, m, th, tw, rows, dxp)


@njit(cache=True, nogil=True)
def backward_part(xp, u, dy, geo, du, db, dxp, need_dx, c0, c1):
    """Chunks c0..c1 of ``winograd_backward``, serially: chunk ci's dU into du[ci], its bias
    gradient into db[ci] (buffers as in ``forward_part``)."""
    bounds, th, tw, tcd = geo
    m = M
    c, pos, nf = xp.shape[1], u.shape[0], u.shape[1]
    rbuf = np.empty((m + 2) * max(c, nf) * (m * tcd + m), xp.dtype)
    vbuf, mbuf = np.empty(pos * c * tcd, xp.dtype), np.empty(pos * nf * tcd, xp.dtype)
    for ci in range(c0, c1):
        _chunk_backward(xp, u, dy, bounds[ci], bounds[ci + 1], m, th, tw, du[ci], db[ci], dxp,
                        need_dx, rbuf, vbuf, mbuf)


def winograd_backward(xp, u, dy, need_dx: bool) -> tuple:
    """(d padded input or empty, dU per chunk (chunks, a², F, C), d bias) of
    ``winograd_forward_flat``; ``conv_winograd_plan.weight_grad`` turns the dU into the
    filters' gradient. The per-chunk bias gradients are summed in chunk order from zero."""
    n, c, hp, wp = xp.shape
    pos, nf = u.shape[0], u.shape[1]
    geo = _geometry(xp, u, M, TILE_ELEMENTS)
    k = len(geo[0]) - 1
    du = np.empty((k, pos, nf, c), xp.dtype)
    db = np.zeros((k, nf), xp.dtype)
    dxp = np.empty((n if need_dx else 0, c, hp, wp), xp.dtype)
    need = bool(need_dx)
    split_rows(lambda c0, c1: backward_part(xp, u, dy, geo, du, db, dxp, need, c0, c1), k)
    return dxp, du, np.add.reduce(db, axis=0, initial=0)
