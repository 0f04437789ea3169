"""Element-wise kernels numpy lacks a fast form for (GELU needs erf), beside numpy twins."""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def gelu_reference(x: np.ndarray, tanh: bool) -> np.ndarray:
    if tanh:
        return 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


@njit(cache=True, nogil=True, parallel=True)
def gelu_forward(x, tanh):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        if tanh:
            out[i] = 0.5 * v * (1.0 + math.tanh(_SQRT_2_PI * (v + 0.044715 * v * v * v)))
        else:
            out[i] = 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    return out


@njit(cache=True, nogil=True, parallel=True)
def gelu_backward(x, dy, tanh):
    out = np.empty_like(x)
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
