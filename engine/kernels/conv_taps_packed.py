"""The chunked convolution backward's two products (``conv_flat_back.chunks_part``) through the
packed tile kernel (``kernels.packed``), for float32 with ≥ 16 filters.

Both are matrix products over a chunk's positions, computed before as dot and axpy passes of two
filters × four taps (6 loads for 8 multiply-adds: bound by loads, not arithmetic):

- the weight gradient, dWᵀ (taps × filters) = X · dZᵀ. Tap (c, i, j) of X is row (c, i) of the
  chunk's row layout shifted by j, so the kw taps of one row are a tile whose rows lie one float
  apart (``gemm_at`` with lda 1) and X is never copied; dZᵀ (positions × filters) is packed.
- the input gradient, rows (C·KH × positions) = Wᵀ · D, D's row (f, j) the output gradient's row
  f shifted by j, read in place (``gemm_at`` with window offsets).

LeNet-5's second convolution (6 → 16 filters, 5 × 5, batch 64), one core, per chunk of 16
samples: weight gradient 134 → 110 µs, input gradient 151 → 100 µs; the whole backward
1.30 → 0.95 ms. float64 keeps the dot and axpy passes (the exact path).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.packed import (PACKED_ROWS, PANEL, gemm_at, keep_alive, pack,
                                            panels_shape)

MIN_FILTERS = 16  # fewer filters leave most of a 16-wide panel empty


@njit(cache=True, nogil=True)
def weight_grad_packed(rows, dz, at, c_kh, kw, n, dw2, db):
    """dw2[f, (r, j)] += Σ_{p<n} dz[f, at + p] · rows[r, j + p] for the C·KH rows r, and
    with a non-empty ``db`` db[f] += Σ_{p<n} dz[f, at + p]: a row of ones through the same
    packed dZᵀ. Summed one dependent add at a time beside the scatter into dz, the bias
    gradient of a 3 → 32 3×3 stem cost 0.4 ms of its 4.4 ms backward (b64, one core: 4.4 →
    4.0 ms, 3 → 16 and 3 → 64 8-9 % too); behind a max pool, whose dz has one value in four,
    the ones' pass over every position cost more than it saved (LeNet's 1 → 16 0.93×)."""
    nf, taps = dw2.shape
    width = -(-nf // PANEL) * PANEL
    bz = np.empty(panels_shape(n, nf), np.float32)
    pack(dz[:, at:at + n].T, bz)
    dwt = np.empty((taps + 1, width), np.float32)
    pitch = rows.shape[1]
    rows_at, dwt_at, bz_at = (np.int64(rows.ctypes.data), np.int64(dwt.ctypes.data),
                              np.int64(bz.ctypes.data))
    for r in range(c_kh):  # all n positions a pass: blocks of 64-2304 measured the same
        gemm_at(rows_at + 4 * r * pitch, 1, kw, n, bz_at, n * PANEL, width // PANEL, PACKED_ROWS,
                dwt_at + 4 * r * kw * width, width, False)
    if len(db):
        ones = np.ones(n, np.float32)
        gemm_at(np.int64(ones.ctypes.data), n, 1, n, bz_at, n * PANEL, width // PANEL,
                PACKED_ROWS, dwt_at + 4 * taps * width, width, False)
        for f in range(nf):
            db[f] += dwt[taps, f]
        keep_alive(ones)  # read through its address only
    for f in range(nf):
        for t in range(taps):
            dw2[f, t] += dwt[t, f]
    keep_alive(bz)  # read through its address only
    keep_alive(dwt)


@njit(cache=True, nogil=True)
def input_grad_packed(dz_flat, wt, offs, n, rows):
    """rows[r, u] = Σ_t wt[r, t] · dz_flat[offs[t] + u] for the C·KH rows r and u < n, B's rows
    read in place. dz_flat must hold 16 floats more than its last window reaches, and rows'
    pitch must take every 16-wide panel (columns from n up get values nobody reads)."""
    m, k = wt.shape
    gemm_at(np.int64(wt.ctypes.data), k, m, k, np.int64(dz_flat.ctypes.data), PANEL,
            -(-n // PANEL), offs, np.int64(rows.ctypes.data), rows.shape[1], False)
