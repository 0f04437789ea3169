"""ReLU fused with what comes before it: a residual Add (``add_relu``) and the masked gradient
of a ReLU read from its output's sign (``relu_mask_grad``), beside the numpy twins.

numpy spends ``relu(a + b)`` in three passes and two temporaries (a + b, the mask, the product)
and its backward in two more; on a ResNet stage's (64, 32, 32, 32) float32 activations each pass
over 8 MB is a trip to memory. Here each is one parallel pass over flat chunks. NaN propagates
forward as ``x * (x > 0)`` lets it, and gets no gradient, as the unfused ReLU.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 1 << 15  # elements per parallel task: 128 KB of float32


def add_relu_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = a + b
    return s * (s > 0)


def relu_mask_grad_reference(dy: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dy * (out > 0)


@njit(cache=True, nogil=True, parallel=True)
def add_relu(a, b):
    """max(a + b, 0) of two C-contiguous arrays of one shape (NaN kept)."""
    out = np.empty_like(a)
    fa, fb, fo = a.reshape(a.size), b.reshape(b.size), out.reshape(out.size)
    zero = np.zeros(1, a.dtype)[0]
    for c in prange((a.size + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(a.size, (c + 1) * CHUNK)):
            v = fa[i] + fb[i]
            fo[i] = v if v > zero or v != v else zero
    return out


@njit(cache=True, nogil=True, parallel=True)
def relu_mask_grad(dy, out):
    """dy where out > 0, else 0: the gradient through a ReLU whose output is ``out``."""
    dx = np.empty_like(dy)
    fd, fo, fx = dy.reshape(dy.size), out.reshape(out.size), dx.reshape(dx.size)
    zero = np.zeros(1, dy.dtype)[0]
    for c in prange((dy.size + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(dy.size, (c + 1) * CHUNK)):
            fx[i] = fd[i] if fo[i] > 0 else zero
    return dx
