"""2-D pooling kernels beside the numpy twins that define them.

Inputs arrive already padded (with -inf for max, zeros for average: PyTorch's count_include_pad).
Max-pool saves the flat index (row · padded width + column) of each window's winner, so the
backward only touches winning positions — a quarter of the input for 2×2 pooling. Every kernel
is parallel over the batch; each sample's planes belong to one thread, so overlapping windows
never race.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import sliding_window_view


# ------------------------------------------------------------------------- numpy twins
def _windows(xp, kh, kw, sh, sw):
    """(N, C, OH, OW, KH, KW) view of every window."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def max_pool2d_reference(xp, kh, kw, sh, sw, dh=1, dw=1):
    """(max of each window, flat index of its first maximum in the padded plane); a window's
    taps lie ``dh`` rows and ``dw`` columns apart (dilation)."""
    span = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = span[:, :, ::sh, ::sw, ::dh, ::dw]
    n, c, oh, ow = win.shape[:4]
    k = win.reshape(n, c, oh, ow, kh * kw).argmax(axis=4)
    rows = np.arange(oh)[:, None] * sh + k // kw * dh
    cols = np.arange(ow)[None, :] * sw + k % kw * dw
    return win.max(axis=(4, 5)), (rows * xp.shape[3] + cols).astype(np.int32)


def max_pool2d_backward_reference(dy, arg, hp, wp):
    n, c = dy.shape[:2]
    dxp = np.zeros((n, c, hp * wp), dtype=dy.dtype)
    np.add.at(dxp, (np.arange(n)[:, None, None], np.arange(c)[None, :, None], arg.reshape(n, c, -1)),
              dy.reshape(n, c, -1))
    return dxp.reshape(n, c, hp, wp)


def avg_pool2d_reference(xp, kh, kw, sh, sw):
    return _windows(xp, kh, kw, sh, sw).mean(axis=(4, 5))


def avg_pool2d_backward_reference(dy, kh, kw, sh, sw, hp, wp):
    n, c, oh, ow = dy.shape
    dxp = np.zeros((n, c, hp, wp), dtype=dy.dtype)
    g = dy / (kh * kw)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += g
    return dxp


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True, parallel=True)
def max_pool2d_forward(xp, kh, kw, sh, sw, dh, dw):
    """Returns (out, arg) where arg holds the flat index (row · width + col) of each winner;
    taps ``dh`` rows and ``dw`` columns apart."""
    n, c, hp, wp = xp.shape
    oh, ow = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
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
                        row = plane[r0 + i * dh]
                        for j in range(kw):
                            v = row[q0 + j * dw]
                            # Strict: the first maximum wins. A NaN wins over numbers so it is
                            # never hidden from the non-finite check (as PyTorch and np.max).
                            if v > best or (v != v and best == best):
                                best, where = v, (r0 + i * dh) * wp + q0 + j * dw
                    out[b, ch, r, q] = best
                    arg[b, ch, r, q] = where
    return out, arg


@njit(cache=True, nogil=True, parallel=True)
def max_pool2d_backward(dy, arg, hp, wp):
    n, c, oh, ow = dy.shape
    dxp = np.zeros((n, c, hp * wp), dtype=dy.dtype)
    for b in prange(n):
        for ch in range(c):
            flat, g, at = dxp[b, ch], dy[b, ch], arg[b, ch]
            for r in range(oh):
                for q in range(ow):
                    flat[at[r, q]] += g[r, q]
    return dxp.reshape(n, c, hp, wp)


@njit(cache=True, nogil=True, parallel=True)
def avg_pool2d_forward(xp, kh, kw, sh, sw):
    n, c, hp, wp = xp.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.empty((n, c, oh, ow), dtype=xp.dtype)
    for b in prange(n):
        for ch in range(c):
            plane = xp[b, ch]
            for r in range(oh):
                for q in range(ow):
                    acc = plane[r * sh, q * sw] * 0  # dtype-matched zero
                    for i in range(kh):
                        row = plane[r * sh + i]
                        for j in range(kw):
                            acc += row[q * sw + j]
                    out[b, ch, r, q] = acc / (kh * kw)
    return out


@njit(cache=True, nogil=True, parallel=True)
def avg_pool2d_backward(dy, kh, kw, sh, sw, hp, wp):
    n, c, oh, ow = dy.shape
    dxp = np.zeros((n, c, hp, wp), dtype=dy.dtype)
    for b in prange(n):
        for ch in range(c):
            plane = dxp[b, ch]
            for r in range(oh):
                for q in range(ow):
                    g = dy[b, ch, r, q] / (kh * kw)
                    for i in range(kh):
                        row = plane[r * sh + i]
                        for j in range(kw):
                            row[q * sw + j] += g
    return dxp
