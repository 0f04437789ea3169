"""Softmax cross-entropy, one compiled pass per row, beside the numpy twin that defines it.

The numpy form is a dozen whole-array calls (max, subtract, exp, sum, log, a gathered index, a
division, a mean, and the label range check); on LeNet's 64 × 10 logits they took 80 µs a step,
about as long as its three Dense products' bias passes together, and a character model's
1,024 × 96 logits paid for every temporary. Here each row is read twice (its max, then the
exponentials) and written once. Row sums and the mean add in float64. float32's exponentials
are ``elementwise.expneg32`` (Cephes' expf, vectorised; numba's np.exp is a libm call per
element): 2,048 × 96 logits 0.79 → 0.26 ms.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from layerloom.engine.kernels.elementwise import expneg32
from layerloom.engine.threads import split_rows

MIN_SPLIT = 1 << 15  # logits: a smaller batch stays on one core (a hand-over costs ~8 µs)


def xent_reference(z: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean −log softmax(z)[t], softmax(z)) for logits (N, C) and labels (N,) in 0..C−1."""
    m = z.max(axis=1, keepdims=True)  # log-sum-exp shift: exp never overflows
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    logp = z[np.arange(len(t)), t] - m[:, 0] - np.log(s[:, 0])
    return float(-logp.mean()), e / s


@njit(cache=True, nogil=True)
def xent_forward(z, t, prob):
    """Fills ``prob`` with softmax(z) and returns (mean −log prob[t], −1), or (0, i) for the
    first row i whose label is outside 0..C−1. A NaN or +inf logit makes its row NaN, as in
    the twin (the shifted exponentials or their sum are NaN)."""
    row_logp = np.empty(len(z))
    bad = xent_rows(z, t, prob, row_logp, 0, len(z))
    return (0.0, bad) if bad >= 0 else (ordered_mean(row_logp), -1)


@njit(cache=True, nogil=True)
def xent_rows(z, t, prob, row_logp, lo, hi):
    """Rows lo..hi of ``xent_forward``: softmax into ``prob``, each row's log-likelihood into
    ``row_logp``; returns the first row whose label is outside 0..C−1, or −1. Slices first, so
    loops count from 0 (see elementwise.gelu_forward_chunks)."""
    zs, ts, ps, ls = z[lo:hi], t[lo:hi], prob[lo:hi], row_logp[lo:hi]
    c = z.shape[1]
    for i in range(hi - lo):
        k = ts[i]
        if k < 0 or k >= c:
            return lo + i
        row, p = zs[i], ps[i]
        m = row[0]
        for j in range(1, c):
            m = max(m, row[j])
        if z.itemsize == 4:  # float32: exp without libm calls, so the loop vectorises
            for j in range(c):
                p[j] = expneg32(m - row[j])
        else:
            for j in range(c):
                p[j] = np.exp(row[j] - m)
        s = _row_sum(p)
        inv = 1.0 / s
        for j in range(c):
            p[j] = p[j] * inv
        ls[i] = (row[k] - m) - math.log(s)
    return -1


@njit(inline="always")
def _row_sum(p):
    """Σ p in float64, four sums side by side (one chain of float64 adds waited on each add)."""
    s0 = s1 = s2 = s3 = 0.0
    j, c = 0, len(p)
    while j + 4 <= c:
        s0, s1, s2, s3 = s0 + p[j], s1 + p[j + 1], s2 + p[j + 2], s3 + p[j + 3]
        j += 4
    while j < c:
        s0 += p[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, nogil=True)
def ordered_mean(v):
    """−mean of ``v``, added from the first: ``xent_forward``'s order, whatever the split."""
    total = 0.0
    for x in v:
        total += x
    return -total / len(v)


def xent_split(z: np.ndarray, t: np.ndarray, prob: np.ndarray) -> tuple[float, int]:
    """``xent_forward`` with the rows split over the engine's cores (one part when small): the
    softmax of a language model's logits ran on one core beside kernels that used two. Each
    row's log-likelihood is kept and the rows added in order after, so the loss is
    ``xent_forward``'s bit for bit (which one part calls)."""
    if z.size < MIN_SPLIT:
        return xent_forward(z, t, prob)
    row_logp = np.empty(len(z))
    bad = [b for b in split_rows(lambda lo, hi: xent_rows(z, t, prob, row_logp, lo, hi), len(z))
           if b >= 0]
    return (0.0, min(bad)) if bad else (ordered_mean(row_logp), -1)


@njit(cache=True, nogil=True)
def xent_backward(prob, t, scale, g):
    """g = (prob − onehot(t)) · scale, row by row."""
    n, c = prob.shape
    for i in range(n):
        for j in range(c):
            g[i, j] = prob[i, j] * scale
        g[i, t[i]] -= scale
