"""Softplus, LogSigmoid and Mish in float32 in one compiled pass each way (float64 keeps
numpy's exact path), as ``kernels.activation`` runs the other activations.

All three need ln(1 + e^-|z|), which numpy computes with libm calls: (64, 32, 32, 32) float32
inside a network, one core, forward + backward, Softplus took 50.3 ms, LogSigmoid 16.2, Mish
51.0 (PyTorch 4.4, 4.2, 17.4). Here ln(1 + u), 0 ≤ u ≤ 1, is Cephes' logf (the mantissa in
[√½, √2), a degree-9 polynomial) with Goldberg's correction for the rounding of 1 + u, and
Mish's tanh(softplus(x)) is its closed form in e^-|x|: no libm call, so the loops vectorise.
Built on ``kernels.activation``'s chunks and σ (an edit there recompiles this file's kernels:
``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.activation import CHUNK, map_chunks, sigmoid_scalar32
from layerloom.engine.kernels.elementwise import expneg32

_ZERO, _HALF, _ONE, _TWO = (np.float32(v) for v in (0.0, 0.5, 1.0, 2.0))
_SQRT2, _LN2 = np.float32(np.sqrt(2.0)), np.float32(np.log(2.0))
_BIG = np.float32(87.0)  # e^-87 is below float32's smallest normal
_LOG_P = tuple(np.float32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                                       -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                                       2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))


@njit(inline="always")
def _log1p_unit32(u):
    """ln(1 + u) for 0 ≤ u ≤ 1: Cephes' logf of w = 1 + u (its mantissa in [√½, √2)), times
    u / (w − 1), Goldberg's correction for the rounding of 1 + u."""
    w = _ONE + u
    big = w > _SQRT2
    t = (w * _HALF if big else w) - _ONE
    z = t * t
    p = _LOG_P[0]
    for c in _LOG_P[1:]:
        p = p * t + c
    log_w = t + (p * t * z - _HALF * z) + (_LN2 if big else _ZERO)
    d = w - _ONE
    return u if d == _ZERO else log_w * (u / d)


@njit(inline="always")
def _softplus32(z):
    """ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|), as numpy's logaddexp(0, z); NaN kept."""
    a = abs(z)
    e = expneg32(a) if a < _BIG else _ZERO
    s = (z if z > _ZERO else _ZERO) + _log1p_unit32(e)
    return z if z != z else s


@njit(cache=True, nogil=True, error_model="numpy")
def _softplus_chunks(fx, beta, threshold, fy, fz, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    x, y, zs = fx[lo:hi], fy[lo:hi], fz[lo:hi]
    for i in range(len(x)):
        v = x[i]
        z = v * beta
        zs[i] = z
        y[i] = v if z > threshold else _softplus32(z) / beta


@njit(cache=True, nogil=True, error_model="numpy")
def _softplus_grad_chunks(fd, fz, threshold, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, zs, o = fd[lo:hi], fz[lo:hi], fo[lo:hi]
    for i in range(len(d)):
        z = zs[i]
        o[i] = d[i] * (_ONE if z > threshold else sigmoid_scalar32(z))


def softplus32(x: np.ndarray, beta: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(ln(1 + e^(beta·x)) / beta, or x where beta·x > threshold; and beta·x), float32."""
    return map_chunks(_softplus_chunks, (x,), (np.float32(beta), np.float32(threshold)),
                      outputs=2)


def softplus_grad32(dy: np.ndarray, z: np.ndarray, threshold: float) -> np.ndarray:
    """dy·σ(z), dy where z > threshold."""
    return map_chunks(_softplus_grad_chunks, (dy, z), (np.float32(threshold),))


@njit(cache=True, nogil=True, error_model="numpy")
def _logsigmoid_chunks(fx, fy, c0, c1):
    x, y = fx[c0 * CHUNK:c1 * CHUNK], fy[c0 * CHUNK:c1 * CHUNK]
    for i in range(len(x)):
        v = x[i]
        a = abs(v)
        e = expneg32(a) if a < _BIG else _ZERO
        s = (v if v < _ZERO else _ZERO) - _log1p_unit32(e)
        y[i] = v if v != v else s


@njit(cache=True, nogil=True, error_model="numpy")
def _logsigmoid_grad_chunks(fd, fx, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, x, o = fd[lo:hi], fx[lo:hi], fo[lo:hi]
    for i in range(len(d)):
        o[i] = d[i] * sigmoid_scalar32(-x[i])


def logsigmoid32(x: np.ndarray) -> np.ndarray:
    """min(x, 0) − ln(1 + e^-|x|) of a float32 array."""
    return map_chunks(_logsigmoid_chunks, (x,))


def logsigmoid_grad32(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dy·σ(−x)."""
    return map_chunks(_logsigmoid_grad_chunks, (dy, x))


@njit(inline="always")
def _mish_tanh32(v):
    """tanh(softplus(v)) in closed form: n(n + 2) / (n(n + 2) + 2), n = e^v, for v ≤ 0; with
    m = e^-v, (1 + 2m) / (1 + 2m + 2m²) above. Neither loses digits to a cancellation."""
    a = abs(v)
    e = expneg32(a) if a < _BIG else _ZERO
    q = e * (e + _TWO)
    neg = q / (q + _TWO)
    r = _ONE + _TWO * e
    pos = r / (r + _TWO * e * e)
    t = pos if v > _ZERO else neg
    return v if v != v else t


@njit(cache=True, nogil=True, error_model="numpy")
def _mish_chunks(fx, fy, ft, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    x, y, ts = fx[lo:hi], fy[lo:hi], ft[lo:hi]
    for i in range(len(x)):
        v = x[i]
        t = _mish_tanh32(v)
        ts[i] = t
        y[i] = v * t


@njit(cache=True, nogil=True, error_model="numpy")
def _mish_grad_chunks(fd, fx, ft, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, x, ts, o = fd[lo:hi], fx[lo:hi], ft[lo:hi], fo[lo:hi]
    for i in range(len(d)):
        v, t = x[i], ts[i]
        o[i] = d[i] * (t + v * (_ONE - t * t) * sigmoid_scalar32(v))


def mish32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x·tanh(softplus(x)), tanh(softplus(x))) of a float32 array."""
    return map_chunks(_mish_chunks, (x,), outputs=2)


def mish_grad32(dy: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """dy·(t + x·(1 − t²)·σ(x)), t the forward's tanh(softplus(x))."""
    return map_chunks(_mish_grad_chunks, (dy, x, t))
