"""One-pass kernels for the small element-wise work around a matrix product, and the
non-finite check the executor runs on every output and gradient.

A numpy call costs about a microsecond however small its array. At batch 1 (an MLP in the
inference view) a Dense layer's bias, ReLU mask and product with the mask were three such calls
beside a matrix-vector product of a few microseconds, and checking the output for NaN took two
more; here each is one compiled pass (the check only for small arrays: numpy's sum is faster on
large ones). Same arithmetic as the numpy forms they replace:
ReLU is x·(x > 0), so −inf gives NaN exactly as the ReLU layer does.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def add_bias(z, b):
    """z[i, :] += b for a C-contiguous 2-D z, in place."""
    n, m = z.shape
    for i in range(n):
        row = z[i]
        for j in range(m):
            row[j] += b[j]


@njit(cache=True, nogil=True)
def add_bias_relu(z, b, mask):
    """z = (z + b)·(z + b > 0) in place (no bias when ``b`` is empty); ``mask`` gets the test."""
    n, m = z.shape
    has_bias = len(b) > 0
    for i in range(n):
        row, keep = z[i], mask[i]
        for j in range(m):
            v = row[j] + b[j] if has_bias else row[j]
            k = v > 0
            keep[j] = k
            row[j] = v * k


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def all_finite(flat):
    """True when no element of the 1-D array is NaN or ±inf: v·0 is 0 for every finite v and
    NaN otherwise, and a NaN survives the sum (reassociation only lets it vectorise)."""
    acc = flat[0] * 0
    for v in flat:
        acc += v * 0
    return acc == 0


SMALL = 4096  # elements: below, one compiled pass; above, numpy's vectorised sum is faster


def finite(a: np.ndarray) -> bool:
    """No NaN or ±inf in ``a`` (integers are always finite)."""
    if a.dtype.kind != "f" or a.size == 0:
        return True
    if a.size <= SMALL and a.dtype in (np.float32, np.float64):
        return bool(all_finite(a.reshape(-1)))
    # The sum propagates NaN/inf in one vectorised pass; an overflow of the sum itself (finite
    # values summing to inf) needs the exact check.
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(a.sum())) or bool(np.isfinite(a).all())
