"""The sums around a Transformer's products, split over the engine's cores: a residual Add and
the executor's sum of two gradients (``add``), a bias added to a product's rows
(``add_bias_rows``, which ``dense.matmul`` calls in each of its row parts) and a bias gradient,
the column sums of a gradient (``column_sums``); beside numpy twins.

Each was one numpy pass on one core while the products and kernels around it used two: on a
4-block GPT (d 128, 1024 tokens) about 4 ms of a 77 ms step, a part that no second core
shortened (PyTorch splits its element-wise loops over its threads). Every output element is
computed in the same order whatever the split (element-wise; a column summed in fixed chunks of
rows), so the result does not depend on the thread count. Arrays below ``MIN_SPLIT``
elements stay on the calling thread: a hand-over (~8 µs) costs more than half of their pass.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows

CHUNK = 1 << 14  # elements per chunk of ``add``
MIN_SPLIT = 1 << 16  # elements: a smaller array is one part
ROWS = 64  # rows per chunk of ``column_sums``
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def column_sums_reference(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=0)


@njit(cache=True, nogil=True)
def add_chunks(fa, fb, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    a, b, o = fa[lo:hi], fb[lo:hi], fo[lo:hi]  # slices: an index from 0 is known not negative
    for i in range(len(a)):
        o[i] = a[i] + b[i]


def _splittable(*arrays) -> bool:
    first = arrays[0]
    return all(type(x) is np.ndarray and x.dtype is first.dtype and x.flags.c_contiguous
               for x in arrays) and first.dtype in _FLOATS


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b; two C-contiguous float arrays of one shape and dtype in chunks over the cores,
    anything else (broadcasting, mixed types) as numpy's ``a + b``."""
    if a.shape != b.shape or a.size < MIN_SPLIT or not _splittable(a, b):
        return a + b
    out = np.empty_like(a)
    fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    split_rows(lambda c0, c1: add_chunks(fa, fb, fo, c0, c1), -(-a.size // CHUNK))
    return out


@njit(cache=True, nogil=True)
def add_bias_rows(z, b, lo, hi):
    """z[i, :] += b for rows lo..hi of a C-contiguous 2-D z, in place."""
    rows, m = z[lo:hi], len(b)
    for i in range(len(rows)):
        row = rows[i]
        for j in range(m):
            row[j] += b[j]


@njit(cache=True, nogil=True)
def column_sums_chunks(x, partial, c0, c1):
    """partial[c] = the column sums of rows c·ROWS … (c+1)·ROWS of a C-contiguous 2-D x, for
    chunks c0..c1 (in x's type: float64 sums made float32 gradients 1.3× slower)."""
    n, m = x.shape
    for c in range(c0, c1):
        acc, rows = partial[c], x[c * ROWS:min(n, (c + 1) * ROWS)]
        for i in range(len(rows)):
            row = rows[i]
            for j in range(m):
                acc[j] += row[j]


def column_sums(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=0)`` of a 2-D array (a bias's gradient): sums over fixed chunks of ``ROWS``
    rows, the chunks split over the cores, then added in order in float64 (as LayerNorm's
    backward, kernels/norm.py). Rows, not columns, go to the cores: the product before left
    each core's rows in its own cache, and splitting the columns made every core read the
    other's rows (1.6× slower at two cores than at one)."""
    if x.ndim != 2 or not _splittable(x):
        return x.sum(axis=0)
    chunks = -(-len(x) // ROWS)
    partial = np.zeros((chunks, x.shape[1]), x.dtype)
    if x.size < MIN_SPLIT:
        column_sums_chunks(x, partial, 0, chunks)
    else:
        split_rows(lambda c0, c1: column_sums_chunks(x, partial, c0, c1), chunks)
    return np.add.reduce(partial, axis=0, dtype=np.float64).astype(x.dtype)
