"""The filter side of the Winograd convolutions, F(4×4, 3×3) and F(4×4, 5×5): U = (G ⊗ G) · g for
every filter g, and back dW = (Σ_chunks dU)ᵀ · (G ⊗ G), split over the cores.

These were one numpy product each (``KRON @ w.T``; ``du.sum(0).T @ KRON``), which the engine runs
on one BLAS thread while its own threads rest: twice a step for the filters and once for the
gradient, ~4 of a VGG-style step's 60 ms on two cores. Here each core takes a run of blocks of
the F·C filters, one BLAS call a block (``kernels.blas.gemm``: U's columns and dW's rows in
place); the chunks' dU are first summed in chunk order into an (a², block) scratch (the order
numpy's sum took). Loops in numba that combined the taps row by row took 1.5-2× the BLAS's
time (F(4×4, 5×5) of 128 → 128 filters, one core / two: the transform 1.37 → 0.93 / 0.70 →
0.57 ms, the gradient 1.59 → 0.79 / 0.80 → 0.42). The blocks of filters a product are fixed
(``BLOCK``), whichever core takes them: the results do not depend on the threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.blas import NO_TRANS, TRANS, gemm
from layerloom.engine.kernels.packed import keep_alive
from layerloom.engine.threads import split_rows

BLOCK = 256  # filters a product (fixed blocks: a filter's result does not depend on the
# threads, as the BLAS's may on a column's place in its call); their chunks' dU summed a pass


@njit(cache=True, nogil=True)
def _transform_part(w2, kron, u2, k0, k1):
    """u2[:, blocks k0..k1] = kron · w2[the blocks' filters]ᵀ: w2 (F·C, taps), kron (a², taps),
    u2 (a², F·C); one product a block of ``BLOCK`` filters."""
    pos, taps = kron.shape
    for b0 in range(k0 * BLOCK, min(k1 * BLOCK, len(w2)), BLOCK):
        nb = min(BLOCK, len(w2) - b0)
        gemm(NO_TRANS, TRANS, pos, nb, taps, kron.ctypes.data, taps,
             w2.ctypes.data + w2.itemsize * b0 * taps, taps, 0,
             u2.ctypes.data + u2.itemsize * b0, u2.shape[1], u2.itemsize == 8)


@njit(cache=True, nogil=True)
def _grad_part(du2, kron, dw2, k0, k1):
    """dw2[blocks k0..k1] = (Σ_ci du2[ci, :, the blocks' filters])ᵀ · kron, the chunks summed
    in order; one product a block."""
    chunks, pos, width = du2.shape
    taps, size, double = kron.shape[1], du2.itemsize, du2.itemsize == 8
    acc = np.empty((pos, BLOCK if chunks > 1 else 0), dw2.dtype)
    for b0 in range(k0 * BLOCK, min(k1 * BLOCK, width), BLOCK):
        nb = min(BLOCK, width - b0)
        src, pitch = du2.ctypes.data + size * b0, width  # one chunk: dU as it is
        if chunks > 1:
            for p in range(pos):
                a = acc[p]
                first = du2[0, p, b0:b0 + nb]
                for i in range(nb):
                    a[i] = first[i]
                for ci in range(1, chunks):
                    more = du2[ci, p, b0:b0 + nb]
                    for i in range(nb):
                        a[i] += more[i]
            src, pitch = acc.ctypes.data, BLOCK
        gemm(TRANS, NO_TRANS, nb, taps, pos, src, pitch, kron.ctypes.data, taps, 0,
             dw2.ctypes.data + size * b0 * taps, taps, double)
    keep_alive(acc)  # read through its address


def transform_filters(w: np.ndarray, kron: np.ndarray) -> np.ndarray:
    """U (a², F, C) = kron · vec(w[f, c]) for every filter, in ``w``'s dtype."""
    nf, c = w.shape[:2]
    w2 = np.ascontiguousarray(w).reshape(nf * c, -1)
    k = np.ascontiguousarray(kron, dtype=w.dtype)
    u = np.empty((len(k), nf, c), w.dtype)
    u2 = u.reshape(len(k), nf * c)
    split_rows(lambda k0, k1: _transform_part(w2, k, u2, k0, k1), -(-nf * c // BLOCK))
    return u


def filters_grad(du: np.ndarray, kron: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """dW (F, C, kh, kw) from the partial dU (parts, a², F, C), summed in order."""
    chunks, pos, nf, c = du.shape
    du2 = np.ascontiguousarray(du).reshape(chunks, pos, nf * c)
    k = np.ascontiguousarray(kron, dtype=du.dtype)
    dw = np.empty((nf, c, kh, kw), du.dtype)
    dw2 = dw.reshape(nf * c, kh * kw)
    split_rows(lambda k0, k1: _grad_part(du2, k, dw2, k0, k1), -(-nf * c // BLOCK))
    return dw
