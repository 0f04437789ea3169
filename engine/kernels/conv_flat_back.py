"""The chunked backward of ``conv_flat``'s stride-1 convolutions, plain and fused with ReLU +
max-pool, in the "row" layout (``conv_flat``'s docstring). Its products are ``conv_flat``'s tap
kernels, or for float32 with ≥ 16 filters the packed tile kernel's (``conv_taps_packed``).
An edit to either recompiles this file's kernels (``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_flat import CHUNK, chunk_bounds, taps_forward, taps_weight_grad
from layerloom.engine.kernels.conv_taps_packed import (MIN_FILTERS, PANEL, input_grad_packed,
                                                       weight_grad_packed)
from layerloom.engine.threads import split_rows


@njit(cache=True, nogil=True)
def _chunk_geometry(xp, w, lp, bounds):
    """(lp, pitch, tap offsets into the rows, transposed weights and tap offsets into dz for the
    input gradient, chunk bounds, dz's row length) of the chunked backward.

    A chunk's input is copied into C·KH rows, row (c, i) holding each sample's flat input from
    padded row i of channel c in a segment of lp ≥ OH·Wp (a multiple of 16) positions: tap
    (c, i, j) is then one dot over the whole chunk at (c·KH + i)·pitch + j. dz rows hold the
    output gradient at column KW − 1 + k·lp + r·Wp + q and are zero elsewhere (gap columns, the
    tail of each segment, the margins), so tap shifts never mix two samples. The input gradient
    is the forward kernel run on dz: row (c, i) gathers Σ_f Σ_j w[f, c, i, j] · dz[f, u − j].
    """
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    kmax = -(-n // (len(bounds) - 1))  # the largest chunk: bounds split n evenly
    pitch, dpitch = -(-(kmax * lp + kw) // 16) * 16, kmax * lp + 2 * kw  # whole 16-col panels
    offs = np.empty(c * kh * kw, np.int64)
    wt = np.empty((c * kh, nf * kw), w.dtype)
    dx_offs = np.empty(nf * kw, np.int64)
    for f in range(nf):
        for j in range(kw):
            dx_offs[f * kw + j] = f * dpitch + kw - 1 - j
    for r in range(c * kh):
        for j in range(kw):
            offs[r * kw + j] = r * pitch + j
            for f in range(nf):
                wt[r, f * kw + j] = w[f, r // kh, r % kh, j]
    return lp, pitch, offs, wt, dx_offs, bounds, kmax * lp + 2 * kw


@njit(cache=True, nogil=True)
def _rows_copy(xp, s0, s1, kh, lp, rows, back):
    """rows[(c, i), k·lp + u] = xp[s0 + k] flat at c·Hp·Wp + i·Wp + u for u < OH·Wp, or with
    ``back`` the reverse, added: xp[...] += rows[...] (folding an input gradient back)."""
    _, c, hp, wp = xp.shape
    m = (hp - kh + 1) * wp
    for k in range(s1 - s0):
        xs = xp[s0 + k].reshape(c * hp * wp)
        for ch in range(c):
            for i in range(kh):
                a = ch * hp * wp + i * wp
                flat, row = xs[a:a + m], rows[ch * kh + i, k * lp:k * lp + m]
                if back:
                    for u in range(m):
                        flat[u] += row[u]
                else:
                    for u in range(m):
                        row[u] = flat[u]


@njit(cache=True, nogil=True)
def chunks_part(xp, w, geo, dy, arg, c0, c1, dw_parts, db_parts, dxp, need_dx):
    """Chunks c0..c1 of a backward: each chunk's output gradient into the row layout's dz, then
    its weight gradient into ``dw_parts[ci]`` (bias: ``db_parts[ci]``) and its input gradient
    into dxp[s0:s1]. With a non-empty ``arg`` dy is the pooled gradient of the fused forward,
    and only the pool's winners get theirs (at ``arg``). One kernel, not a kernel per chunk
    called from here: each level of callees is compiled again inside its caller."""
    lp, pitch, offs, wt, dx_offs, bounds, _ = geo
    c, kh, kw = xp.shape[1], w.shape[2], w.shape[3]
    nf, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    wp, pooled = xp.shape[3], arg.size > 0
    packs = xp.itemsize == 4 and nf >= MIN_FILTERS  # (conv_taps_packed)
    sums_there = packs and not pooled  # the bias gradient from weight_grad_packed's pass
    for ci in range(c0, c1):
        s0, s1, db = bounds[ci], bounds[ci + 1], db_parts[ci]
        dz = np.zeros(nf * geo[6] + PANEL, xp.dtype)[:nf * geo[6]].reshape(nf, geo[6])
        for s in range(s0, s1):
            base = kw - 1 + (s - s0) * lp
            for f in range(nf):
                acc = db[f]
                for r in range(oh):
                    for q in range(ow):
                        at = arg[s, f, r, q] if pooled else r * wp + q
                        if at >= 0:
                            g = dy[s, f, r, q]
                            dz[f, base + at] += g
                            if not sums_there:
                                acc += g
                db[f] = acc
        n = (s1 - s0) * lp
        rows = np.zeros((c * kh + 1, pitch), xp.dtype)  # + taps_forward's spare row
        _rows_copy(xp, s0, s1, kh, lp, rows, np.bool_(False))  # not a literal: see taps_forward
        if packs:  # float32, many filters: the products through the tile kernel
            weight_grad_packed(rows, dz, kw - 1, c * kh, kw, n, dw_parts[ci],
                               db if sums_there else db[:0])
        else:
            taps_weight_grad(rows.reshape(rows.size), dz, kw - 1, offs, dw_parts[ci], n)
        if need_dx:
            if packs:
                input_grad_packed(dz.reshape(dz.size), wt, dx_offs, n + kw - 1, rows)
            else:
                rows[:] = 0
                taps_forward(dz.reshape(dz.size), wt, dx_offs, rows, 0, n + kw - 1)
            _rows_copy(dxp, s0, s1, kh, lp, rows, np.bool_(True))


def _backward(xp, w, dy, arg, need_dx: bool) -> tuple:
    """(d padded input or empty, d weight, d bias): the chunks over the cores, then their
    partials summed in chunk order (from zero, as before: −0.0 partials sum to +0.0)."""
    lp = ((xp.shape[2] - w.shape[2] + 1) * xp.shape[3] + 15) // 16 * 16  # ≥ OH·Wp, by 16
    geo = _chunk_geometry(xp, w, lp, chunk_bounds(len(xp), CHUNK, lp))
    k = len(geo[5]) - 1
    nf, taps = len(w), w[0].size
    dw_parts, db_parts = np.zeros((k, nf, taps), xp.dtype), np.zeros((k, nf), xp.dtype)
    dxp = np.zeros(xp.shape if need_dx else (0, *xp.shape[1:]), xp.dtype)
    need = bool(need_dx)
    split_rows(lambda c0, c1: chunks_part(xp, w, geo, dy, arg, c0, c1, dw_parts, db_parts, dxp,
                                          need), k)
    dw = np.add.reduce(dw_parts, axis=0, initial=0).reshape(w.shape)
    return dxp, dw, np.add.reduce(db_parts, axis=0, initial=0)


def backward_flat(xp, w, dy, need_dx: bool) -> tuple:
    """(d padded input or empty, d weight, d bias) of the stride-1 convolution."""
    return _backward(xp, w, dy, np.empty((0, 0, 0, 0), np.int32), need_dx)


def conv_relu_maxpool_backward(xp, w, dp, arg, need_dx: bool) -> tuple:
    """(d padded input or empty, d weight, d bias) from the gradient at ``arg``'s winners."""
    return _backward(xp, w, dp, arg, need_dx)
