"""Per-channel element-wise work over (N, C, L) batches in one compiled pass: the gain and shift
after a GroupNorm or InstanceNorm, and PReLU's learned slopes, with the gradients of both.

numpy broadcast the channel's value and summed the parameters' gradients over the axes around
the channel one (``(dy * xhat).sum(axis=(0, 2, 3))``): strided reductions and a temporary per
product. On a (64, 32, 32, 32) float32 batch inside a network, one core, forward + backward:
GroupNorm 7.4 ms, PReLU 24.8 (PyTorch 1.8 and 12.4). Here each sample's planes are one task
(``engine.threads.split_rows`` over the batch); a parameter's gradient is summed per sample,
then over the samples in order, so it does not depend on the thread count. The element-wise
arithmetic is numpy's, operation for operation; only the sums' order differs (each plane's
sum vectorised).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows


def planes(a: np.ndarray, channels: int) -> np.ndarray:
    """``a`` as (N, channels, L), C-contiguous (a view when it already is; N may be 0)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], channels,
                                           int(np.prod(a.shape[1:])) // channels)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sums(d, x):
    """(Σ d·x, Σ d) over one plane, vectorised (the order of the sum is the vector loop's)."""
    dot = total = np.zeros(1, d.dtype)[0]
    for i in range(len(d)):
        dot += d[i] * x[i]
        total += d[i]
    return dot, total


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _negative_dot(d, x):
    """Σ d·x over one plane's x ≤ 0 (NaN included, as where(x > 0, 0, x·d) counts it)."""
    zero = np.zeros(1, d.dtype)[0]
    dot = zero
    for i in range(len(d)):
        dot += zero if x[i] > zero else d[i] * x[i]
    return dot


@njit(cache=True, nogil=True)
def _affine_part(x, w, b, y, s0, s1):
    for s in range(s0, s1):
        for c in range(x.shape[1]):
            xs, ys, wc, bc = x[s, c], y[s, c], w[c], b[c]
            for i in range(len(xs)):
                ys[i] = xs[i] * wc + bc


@njit(cache=True, nogil=True)
def _affine_grad_part(dy, xhat, w, need_dx, dxhat, sums, s0, s1):
    for s in range(s0, s1):
        for c in range(dy.shape[1]):
            d = dy[s, c]
            sums[s, 0, c], sums[s, 1, c] = _sums(d, xhat[s, c])
            if need_dx:
                out, wc = dxhat[s, c], w[c]
                for i in range(len(d)):
                    out[i] = d[i] * wc


def channel_affine(xhat: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """xhat·w + b with w, b per channel (dim 1), as numpy's broadcast computes it."""
    x = planes(xhat, len(w))
    y = np.empty_like(x)
    w, b = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    split_rows(lambda s0, s1: _affine_part(x, w, b, y, s0, s1), len(x))
    return y.reshape(xhat.shape)


def channel_affine_grads(dy: np.ndarray, xhat: np.ndarray, w: np.ndarray,
                         need_dx: bool = True) -> tuple:
    """(dy·w or None, Σ dy·xhat, Σ dy): ``channel_affine``'s gradients (sums per channel)."""
    d, x = planes(dy, len(w)), planes(xhat, len(w))
    dxhat = np.empty_like(d) if need_dx else np.empty((0, 0, 0), d.dtype)
    sums = np.empty((len(d), 2, len(w)), d.dtype)
    w = w.astype(d.dtype, copy=False)
    split_rows(lambda s0, s1: _affine_grad_part(d, x, w, bool(need_dx), dxhat, sums, s0, s1),
               len(d))
    total = np.add.reduce(sums, axis=0)
    return (dxhat.reshape(dy.shape) if need_dx else None), total[0], total[1]


@njit(cache=True, nogil=True)
def _prelu_part(x, w, y, s0, s1):
    zero = np.zeros(1, x.dtype)[0]
    for s in range(s0, s1):
        for c in range(x.shape[1]):
            xs, ys, wc = x[s, c], y[s, c], w[c]
            for i in range(len(xs)):
                v = xs[i]
                ys[i] = v if v > zero else wc * v


@njit(cache=True, nogil=True)
def _prelu_grad_part(dy, x, w, need_dx, dx, sums, s0, s1):
    zero = np.zeros(1, x.dtype)[0]
    for s in range(s0, s1):
        for c in range(x.shape[1]):
            d, xs = dy[s, c], x[s, c]
            sums[s, c] = _negative_dot(d, xs)
            if need_dx:
                out, wc = dx[s, c], w[c]
                for i in range(len(d)):
                    out[i] = d[i] if xs[i] > zero else wc * d[i]


def prelu(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x where x > 0, else w·x: w one slope per channel (dim 1), or one for all (length 1)."""
    xs = planes(x, len(w))
    y = np.empty_like(xs)
    w = w.astype(x.dtype, copy=False)
    split_rows(lambda s0, s1: _prelu_part(xs, w, y, s0, s1), len(xs))
    return y.reshape(x.shape)


def prelu_grads(dy: np.ndarray, x: np.ndarray, w: np.ndarray, need_dx: bool = True) -> tuple:
    """(dx or None, dw): dy where x > 0 else w·dy, and Σ dy·x over x ≤ 0 per slope."""
    d, xs = planes(dy, len(w)), planes(x, len(w))
    dx = np.empty_like(d) if need_dx else np.empty((0, 0, 0), d.dtype)
    sums = np.empty((len(d), len(w)), d.dtype)
    w = w.astype(d.dtype, copy=False)
    split_rows(lambda s0, s1: _prelu_grad_part(d, xs, w, bool(need_dx), dx, sums, s0, s1),
               len(d))
    return (dx.reshape(dy.shape) if need_dx else None), np.add.reduce(sums, axis=0)
