"""BatchNorm's forward and backward per channel in a few passes over L2-resident data, optionally
fused with the ReLU after it, beside the numpy twins that define them.

numpy spent a BatchNorm2d over a ResNet stage's (64, 32, 32, 32) activations in a dozen
whole-array passes and temporaries (mean, centre, square, mean, scale, affine; more backward):
~40 ms forward and ~70 ms backward on one core, more than the convolution before it. Here the
input is viewed as (N, C, M) (M = positions per channel) and each channel is one task: its N·M
values (64 × 1024 floats = 256 KB) stay in L2 between the passes. The channels are split over the
cores by ``engine.threads.split_rows`` (serial ``_part`` kernels over [c0, c1), not numba's
``prange``: an OpenMP pool's spinning workers took the second core from the engine's row
threads, and a parfor costs seconds to compile); a channel's sums run on one thread in one
order, so results do not depend on the thread count. The forward reads it
three times (mean, centred variance, output: the two-pass variance, as numpy's), the backward
twice (the two channel sums, then dx); statistics are accumulated in float64 whatever the dtype.

Nothing but the input and two numbers per channel is kept for the backward: x̂ is recomputed
from x (one multiply-add), and the ReLU's mask from the output's sign. ``relu`` fuses
``max(y, 0)`` into the output pass and masks the incoming gradient in the backward.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows

FAST = {"reassoc", "contract", "nsz"}  # vectorised sums; no flag that assumes finite values


# ------------------------------------------------------------------------- numpy twins
def batch_norm_forward_reference(x, weight, bias, eps: float, relu: bool) -> tuple:
    """(y, mean, biased var) of x (N, C, M) with batch statistics; ``weight``/``bias`` size 0:
    no affine."""
    mean = x.mean(axis=(0, 2))
    xc = x - mean[None, :, None]
    var = (xc * xc).mean(axis=(0, 2))
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    y = xc * inv_std[None, :, None]
    if weight.size:
        y = y * weight[None, :, None] + bias[None, :, None]
    return (np.maximum(y, 0) if relu else y).astype(x.dtype), mean, var


def batch_norm_backward_reference(x, y, dy, mean, inv_std, weight, batch_stats: bool,
                                  relu: bool) -> tuple:
    """(dx, d weight, d bias) of ``batch_norm_forward`` (or of the running-statistics form when
    not ``batch_stats``); ``y`` is the forward's output (read for ReLU's mask only)."""
    if relu:
        dy = dy * (y > 0)
    xhat = (x - mean[None, :, None]) * inv_std[None, :, None]
    dw, db = (dy * xhat).sum(axis=(0, 2)), dy.sum(axis=(0, 2))
    g = dy * weight[None, :, None] if weight.size else dy
    if not batch_stats:
        return (g * inv_std[None, :, None]).astype(x.dtype), dw, db
    dx = inv_std[None, :, None] * (g - g.mean(axis=(0, 2), keepdims=True)
                                   - xhat * (g * xhat).mean(axis=(0, 2), keepdims=True))
    return dx.astype(x.dtype), dw, db


# ------------------------------------------------------------------------------ kernels
def batch_norm_forward(x, weight, bias, eps, relu):
    """(y, mean, biased var, inv_std) of x (N, C, M) with the batch's statistics."""
    c = x.shape[1]
    y = np.empty_like(x)
    mean, var = np.empty(c, np.float64), np.empty(c, np.float64)
    inv_std = np.empty(c, x.dtype)
    split_rows(lambda c0, c1: batch_norm_forward_part(x, weight, bias, eps, relu, y, mean, var,
                                                      inv_std, c0, c1), c)
    return y, mean, var, inv_std


@njit(cache=True, nogil=True, fastmath=FAST)
def batch_norm_forward_part(x, weight, bias, eps, relu, y, mean, var, inv_std, c0, c1):
    """Channels c0..c1 of ``batch_norm_forward``."""
    n, m = x.shape[0], x.shape[2]
    count = n * m
    for ch in range(c0, c1):
        total = 0.0
        for s in range(n):
            row = x[s, ch]
            for p in range(m):
                total += row[p]
        mu = total / count
        sq = 0.0
        for s in range(n):
            row = x[s, ch]
            for p in range(m):
                d = row[p] - mu
                sq += d * d
        mean[ch], var[ch] = mu, sq / count
        inv_std[ch] = 1.0 / np.sqrt(sq / count + eps)
        _affine(x, y, ch, mu, inv_std[ch], weight, bias, relu)


@njit(cache=True, nogil=True, fastmath=FAST)
def _affine(x, y, ch, mu, inv, weight, bias, relu):
    """y[:, ch] = (x[:, ch] − mu)·inv·γ + β, then ReLU when asked, in x's dtype (centred first:
    x·a + b would cancel catastrophically when the mean is large against the spread)."""
    n, m = x.shape[0], x.shape[2]
    k = np.empty(3, x.dtype)  # the channel's constants in x's dtype: the loop stays in it
    k[0], k[1] = mu, inv * weight[ch] if weight.size else inv
    k[2] = bias[ch] if bias.size else 0.0
    mu_x, a, b, zero = k[0], k[1], k[2], k[2] * 0
    for s in range(n):
        src, dst = x[s, ch], y[s, ch]
        if relu:
            for p in range(m):
                v = (src[p] - mu_x) * a + b
                dst[p] = v if v > zero or v != v else zero
        else:
            for p in range(m):
                dst[p] = (src[p] - mu_x) * a + b


def batch_norm_inference(x, weight, bias, mean, inv_std, relu):
    """y of x (N, C, M) normalised with fixed statistics (the running ones)."""
    y = np.empty_like(x)
    split_rows(lambda c0, c1: batch_norm_inference_part(x, weight, bias, mean, inv_std, relu, y,
                                                        c0, c1), x.shape[1])
    return y


@njit(cache=True, nogil=True, fastmath=FAST)
def batch_norm_inference_part(x, weight, bias, mean, inv_std, relu, y, c0, c1):
    """Channels c0..c1 of ``batch_norm_inference``."""
    for ch in range(c0, c1):
        _affine(x, y, ch, mean[ch], inv_std[ch], weight, bias, relu)


def batch_norm_backward(x, y, dy, mean, inv_std, weight, batch_stats, relu, need_dx):
    """(dx or empty, d weight, d bias) of ``batch_norm_forward`` / ``batch_norm_inference``:
    one pass for the channel sums Σg and Σg·x̂, one for dx."""
    n, c, m = x.shape
    dx = np.empty((n if need_dx else 0, c, m), x.dtype)
    dw, db = np.empty(c, x.dtype), np.empty(c, x.dtype)
    split_rows(lambda c0, c1: batch_norm_backward_part(x, y, dy, mean, inv_std, weight,
                                                       batch_stats, relu, need_dx, dx, dw, db,
                                                       c0, c1), c)
    return dx, dw, db


@njit(cache=True, nogil=True, fastmath=FAST)
def batch_norm_backward_part(x, y, dy, mean, inv_std, weight, batch_stats, relu, need_dx, dx, dw,
                             db, c0, c1):
    """Channels c0..c1 of ``batch_norm_backward``."""
    n, m = x.shape[0], x.shape[2]
    count = n * m
    for ch in range(c0, c1):
        k = np.empty(2, x.dtype)  # x̂ = (x − mu)·inv in x's dtype, as the layer computed it
        k[0], k[1] = mean[ch], inv_std[ch]
        mu, inv, zero = k[0], k[1], k[1] * 0
        s_g = 0.0
        s_gx = 0.0
        for s in range(n):  # the ReLU's test outside the loops: inside, they ran scalar
            xr, yr, gr = x[s, ch], y[s, ch], dy[s, ch]
            if relu:
                for p in range(m):
                    g = gr[p] if yr[p] > 0 else zero
                    s_g += g
                    s_gx += g * ((xr[p] - mu) * inv)
            else:
                for p in range(m):
                    g = gr[p]
                    s_g += g
                    s_gx += g * ((xr[p] - mu) * inv)
        db[ch], dw[ch] = s_g, s_gx
        if need_dx:
            gamma = weight[ch] if weight.size else 1.0
            _input_grad(x, y, dy, dx, ch, mean[ch], inv, gamma, s_g / count, s_gx / count,
                        batch_stats, relu)


@njit(cache=True, nogil=True, fastmath=FAST)
def _input_grad(x, y, dy, dx, ch, mu, inv, gamma, mean_g, mean_gx, batch_stats, relu):
    """dx[:, ch] = γ·inv·(g − mean(g) − x̂·mean(g·x̂)) (batch statistics) or γ·inv·g."""
    n, m = x.shape[0], x.shape[2]
    k = np.empty(5, x.dtype)  # the channel's constants in x's dtype: the loop stays in it
    k[0], k[1] = gamma * inv, mu
    k[2] = mean_g if batch_stats else 0.0
    k[3] = mean_gx if batch_stats else 0.0
    k[4] = inv
    scale, mu_x, a, b, inv_x = k[0], k[1], k[2], k[3], k[4]
    zero = a * 0
    for s in range(n):
        xr, yr, gr, out = x[s, ch], y[s, ch], dy[s, ch], dx[s, ch]
        if relu:
            for p in range(m):
                g = gr[p] if yr[p] > 0 else zero
                out[p] = scale * (g - a - (xr[p] - mu_x) * inv_x * b)
        else:
            for p in range(m):
                out[p] = scale * (gr[p] - a - (xr[p] - mu_x) * inv_x * b)
