"""LayerNorm's forward and backward as one pass over each row, beside the numpy twins.

numpy spends a LayerNorm on a Transformer's (N·T, D) activations in a dozen whole-array passes
and temporaries (mean, centre, square, mean, scale, affine; and as many backward); the kernels
read each row once, keep its statistics in registers (accumulated in float64 whatever the
dtype) and split the rows over the engine's cores (``engine.threads.split_rows``: serial nogil
kernels, not numba's ``prange``, whose OpenMP workers spun beside the engine's own).
``weight``/``bias`` of size 0 mean "no affine". The backward's weight and bias gradients are
column sums over all rows: each chunk of rows sums into its own line of a (chunks, D) scratch,
added up at the end in a fixed order, so the result does not depend on the thread count.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows

CHUNK = 64  # rows per chunk of the backward's column sums
# Reassociation lets LLVM vectorise the row sums; no flag that assumes finite values (a NaN
# must still come out as NaN for the executor to name the node that made it).
FAST = {"reassoc", "contract", "nsz"}


# ------------------------------------------------------------------------- numpy twins
def layer_norm_forward_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                                 eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, xhat, inv_std) of rows x (R, D); inv_std is (R,)."""
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    inv_std = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * inv_std
    y = xhat * weight if weight.size else xhat.copy()
    if bias.size:
        y += bias
    return y.astype(x.dtype), xhat.astype(x.dtype), inv_std[:, 0].astype(x.dtype)


def layer_norm_backward_reference(dy: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray,
                                  weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, d weight, d bias) from dy (R, D); the parameter gradients are empty without affine."""
    dw = (dy * xhat).sum(axis=0) if weight.size else np.zeros(0, dy.dtype)
    db = dy.sum(axis=0) if weight.size else np.zeros(0, dy.dtype)
    g = dy * weight if weight.size else dy
    dx = inv_std[:, None] * (g - g.mean(axis=-1, keepdims=True)
                             - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx.astype(dy.dtype), dw, db


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True, fastmath=FAST)
def forward_rows(x, weight, bias, eps, y, xhat, inv_std, lo, hi):
    """Rows lo..hi of ``layer_norm_forward``."""
    d = x.shape[1]
    affine, shift = weight.size > 0, bias.size > 0
    means = np.empty(1, x.dtype)
    for i in range(lo, hi):
        row, yr, hr = x[i], y[i], xhat[i]
        total = 0.0
        for j in range(d):
            total += row[j]
        means[0] = total / d
        mean = means[0]  # in x's dtype, so the element loops stay in it
        sq = 0.0
        for j in range(d):
            c = row[j] - mean
            sq += c * c
        inv_std[i] = 1.0 / np.sqrt(sq / d + eps)
        inv = inv_std[i]
        for j in range(d):
            hr[j] = (row[j] - mean) * inv
        if affine:
            for j in range(d):
                yr[j] = hr[j] * weight[j]
            if shift:
                for j in range(d):
                    yr[j] += bias[j]
        else:
            for j in range(d):
                yr[j] = hr[j]


def layer_norm_forward(x, weight, bias, eps: float) -> tuple:
    """(y, xhat, inv_std) of rows x (R, D), as ``layer_norm_forward_reference``."""
    y, xhat, inv_std = np.empty_like(x), np.empty_like(x), np.empty(len(x), x.dtype)
    split_rows(lambda lo, hi: forward_rows(x, weight, bias, eps, y, xhat, inv_std, lo, hi),
               len(x))
    return y, xhat, inv_std


@njit(cache=True, nogil=True, fastmath=FAST)
def backward_chunks(dy, xhat, inv_std, weight, dx, part_w, part_b, c0, c1):
    """Chunks c0..c1 (of CHUNK rows) of ``layer_norm_backward``."""
    r, d = dy.shape
    affine = weight.size > 0
    g, stats = np.empty(d, dy.dtype), np.empty(2, dy.dtype)
    for c in range(c0, c1):
        pw, pb = part_w[c], part_b[c]
        for i in range(c * CHUNK, min(r, (c + 1) * CHUNK)):
            dr, hr, out = dy[i], xhat[i], dx[i]
            if affine:
                for j in range(d):
                    pw[j] += dr[j] * hr[j]
                    pb[j] += dr[j]
                    g[j] = dr[j] * weight[j]
            else:
                for j in range(d):
                    g[j] = dr[j]
            s1 = 0.0
            s2 = 0.0
            for j in range(d):
                s1 += g[j]
                s2 += g[j] * hr[j]
            stats[0], stats[1] = s1 / d, s2 / d  # in dy's dtype, as the element loop
            m1, m2, inv = stats[0], stats[1], inv_std[i]
            for j in range(d):
                out[j] = inv * (g[j] - m1 - hr[j] * m2)


def layer_norm_backward(dy, xhat, inv_std, weight) -> tuple:
    """(dx, d weight, d bias) from dy (R, D), as ``layer_norm_backward_reference``."""
    r, d = dy.shape
    dx = np.empty_like(dy)
    chunks, width = (r + CHUNK - 1) // CHUNK, d if weight.size else 0
    part_w, part_b = np.zeros((chunks, width)), np.zeros((chunks, width))
    split_rows(lambda c0, c1: backward_chunks(dy, xhat, inv_std, weight, dx, part_w, part_b,
                                              c0, c1), chunks)
    sum_w, sum_b = np.add.reduce(part_w, axis=0, initial=0), np.add.reduce(part_b, axis=0, initial=0)
    return dx, sum_w.astype(dy.dtype), sum_b.astype(dy.dtype)
