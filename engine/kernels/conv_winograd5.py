"""Stride-1 5×5 convolutions in float32 by Winograd's minimal filtering F(4×4, 5×5): 8×8 tiles.

A direct 5×5 convolution does 25 multiply-adds per output and channel pair; F(4×4, 5×5) does 64
per 16 outputs (4). Each 8×8 tile d of each channel of the padded input, its tiles 4 apart,
becomes V = Bᵀ d B, each filter U = G g Gᵀ (``filter_transform``: one product with G ⊗ G), and
the 64 element-wise products summed over the input channels are BLAS products M[p] (F × tiles)
= U[p] (F × C) · V[p] (C × tiles); an output tile is Aᵀ M A. The matrices are Toom-Cook's
for the points 0, ±1, ±2, ±½ and ∞ (those of NNPACK's F(6×6, 3×3): the same 8-point Bᵀ),
derived with exact fractions and checked against the direct sums (``tests/engine``).
PyTorch's CPU forward runs such convolutions through NNPACK's fast transforms at ~2× what a
direct kernel can reach on the same core; the matrix-product kernel (``conv_kn2row``) could not.

Layout as ``conv_winograd``'s F(4×4, 3×3) (whose docstring says why each choice): transforms
first along the columns, one loop over a whole sample's tile rows per row of the tiles (the
maps' rows regrouped by row mod 4: ``input_columns``; forward + backward, batch 64, one core /
two: 16 → 16 on 32×32 14.6 → 12.1 / 7.8 → 6.4 ms, 32 → 32 on 16×16 11.6 → 9.3 / 6.6 → 5.5,
the 3 → 32 stem 9.6 → 7.9 / 5.0 → 4.4), then along the rows, tile by tile, on
lines where tile k starts at column 4k (each tile row one segment of 4·(tw + 1) columns, one
spare tile closing it); chunks of samples (``conv_flat.chunk_bounds``, a function of the shapes
alone) go through all steps in cache, one contiguous run of chunks per core
(``engine.threads.split_rows``) with the BLAS on one thread. Within a chunk one row of the
8×8 points at a time goes through the row transform, its 8 products and the output's row
transform while it is in cache (the whole chunk's V and M, 64 points at once, ran the backward
~10 % slower). The input comes unpadded with its padding, which ``input_columns`` reads as
zeros from ``plane`` (as rows past it), and the backward writes the input's gradient without
it: the layers make no padded copy (``conv.pad_free_route``). The backward
(``conv_winograd5_back``) is the adjoint. float32 only: the transforms cost a few bits
(relative errors ~5e-6 of the largest output where the direct kernel has ~1e-7), below what
float32 training notices; float64 stays on the exact kernels. Self-contained apart from the
backward's imports (an edit to a kernel it shares recompiles ``conv_winograd5_back``:
``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so threadpoolctl can limit it)
from numba import njit

from layerloom.engine.kernels.conv_flat import chunk_bounds
from layerloom.engine.kernels.conv_winograd import (_K2, _K4, _K5, _K8, phase_plane,
                                                    rows_into_plane)
from layerloom.engine.kernels.point_products import on_tiles, point_product
from layerloom.engine.kernels.winograd_filters import filters_grad, transform_filters
from layerloom.engine.threads import split_rows

# Aᵀ (4 × 8), G (8 × 5), Bᵀ (8 × 8): y = Aᵀ [(G g) ⊙ (Bᵀ d)], d 8 points, g 5 taps
AT = np.array([[1, 1, 1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1 / 2, -1 / 2, 0],
               [0, 1, 1, 4, 4, 1 / 4, 1 / 4, 0], [0, 1, -1, 8, -8, 1 / 8, -1 / 8, 1]])
G = np.array([[-1, 0, 0, 0, 0], [-2 / 9] * 5, [-2 / 9, 2 / 9, -2 / 9, 2 / 9, -2 / 9],
              [1 / 90, 1 / 45, 2 / 45, 4 / 45, 8 / 45], [1 / 90, -1 / 45, 2 / 45, -4 / 45, 8 / 45],
              [32 / 45, 16 / 45, 8 / 45, 4 / 45, 2 / 45],
              [32 / 45, -16 / 45, 8 / 45, -4 / 45, 2 / 45], [0, 0, 0, 0, 1]])
BT = np.array([[-1, 0, 21 / 4, 0, -21 / 4, 0, 1, 0], [0, 1, 1, -17 / 4, -17 / 4, 1, 1, 0],
               [0, -1, 1, 17 / 4, -17 / 4, -1, 1, 0], [0, 1 / 2, 1 / 4, -5 / 2, -5 / 4, 2, 1, 0],
               [0, -1 / 2, 1 / 4, 5 / 2, -5 / 4, -2, 1, 0], [0, 2, 4, -5 / 2, -5, 1 / 2, 1, 0],
               [0, -2, 4, 5 / 2, -5, -1 / 2, 1, 0], [0, -1, 0, 21 / 4, 0, -21 / 4, 0, 1]])
KRON = np.kron(G, G)  # (64, 25): U = (G ⊗ G) · vec(g)
M, A = 4, 8  # output tile, input tile
# the transforms' fractions as float32 constants (a Python float would make the sums float64)
_H, _Q, _E = np.float32(0.5), np.float32(0.25), np.float32(0.125)
_K125, _K25, _K425, _K525 = np.float32(1.25), np.float32(2.5), np.float32(4.25), np.float32(5.25)
MIN_CHANNELS = 16
STEM_OUTPUTS = 32 * 32  # outputs a map from which a stem of 4-15 channels in takes it too
STEM_CHANNELS = 4  # fewer: the direct kernels (``winograd5``)
SMALLEST_MAP = 4  # output side (see ``winograd5``)
CHUNK_TILES = 160  # tiles a chunk (at least one sample): the per-point products' width. At 256
# (3 samples of 32×32 maps, 11 of 16×16) V and M of 64 → 64 made ~7 MB a chunk; at 160 (2 and 8
# samples), paired runs, b64, one core / two, forward and backward (2026-12-07): 32 → 32 on
# 32×32 1.08 / 1.06× and 1.10 / 1.07×, 64 → 64 on 16×16 1.08 / 1.06× and 1.07 / 1.06×, 128 →
# 128 on 16×16 1.03 / 1.04× and 1.08 / 0.98×, 16 → 32 on 32×32 1.09 / 1.03× and 1.14 / 1.08×;
# at 112 (one sample of 32×32 maps) mostly slower, 0.74-1.02×


def winograd5(w_shape: tuple, dtype, oh: int, ow: int) -> bool:
    """True when F(4×4, 5×5) runs this stride-1 convolution and its backward: float32 5×5
    filters, ≥ 16 of them, from ≥ 16 channels or, on maps of ≥ 32×32, from ≥ 4. Measured at
    batch 64 on one core against the kernels it replaces, forward + backward with the input
    gradient: 32 → 32 on 32×32 131 → 41 ms, 64 → 64 on 16×16 132 → 39 ms, 128 → 128 on 8×8
    160 → 48 ms; a 3 → 32 stem on 32×32 (weight gradient only) 19.8 → 10.7 ms, 8 → 32 47.6 →
    16.5 ms, but 3 → 32 on 16×16 3.2 → 3.5 ms and 1 → 32 on 28×28 5.2 → 7.4 ms (the output
    transform costs as much as the few products it saves). Since the direct kernels' products
    run on the packed tile kernel (``conv_taps_packed``), RGB stems are theirs again: forward +
    weight gradient, b64 on 32×32 (2026-12-06), one core / two, 3 → 32 19.8 → 13.9 / 12.6 →
    8.2 ms, 3 → 16 10.9 → 6.4 / 5.4 → 3.6, 3 → 64 29.5 → 24.1, on 64×64 61.2 → 49.5 / 32.5 →
    26.3 (with the input gradient too, 3 → 32 18.7 → 16.7); from 4 channels Winograd keeps them
    (4 → 32 with the input gradient 19.2 vs 20.9, 6 → 32 21.4 vs 29.3, 8 → 32 18.3 vs 26.8).

    Maps of 4-7 outputs (a 5×5 layer after three pools of a 32×32 image) leave much of each
    8×8 tile to the padding, but im2col, which ran them before, multiplies every tap too, the
    padding's included. Against it, one core / two: 64 → 64 on 4×4 8.8 → 6.2 / 5.5 → 4.0 ms,
    128 → 128 on 4×4 30.2 → 19.5 / 17.9 → 10.7, 256 → 256 121 → 99 / 66 → 56, 128 → 256
    55.4 → 48.2 / 31.1 vs 31.9; 64 → 64 on 6×6 19.6 → 12.3 / 10.3 → 6.8, 256 → 256 264 →
    182 / 144 → 97, 128 → 64 on 7×7 (two) 27.8 → 13.1; on 5×5 even (256 → 256 186 vs 183 /
    104 vs 98). On 3×3 maps im2col (64 → 64 5.1 vs 5.8 / 3.0 vs 4.2 ms)."""
    nf, c, kh, kw = w_shape
    if np.dtype(dtype) != np.float32 or (kh, kw) != (5, 5) or nf < MIN_CHANNELS \
            or min(oh, ow) < SMALLEST_MAP:
        return False
    return c >= MIN_CHANNELS or (c >= STEM_CHANNELS and oh * ow >= STEM_OUTPUTS)


def filter_transform(w: np.ndarray) -> np.ndarray:
    """U (64, F, C) = G w[f, c] Gᵀ for every filter, in ``w``'s dtype."""
    return transform_filters(w, KRON)


def weight_grad(du: np.ndarray) -> np.ndarray:
    """dW (F, C, 5, 5) = Gᵀ dU G from the partial dU (parts, 64, F, C), summed in order."""
    return filters_grad(du, KRON, 5, 5)


def geometry(x: np.ndarray, nf: int, pad: tuple = (0, 0)) -> tuple:
    """(chunk bounds, th, tw, tiles of the largest chunk) for the batch x zero-padded by ``pad``."""
    n, c, hp, wp = x.shape[0], x.shape[1], x.shape[2] + 2 * pad[0], x.shape[3] + 2 * pad[1]
    th, tw = -(-(hp - 4) // M), -(-(wp - 4) // M)
    per = th * (tw + 1)
    bounds = chunk_bounds(n, max(CHUNK_TILES, per), per)
    return bounds, th, tw, int(np.diff(bounds).max()) * per


# ------------------------------------------------------------------------- the 1-D transforms
@njit(inline="always")
def _bt8(d0, d1, d2, d3, d4, d5, d6, d7):
    """Bᵀ d (its rows' shared sums once)."""
    a, b = d2 + d6 - _K425 * d4, d1 + d5 - _K425 * d3
    c, e = _Q * d2 - _K125 * d4 + d6, _H * d1 - _K25 * d3 + _K2 * d5
    f, g = _K4 * d2 - _K5 * d4 + d6, _K2 * d1 - _K25 * d3 + _H * d5
    return ((d6 - d0) + _K525 * (d2 - d4), a + b, a - b, c + e, c - e, f + g, f - g,
            (d7 - d1) + _K525 * (d3 - d5))


@njit(inline="always")
def _at8(m0, m1, m2, m3, m4, m5, m6, m7):
    """Aᵀ m."""
    s1, d1, s3, d3, s5, d5 = m1 + m2, m1 - m2, m3 + m4, m3 - m4, m5 + m6, m5 - m6
    return (m0 + s1 + s3 + s5, d1 + _K2 * d3 + _H * d5, s1 + _K4 * s3 + _Q * s5,
            d1 + _K8 * d3 + _E * d5 + m7)


@njit(cache=True, nogil=True)
def input_columns(x, ph, pw, s0, s1, th, tw, plane, rows):
    """rows[r, c] = Bᵀ d along the columns of every tile d of channel c of x zero-padded by
    (ph, pw) (tiles of samples s0:s1 in order: sample, tile row, tile column and a spare one;
    tile k at columns 4k..4k+7). ``plane`` (``phase_plane``: zeros when a part starts) gets
    one channel's map at the padding's offset, image row y at plane[(y + ph) mod 4], segment
    (y + ph) // 4: its padding, the rest of each segment and the rows below stay zero, so no
    padded copy of the batch is made (one core made it while both ran the kernels) and every
    tile reads zeros past the input. Tile row t reads padded rows 4t + i: for each i one
    segment-aligned slice of plane[i mod 4] serves every tile row, so each of the eight rows
    of Bᵀ d is one loop over the sample (a loop per tile row, as many values as the map is
    wide, ran ~3× slower per value on 16-32 columns). ``rows`` (8, C, 4·tcd + 4) gets zeros
    at its tail."""
    c = x.shape[1]
    seg, tcd = M * (tw + 1), (s1 - s0) * th * (tw + 1)
    span = th * seg  # a sample's tile rows in a line
    x0, x1, x2, x3 = plane[0, :span], plane[1, :span], plane[2, :span], plane[3, :span]
    e = seg + span
    x4, x5, x6, x7 = plane[0, seg:e], plane[1, seg:e], plane[2, seg:e], plane[3, seg:e]
    for ch in range(c):
        for i in range(A):
            for q in range(M * tcd, M * tcd + M):
                rows[i, ch, q] = 0
        for s in range(s0, s1):
            rows_into_plane(x[s, ch], plane, seg, ph, pw)
            q0 = (s - s0) * span
            r0, r1, r2, r3 = rows[0, ch, q0:], rows[1, ch, q0:], rows[2, ch, q0:], rows[3, ch, q0:]
            r4, r5, r6, r7 = rows[4, ch, q0:], rows[5, ch, q0:], rows[6, ch, q0:], rows[7, ch, q0:]
            # _bt8 along the columns, an output row or a ± pair per loop
            for q in range(span):
                r0[q] = (x6[q] - x0[q]) + _K525 * (x2[q] - x4[q])
            for q in range(span):
                a, b = x2[q] + x6[q] - _K425 * x4[q], x1[q] + x5[q] - _K425 * x3[q]
                r1[q], r2[q] = a + b, a - b
            for q in range(span):
                a = _Q * x2[q] - _K125 * x4[q] + x6[q]
                b = _H * x1[q] - _K25 * x3[q] + _K2 * x5[q]
                r3[q], r4[q] = a + b, a - b
            for q in range(span):
                a = _K4 * x2[q] - _K5 * x4[q] + x6[q]
                b = _K2 * x1[q] - _K25 * x3[q] + _H * x5[q]
                r5[q], r6[q] = a + b, a - b
            for q in range(span):
                r7[q] = (x7[q] - x1[q]) + _K525 * (x3[q] - x5[q])


@njit(cache=True, nogil=True)
def input_row(rows, r, tcd, ph, v8):
    """v8[j, c, k] = (Bᵀ d B)[r, j] of tile k of channel c, from ``input_columns``' rows: one row
    of the 8×8 points at a time, so its products run while it is in cache. The line's columns
    4k + j go through ``ph[j, k]`` first: then both loops run over contiguous values."""
    p0, p1, p2, p3 = ph[0], ph[1], ph[2], ph[3]
    for ch in range(v8.shape[1]):
        line = rows[r, ch]
        for k in range(tcd + 1):
            j = M * k
            p0[k], p1[k], p2[k], p3[k] = line[j], line[j + 1], line[j + 2], line[j + 3]
        o0, o1, o2, o3 = v8[0, ch], v8[1, ch], v8[2, ch], v8[3, ch]
        o4, o5, o6, o7 = v8[4, ch], v8[5, ch], v8[6, ch], v8[7, ch]
        for k in range(tcd):
            t0, t1, t2, t3, t4, t5, t6, t7 = _bt8(p0[k], p1[k], p2[k], p3[k], p0[k + 1],
                                                  p1[k + 1], p2[k + 1], p3[k + 1])
            o0[k], o1[k], o2[k], o3[k] = t0, t1, t2, t3
            o4[k], o5[k], o6[k], o7[k] = t4, t5, t6, t7


@njit(cache=True, nogil=True)
def _output_row(mm8, r, tcd, orows):
    """orows[r, f, 4k + x] = (Aᵀ M)[r, x] of tile k from row r of its products, mm8 (8, F, k)."""
    for f in range(mm8.shape[1]):
        line = orows[r, f]
        i0, i1, i2, i3 = mm8[0, f], mm8[1, f], mm8[2, f], mm8[3, f]
        i4, i5, i6, i7 = mm8[4, f], mm8[5, f], mm8[6, f], mm8[7, f]
        for k in range(tcd):
            y0, y1, y2, y3 = _at8(i0[k], i1[k], i2[k], i3[k], i4[k], i5[k], i6[k], i7[k])
            x = M * k
            line[x], line[x + 1], line[x + 2], line[x + 3] = y0, y1, y2, y3


@njit(cache=True, nogil=True)
def _output_columns(b, s0, s1, th, tw, out, relu, orows):
    """out[s, f] = (Aᵀ M A)[tile] + b[f] for samples s0:s1 from ``_output_row``'s rows, cut to
    the output (then max(·, 0) as ``np.maximum`` when ``relu``): one output row per loop."""
    nf, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    seg = M * (tw + 1)
    zero = np.zeros(1, out.dtype)[0]
    for f in range(nf):
        bias = b[f]
        m0, m1, m2, m3 = orows[0, f], orows[1, f], orows[2, f], orows[3, f]
        m4, m5, m6, m7 = orows[4, f], orows[5, f], orows[6, f], orows[7, f]
        for s in range(s0, s1):
            for ti in range(th):
                q0, y = ((s - s0) * th + ti) * seg, ti * M
                i0, i1, i2, i3 = m0[q0:q0 + ow], m1[q0:q0 + ow], m2[q0:q0 + ow], m3[q0:q0 + ow]
                i4, i5, i6, i7 = m4[q0:q0 + ow], m5[q0:q0 + ow], m6[q0:q0 + ow], m7[q0:q0 + ow]
                d0 = out[s, f, y]  # _at8 along the columns, one output row per loop
                for q in range(ow):
                    d0[q] = i0[q] + (i1[q] + i2[q]) + (i3[q] + i4[q]) + (i5[q] + i6[q]) + bias
                if y + 1 < oh:
                    d1 = out[s, f, y + 1]
                    for q in range(ow):
                        d1[q] = ((i1[q] - i2[q]) + _K2 * (i3[q] - i4[q]) + _H * (i5[q] - i6[q])
                                 + bias)
                if y + 2 < oh:
                    d2 = out[s, f, y + 2]
                    for q in range(ow):
                        d2[q] = ((i1[q] + i2[q]) + _K4 * (i3[q] + i4[q]) + _Q * (i5[q] + i6[q])
                                 + bias)
                if y + 3 < oh:
                    d3 = out[s, f, y + 3]
                    for q in range(ow):
                        d3[q] = ((i1[q] - i2[q]) + _K8 * (i3[q] - i4[q]) + _E * (i5[q] - i6[q])
                                 + i7[q] + bias)
            if relu:
                img = out[s, f].ravel()
                for q in range(oh * ow):
                    val = img[q]
                    img[q] = val if val >= zero or val != val else zero


@njit(cache=True, nogil=True)
def forward_part(x, ph, pw, u, b, geo, out, relu, c0, c1):
    """Chunks c0..c1 of ``winograd5_forward``, serially, on buffers allocated once."""
    bounds, th, tw, tcd = geo
    c, nf = x.shape[1], u.shape[1]
    plane = phase_plane(th, tw, x)
    rows = np.zeros((A, c, M * tcd + M), x.dtype)
    orows = np.empty((A, nf, M * tcd), x.dtype)
    vbuf, mbuf = np.empty(8 * c * tcd, x.dtype), np.empty(8 * nf * tcd, x.dtype)
    pts = np.empty((M, tcd + 1), x.dtype)
    tiles = on_tiles(c, nf, x.itemsize)  # the points' products on the tile kernel
    for ci in range(c0, c1):
        s0, s1 = bounds[ci], bounds[ci + 1]
        k = (s1 - s0) * th * (tw + 1)
        v8, mm8 = vbuf[:8 * c * k].reshape((8, c, k)), mbuf[:8 * nf * k].reshape((8, nf, k))
        input_columns(x, ph, pw, s0, s1, th, tw, plane, rows)
        for r in range(A):
            input_row(rows, r, k, pts, v8)
            for j in range(A):
                point_product(u[r * A + j], v8[j], mm8[j], tiles)
            _output_row(mm8, r, k, orows)
        _output_columns(b, s0, s1, th, tw, out, relu, orows)


def winograd5_forward(x: np.ndarray, u: np.ndarray, b: np.ndarray, relu: bool = False,
                      pad: tuple = (0, 0)) -> np.ndarray:
    """conv(x zero-padded by ``pad``) + b (N, F, Hp − 4, Wp − 4) of the C-contiguous float32
    batch ``x`` with ``u = filter_transform(w)``, the padding read in place; ``relu``:
    max(·, 0) applied as each chunk's output is made."""
    x = np.ascontiguousarray(x)
    (n, _, h, w), (ph, pw) = x.shape, (int(pad[0]), int(pad[1]))
    out = np.empty((n, u.shape[1], h + 2 * ph - 4, w + 2 * pw - 4), x.dtype)
    geo = geometry(x, u.shape[1], pad)
    split_rows(lambda c0, c1: forward_part(x, ph, pw, u, b, geo, out, bool(relu), c0, c1),
               len(geo[0]) - 1)
    return out
