"""``conv_winograd5``'s F(4×4, 5×5) over the whole batch at once, the 64 products split over the
cores by point: 5×5 float32 convolutions of many channels on maps of one tile (4×4 outputs).

The chunked kernels close every row of tw tiles with a spare tile (so the pass along the rows
is one long loop): on a 4×4 map tw = 1 and half of every product's columns were spare tiles.
The chunks (at least four) held 16 samples of 1-4 tiles, so each point's product was a few
dozen columns deep with U read again per chunk, and every chunk wrote a dU of its own (64·F·C
floats: 4 MB for 128 → 128) that ``weight_grad`` then summed. Here the same transforms run over
fixed groups of samples (split over the cores) and their spare tiles are left out of V and M,
each point's product takes every tile of the batch once (each core a run of points), and dU is
made once: ``conv_winograd_batch``'s plan for F(4×4, 3×3). The same sums up to the products'
rounding; nothing depends on the threads (a point's product is whole on one core; the bias
gradient sums per group, in order).

Forward + backward with the input and weight gradients at batch 64, against the chunks, one
core / two: on 4×4 maps 128 → 256 50.3 → 30.7 / 52.3 → 35.6 ms, 256 → 128 48.5 → 32.1 (one),
256 → 256 92.5 → 55.5 / 93.2 → 61.1 (at batch 32 70.7 → 32.1, at 128 on two 123 → 91),
256 → 512 171 → 96; 128 → 128 17.4 vs 18.1 / 18.5 vs 19.6 and 64 → 128 8.1 vs 9.3 gained
nothing (``MIN_PRODUCT``). On maps of 2×2 tiles the whole batch lost: 128 → 128 on 8×8 81 → 98
/ 49 → 65 ms, 64 → 64 12.1 → 17.5, 256 → 256 171 vs 166, on 6×6 (two) 171 vs 175: V and M
then hold 8-16 MB each, out of cache, where a chunk's row of points stays in it (``MAX_TILES``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_winograd5 import (A, M, _output_columns, _output_row,
                                                     input_columns, input_row, winograd5_forward)
from layerloom.engine.kernels.conv_winograd5_back import (_adjoint_columns, _adjoint_row,
                                                          _grad_columns, _grad_row,
                                                          winograd5_backward)
from layerloom.engine.kernels.conv_winograd_batch import (_grad_products, _groups, _products,
                                                          largest)
from layerloom.engine.threads import split_rows

MAX_TILES = 1  # tile rows and columns a sample: outputs of at most 4×4 (the docstring's figures)
MIN_PRODUCT = 1 << 15  # C·F from which the whole batch runs: 128 → 256
MAX_ELEMENTS = 1 << 24  # of V and M together (64 MB): a larger batch keeps to the chunks


def whole_batch5(c: int, nf: int, n: int, oh: int, ow: int) -> bool:
    """True when this file runs an F(4×4, 5×5) convolution (``conv_winograd5.winograd5`` said
    so) of ``n`` samples, C → F channels onto OH × OW outputs: at most ``MAX_TILES`` tile rows
    and columns, C·F ≥ ``MIN_PRODUCT``, V and M of the whole batch within ``MAX_ELEMENTS``."""
    th, tw = -(-oh // M), -(-ow // M)
    return (n > 0 and max(th, tw) <= MAX_TILES and c * nf >= MIN_PRODUCT
            and A * A * (c + nf) * n * th * tw <= MAX_ELEMENTS)


def winograd5_image(xp, u, b, relu: bool = False) -> np.ndarray:
    """``conv_winograd5.winograd5_forward``'s result, over the whole batch where
    ``whole_batch5`` says so: the one place that picks for every 5×5 route."""
    n, c, hp, wp = xp.shape
    if whole_batch5(c, u.shape[1], n, hp - 4, wp - 4):
        return batch5_forward(np.ascontiguousarray(xp), u, b, relu)
    return winograd5_forward(xp, u, b, relu)


def winograd5_image_grads(xp, u, dy, need_dx: bool) -> tuple:
    """(d padded input or empty, dU (groups, 64, F, C), d bias) of ``winograd5_image``, by the
    same choice (``conv_winograd5.weight_grad`` takes either dU)."""
    n, c, hp, wp = xp.shape
    if whole_batch5(c, u.shape[1], n, hp - 4, wp - 4):
        return batch5_backward(np.ascontiguousarray(xp), u, np.ascontiguousarray(dy), need_dx)
    return winograd5_backward(xp, u, dy, need_dx)


@njit(cache=True, nogil=True)
def _pack(src, dst, p0, col0, tile_rows, tw):
    """dst[p0 + j, :, col0 + row·tw + t] = src[j, :, row·(tw + 1) + t]: a group's 8 points of
    one row, its spare tiles dropped."""
    for j in range(src.shape[0]):
        for ch in range(src.shape[1]):
            a, z = src[j, ch], dst[p0 + j, ch]
            for row in range(tile_rows):
                for t in range(tw):
                    z[col0 + row * tw + t] = a[row * (tw + 1) + t]


@njit(cache=True, nogil=True)
def _unpack(src, dst, p0, col0, tile_rows, tw):
    """``_pack``'s inverse, the spare tiles' columns zero (the adjoint adds them in)."""
    for j in range(dst.shape[0]):
        for ch in range(dst.shape[1]):
            a, z = src[p0 + j, ch], dst[j, ch]
            for row in range(tile_rows):
                for t in range(tw):
                    z[row * (tw + 1) + t] = a[col0 + row * tw + t]
                z[row * (tw + 1) + tw] = 0


@njit(cache=True, nogil=True)
def _input_part(xp, th, tw, v, bounds, g0, g1):
    """V's columns of groups g0..g1 (no spare tiles): ``input_columns`` and ``input_row``."""
    c, wp = xp.shape[1], xp.shape[3]
    tcd = largest(bounds, g0, g1) * th * (tw + 1)
    plane = np.zeros((th * M + A) * wp, xp.dtype)
    rows = np.zeros((A, c, M * tcd + M), xp.dtype)
    vbuf, ph = np.empty(A * c * tcd, xp.dtype), np.empty((M, tcd + 1), xp.dtype)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        k = (s1 - s0) * th * (tw + 1)
        v8 = vbuf[:A * c * k].reshape((A, c, k))
        input_columns(xp, s0, s1, th, tw, plane, rows)
        for r in range(A):
            input_row(rows, r, k, ph, v8)
            _pack(v8, v, r * A, s0 * th * tw, (s1 - s0) * th, tw)


@njit(cache=True, nogil=True)
def _output_part(mm, b, th, tw, out, relu, bounds, g0, g1):
    """The outputs (+ b, then the ReLU) of groups g0..g1 from M's columns."""
    nf = mm.shape[1]
    tcd = largest(bounds, g0, g1) * th * (tw + 1)
    orows, mbuf = np.empty((A, nf, M * tcd), mm.dtype), np.empty(A * nf * tcd, mm.dtype)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        k = (s1 - s0) * th * (tw + 1)
        mm8 = mbuf[:A * nf * k].reshape((A, nf, k))
        for r in range(A):
            _unpack(mm, mm8, r * A, s0 * th * tw, (s1 - s0) * th, tw)
            _output_row(mm8, r, k, orows)
        _output_columns(b, s0, s1, th, tw, out, relu, orows)


def batch5_forward(xp, u, b, relu: bool = False) -> np.ndarray:
    """conv(xp) + b (N, F, Hp − 4, Wp − 4) of the padded C-contiguous batch (then max(·, 0)
    when ``relu``): ``winograd5_forward`` over the whole batch."""
    n, c, hp, wp = xp.shape
    nf, oh, ow = u.shape[1], hp - 4, wp - 4
    th, tw = -(-oh // M), -(-ow // M)
    v, mm = np.empty((A * A, c, n * th * tw), xp.dtype), np.empty((A * A, nf, n * th * tw),
                                                                   xp.dtype)
    out = np.empty((n, nf, oh, ow), xp.dtype)
    bounds = _groups(n)
    k, relu = len(bounds) - 1, bool(relu)
    split_rows(lambda g0, g1: _input_part(xp, th, tw, v, bounds, g0, g1), k)
    split_rows(lambda p0, p1: _products(u, v, mm, p0, p1), A * A)
    split_rows(lambda g0, g1: _output_part(mm, b, th, tw, out, relu, bounds, g0, g1), k)
    return out


@njit(cache=True, nogil=True)
def _grad_part(xp, dy, th, tw, v, dm, db, bounds, g0, g1):
    """dM's and V's columns of groups g0..g1; group gi's bias gradient into db[gi]."""
    c, wp, nf, ow = xp.shape[1], xp.shape[3], dy.shape[1], dy.shape[3]
    tcd = largest(bounds, g0, g1) * th * (tw + 1)
    plane, yplane = np.zeros((th * M + A) * wp, xp.dtype), np.zeros(th * M * ow, xp.dtype)
    rows, orows = np.zeros((A, c, M * tcd + M), xp.dtype), np.zeros((A, nf, M * tcd), xp.dtype)
    vbuf, mbuf = np.empty(A * c * tcd, xp.dtype), np.empty(A * nf * tcd, xp.dtype)
    ph = np.empty((M, tcd + 1), xp.dtype)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        k, col0, tile_rows = (s1 - s0) * th * (tw + 1), s0 * th * tw, (s1 - s0) * th
        v8, dm8 = vbuf[:A * c * k].reshape((A, c, k)), mbuf[:A * nf * k].reshape((A, nf, k))
        _grad_columns(dy, s0, s1, th, tw, yplane, orows, db[gi])
        input_columns(xp, s0, s1, th, tw, plane, rows)
        for r in range(A):
            _grad_row(orows, r, k, dm8)
            _pack(dm8, dm, r * A, col0, tile_rows, tw)
            input_row(rows, r, k, ph, v8)
            _pack(v8, v, r * A, col0, tile_rows, tw)


@njit(cache=True, nogil=True)
def _adjoint_part(dv, th, tw, dxp, bounds, g0, g1):
    """The padded input's gradient of groups g0..g1 from dV's columns."""
    c, wp = dxp.shape[1], dxp.shape[3]
    tcd = largest(bounds, g0, g1) * th * (tw + 1)
    vbuf, tmp = np.empty(A * c * tcd, dxp.dtype), np.zeros((A, tcd + 1), dxp.dtype)
    drows = np.empty((A, c, M * tcd + M), dxp.dtype)
    dplane = np.empty((th * M + A) * wp, dxp.dtype)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        k = (s1 - s0) * th * (tw + 1)
        v8 = vbuf[:A * c * k].reshape((A, c, k))
        for r in range(A):
            _unpack(dv, v8, r * A, s0 * th * tw, (s1 - s0) * th, tw)
            _adjoint_row(v8, r, k, tmp, drows)
        _adjoint_columns(s0, s1, th, tw, drows, dplane, dxp)


def batch5_backward(xp, u, dy, need_dx: bool) -> tuple:
    """(d padded input or empty, dU as (1, 64, F, C), d bias) of ``batch5_forward``: what
    ``winograd5_backward`` returns, for ``conv_winograd5.weight_grad``."""
    n, c, hp, wp = xp.shape
    nf, oh, ow = u.shape[1], dy.shape[2], dy.shape[3]
    th, tw = -(-oh // M), -(-ow // M)
    v, dm = np.empty((A * A, c, n * th * tw), xp.dtype), np.empty((A * A, nf, n * th * tw),
                                                                   xp.dtype)
    bounds = _groups(n)
    k, need = len(bounds) - 1, bool(need_dx)
    db = np.zeros((k, nf), np.float64)
    split_rows(lambda g0, g1: _grad_part(xp, dy, th, tw, v, dm, db, bounds, g0, g1), k)
    du = np.empty((1, A * A, nf, c), xp.dtype)
    split_rows(lambda p0, p1: _grad_products(u, v, dm, du[0], need, p0, p1), A * A)
    dxp = np.empty((n if need else 0, c, hp, wp), xp.dtype)
    if need:
        split_rows(lambda g0, g1: _adjoint_part(v, th, tw, dxp, bounds, g0, g1), k)
    return dxp, du, np.add.reduce(db, axis=0, initial=0).astype(xp.dtype)
