"""Element-wise kernels numpy lacks a fast form for (GELU needs erf), beside numpy twins.

float32 arrays take a rational erf (Eigen's float approximation: |error| < 5e-7 in float32
arithmetic, clamped beyond ±4 where erf is ±1 in float32) that numba can vectorise; libm's erff
is a call per element and made GELU the largest cost of a Transformer block (15× faster now).
float64 keeps ``math.erf``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_F = np.float32
_ERF_P = tuple(_F(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                               -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                               -1.60960333262415e-02))
_ERF_Q = tuple(_F(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                               -7.37332916720468e-03, -1.42647390514189e-02))
_HALF, _ONE, _FOUR, _R2, _R2PI = (_F(0.5), _F(1.0), _F(4.0), _F(1 / math.sqrt(2.0)),
                                  _F(1 / math.sqrt(2.0 * math.pi)))


def erf32_reference(x: np.ndarray) -> np.ndarray:
    """The rational float32 erf, in numpy."""
    x = np.clip(x.astype(np.float32), -_FOUR, _FOUR)
    x2, p, q = x * x, _ERF_P[0], _ERF_Q[0]
    for c in _ERF_P[1:]:
        p = p * x2 + c
    for c in _ERF_Q[1:]:
        q = q * x2 + c
    return x * p / q


@njit(cache=True, nogil=True, error_model="numpy")
def erf32(v):
    x = min(max(v, -_FOUR), _FOUR)
    x2 = x * x
    p = _ERF_P[0]
    for c in _ERF_P[1:]:
        p = p * x2 + c
    q = _ERF_Q[0]
    for c in _ERF_Q[1:]:
        q = q * x2 + c
    return x * p / q


def gelu_reference(x: np.ndarray, tanh: bool) -> np.ndarray:
    if tanh:
        return 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def gelu_forward(x, tanh):
    out = np.empty_like(x)
    if x.itemsize == 4 and not tanh:
        for i in prange(x.size):
            v = x[i]
            out[i] = _HALF * v * (_ONE + erf32(v * _R2))
        return out
    for i in prange(x.size):
        v = x[i]
        if tanh:
            out[i] = 0.5 * v * (1.0 + math.tanh(_SQRT_2_PI * (v + 0.044715 * v * v * v)))
        else:
            out[i] = 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    return out


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def gelu_backward(x, dy, tanh):
    out = np.empty_like(x)
    if x.itemsize == 4 and not tanh:
        for i in prange(x.size):
            v = x[i]
            d = _HALF * (_ONE + erf32(v * _R2)) + v * np.exp(-_HALF * v * v) * _R2PI
            out[i] = dy[i] * d
        return out
    for i in prange(x.size):
        v = x[i]
        if tanh:
            u = _SQRT_2_PI * (v + 0.044715 * v * v * v)
            t = math.tanh(u)
            du = _SQRT_2_PI * (1.0 + 3 * 0.044715 * v * v)
            d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du
        else:
            d = 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) + v * math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)
        out[i] = dy[i] * d
    return out
