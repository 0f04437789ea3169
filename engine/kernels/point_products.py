"""The Winograd kernels' per-point products on ``packed``'s tile kernel (float32, chunked routes).

F(4×4, 3×3) turns a convolution into a² = 36 products a chunk, M[p] = U[p] · V[p] (F × C times
C × tiles), and its backward into dU[p] = dM[p] · V[p]ᵀ and dV[p] = U[p]ᵀ · dM[p] (F(4×4, 5×5):
64). These are short products (16 × 16 times 16 × 455 for a 16 → 16 convolution on 32×32 maps,
K = C of the forward only 16-128 deep), which OpenBLAS (numba's ``np.dot``) ran at 21-28 GFLOP/s
on an AVX2 EPYC for 16 channels: its per-call set-up and packing dominated. The tile kernel runs
6 × 16 register tiles; a right-hand side with contiguous rows (V of the forward, dM of the input
gradient) it reads in place (``product_rows``), V's transpose (the weight gradient's) is packed
into 16-column panels first (``product``, ``packed.pack``). A chunk's three products (backward
and forward), one core, batch-64 chunk sizes (``conv_winograd._geometry``), OpenBLAS held to one
thread as the engine holds it → tile kernel: 1.4-1.8× faster from 16 → 16 up to 64 → 64 (3.6 →
2.5 ms) and 16 → 256, 1.1-1.3× up to 128 → 256 (24.0 → 22.1 ms), even at 256 → 256 (45.4 vs
46.3 ms), where ``conv_winograd_batch``'s whole-batch products take over: ``MAX_PAIRS``. The
forward product alone, read in place against packed: 16 → 16 169 → 141 µs. float64 keeps the
BLAS. Results differ from OpenBLAS's in the last bits (each sum in order over k, one fused
multiply-add a step: the same for any split over the cores).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.blas import NO_TRANS, TRANS, gemm
from layerloom.engine.kernels.packed import (PANEL, gemm_at, gemm_packed, keep_alive, pack,
                                            panels_shape)
from layerloom.engine.threads import split_rows

MAX_PAIRS = 1 << 15  # C·F up to which the tile kernel runs a point's products (128 → 256)
DU_PARTS = 8  # the weight gradient's partial dU of the chunked backwards (``du_parts``)


def du_parts(chunks: int) -> np.ndarray:
    """Bounds of the fixed runs of chunks (at most ``DU_PARTS``, near-equal) whose dU the chunked
    Winograd backwards sum into one partial each, the first chunk's products writing it and the
    others' adding to it; the cores take whole runs, so the sums do not depend on the threads.
    One dU a chunk made 75 MB of them for 128 → 128 on 32×32 maps at batch 64 (32 chunks), 19
    in eight runs; ``weight_grad`` summed twelve dU of 128 → 128 in 4.8-6.9 ms, eight in 3.3
    (one core). The backwards' time stayed within this VM's noise (paired, b64, one core / two:
    0.90-1.07×, 128 → 128 on 32×32 1.03 / 1.34×)."""
    parts = max(1, min(DU_PARTS, chunks))
    return (np.arange(parts + 1, dtype=np.int64) * chunks) // parts


@njit(inline="always")
def on_tiles(c: int, nf: int, itemsize: int) -> bool:
    """True when the points' products of a C → F convolution run on the tile kernel."""
    return itemsize == 4 and c * nf <= MAX_PAIRS


@njit(cache=True)
def panel_buffer(k: int, n: int, on: bool) -> np.ndarray:
    """Scratch for ``product``'s panels of any K' × N' operand with K' ≤ k and N' ≤ n (the
    panels of a K × N operand hold ⌈N/16⌉·16·K floats); empty when ``on`` is False."""
    if not on:
        return np.empty(0, np.float32)
    p = panels_shape(k, n)
    return np.empty(p[0] * p[1] * p[2], np.float32)


@njit(inline="always")
def product(a, b, c, buf, accumulate=False):
    """c = a · b (c += a · b with ``accumulate``) through the tile kernel: b (K × N, any
    strides) packed into ``buf`` first (``panel_buffer`` sized), a and c float32 with contiguous
    rows."""
    p = panels_shape(b.shape[0], b.shape[1])
    panels = buf[:p[0] * p[1] * p[2]].reshape(p)
    pack(b, panels)
    gemm_packed(a, panels, c, accumulate)


@njit(inline="always")
def product_rows(a, b, c):
    """c = a · b through the tile kernel with b's rows (contiguous, any row stride) read in
    place, no copy into panels: its whole 16-column panels as they lie, the last partial one
    packed first (reading past a row's end would leave the buffer)."""
    m, kdim = a.shape
    n = c.shape[1]
    full, lda, ldc = n // PANEL, a.strides[0] // 4, c.strides[0] // 4
    offs = np.arange(kdim) * (b.strides[0] // 4)
    a_at = np.int64(a.ctypes.data)
    gemm_at(a_at, lda, m, kdim, np.int64(b.ctypes.data), PANEL, full, offs,
            np.int64(c.ctypes.data), ldc, False)
    if full * PANEL < n:
        tail = np.empty(panels_shape(kdim, n - full * PANEL), np.float32)
        pack(b[:, full * PANEL:], tail)
        gemm_packed(a, tail, c[:, full * PANEL:], False)


@njit(cache=True, nogil=True)
def _transpose_points(u, ut, p0, p1):
    """ut[p] = u[p]ᵀ for points p0..p1, in 8 × 8 blocks (slices from 0: LLVM unrolls them);
    numpy's strided copy of (36, 128, 256) took 1.9 ms a backward, this 0.66 (one core)."""
    nf, c = u.shape[1], u.shape[2]
    for p in range(p0, p1):
        src, dst = u[p], ut[p]
        for i0 in range(0, nf, 8):
            for j0 in range(0, c, 8):
                if i0 + 8 <= nf and j0 + 8 <= c:
                    block = src[i0:i0 + 8, j0:j0 + 8]
                    for j in range(8):
                        row = dst[j0 + j, i0:i0 + 8]
                        for i in range(8):
                            row[i] = block[i, j]
                else:
                    for j in range(j0, min(c, j0 + 8)):
                        for i in range(i0, min(nf, i0 + 8)):
                            dst[j, i] = src[i, j]


def transposed_points(u: np.ndarray) -> np.ndarray:
    """Each point's Uᵀ (a², C, F), C-contiguous, for the input gradient's products on the tile
    kernel; empty where ``on_tiles`` says no (``point_grads`` then takes the BLAS). Made once a
    call by the caller, not in every core's part (4.7 MB for 128 → 256); its points over the
    cores."""
    pos, nf, c = u.shape
    if not on_tiles(c, nf, u.itemsize):
        return np.empty((0, c, nf), u.dtype)
    u = np.ascontiguousarray(u)
    ut = np.empty((pos, c, nf), u.dtype)
    split_rows(lambda p0, p1: _transpose_points(u, ut, p0, p1), pos)
    return ut


@njit(inline="always")
def point_product(u, v, mm, tiles):
    """mm = u · v of one point: on the tile kernel where ``tiles`` (``on_tiles``), else the BLAS."""
    if tiles:
        product_rows(u, v, mm)
    else:
        np.dot(u, v, mm)


@njit(inline="always")
def point_grads(dm, v, u, ut, q, du, vt, need_dx, accumulate):
    """du = dm · vᵀ (du += dm · vᵀ with ``accumulate``: ``du_parts``) and, with ``need_dx``,
    v = U[q]ᵀ · dm, of point q: on the tile kernel where ``ut`` (``transposed_points``) is not
    empty, vᵀ packed into ``vt`` (``panel_buffer``), else the BLAS."""
    if ut.size:
        product(dm, v.T, du, vt, accumulate)
        if need_dx:
            product_rows(ut[q], dm, v)
    else:
        if accumulate:  # in the BLAS's own pass (β = 1): no product array a point to add
            gemm(NO_TRANS, TRANS, du.shape[0], du.shape[1], dm.shape[1], dm.ctypes.data,
                 dm.strides[0] // dm.itemsize, v.ctypes.data, v.strides[0] // v.itemsize, 1,
                 du.ctypes.data, du.strides[0] // du.itemsize, du.itemsize == 8)
            keep_alive(dm)
            keep_alive(v)
        else:
            np.dot(dm, v.T, du)
        if need_dx:
            np.dot(u[q].T, dm, v)
