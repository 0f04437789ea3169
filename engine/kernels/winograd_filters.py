"""The filter side of the Winograd convolutions, F(4×4, 3×3) and F(4×4, 5×5): U = (G ⊗ G) · g for
every filter g, and back dW = (Σ_chunks dU)ᵀ · (G ⊗ G), split over the cores.

These were one numpy product each (``KRON @ w.T``; ``du.sum(0).T @ KRON``), which the engine runs
on one BLAS thread while its own threads rest: twice a step for the filters and once for the
gradient, ~4 of a VGG-style step's 60 ms on two cores. Here each core takes a block of the
F·C filters: their taps are copied into a small (taps, block) scratch so that every sum runs along
a contiguous row, and the chunks' dU are summed in chunk order into one (a², block) scratch
before the product (the order numpy's sum took). A filter's values do not depend on the block it
falls in, so the results do not depend on the threads. Self-contained.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows

BLOCK = 256  # filters a pass: (a² + taps) × 256 floats of scratch stay in L1/L2


@njit(inline="always")
def _combine(out, coeffs, rows, nb):
    """out[:nb] = Σ_j coeffs[j] · rows[j, :nb], each row one contiguous pass (both directions:
    the filters' taps into U's points, dU's points into the filters' taps)."""
    k, src = coeffs[0], rows[0]
    for i in range(nb):
        out[i] = k * src[i]
    for j in range(1, len(coeffs)):
        k, src = coeffs[j], rows[j]
        for i in range(nb):
            out[i] += k * src[i]


@njit(cache=True, nogil=True)
def _transform_part(w2, kron, u2, r0, r1):
    """u2[:, r0:r1] = kron · w2[r0:r1]ᵀ: w2 (F·C, taps), kron (a², taps), u2 (a², F·C)."""
    pos, taps = kron.shape
    blk = np.empty((taps, BLOCK), u2.dtype)
    for b0 in range(r0, r1, BLOCK):
        nb = min(BLOCK, r1 - b0)
        for i in range(nb):
            for t in range(taps):
                blk[t, i] = w2[b0 + i, t]
        for p in range(pos):
            _combine(u2[p, b0:b0 + nb], kron[p], blk, nb)


@njit(cache=True, nogil=True)
def _grad_part(du2, kron, dw2, r0, r1):
    """dw2[r0:r1] = (Σ_ci du2[ci, :, r0:r1])ᵀ · kron, the chunks summed in order."""
    chunks, pos = du2.shape[0], du2.shape[1]
    taps = kron.shape[1]
    acc = np.empty((pos, BLOCK), dw2.dtype)
    res = np.empty((taps, BLOCK), dw2.dtype)
    for b0 in range(r0, r1, BLOCK):
        nb = min(BLOCK, r1 - b0)
        for p in range(pos):
            a = acc[p]
            first = du2[0, p, b0:b0 + nb]
            for i in range(nb):
                a[i] = first[i]
            for ci in range(1, chunks):
                more = du2[ci, p, b0:b0 + nb]
                for i in range(nb):
                    a[i] += more[i]
        for t in range(taps):
            _combine(res[t], kron[:, t], acc, nb)
        for i in range(nb):
            for t in range(taps):
                dw2[b0 + i, t] = res[t, i]


def transform_filters(w: np.ndarray, kron: np.ndarray) -> np.ndarray:
    """U (a², F, C) = kron · vec(w[f, c]) for every filter, in ``w``'s dtype."""
    nf, c = w.shape[:2]
    w2 = np.ascontiguousarray(w).reshape(nf * c, -1)
    k = np.ascontiguousarray(kron, dtype=w.dtype)
    u = np.empty((len(k), nf, c), w.dtype)
    u2 = u.reshape(len(k), nf * c)
    split_rows(lambda r0, r1: _transform_part(w2, k, u2, r0, r1), nf * c)
    return u


def filters_grad(du: np.ndarray, kron: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """dW (F, C, kh, kw) from the per-chunk dU (chunks, a², F, C), summed in chunk order."""
    chunks, pos, nf, c = du.shape
    du2 = np.ascontiguousarray(du).reshape(chunks, pos, nf * c)
    k = np.ascontiguousarray(kron, dtype=du.dtype)
    dw = np.empty((nf, c, kh, kw), du.dtype)
    dw2 = dw.reshape(nf * c, kh * kw)
    split_rows(lambda r0, r1: _grad_part(du2, k, dw2, r0, r1), nf * c)
    return dw
