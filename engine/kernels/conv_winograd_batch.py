"""``conv_winograd``'s F(4×4, 3×3) over the whole batch at once, the a² products split over the
cores by point: stride-1 3×3 float32 convolutions of many channels on small maps.

``conv_winograd`` takes chunks of samples through transforms, products and transforms, one run
of chunks per core, at least four chunks (``conv_flat.chunk_bounds``). On maps of a few tiles
(4×4 to 12×12) a chunk of 16 samples is 16-144 tiles, so the weight gradient's products
dU[p] = dM[p] · V[p]ᵀ are only that deep, and every chunk writes a dU of its own (a²·F·C floats:
38 MB a chunk for 512 → 512) that ``weight_grad`` then reads back to sum. Here the transforms
run over fixed groups of samples (split over the cores), each product once with every tile of
the batch in it (each core a run of points), and dU is made once. The same transforms
(``conv_winograd``'s and ``conv_winograd_back``'s kernels, the V and M columns of a group at its
samples' place), so the same values up to the products' rounding; nothing depends on the
threads (a point's product is whole on one core; the bias gradient sums per group, in order).

Measured against the chunks, batch 64, forward + backward with the weight gradient, one core /
two: 256 → 256 on 4×4 maps 40.3 → 24.9 / 28.7 → 16.9 ms, 512 → 512 on 4×4 153 → 88 / 77 → 48,
256 → 256 on 6×6 83 → 74 / 45 → 43, on 8×8 82 → 69 / 51 → 41; 128 → 128 gained nothing (4×4:
8.1 vs 8.0, 8×8: 21 vs 23 on one core), hence ``MIN_PRODUCT``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_winograd import (COMPACT_TW, M, _input_transform,
                                                    _output_transform, _relu_in_place,
                                                    winograd_forward_flat)
from layerloom.engine.kernels.conv_winograd_back import (_grad_transform, _input_adjoint,
                                                         winograd_backward)
from layerloom.engine.kernels.conv_winograd_plan import tile_of
from layerloom.engine.kernels.conv_winograd_tile import one_tile3, tile_backward, tile_forward
from layerloom.engine.threads import split_rows

MIN_PRODUCT = 1 << 16  # C·F from which the whole batch beats the chunks (256 → 256)
MAX_ELEMENTS = 1 << 24  # of V and M together (64 MB; the chunks of 512 → 512 on 8×8 maps made
# 151 MB of dU): a larger batch keeps to the chunks
GROUP = 8  # samples a transform pass: the bias gradient's partial sums, fixed for any threads


def whole_batch(c: int, nf: int, n: int, oh: int, ow: int) -> bool:
    """True when this file runs a Winograd convolution (``conv_winograd_plan.winograd_tile``
    said 4) of ``n`` samples, C → F channels onto OH × OW outputs: maps of at most
    ``COMPACT_TW`` tile rows and columns (≤ 12 × 12), C·F ≥ ``MIN_PRODUCT``, and V and M of
    the whole batch within ``MAX_ELEMENTS``."""
    th, tw = -(-oh // M), -(-ow // M)
    return one_tile3(c, nf, n, oh, ow) or (
        n > 0 and max(th, tw) <= COMPACT_TW and c * nf >= MIN_PRODUCT
        and (M + 2) ** 2 * (c + nf) * n * th * tw <= MAX_ELEMENTS)


def whole_image(m: int, c: int, nf: int, n: int, oh: int, ow: int) -> bool:
    """True when ``winograd_image`` of F(m×m, 3×3) takes a route other than ``conv_winograd``'s
    chunks (F(6×6, 3×3), one tile a map, the whole batch): the fused max-pool then pools its
    image at pitch OW, where the chunks write ``conv_gemm``'s flat rows a chunk at a time."""
    return m != M or whole_batch(c, nf, n, oh, ow)


def winograd_image(x, u, b, pad: tuple = (0, 0), relu: bool = False) -> np.ndarray:
    """Winograd's conv(x zero-padded by ``pad``) + b [then max(·, 0)] as (N, F, OH, OW): the
    whole batch at once where ``whole_batch`` says so, ``conv_winograd``'s chunks otherwise.
    The one place that picks between them for every route (the layers' pad-free one, the
    padded one, the stride-2 phases, the fused max-pool)."""
    n, c, h, w = x.shape
    oh, ow = h + 2 * pad[0] - 2, w + 2 * pad[1] - 2
    m = _one_tile(u, c, n, oh, ow)
    if m:
        return tile_forward(x, u, b, relu, pad, m)
    if whole_batch(c, u.shape[1], n, oh, ow):
        return batch_forward(x, u, b, *pad, relu)
    return winograd_forward_flat(x, u, b, ow, *pad, relu).reshape(n, u.shape[1], oh, ow)


def winograd_image_grads(x, u, dy, need_dx: bool, pad: tuple = (0, 0)) -> tuple:
    """(dx or empty, dU, d bias) of ``winograd_image``, by the same choice."""
    m = _one_tile(u, x.shape[1], len(x), dy.shape[2], dy.shape[3])
    if m:
        return tile_backward(x, u, dy, need_dx, pad, m)
    if whole_batch(x.shape[1], u.shape[1], len(x), dy.shape[2], dy.shape[3]):
        return batch_backward(x, u, dy, need_dx, *pad)
    return winograd_backward(x, u, np.ascontiguousarray(dy), need_dx, *pad)


def _one_tile(u, c: int, n: int, oh: int, ow: int) -> int:
    """m when ``conv_winograd_tile`` runs this convolution as one tile a map (U of F(6×6, 3×3),
    or 4×4 outputs ``one_tile3`` takes), 0 otherwise."""
    m = tile_of(u)
    return m if m == 6 or one_tile3(c, u.shape[1], n, oh, ow) else 0


def _tiles(oh: int, ow: int) -> tuple[int, int]:
    """(tile rows, tile columns) of an OH × OW output: V and M hold a sample's tiles without
    the chunked kernels' spare tile per row only up to ``COMPACT_TW`` columns, so wider maps
    are refused here (they would write past the buffers)."""
    th, tw = -(-oh // M), -(-ow // M)
    if tw > COMPACT_TW:
        raise ValueError(f"the whole-batch Winograd takes outputs of at most {M * COMPACT_TW} "
                         f"columns, not {ow}: use conv_winograd's chunks")
    return th, tw


def _groups(n: int) -> np.ndarray:
    """Bounds of the fixed sample groups: near-equal, at most ``GROUP`` samples each."""
    k = -(-n // GROUP)
    return (np.arange(k + 1, dtype=np.int64) * n) // k


@njit(cache=True, nogil=True)
def _rows(bounds, g0, g1, th, tw, channels, dtype_of):
    """The first passes' scratch (a, channels, m·tcd + m) for the largest group of g0..g1."""
    most = 0
    for gi in range(g0, g1):
        most = max(most, bounds[gi + 1] - bounds[gi])
    return np.empty((M + 2, channels, M * most * th * (tw + 1) + M), dtype_of.dtype)


@njit(cache=True, nogil=True)
def _input_part(x, ph, pw, th, tw, v, bounds, g0, g1):
    """V's columns of groups g0..g1 (x zero-padded by (ph, pw), read in place)."""
    per, rows = th * tw, _rows(bounds, g0, g1, th, tw, x.shape[1], x)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        _input_transform(x, ph, pw, s0, s1, M, th, tw, rows, v[:, :, s0 * per:s1 * per])


@njit(cache=True, nogil=True)
def _output_part(mm, b, th, tw, oh, ow, out, relu, bounds, g0, g1):
    """The outputs (+ b, then the ReLU) of groups g0..g1 from M's columns."""
    per, rows = th * tw, _rows(bounds, g0, g1, th, tw, mm.shape[1], mm)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        _output_transform(mm[:, :, s0 * per:s1 * per], b, s0, s1, M, th, tw, oh, ow, ow, rows,
                          out)
        if relu:
            _relu_in_place(out, s0, s1)


@njit(cache=True, nogil=True)
def _products(u, v, mm, p0, p1):
    """M[p] = U[p] · V[p] for the points p0..p1."""
    for p in range(p0, p1):
        np.dot(u[p], v[p], mm[p])


def batch_forward(x, u, b, ph: int = 0, pw: int = 0, relu: bool = False) -> np.ndarray:
    """conv(x zero-padded by (ph, pw)) + b (then max(·, 0) when ``relu``, as ``np.maximum``):
    ``conv_winograd.winograd_forward_flat`` at pitch OW, as (N, F, OH, OW)."""
    n, c, h, w = x.shape
    pos, nf = u.shape[0], u.shape[1]
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    th, tw = _tiles(oh, ow)
    v, mm = np.empty((pos, c, n * th * tw), x.dtype), np.empty((pos, nf, n * th * tw), x.dtype)
    out = np.empty((n, nf, oh * ow), x.dtype)
    bounds = _groups(n)
    k, relu = len(bounds) - 1, bool(relu)
    split_rows(lambda g0, g1: _input_part(x, int(ph), int(pw), th, tw, v, bounds, g0, g1), k)
    split_rows(lambda p0, p1: _products(u, v, mm, p0, p1), pos)
    split_rows(lambda g0, g1: _output_part(mm, b, th, tw, oh, ow, out, relu, bounds, g0, g1), k)
    return out.reshape(n, nf, oh, ow)


@njit(cache=True, nogil=True)
def _grad_part(x, dy, ph, pw, th, tw, v, dm, db, bounds, g0, g1):
    """dM's and V's columns of groups g0..g1; group gi's bias gradient into db[gi]."""
    per = th * tw
    rows = _rows(bounds, g0, g1, th, tw, max(x.shape[1], dy.shape[1]), x)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        _grad_transform(dy, s0, s1, M, th, tw, rows, dm[:, :, s0 * per:s1 * per], db[gi])
        _input_transform(x, ph, pw, s0, s1, M, th, tw, rows, v[:, :, s0 * per:s1 * per])


@njit(cache=True, nogil=True)
def _grad_products(u, v, dm, du, need_dx, p0, p1):
    """dU[p] = dM[p] · V[p]ᵀ and, with ``need_dx``, dV[p] = U[p]ᵀ · dM[p] into V[p]."""
    for p in range(p0, p1):
        np.dot(dm[p], v[p].T, du[p])
        if need_dx:
            np.dot(u[p].T, dm[p], v[p])


@njit(cache=True, nogil=True)
def _adjoint_part(dv, ph, pw, th, tw, dx, bounds, g0, g1):
    """dx of groups g0..g1 from dV's columns (the padding dropped)."""
    per, rows = th * tw, _rows(bounds, g0, g1, th, tw, dx.shape[1], dx)
    for gi in range(g0, g1):
        s0, s1 = bounds[gi], bounds[gi + 1]
        _input_adjoint(dv[:, :, s0 * per:s1 * per], ph, pw, s0, s1, M, th, tw, rows, dx)


def batch_backward(x, u, dy, need_dx: bool, ph: int = 0, pw: int = 0) -> tuple:
    """(d x or empty, dU as (1, a², F, C), d bias) of ``batch_forward``: what
    ``conv_winograd_back.winograd_backward`` returns, for ``weight_grad``."""
    n, c, h, w = x.shape
    pos, nf = u.shape[0], u.shape[1]
    th, tw = _tiles(h + 2 * ph - 2, w + 2 * pw - 2)
    v, dm = np.empty((pos, c, n * th * tw), x.dtype), np.empty((pos, nf, n * th * tw), x.dtype)
    bounds = _groups(n)
    k, need = len(bounds) - 1, bool(need_dx)
    db = np.zeros((k, nf), x.dtype)
    dy = np.ascontiguousarray(dy)
    split_rows(lambda g0, g1: _grad_part(x, dy, int(ph), int(pw), th, tw, v, dm, db, bounds, g0,
                                         g1), k)
    du = np.empty((1, pos, nf, c), x.dtype)
    split_rows(lambda p0, p1: _grad_products(u, v, dm, du[0], need, p0, p1), pos)
    dx = np.empty((n if need else 0, c, h, w), x.dtype)
    if need:
        split_rows(lambda g0, g1: _adjoint_part(v, int(ph), int(pw), th, tw, dx, bounds, g0, g1),
                   k)
    return dx, du, np.add.reduce(db, axis=0, initial=0)
