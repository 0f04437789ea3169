"""Stride-1 convolution forward as one matrix product per sample, for many taps and filters.

The direct kernel of ``conv_flat`` re-reads and re-writes its accumulator rows on every pass
over four taps; with LeNet's second convolution (6→16 channels, 5×5: 150 taps) that kept it at
about a third of a core's peak. Here one sample's taps are copied into a (taps × L) matrix
(LeNet's conv2: 81 KB, it stays in L2) and multiplied by the (filters × taps) weights with
BLAS: 1,040 → 510 µs for a batch of 64 on one thread. With few taps and filters (LeNet's first
convolution: 25 taps, 6 filters) the copy costs more than it saves and the direct kernel stays
(``prefers_gemm``). The backward stays direct: as matrix products (a tiny F × taps result
reduced over thousands of positions) it took 1.7× as long. The layout is conv_flat's: output
(r, q) lives at r·Wp + q of a row of length L = (OH−1)·Wp + OW, so
``conv_flat.relu_maxpool_batch`` pools these rows as it pools its own.

numba's ``np.dot`` calls SciPy's BLAS. It is imported here, before any thread limit is set, so
that ``engine.threads`` (threadpoolctl) sees it and holds it to one thread while numba's
threads run the batch: two BLAS threads under each numba thread would thrash the two cores.
Self-contained but for ``conv_flat.from_flat`` (the copy out of the flat rows). float32 takes
the direct kernel on the packed tile kernel instead (``conv.packed_direct``).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so threadpoolctl can limit it)
from numba import njit

from layerloom.engine.kernels.conv_flat import from_flat
from layerloom.engine.threads import split_rows

MIN_TAPS, MIN_FILTERS = 64, 8


def prefers_gemm(w_shape: tuple, batch: int) -> bool:
    """Whether the matrix-product forward beats the direct one for these weights and batch (a
    single sample keeps the direct serial kernel: the pool's wake-up would cost more)."""
    nf, c, kh, kw = w_shape
    return batch > 1 and c * kh * kw >= MIN_TAPS and nf >= MIN_FILTERS


@njit(cache=True, nogil=True)
def _taps_matrix(xf, c, hp, wp, kh, kw, size, cols):
    """cols[t] = xf[offset of tap t : + size], taps (c, i, j) in weight order."""
    t = 0
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                o = ch * hp * wp + i * wp + j
                src, dst = xf[o:o + size], cols[t]
                for p in range(size):
                    dst[p] = src[p]
                t += 1


@njit(cache=True, nogil=True)
def _gemm_sample(xs, w2, b, out_s, c, hp, wp, kh, kw, size):
    """One sample of ``gemm_forward_flat`` (outside it: numba's parallel passes take time in
    proportion to the code in the parallel kernel)."""
    cols = np.empty((c * kh * kw, size), xs.dtype)
    _taps_matrix(xs, c, hp, wp, kh, kw, size, cols)
    np.dot(w2, cols, out_s)
    for f in range(len(w2)):
        row, bias = out_s[f], b[f]
        for p in range(size):
            row[p] += bias


@njit(cache=True, nogil=True)
def gemm_part(xp, w2, b, out, kh, kw, size, s0, s1):
    """Samples s0..s1 of ``gemm_forward_flat``, serially (the caller splits the batch)."""
    _, c, hp, wp = xp.shape
    for s in range(s0, s1):
        _gemm_sample(xp[s].reshape(c * hp * wp), w2, b, out[s], c, hp, wp, kh, kw, size)


def gemm_forward_flat(xp, w, b):
    """conv(xp) + b as flat rows (N, F, L) of an already padded, C-contiguous batch.

    The batch is split over the cores by ``engine.threads.split_rows``, not numba's ``prange``:
    an OpenMP region's workers spin after it ends and take the second core from the row threads
    that run the fused convolutions beside it (LeNet-5 at 2 threads: 12.8k → see the README), and
    a parfor costs seconds to compile."""
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    size = (hp - kh) * wp + wp - kw + 1
    w2 = np.ascontiguousarray(w).reshape(nf, c * kh * kw)
    out = np.empty((n, nf, size), xp.dtype)
    split_rows(lambda s0, s1: gemm_part(xp, w2, b, out, kh, kw, size, s0, s1), n)
    return out


@njit(cache=True, nogil=True)
def gemm_image_part(xp, w2, b, out, kh, kw, size, relu, s0, s1):
    """Samples s0..s1 of ``gemm_forward_image``: each sample's flat rows into one buffer (in
    L2), then its OH·OW outputs copied out of them, gap columns dropped, through max(·, 0) as
    ``np.maximum`` does it (NaN and −0 kept) when ``relu`` (``conv_flat.from_flat``)."""
    _, c, hp, wp = xp.shape
    flat = np.empty((out.shape[1], size), xp.dtype)
    for s in range(s0, s1):
        _gemm_sample(xp[s].reshape(c * hp * wp), w2, b, flat, c, hp, wp, kh, kw, size)
        from_flat(flat, out[s], wp, relu)


def gemm_forward_image(xp, w, b, relu=False):
    """``gemm_forward_flat`` as a C-contiguous (N, F, OH, OW) image: the same numbers, each
    sample copied out of its flat rows while they are in cache on its core (the copy of the
    whole flat batch by ``flat_to_image`` ran on one core from memory: 1.3 of 3 ms for a
    ResNet stem of 64 × 3 × 34 × 34 → 32 channels). ``relu``: max(·, 0) in that copy."""
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    size = (hp - kh) * wp + wp - kw + 1
    w2 = np.ascontiguousarray(w).reshape(nf, c * kh * kw)
    out = np.empty((n, nf, hp - kh + 1, wp - kw + 1), xp.dtype)
    split_rows(lambda s0, s1: gemm_image_part(xp, w2, b, out, kh, kw, size, bool(relu),
                                                       s0, s1), n)
    return out


def flat_to_image(flat: np.ndarray, oh: int, ow: int, wp: int) -> np.ndarray:
    """(N, F, L) flat rows → a contiguous (N, F, OH, OW) image batch (drops the gap columns)."""
    n, nf, size = flat.shape
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat, (n, nf, oh, ow),
                                           (nf * size * item, size * item, wp * item, item))
    return np.ascontiguousarray(view)
