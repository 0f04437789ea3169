"""The weight gradient of a float32 3×3 convolution from few channels (5×5 from one) at stride 1
or 2 (a network's stem, 3 → 32 on 32×32), as products of dY with the input's taps packed
position by position, when no input gradient is wanted (a stem's input is the data).

``conv_flat_back`` takes dWᵀ (taps × filters) = X · dZᵀ with X's taps read in place: the kw taps
of an input row are a tile of kw rows one float apart, so a 3×3 filter's product runs in tiles
of 3 rows (6 accumulators, where the FMA's latency wants 8 or more) over a transposed copy of
dY spread into the row layout's gaps. For a stem that left the weight gradient at 40 GFLOP/s,
beside 1.6 ms of copies: 5.6 ms of a 3 → 32 stem's backward at batch 64 on one core, where
PyTorch took 4.0.

Here the product is turned around (stride-2 stems too, whose phases' products of
``conv_phases_back`` had 3 × 3 taps from 3 channels to fill tiles with: ``conv`` pads their x,
small, for these): dW (filters × taps) = dY · Xᵀ, dY's rows as they are (a sample's map of one
filter is contiguous, so no copy), the filters in tiles of 5-6 rows, and Xᵀ packed into 16-wide
panels a block of output rows at a time: panel row u holds the 16 taps of position u, then a
column of ones whose product is the bias gradient, then zeros. A block of ``BLOCK`` positions
keeps its panels in L1 while every tile of filters passes over them.

Masking dY by a fused ReLU's output here, block by block into a scratch, saved nothing over
``relu.relu_mask_grad``'s pass before it (3 → 32 on 32×32, b64, one core: 4.9 vs 4.6 ms): both
read dY and the output from memory once. Nor did a stem fused with ReLU + max-pool gain enough
to take it (its pooled gradient un-pooled a sample at a time into an L2 scratch, then these
products: 3 → 64 on 32×32 ~6.5 vs ~7.8 ms, 3 → 32 4.2 vs 4.7-5.7, 3 → 16 2.6 vs 1.9).

Each partial sums its samples, and each sample its positions, in order, one rounding per step
(the tile kernel's fused multiply-adds); the chunks are fixed by the shapes and summed in chunk
order: the results do not depend on the threads. They differ from ``conv_flat_back``'s in the
last bits (another order of the same sums).

Batch 64, one core, against the kernels before (stride 1: the row layout's; stride 2: the
phases'): 3 → 32 on 32×32 4.6 → 2.7 ms, 3 → 64 9.1 → 4.5, 3 → 16 2.6 → 1.8, 1 → 32 on 28×28
2.9 → 0.95, 5 → 32 6.0 → 4.2; at stride 2 3 → 32 1.9 → 1.3, 3 → 64 2.4 → 1.5 (3 → 16 even).
5×5 from one channel (MNIST's stems) on 28×28: 1 → 32 3.9 → 2.5, 1 → 64 7.8 → 4.4, 1 → 16
1.9 vs 1.9; at stride 2 1 → 32 1.5 → 0.7. From 6 channels up, or 5×5 from 3 (im2col's
products), they did not win: 8 → 32 7.1 vs 6.9, 16 → 32 12.8 vs 7.0, 3 → 16 5×5 4.7 vs 3.7 ms.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_flat import chunk_bounds
from layerloom.engine.kernels.packed import PACKED_ROWS, PANEL, gemm_at, keep_alive
from layerloom.engine.threads import split_rows

BLOCK = 256  # positions a block: two panels of 16 KB each stay in L1 across the filter tiles
POSITIONS = 4096  # positions a chunk (one partial sum of dW)
MAX_TAPS = 47  # C·KH·KW up to which a stem runs here (+ ones: 3 panels at most)
MIN_FILTERS = 16  # fewer leave most of the panels' products to few rows


def prefers_taps_grad(w_shape: tuple, dtype, stride: tuple, dilation: tuple, groups: int,
                      need_dx: bool) -> bool:
    """True when this runs a convolution's backward: float32, stride 1 or 2, no dilation or
    groups, no input gradient wanted (a stem's), 3×3 filters from ≤ 5 channels or 5×5 ones
    from one (≤ ``MAX_TAPS`` taps) onto ≥ 16 filters."""
    nf, c, kh, kw = w_shape
    return (not need_dx and np.dtype(dtype) == np.float32 and tuple(stride) in ((1, 1), (2, 2))
            and tuple(dilation) == (1, 1) and groups == 1 and kh == kw and kh in (3, 5)
            and c * kh * kw <= MAX_TAPS and nf >= MIN_FILTERS)


def taps_grad_reference(xp: np.ndarray, dy: np.ndarray, kh: int, kw: int,
                        stride: tuple = (1, 1)) -> tuple:
    """(dW, db) of the convolution of the padded ``xp`` at ``stride`` from dY: the numpy twin."""
    n, c = xp.shape[:2]
    (oh, ow), (sh, sw) = dy.shape[2:], stride
    dw = np.zeros((dy.shape[1], c, kh, kw), dy.dtype)
    for i in range(kh):
        for j in range(kw):
            window = xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            dw[:, :, i, j] = np.einsum("nfrq,ncrq->fc", dy, window)
    return dw, dy.sum(axis=(0, 2, 3))


@njit(cache=True, nogil=True)
def _pack_block(xp, s, kh, kw, sh, sw, r0, r1, ow, panels):
    """panels[t // 16, (r − r0)·OW + q, t % 16] = xp[s, c, r·sh + i, q·sw + j] for each tap
    t = (c, i, j), output rows r0..r1 and columns q < OW."""
    c = xp.shape[1]
    t = 0
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                p, col = t // PANEL, t % PANEL
                for r in range(r0, r1):  # slices from 0: no negative-index checks (1.6 → 1.0 ms
                    # for a 3-channel batch of 64 32×32 maps, one core)
                    src = xp[s, ch, r * sh + i, j:j + sw * (ow - 1) + 1:sw]
                    at = (r - r0) * ow
                    dst = panels[p, at:at + ow, col]
                    for q in range(ow):
                        dst[q] = src[q]
                t += 1


@njit(cache=True, nogil=True)
def taps_grad_part(xp, dy, kh, kw, sh, sw, bounds, parts, c0, c1):
    """Chunks c0..c1: parts[ci] (F × 16·panels) = Σ over the chunk's samples and positions of
    dY times the packed taps, ones and zeros."""
    n, nf, oh, ow = dy.shape
    taps, width = xp.shape[1] * kh * kw, parts.shape[2]
    rows = max(1, min(oh, BLOCK // ow))  # output rows a block
    block = rows * ow
    panels = np.zeros((width // PANEL, block, PANEL), np.float32)
    for u in range(block):
        panels[taps // PANEL, u, taps % PANEL] = 1  # the bias gradient's column
    size = oh * ow
    b_at, c_at = np.int64(panels.ctypes.data), np.int64(parts.ctypes.data)
    for ci in range(c0, c1):
        part_at = c_at + 4 * ci * nf * width
        for s in range(bounds[ci], bounds[ci + 1]):
            for r0 in range(0, oh, rows):
                r1 = min(oh, r0 + rows)
                _pack_block(xp, s, kh, kw, sh, sw, r0, r1, ow, panels)
                gemm_at(np.int64(dy.ctypes.data) + 4 * (s * nf * size + r0 * ow), size, nf,
                        (r1 - r0) * ow, b_at, block * PANEL, width // PANEL, PACKED_ROWS,
                        part_at, width, True)
    keep_alive(panels)  # read through their addresses only
    keep_alive(dy)
    keep_alive(parts)


def taps_grad(xp: np.ndarray, dy: np.ndarray, kh: int, kw: int, stride: tuple = (1, 1)) -> tuple:
    """(dW, db) of the convolution at ``stride`` of the padded float32 ``xp``
    (``taps_grad_reference``)."""
    xp, dy = np.ascontiguousarray(xp), np.ascontiguousarray(dy, dtype=np.float32)
    n, c = xp.shape[:2]
    nf = dy.shape[1]
    taps = c * kh * kw
    width = -(-(taps + 1) // PANEL) * PANEL
    bounds = chunk_bounds(n, POSITIONS, dy.shape[2] * dy.shape[3])
    k = len(bounds) - 1
    parts = np.zeros((k, nf, width), np.float32)
    sh, sw = (int(v) for v in stride)
    split_rows(lambda c0, c1: taps_grad_part(xp, dy, kh, kw, sh, sw, bounds, parts, c0, c1), k)
    total = np.add.reduce(parts, axis=0, initial=0)
    return (np.ascontiguousarray(total[:, :taps]).reshape(nf, c, kh, kw),
            np.ascontiguousarray(total[:, taps]))
