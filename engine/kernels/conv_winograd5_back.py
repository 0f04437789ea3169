"""The backward of ``conv_winograd5``'s F(4×4, 5×5) convolutions: the adjoint of its forward.

dM = A dY Aᵀ (``_grad_columns``, ``_grad_row``), dU[p] = dM[p] · V[p]ᵀ (dW = Gᵀ dU G in
``conv_winograd5.weight_grad``), dV[p] = U[p]ᵀ · dM[p], and B dV Bᵀ added back at each tile's
place (``_adjoint_row``, ``_adjoint_columns``: tiles 4 apart overlap by 4 rows and columns),
chunk by chunk and one row of the 8×8 points at a time as the forward, with V from its
``input_columns`` and ``input_row``. The transforms are written out as the forward's
(its docstring says why). A file of its own for the size budget.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_winograd import phase_plane, rows_from_plane, rows_into_plane
from layerloom.engine.kernels.conv_winograd5 import (_E, _H, _K2, _K4, _K5, _K8, _K25, _K125,
                                                     _K425, _K525, _Q, A, M, geometry,
                                                     input_columns, input_row)
from layerloom.engine.kernels.conv_winograd_back import _bias_grad
from layerloom.engine.kernels.point_products import (du_parts, panel_buffer, point_grads,
                                                     transposed_points)
from layerloom.engine.threads import split_rows


@njit(inline="always")
def _a8(y0, y1, y2, y3):
    """A y (the output transform's adjoint)."""
    e, o = y0 + y2, y1 + y3
    e2, o2 = y0 + _K4 * y2, _K2 * y1 + _K8 * y3
    e3, o3 = y0 + _Q * y2, _H * y1 + _E * y3
    return y0, e + o, e - o, e2 + o2, e2 - o2, e3 + o3, e3 - o3, y3


@njit(inline="always")
def _b8(v0, v1, v2, v3, v4, v5, v6, v7):
    """B v (the input transform's adjoint)."""
    d1, s1, d3, s3, d5, s5 = v1 - v2, v1 + v2, v3 - v4, v3 + v4, v5 - v6, v5 + v6
    return (-v0, d1 + _H * d3 + _K2 * d5 - v7, _K525 * v0 + s1 + _Q * s3 + _K4 * s5,
            _K525 * v7 - _K425 * d1 - _K25 * (d3 + d5),
            -_K525 * v0 - _K425 * s1 - _K125 * s3 - _K5 * s5,
            d1 + _K2 * d3 + _H * d5 - _K525 * v7, v0 + s1 + s3 + s5, v7)


@njit(cache=True, nogil=True)
def _grad_columns(dy, s0, s1, th, tw, yplane, orows, db):
    """orows[r, f] = A dY along the columns of every output tile of filter f (the spare tiles
    and the parts past the output zero); db[f] += Σ dy[s0:s1, f] (``_bias_grad``, in float64).
    Each map goes into ``yplane`` (``phase_plane``) as ``input_columns``' input does, the rest
    zero: each row of A dY is then one loop over the sample."""
    nf = dy.shape[1]
    seg = M * (tw + 1)
    span = th * seg
    y0, y1, y2, y3 = yplane[0, :span], yplane[1, :span], yplane[2, :span], yplane[3, :span]
    for f in range(nf):
        for s in range(s0, s1):
            rows_into_plane(dy[s, f], yplane, seg, 0, 0)
            q0 = (s - s0) * span
            o0, o1, o2, o3 = orows[0, f, q0:], orows[1, f, q0:], orows[2, f, q0:], orows[3, f, q0:]
            o4, o5, o6, o7 = orows[4, f, q0:], orows[5, f, q0:], orows[6, f, q0:], orows[7, f, q0:]
            for q in range(span):  # _a8 along the columns, a row or a ± pair per loop
                o0[q], o7[q] = y0[q], y3[q]
            for q in range(span):
                e, o = y0[q] + y2[q], y1[q] + y3[q]
                o1[q], o2[q] = e + o, e - o
            for q in range(span):
                e, o = y0[q] + _K4 * y2[q], _K2 * y1[q] + _K8 * y3[q]
                o3[q], o4[q] = e + o, e - o
            for q in range(span):
                e, o = y0[q] + _Q * y2[q], _H * y1[q] + _E * y3[q]
                o5[q], o6[q] = e + o, e - o
    _bias_grad(dy, s0, s1, db)


@njit(cache=True, nogil=True)
def _grad_row(orows, r, tcd, dm8):
    """dm8[j, f, k] = (A dY Aᵀ)[r, j] of output tile k from ``_grad_columns``' rows."""
    for f in range(dm8.shape[1]):
        line = orows[r, f]
        t0, t1, t2, t3 = dm8[0, f], dm8[1, f], dm8[2, f], dm8[3, f]
        t4, t5, t6, t7 = dm8[4, f], dm8[5, f], dm8[6, f], dm8[7, f]
        for k in range(tcd):
            j = M * k
            g0, g1, g2, g3, g4, g5, g6, g7 = _a8(line[j], line[j + 1], line[j + 2], line[j + 3])
            t0[k], t1[k], t2[k], t3[k] = g0, g1, g2, g3
            t4[k], t5[k], t6[k], t7[k] = g4, g5, g6, g7


@njit(cache=True, nogil=True)
def _adjoint_row(dv8, r, tcd, tmp, drows):
    """drows[r, c, 4k..4k+7] += (B dV)[r] of tile k (points (r, j) in dv8[j, c, k]): tile k's
    columns overlap the next tile's, hence the two steps through ``tmp``."""
    u0, u1, u2, u3, u4, u5, u6, u7 = tmp[0], tmp[1], tmp[2], tmp[3], tmp[4], tmp[5], tmp[6], tmp[7]
    for ch in range(dv8.shape[1]):
        i0, i1, i2, i3 = dv8[0, ch], dv8[1, ch], dv8[2, ch], dv8[3, ch]
        i4, i5, i6, i7 = dv8[4, ch], dv8[5, ch], dv8[6, ch], dv8[7, ch]
        for k in range(tcd):
            g0, g1, g2, g3, g4, g5, g6, g7 = _b8(i0[k], i1[k], i2[k], i3[k], i4[k], i5[k],
                                                 i6[k], i7[k])
            u0[k], u1[k], u2[k], u3[k] = g0, g1, g2, g3
            u4[k + 1], u5[k + 1], u6[k + 1], u7[k + 1] = g4, g5, g6, g7
        line = drows[r, ch]
        for k in range(tcd):
            j = M * k
            line[j], line[j + 1] = u0[k] + u4[k], u1[k] + u5[k]
            line[j + 2], line[j + 3] = u2[k] + u6[k], u3[k] + u7[k]


@njit(cache=True, nogil=True)
def _adjoint_columns(s0, s1, th, tw, ph, pw, drows, dplane, dx):
    """dx[s0:s1] = Σ over tiles of B (``_adjoint_row``'s rows) at each tile's place, cut to the
    input without its padding (ph, pw): tiles 4 rows apart overlap, so each map is summed in
    ``dplane`` (``phase_plane``: padded row y at dplane[y mod 4], segment y // 4) first, each
    of the eight rows of every tile row in one loop over the sample. A padded row sums at most
    two terms, from zero: the values a plane in row order gave, bit for bit."""
    c = dx.shape[1]
    seg = M * (tw + 1)
    span = th * seg
    x0, x1, x2, x3 = dplane[0, :span], dplane[1, :span], dplane[2, :span], dplane[3, :span]
    e = seg + span
    x4, x5, x6, x7 = dplane[0, seg:e], dplane[1, seg:e], dplane[2, seg:e], dplane[3, seg:e]
    zero = np.zeros(1, dx.dtype)[0]
    for ch in range(c):
        for s in range(s0, s1):
            q0 = (s - s0) * span
            v0, v1, v2, v3 = drows[0, ch, q0:], drows[1, ch, q0:], drows[2, ch, q0:], \
                drows[3, ch, q0:]
            v4, v5, v6, v7 = drows[4, ch, q0:], drows[5, ch, q0:], drows[6, ch, q0:], \
                drows[7, ch, q0:]
            for q in range(span):  # _b8 along the columns, one row per loop
                x0[q] = zero - v0[q]
            for q in range(span):
                x1[q] = zero + ((v1[q] - v2[q]) + _H * (v3[q] - v4[q]) + _K2 * (v5[q] - v6[q])
                                - v7[q])
            for q in range(span):
                x2[q] = zero + (_K525 * v0[q] + (v1[q] + v2[q]) + _Q * (v3[q] + v4[q])
                                + _K4 * (v5[q] + v6[q]))
            for q in range(span):
                x3[q] = zero + (_K525 * v7[q] - _K425 * (v1[q] - v2[q])
                                - _K25 * ((v3[q] - v4[q]) + (v5[q] - v6[q])))
            for i in range(4):  # below the last tile row: its last four rows alone
                tail = dplane[i, span:e]
                for q in range(seg):
                    tail[q] = zero
            for q in range(span):  # the next tile row's first four rows
                x4[q] -= (_K525 * v0[q] + _K425 * (v1[q] + v2[q]) + _K125 * (v3[q] + v4[q])
                          + _K5 * (v5[q] + v6[q]))
            for q in range(span):
                x5[q] += ((v1[q] - v2[q]) + _K2 * (v3[q] - v4[q]) + _H * (v5[q] - v6[q])
                          - _K525 * v7[q])
            for q in range(span):
                x6[q] += v0[q] + (v1[q] + v2[q]) + (v3[q] + v4[q]) + (v5[q] + v6[q])
            for q in range(span):
                x7[q] += v7[q]
            rows_from_plane(dplane, dx[s, ch], seg, ph, pw)


@njit(cache=True, nogil=True)
def backward_part(x, ph, pw, u, ut, dy, geo, parts, du, db, dx, need_dx, q0, q1):
    """The runs of chunks q0..q1 of ``winograd5_backward`` (``point_products.du_parts``),
    serially: run q's dU summed into du[q], chunk ci's bias gradient into db[ci], on buffers
    allocated once; ``ut``: ``transposed_points(u)``."""
    bounds, th, tw, tcd = geo
    c, nf = x.shape[1], u.shape[1]
    plane = phase_plane(th, tw, x)
    rows = np.zeros((A, c, M * tcd + M), x.dtype)
    yplane = phase_plane(th, tw, x)
    orows = np.zeros((A, nf, M * tcd), x.dtype)
    vbuf, mbuf = np.empty(8 * c * tcd, x.dtype), np.empty(8 * nf * tcd, x.dtype)
    pts = np.empty((M, tcd + 1), x.dtype)
    tmp = np.zeros((A, tcd + 1), x.dtype)
    drows = np.empty((A, c if need_dx else 0, M * tcd + M), x.dtype)
    dplane = phase_plane(th, tw, x)
    vt = panel_buffer(tcd, c, ut.size > 0)  # the points' products (point_products)
    for q in range(q0, q1):
        for ci in range(parts[q], parts[q + 1]):
            s0, s1, acc = bounds[ci], bounds[ci + 1], ci > parts[q]
            k = (s1 - s0) * th * (tw + 1)
            v8, dm8 = vbuf[:8 * c * k].reshape((8, c, k)), mbuf[:8 * nf * k].reshape((8, nf, k))
            _grad_columns(dy, s0, s1, th, tw, yplane, orows, db[ci])
            input_columns(x, ph, pw, s0, s1, th, tw, plane, rows)
            for r in range(A):  # one row of the 8×8 points at a time, in cache
                _grad_row(orows, r, k, dm8)
                input_row(rows, r, k, pts, v8)
                for j in range(A):
                    point_grads(dm8[j], v8[j], u, ut, r * A + j, du[q, r * A + j], vt, need_dx,
                                acc)
                if need_dx:
                    _adjoint_row(v8, r, k, tmp, drows)
            if need_dx:
                _adjoint_columns(s0, s1, th, tw, ph, pw, drows, dplane, dx)


def winograd5_backward(x: np.ndarray, u: np.ndarray, dy: np.ndarray, need_dx: bool,
                       pad: tuple = (0, 0)) -> tuple:
    """(d x (without ``pad``) or empty, dU per run of chunks (runs, 64, F, C), d bias) of
    ``winograd5_forward`` of x zero-padded by ``pad``; ``conv_winograd5.weight_grad`` turns the
    dU into the filters' gradient. The per-chunk bias gradients are summed in chunk order from
    zero."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    n, c = x.shape[:2]
    nf, (ph, pw) = u.shape[1], (int(pad[0]), int(pad[1]))
    geo = geometry(x, nf, pad)
    k = len(geo[0]) - 1
    parts = du_parts(k)
    du = np.empty((len(parts) - 1, 64, nf, c), x.dtype)
    db = np.zeros((k, nf), np.float64)
    dx = np.empty((n if need_dx else 0, *x.shape[1:]), x.dtype)
    need = bool(need_dx)
    ut = transposed_points(u)
    split_rows(lambda q0, q1: backward_part(x, ph, pw, u, ut, dy, geo, parts, du, db, dx, need,
                                            q0, q1), len(parts) - 1)
    return dx, du, np.add.reduce(db, axis=0, initial=0).astype(x.dtype)
