"""The backward of ``conv_winograd``'s F(4×4, 3×3) convolutions: the adjoint of its forward.

dM = A dY Aᵀ (``_grad_transform``), dU[p] = dM[p] · V[p]ᵀ (dW = Gᵀ dU G, in
``conv_winograd_plan.weight_grad``), dV[p] = U[p]ᵀ · dM[p], and B dV Bᵀ added back at each tile's
place (``_input_adjoint``), chunk by chunk as the forward, with V from its ``_input_transform``.
A file of its own for the size budget.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_winograd import (M, TILE_ELEMENTS, _geometry,
                                                    _input_transform, _points, _views,
                                                    phase_plane, rows_from_plane,
                                                    rows_into_plane)
from layerloom.engine.kernels.conv_winograd_plan import unpool_part
from layerloom.engine.kernels.point_products import (du_parts, panel_buffer, point_grads,
                                                     transposed_points)
from layerloom.engine.kernels.winograd_rows import (_K2, _K4, _K5, _K8, COMPACT_TW, _a4, _b4,
                                                   adjoint_rows, grad_rows)
from layerloom.engine.threads import split_rows


@njit(cache=True, nogil=True)
def _bias_grad(dy, s0, s1, db):
    """db[f] += Σ dy[s0:s1, f] in float64: each column's sum down the rows of every sample
    (a loop that vectorises), then the columns' sums in order; one value after another the
    sums took a third of the transform's time on 32×32 maps of 32 filters."""
    _, nf, oh, ow = dy.shape
    cols = np.empty(ow, np.float64)
    for f in range(nf):
        cols[:] = 0.0
        for s in range(s0, s1):
            for y in range(oh):
                row = dy[s, f, y]
                for x in range(ow):
                    cols[x] += row[x]
        acc = 0.0
        for x in range(ow):
            acc += cols[x]
        db[f] += acc


@njit(cache=True, nogil=True)
def _grad_transform(dy, s0, s1, m, th, tw, rows, dm, db):
    """dm[(r, q), f, k] = (A dY Aᵀ)[r, q] of output tile k (tiles as in ``_input_transform``, the
    spare ones and the parts past the output zero); db[f] += Σ dy[s0:s1, f] (``_bias_grad``).
    First along the columns: each filter's map goes into ``plane`` (``phase_plane``; zeros past
    OW and OH) as ``_input_transform``'s input does, so each row of
    A dY is one loop over the sample (in float32: ``conv_winograd`` says why); then along the
    rows. 32 filters on 32×32, batch 64, one core: 3.85 → 3.09 ms against loops per tile row."""
    nf = dy.shape[1]
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    span = th * seg
    plane = phase_plane(th, tw, dy)
    y0, y1, y2, y3 = plane[0, :span], plane[1, :span], plane[2, :span], plane[3, :span]
    for f in range(nf):
        for s in range(s0, s1):
            rows_into_plane(dy[s, f], plane, seg, 0, 0)
            q0 = (s - s0) * span
            l0, l1, l2 = rows[0, f, q0:], rows[1, f, q0:], rows[2, f, q0:]
            l3, l4, l5 = rows[3, f, q0:], rows[4, f, q0:], rows[m + 1, f, q0:]
            # _a4, one output row per loop
            for x in range(span):
                l0[x] = y0[x]
            for x in range(span):
                l1[x] = y0[x] + y1[x] + y2[x] + y3[x]
            for x in range(span):
                l2[x] = y0[x] - y1[x] + y2[x] - y3[x]
            for x in range(span):
                l3[x] = y0[x] + _K2 * y1[x] + _K4 * y2[x] + _K8 * y3[x]
            for x in range(span):
                l4[x] = y0[x] - _K2 * y1[x] + _K4 * y2[x] - _K8 * y3[x]
            for x in range(span):
                l5[x] = y3[x]
    _bias_grad(dy, s0, s1, db)
    for r in range(a):
        p = r * a
        for f in range(nf):
            line = rows[r, f]
            o0, o1, o2, o3, o4, o5 = _points(dm, p, f)
            if tw <= COMPACT_TW:  # no spare tiles in dM (``conv_winograd``)
                grad_rows(line, o0, o1, o2, o3, o4, o5, (s1 - s0) * th, tw)
                continue
            for k in range(tcd):
                x = 4 * k
                t0, t1, t2, t3, t4, t5 = _a4(line[x], line[x + 1], line[x + 2], line[x + 3])
                o0[k], o1[k], o2[k], o3[k], o4[k], o5[k] = t0, t1, t2, t3, t4, t5


@njit(cache=True, nogil=True)
def _input_adjoint(dv, ph, pw, s0, s1, m, th, tw, rows, dx):
    """dx[s0:s1] = the sum over tiles of B dV Bᵀ at each tile's place, the padding (ph, pw)
    dropped: the input transform's adjoint, written into the unpadded gradient (no padded copy
    to slice). Along the rows first: a tile's last two columns are the next tile's first two, so
    each column gathers from two tiles. Then along the columns, into one channel's padded rows
    in ``plane`` (``phase_plane``, as ``_input_transform`` reads them), copied out without the
    padding: each of the six rows of every tile row is one loop over the sample (a loop per
    tile row ran ~3× slower per value on 16-32 columns). A padded row sums at most two terms,
    from zero: the same values bit for bit as the padded gradient's. A 32 → 32 adjoint of batch
    64 on 32×32, one core, 2.95 → 1.84 ms."""
    c = dx.shape[1]
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    for r in range(a):
        p = r * a
        for ch in range(c):
            line = rows[r, ch]
            v0, v1, v2, v3, v4, v5 = _points(dv, p, ch)
            if tw <= COMPACT_TW:
                adjoint_rows(line, v0, v1, v2, v3, v4, v5, (s1 - s0) * th, tw)
                continue
            t0, t1, t2, t3, t4, t5 = _b4(v0[0], v1[0], v2[0], v3[0], v4[0], v5[0])
            line[0], line[1], line[2], line[3] = t0, t1, t2, t3
            for k in range(1, tcd):
                t0, t1, t2, t3, t4, t5 = _b4(v0[k], v1[k], v2[k], v3[k], v4[k], v5[k])
                u0, u1, u2, u3, u4, u5 = _b4(v0[k - 1], v1[k - 1], v2[k - 1], v3[k - 1],
                                             v4[k - 1], v5[k - 1])
                x = 4 * k
                line[x], line[x + 1], line[x + 2], line[x + 3] = t0 + u4, t1 + u5, t2, t3
    span = th * seg  # a sample's tile rows in a line
    plane = phase_plane(th, tw, dx)
    d0, d1, d2, d3 = plane[0, :span], plane[1, :span], plane[2, :span], plane[3, :span]
    d4, d5 = plane[0, seg:seg + span], plane[1, seg:seg + span]
    zero = np.zeros(1, dx.dtype)[0]
    for ch in range(c):
        for s in range(s0, s1):
            q0 = (s - s0) * span
            v0, v1, v2 = rows[0, ch, q0:], rows[1, ch, q0:], rows[2, ch, q0:]
            v3, v4, v5 = rows[3, ch, q0:], rows[4, ch, q0:], rows[m + 1, ch, q0:]
            # _b4, one output row per loop, from zero as the sums always started
            for q in range(span):
                d0[q] = zero + _K4 * v0[q]
            for q in range(span):
                d1[q] = zero + (_K4 * (v2[q] - v1[q] + v5[q]) + _K2 * (v4[q] - v3[q]))
            for q in range(span):
                d2[q] = zero + (-_K5 * v0[q] - _K4 * (v1[q] + v2[q]) - v3[q] - v4[q])
            for q in range(span):
                d3[q] = zero + (v1[q] - v2[q] + _K2 * (v3[q] - v4[q]) - _K5 * v5[q])
            for i in range(2):
                tail = plane[i, span:span + seg]
                for q in range(seg):
                    tail[q] = zero
            for q in range(span):  # the next tile row's first two rows
                d4[q] += v0[q] + v1[q] + v2[q] + v3[q] + v4[q]
            for q in range(span):
                d5[q] += v5[q]
            rows_from_plane(plane, dx[s, ch], seg, ph, pw)


@njit(cache=True, nogil=True)
def _chunk_backward(x, u, dy, g0, s0, s1, m, th, tw, ph, pw, du, db, dx, need_dx, rbuf, vbuf,
                    mbuf, ut, vt, accumulate):
    """``winograd_backward`` for the samples s0:s1 (their output gradient dy[g0:g0 + s1 - s0]):
    du = Σ_tiles dM · Vᵀ (added to du with ``accumulate``), dx from Uᵀ · dM; on the tile kernel
    where ``ut`` holds the Uᵀ (``point_products``; ``vt`` the panels of Vᵀ)."""
    c = x.shape[1]
    pos, nf = u.shape[0], u.shape[1]
    rows, v, dm = _views(rbuf, vbuf, mbuf, m, c, nf, pos, (s1 - s0) * th, tw)
    _grad_transform(dy, g0, g0 + s1 - s0, m, th, tw, rows, dm, db)
    _input_transform(x, ph, pw, s0, s1, m, th, tw, rows, v)
    for p in range(pos):
        point_grads(dm[p], v[p], u, ut, p, du[p], vt, need_dx, accumulate)
    if need_dx:
        _input_adjoint(v, ph, pw, s0, s1, m, th, tw, rows, dx)


@njit(cache=True, nogil=True)
def backward_part(x, u, ut, dy, arg, wp, geo, parts, du, db, dx, need_dx, q0, q1):
    """The runs of chunks q0..q1 of ``winograd_backward`` (``point_products.du_parts``),
    serially: run q's dU summed into du[q], chunk ci's bias gradient into db[ci] (buffers as in
    ``forward_part``). With a non-empty ``arg`` dy is a
    fused ReLU + max-pool's gradient, un-pooled a chunk at a time into a buffer that stays in
    cache (the whole batch's, zeroed and filled first, ran from memory: 2 of a VGG-style
    step's 57 ms on two cores). ``ut``: ``point_products.transposed_points(u)``."""
    bounds, th, tw, tcd, ph, pw = geo
    m = M
    c, pos, nf = x.shape[1], u.shape[0], u.shape[1]
    rbuf = np.empty((m + 2) * max(c, nf) * (m * tcd + m), x.dtype)
    vbuf, mbuf = np.empty(pos * c * tcd, x.dtype), np.empty(pos * nf * tcd, x.dtype)
    vt = panel_buffer(tcd, c, ut.size > 0)
    pooled = arg.size > 0
    most = np.max(bounds[1:] - bounds[:-1]) if pooled else 0
    dz = np.empty((most, nf, x.shape[2] + 2 * ph - 2, x.shape[3] + 2 * pw - 2), x.dtype)
    for q in range(q0, q1):
        for ci in range(parts[q], parts[q + 1]):
            s0, s1, acc = bounds[ci], bounds[ci + 1], ci > parts[q]
            if pooled:
                unpool_part(dy, arg, wp, dz, s0, s1)
                _chunk_backward(x, u, dz, 0, s0, s1, m, th, tw, ph, pw, du[q], db[ci], dx,
                                need_dx, rbuf, vbuf, mbuf, ut, vt, acc)
            else:
                _chunk_backward(x, u, dy, s0, s0, s1, m, th, tw, ph, pw, du[q], db[ci], dx,
                                need_dx, rbuf, vbuf, mbuf, ut, vt, acc)


_NO_ARG = np.empty((0, 0, 0, 0), np.int32)


def winograd_backward(x, u, dy, need_dx: bool, ph=0, pw=0, arg=_NO_ARG, wp=0) -> tuple:
    """(d input (the unpadded x's) or empty, dU per run of chunks (runs, a², F, C), d bias) of
    ``winograd_forward_flat``; ``conv_winograd_plan.weight_grad`` turns the dU into the
    filters' gradient. The per-chunk bias gradients are summed in chunk order from zero.
    With ``arg`` (the fused ReLU + max-pool's winners, flat at pitch ``wp``) dy is the pooled
    gradient, un-pooled a chunk at a time by ``conv_winograd_plan.unpool_part`` (the values
    ``unpool`` gives)."""
    n, c, h, w = x.shape
    pos, nf = u.shape[0], u.shape[1]
    geo = _geometry(x, u, M, TILE_ELEMENTS, ph, pw)
    k = len(geo[0]) - 1
    parts = du_parts(k)
    du = np.empty((len(parts) - 1, pos, nf, c), x.dtype)
    db = np.zeros((k, nf), x.dtype)
    dx = np.empty((n if need_dx else 0, c, h, w), x.dtype)
    need = bool(need_dx)
    ut = transposed_points(u)
    split_rows(lambda q0, q1: backward_part(x, u, ut, dy, arg, int(wp), geo, parts, du, db, dx,
                                            need, q0, q1), len(parts) - 1)
    return dx, du, np.add.reduce(db, axis=0, initial=0)
