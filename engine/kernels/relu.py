"""ReLU fused with what comes before it: a residual Add (``add_relu``) and the masked gradient
of a ReLU read from its output's sign (``relu_mask_grad``), beside the numpy twins.

numpy spends ``relu(a + b)`` in three passes and two temporaries (a + b, the mask, the product)
and its backward in two more; on a ResNet stage's (64, 32, 32, 32) float32 activations each pass
over 8 MB is a trip to memory. Here each is one pass over flat chunks, the chunks split over the
engine's cores (``engine.threads.split_rows``). NaN propagates forward as ``x * (x > 0)`` lets
it, and gets no gradient, as the unfused ReLU.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows

CHUNK = 1 << 15  # elements per chunk: 128 KB of float32; a smaller array stays on one core


def add_relu_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = a + b
    return s * (s > 0)


def relu_mask_grad_reference(dy: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dy * (out > 0)


@njit(cache=True, nogil=True)
def add_relu_chunks(fa, fb, fo, c0, c1):
    zero = np.zeros(1, fa.dtype)[0]
    lo, hi = c0 * CHUNK, c1 * CHUNK
    a, b, o = fa[lo:hi], fb[lo:hi], fo[lo:hi]  # slices: an index from 0 is known not negative
    for i in range(len(a)):
        v = a[i] + b[i]
        o[i] = v if v > zero or v != v else zero


def add_relu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max(a + b, 0) of two C-contiguous arrays of one shape (NaN kept)."""
    out = np.empty_like(a)
    fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    split_rows(lambda c0, c1: add_relu_chunks(fa, fb, fo, c0, c1), -(-a.size // CHUNK))
    return out


@njit(cache=True, nogil=True)
def relu_mask_chunks(fd, fo, fx, c0, c1):
    zero = np.zeros(1, fd.dtype)[0]
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, o, x = fd[lo:hi], fo[lo:hi], fx[lo:hi]
    for i in range(len(d)):
        x[i] = d[i] if o[i] > 0 else zero


def relu_mask_grad(dy: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dy where out > 0, else 0: the gradient through a ReLU whose output is ``out``."""
    dx = np.empty_like(dy)
    fd, fo, fx = dy.reshape(-1), out.reshape(-1), dx.reshape(-1)
    split_rows(lambda c0, c1: relu_mask_chunks(fd, fo, fx, c0, c1), -(-dy.size // CHUNK))
    return dx
