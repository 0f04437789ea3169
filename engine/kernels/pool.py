"""2-D pooling kernels beside numpy twins. Max-pool saves the winner of each window so the
backward only touches winning positions (a quarter of the input for 2×2 pooling)."""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import sliding_window_view


# ------------------------------------------------------------------------- numpy twins
def max_pool2d_reference(xp, kh, kw, sh, sw):
    """Max over each window of an already (-inf) padded input."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].max(axis=(4, 5))


def avg_pool2d_reference(xp, kh, kw, sh, sw):
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].mean(axis=(4, 5))


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True, parallel=True)
def max_pool2d_forward(xp, kh, kw, sh, sw):
    """Returns (out, arg) where arg holds the flat index (row * width + col) of each winner."""
    n, c, hp, wp = xp.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.empty((n, c, oh, ow), dtype=xp.dtype)
    arg = np.empty((n, c, oh, ow), dtype=np.int32)
    for b in prange(n):
        for ch in range(c):
            plane = xp[b, ch]
            for r in range(oh):
                for q in range(ow):
                    r0, q0 = r * sh, q * sw
                    best, where = plane[r0, q0], r0 * wp + q0
                    for i in range(kh):
                        for j in range(kw):
                            v = plane[r0 + i, q0 + j]
                            if v > best:  # strict: the first maximum wins, as in PyTorch
                                best, where = v, (r0 + i) * wp + q0 + j
                    out[b, ch, r, q] = best
                    arg[b, ch, r, q] = where
    return out, arg


@njit(cache=True, nogil=True, parallel=True)
def max_pool2d_backward(dy, arg, hp, wp):
    n, c, oh, ow = dy.shape
    dxp = np.zeros((n, c, hp * wp), dtype=dy.dtype)
    for b in prange(n):
        for ch in range(c):
            flat = dxp[b, ch]
            for r in range(oh):
                for q in range(ow):
                    flat[arg[b, ch, r, q]] += dy[b, ch, r, q]
    return dxp.reshape(n, c, hp, wp)


@njit(cache=True, nogil=True, parallel=True)
def avg_pool2d_backward(dy, kh, kw, sh, sw, hp, wp):
    n, c, oh, ow = dy.shape
    dxp = np.zeros((n, c, hp, wp), dtype=dy.dtype)
    scale = 1.0 / (kh * kw)
    for b in prange(n):
        for ch in range(c):
            for r in range(oh):
                for q in range(ow):
                    g = dy[b, ch, r, q] * scale
                    for i in range(kh):
                        for j in range(kw):
                            dxp[b, ch, r * sh + i, q * sw + j] += g
    return dxp
