"""Stride-1 3×3 convolutions in float32 by Winograd's minimal filtering F(4×4, 3×3) (m = 4).

F(4×4, 3×3) does 36 multiply-adds per 16 outputs and channel pair where a direct convolution
does 144. Each (m+2)×(m+2) input tile d of each channel becomes V = Bᵀ d B, each filter U = G g Gᵀ
(``conv_winograd_plan``), and the a² = (m+2)² element-wise products summed over the input channels
are BLAS products M[p] (F × tiles) = U[p] (F × C) · V[p] (C × tiles); an output tile is Aᵀ M A.
The backward (``conv_winograd_back``) is the adjoint. The input is read unpadded, its padding
as zeros (``_input_transform``): the layers hand it over without a padded copy. Chunks of
samples (``conv_flat.chunk_bounds``: the shapes alone fix them, so results do not depend on the
threads) go through all steps in cache,
one contiguous run of chunks per core (``engine.threads.split_rows``, not numba's ``prange``:
its OpenMP workers spin after a kernel and take the core from the engine's row workers, and a
parfor costs seconds to compile) with the BLAS on one thread; the chunks' dU are summed in order
(a partial per fixed run of chunks: ``point_products.du_parts``).

The transforms are written out (``_bt4``, ``_at4`` and the backward's: the non-zero entries),
first along the columns, a loop over a whole sample's tile rows per row of the tiles (the
input's, the input gradient's and the output gradient's rows regrouped by row mod 4 in a
scratch plane, ``_input_transform`` says how), then along the rows over one line per (position,
channel): each tile row gets m·(tw + 1) columns, one spare tile closing it, so tile k starts at
column m·k and the loop vectorises. Forward + backward of the layer, batch 64, one core / two,
against loops per tile row: 32 → 32 on 32×32 24.1 → 19.9 / 15.2 → 10.4 ms, 16 → 16 9.0 → 7.8 /
5.6 → 3.7, 64 → 64 on 16×16 22.5 → 18.4 / 11.6 → 10.8, 128 → 128 on 8×8 20.3 → 19.1 / 11.5 →
9.8, a 5×5 stride-2 64 → 128 (``conv_polyphase``) 53.5 → 48.0 / 29.3 → 24.3.

The spare tiles cost 1/tw more products, a third on 8×8 maps, so rows of at most
``COMPACT_TW`` tiles leave them out of V and M (a loop per tile row, which does not
vectorise): one core, b64, forward 128 → 128 on 8×8 3.65 → 3.00 ms; on wider
maps the long loop's speed was worth more (32 → 32 on 32×32 3.61 → 4.23 ms; 28×28 and 20×20
maps alike). On 16×16 (four tiles) dropping them saved a fifth of the products but not the
time: forward + backward, batch 64, one core / two, 128 → 128 75.0 → 71.3 / 40.2 → 40.3 ms,
64 → 64 20.6 → 20.8 / 11.0 → 13.0, 32 → 32 7.3 → 7.3 / 3.6 → 5.8. The numpy twin is
``conv_reference.winograd_reference``. The forward writes ``conv_gemm``'s flat layout (pitch Wp)
for the fused ReLU + max-pool, or the image itself.

float32 only (the training dtype): F(4×4, 3×3)'s transforms cost a few bits (relative errors of
~1e-6 where the direct kernel has ~1e-7), far below what training in float32 notices; float64
stays on the exact direct kernels. The backward shares ``_input_transform``, ``_geometry`` and
``_views`` (an edit here recompiles it: ``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so threadpoolctl can limit it)
from numba import njit

from layerloom.engine.kernels.conv_flat import chunk_bounds
from layerloom.engine.kernels.point_products import on_tiles, point_product
from layerloom.engine.kernels.winograd_rows import (_K2, _K4, _K5, _K8, COMPACT_TW, _at4, _bt4,
                                                   input_rows, output_rows)
from layerloom.engine.threads import split_rows

M = 4  # the kernels' output tile: F(4×4, 3×3) (the numpy twin and the filter side take 2 too)
TILE_ELEMENTS = 1 << 19  # tiles × (C + F) × a² floats per chunk: ~2 MB of V and M, in L2/L3
CHUNK_TILES = 112  # or about this many tiles a chunk (whole samples), if more: with many
# channels 2^19 elements were ~56 tiles (128 → 128), too narrow for the per-point products (b64,
# one core, forward + backward: 128 → 128 on 16×16 maps 95.7 → 66.3 ms at up to 224 tiles). At
# 224, V, M and the rows of 128 → 64 (a 5×5 stride-2 layer's phases) made ~9 MB a chunk, past
# what the cache held on this VM (reads from 16 MB on: ~7 GB/s, 40 below 8 MB), and the
# products ran at ~30 GFLOP/s against ~80 in cache; at ~112 (rounded to whole samples) 50
# (2026-12-07, paired runs, b64, forward / backward, one core and two): 32 → 64 5×5 stride 2
# on 32×32 1.15 / 1.16× and 1.25 / 1.24×, 64 → 64 on 32×32 1.11 / 1.04× and 1.30 / 1.30×, on
# 16×16 1.03 / 1.05× and 1.15 / 1.14×; 128 → 128 on 16×16 even on one core, 1.07× on two.
# Rounded down, 32×32 maps' 72 tiles a sample made chunks of one sample (0.6-0.9×).


@njit(inline="always")
def _points(arr, p, i):
    """arr[p:p + 6, i] as six views: one row of a tile's 6×6 points, for channel or filter i.
    The tile rows' six slices stay written out where they are taken: through a helper like this
    the transforms ran ~20 % slower (forward 6.7 → 8.1 ms, backward 14.9 → 17.8 ms for
    64 × 32 × 32 × 32 on one core), with the same values."""
    return arr[p, i], arr[p + 1, i], arr[p + 2, i], arr[p + 3, i], arr[p + 4, i], arr[p + 5, i]


@njit(cache=True, nogil=True)
def phase_plane(th, tw, like):
    """A zeroed scratch plane in ``like``'s dtype for maps of th × tw tiles (4 apart, both
    kernels): padded row y at plane[y mod 4], segment y // 4 of 4·(tw + 1) columns, two
    segments to spare. Tile row t's rows 4t + i are then one segment-aligned slice of
    plane[i mod 4] for every t, so a transform along the columns is one loop over the sample."""
    return np.zeros((4, (th + 2) * M * (tw + 1)), like.dtype)


@njit(inline="always")
def plane_row(plane, seg, ph, pw, y, w):
    """The ``w`` columns of ``phase_plane`` where image row y sits, the padding (ph, pw)
    before it: padded row y + ph at plane[(y + ph) mod 4], segment (y + ph) // 4."""
    o = ((y + ph) // 4) * seg + pw
    return plane[(y + ph) % 4, o:o + w]


@njit(inline="always")
def rows_into_plane(src, plane, seg, ph, pw):
    """``phase_plane``'s rows from the map ``src`` (H × W) at the padding's offset (ph, pw): the
    padding and the rest of each segment are never written, so they keep their zeros."""
    h, w = src.shape
    for y in range(h):
        dst, row = plane_row(plane, seg, ph, pw, y, w), src[y]
        for q in range(w):
            dst[q] = row[q]


@njit(inline="always")
def rows_from_plane(plane, dst, seg, ph, pw):
    """The map ``dst`` (H × W) from ``phase_plane``'s rows at the padding's offset (ph, pw)."""
    h, w = dst.shape
    for y in range(h):
        src, row = plane_row(plane, seg, ph, pw, y, w), dst[y]
        for q in range(w):
            row[q] = src[q]


@njit(cache=True, nogil=True)
def _input_transform(x, ph, pw, s0, s1, m, th, tw, rows, v):
    """v[(r, q), c, k] = (Bᵀ d B)[r, q] of tile k of channel c of x zero-padded by (ph, pw), the
    tiles of samples s0:s1 in order (sample, tile row, tile column) with one spare tile closing
    each tile row: tile k starts at m·k of a line of ``rows``, so the pass along the rows is one
    long loop.

    First along the columns into ``rows[r, c]`` (segments of m·(tw + 1) columns a tile row):
    no padded copy of the batch (it took ~12 % of a ResNet stage's inference); each channel's
    image rows go into ``plane`` (``phase_plane``), whose rows and columns outside the image
    stay zero, the values a padded copy held. Tile row t reads
    padded rows 4t + i, so for each i one segment-aligned slice of plane[i mod 4] serves every
    tile row: six loops over the whole sample, where a loop per tile row (as many as the map
    is wide) ran ~3× slower per value on 16-32 columns; the padding's zeros come through the
    sums, and tile rows past the image read zero rows. Then along the rows: each line is
    first split into its four columns mod 4 (a loop LLVM vectorises as one interleaved group),
    so tile k's six values are a[k], a[k + 1] of contiguous arrays; read from the line at 4k..4k
    + 5 the loop did not vectorise. The sums and their order are ``_bt4``'s: the same values
    bit for bit. A 32 → 32 transform of batch 64 on 32×32, one core, 2.51 → 1.78 ms."""
    c = x.shape[1]
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    span = th * seg  # a sample's tile rows in a line
    plane = phase_plane(th, tw, x)
    p0, p1, p2, p3 = plane[0, :span], plane[1, :span], plane[2, :span], plane[3, :span]
    p4, p5 = plane[0, seg:seg + span], plane[1, seg:seg + span]
    for ch in range(c):
        for s in range(s0, s1):
            rows_into_plane(x[s, ch], plane, seg, ph, pw)
            q0 = (s - s0) * span
            r0, r1, r2 = rows[0, ch, q0:], rows[1, ch, q0:], rows[2, ch, q0:]
            r3, r4, r5 = rows[3, ch, q0:], rows[4, ch, q0:], rows[m + 1, ch, q0:]
            # _bt4, one output row per loop: 1.5× faster than the six stores of _bt4 in one
            for q in range(span):
                r0[q] = _K4 * p0[q] - _K5 * p2[q] + p4[q]
            for q in range(span):
                r1[q] = -_K4 * (p1[q] + p2[q]) + p3[q] + p4[q]
            for q in range(span):
                r2[q] = _K4 * (p1[q] - p2[q]) - p3[q] + p4[q]
            for q in range(span):
                r3[q] = _K2 * (p3[q] - p1[q]) - p2[q] + p4[q]
            for q in range(span):
                r4[q] = _K2 * (p1[q] - p3[q]) - p2[q] + p4[q]
            for q in range(span):
                r5[q] = _K4 * p1[q] - _K5 * p3[q] + p5[q]
        for r in range(a):  # past the last tile row: what the last spare tile reads
            tail = rows[r, ch, m * tcd:m * tcd + m]
            for q in range(m):
                tail[q] = 0.0
    split = np.empty((4, tcd + 1), x.dtype)
    d0, d1, d2, d3 = split[0], split[1], split[2], split[3]
    e0, e1 = split[0, 1:], split[1, 1:]
    for r in range(a):
        p = r * a
        for ch in range(c):
            line = rows[r, ch]
            o0, o1, o2, o3, o4, o5 = _points(v, p, ch)
            if tw <= COMPACT_TW:  # no spare tiles in V: tile (row, k) at row·tw + k
                input_rows(line, o0, o1, o2, o3, o4, o5, (s1 - s0) * th, tw)
                continue
            for k in range(tcd + 1):
                d0[k], d1[k], d2[k], d3[k] = line[4 * k], line[4 * k + 1], line[4 * k + 2], \
                    line[4 * k + 3]
            for k in range(tcd):
                t0, t1, t2, t3, t4, t5 = _bt4(d0[k], d1[k], d2[k], d3[k], e0[k], e1[k])
                o0[k], o1[k], o2[k], o3[k], o4[k], o5[k] = t0, t1, t2, t3, t4, t5


@njit(cache=True, nogil=True)
def _output_rest(b, s0, s1, m, th, tw, oh, ow, wp, full, rows, out):
    """``_output_transform``'s tile rows full..th, which the image's last row cuts, and zeros in
    the gap columns between OW and the pitch: on their own, as beside the other tile rows'
    loops they slowed those down."""
    seg = m * (tw + 1)
    for f in range(out.shape[1]):
        bias = b[f]
        r0, r1, r2 = rows[0, f], rows[1, f], rows[2, f]
        r3, r4, r5 = rows[3, f], rows[4, f], rows[m + 1, f]
        for s in range(s0, s1):
            dst = out[s, f]
            for ti in range(full, th):
                base = ((s - s0) * th + ti) * seg
                o = ti * m * wp
                last = oh - ti * m  # output rows left
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
def _output_transform(mm, b, s0, s1, m, th, tw, oh, ow, wp, rows, out):
    """out[s, f, r·wp + q] = (Aᵀ M A)[tile] + b[f] for samples s0:s1, ``wp`` the output's row
    pitch (tiles as in ``_input_transform``; outputs past the image are cut, the gap columns
    between OW and the pitch get zeros). First along the rows, one long loop per (r, f) into
    ``rows[r, f]``; then along the columns, one output row per loop over slices from 0 with
    nothing else in the tile rows' loop (``_input_transform`` says why): the tile rows the
    image cuts and the gap columns in ``_output_rest``. 3.7 → 1.7 ms for 64 × 32 × 32 × 32
    with 32 filters, one core."""
    nf = mm.shape[1]
    a = m + 2
    seg = m * (tw + 1)
    tcd = (s1 - s0) * th * (tw + 1)
    for r in range(a):
        p = r * a
        for f in range(nf):
            line = rows[r, f]
            i0, i1, i2, i3, i4, i5 = _points(mm, p, f)
            if tw <= COMPACT_TW:  # M without spare tiles (``_input_transform``)
                output_rows(i0, i1, i2, i3, i4, i5, line, (s1 - s0) * th, tw)
                continue
            for k in range(tcd):
                y0, y1, y2, y3 = _at4(i0[k], i1[k], i2[k], i3[k], i4[k], i5[k])
                x = 4 * k
                line[x], line[x + 1], line[x + 2], line[x + 3] = y0, y1, y2, y3
    full = min(th, oh // m)  # tile rows whose m output rows all lie in the image
    for f in range(nf):
        bias = b[f]
        for s in range(s0, s1):
            dst = out[s, f]
            for ti in range(full):
                q0, o = ((s - s0) * th + ti) * seg, ti * m * wp
                i0, i1, i2 = rows[0, f, q0:q0 + ow], rows[1, f, q0:q0 + ow], rows[2, f, q0:q0 + ow]
                i3, i4 = rows[3, f, q0:q0 + ow], rows[4, f, q0:q0 + ow]
                i5 = rows[m + 1, f, q0:q0 + ow]
                d0, d1 = dst[o:o + ow], dst[o + wp:o + wp + ow]
                d2, d3 = dst[o + 2 * wp:o + 2 * wp + ow], dst[o + 3 * wp:o + 3 * wp + ow]
                # _at4, one output row per loop (the same sums in the same order)
                for x in range(ow):
                    d0[x] = i0[x] + (i1[x] + i2[x]) + (i3[x] + i4[x]) + bias
                for x in range(ow):
                    d1[x] = (i1[x] - i2[x]) + _K2 * (i3[x] - i4[x]) + bias
                for x in range(ow):
                    d2[x] = (i1[x] + i2[x]) + _K4 * (i3[x] + i4[x]) + bias
                for x in range(ow):
                    d3[x] = (i1[x] - i2[x]) + _K8 * (i3[x] - i4[x]) + i5[x] + bias
    if full < th or ow < wp:
        _output_rest(b, s0, s1, m, th, tw, oh, ow, wp, full, rows, out)


def _geometry(x, u, m: int, per_chunk: int, ph: int, pw: int) -> tuple:
    """(chunk bounds, th, tw, tiles of the largest chunk, ph, pw) of x zero-padded by (ph, pw):
    near-equal chunks of up to ``per_chunk`` elements or, if more, of about ``CHUNK_TILES``
    tiles (the nearest whole number of samples); each part sizes its buffers by the largest
    chunk (``_views``). Plain Python, as ``chunk_bounds`` is (its docstring says why)."""
    n, c, h, w = x.shape
    pos, nf = u.shape[0], u.shape[1]
    th, tw = (h + 2 * ph - 2 + m - 1) // m, (w + 2 * pw - 2 + m - 1) // m
    tiles = th * (tw + 1)
    size = tiles * (c + nf) * pos
    samples = max(1, (2 * CHUNK_TILES + tiles) // (2 * tiles))
    bounds = chunk_bounds(n, max(per_chunk, samples * size), size)
    most = int(np.diff(bounds).max())
    return bounds, th, tw, most * tiles, int(ph), int(pw)


@njit(cache=True, nogil=True)
def _views(rbuf, vbuf, mbuf, m, c, nf, pos, rows_of_tiles, tw):
    """rows (a, max(C, F), m·tcd + m), V (a², C, k) and M (a², F, k) over a part's buffers, for
    ``rows_of_tiles`` tile rows: tcd = their tiles with the spare ones, k without them where the
    transforms leave them out (``COMPACT_TW``)."""
    tcd = rows_of_tiles * (tw + 1)
    k = rows_of_tiles * tw if tw <= COMPACT_TW else tcd
    rows = rbuf[:(m + 2) * max(c, nf) * (m * tcd + m)].reshape((m + 2, max(c, nf), m * tcd + m))
    return rows, vbuf[:pos * c * k].reshape((pos, c, k)), mbuf[:pos * nf * k].reshape((pos, nf, k))


@njit(cache=True, nogil=True)
def _chunk_forward(x, u, b, s0, s1, m, th, tw, ph, pw, pitch, out, relu, rbuf, vbuf, mbuf,
                   tiles):
    """``winograd_forward_flat`` for the samples s0:s1: transforms, a² products (on the tile
    kernel where ``tiles``: ``point_products``), transforms (then the ReLU, while the chunk's
    output is still in cache)."""
    _, c, h, w = x.shape
    pos, nf = u.shape[0], u.shape[1]
    rows, v, mm = _views(rbuf, vbuf, mbuf, m, c, nf, pos, (s1 - s0) * th, tw)
    _input_transform(x, ph, pw, s0, s1, m, th, tw, rows, v)
    for p in range(pos):
        point_product(u[p], v[p], mm[p], tiles)
    _output_transform(mm, b, s0, s1, m, th, tw, h + 2 * ph - 2, w + 2 * pw - 2, pitch, rows, out)
    if relu:
        _relu_in_place(out, s0, s1)


@njit(cache=True, nogil=True)
def _relu_in_place(out, s0, s1):
    """out[s0:s1] = max(out[s0:s1], 0) as ``np.maximum`` does it (NaN and −0 kept): the same bits
    as the separate pass over the whole output it replaces, which ran on one core from memory."""
    zero = np.zeros(1, out.dtype)[0]
    for s in range(s0, s1):
        for f in range(out.shape[1]):
            row = out[s, f]
            for q in range(len(row)):
                v = row[q]
                row[q] = v if v >= zero or v != v else zero


@njit(cache=True, nogil=True)
def forward_part(x, u, b, pitch, geo, out, relu, c0, c1):
    """Chunks c0..c1 of ``winograd_forward_flat``, serially, on buffers allocated once for the
    largest chunk: fresh multi-megabyte arrays per chunk cost page faults that took longer than
    a chunk's arithmetic."""
    bounds, th, tw, tcd, ph, pw = geo
    m = M
    c, pos, nf = x.shape[1], u.shape[0], u.shape[1]
    rbuf = np.empty((m + 2) * max(c, nf) * (m * tcd + m), x.dtype)
    vbuf, mbuf = np.empty(pos * c * tcd, x.dtype), np.empty(pos * nf * tcd, x.dtype)
    tiles = on_tiles(c, nf, x.itemsize)
    for ci in range(c0, c1):
        _chunk_forward(x, u, b, bounds[ci], bounds[ci + 1], m, th, tw, ph, pw, pitch, out, relu,
                       rbuf, vbuf, mbuf, tiles)


def winograd_forward_flat(x, u, b, pitch, ph=0, pw=0, relu=False):
    """conv(x zero-padded by (ph, pw)) + b as rows (N, F, L = (OH−1)·pitch + OW) of a
    C-contiguous float32 batch, ``u`` being ``conv_winograd_plan.filter_transform(w, m)`` of the
    3×3 filters: pitch Wp (the padded width) is ``conv_gemm``'s flat layout, pitch OW the
    (N, F, OH, OW) image itself. The padding is read, never copied (``_input_transform``). The
    chunks are split over the cores by ``engine.threads.split_rows``, one contiguous run each.
    ``relu``: max(·, 0) applied to each chunk's output as it is made (ConvReLU, a folded
    conv–BN–ReLU)."""
    n, _, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    out = np.empty((n, u.shape[1], (hp - 3) * pitch + wp - 2), x.dtype)
    geo = _geometry(x, u, M, TILE_ELEMENTS, ph, pw)
    split_rows(lambda c0, c1: forward_part(x, u, b, pitch, geo, out, bool(relu), c0, c1),
               len(geo[0]) - 1)
    return out
