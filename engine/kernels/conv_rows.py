"""Copies between a batch of maps (N, C, H, W) and the chunk layouts of the strided convolutions'
products (``conv_gemm_strided``): a chunk's output rows, its input gradient made in a padded
scratch, and the im2col of its 8-wide rows at stride 2; and a batch zero-padded. Plain loops;
the values are copied, never computed.
"""
from __future__ import annotations

import numpy as np
from numba import njit


def pad_sides(x: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """A C-contiguous zero-padded copy (or ``x`` itself, contiguous, when nothing is added)."""
    if top == bottom == left == right == 0:
        return np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + top + bottom, w + left + right), x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


@njit(cache=True, nogil=True)
def to_rows(t, s0, s1, f0, f1, out):
    """out[f − f0, k·P : (k+1)·P] = t[s0 + k, f] flattened (P = OH·OW positions)."""
    m = t.shape[2] * t.shape[3]
    for k in range(s1 - s0):
        for f in range(f0, f1):
            src, dst = t[s0 + k, f].reshape(m), out[f - f0, k * m:(k + 1) * m]
            for p in range(m):
                dst[p] = src[p]


@njit(cache=True, nogil=True)
def from_rows(rows, s0, s1, f0, t):
    """The reverse of ``to_rows``: t[s0 + k, f0 + f] = rows[f, k·P : (k+1)·P]."""
    m = t.shape[2] * t.shape[3]
    for k in range(s1 - s0):
        for f in range(rows.shape[0]):
            dst, src = t[s0 + k, f0 + f].reshape(m), rows[f, k * m:(k + 1) * m]
            for p in range(m):
                dst[p] = src[p]


@njit(cache=True, nogil=True)
def crop(dxp, ph, pw, dx, s0):
    """dx[s0 + k] = dxp[k] without its (ph, pw) padding: a chunk's input gradient, made in a
    padded scratch, copied out while it is in cache."""
    h, w = dx.shape[2], dx.shape[3]
    for k in range(dxp.shape[0]):
        for ch in range(dx.shape[1]):
            for r in range(h):
                src, dst = dxp[k, ch, ph + r, pw:pw + w], dx[s0 + k, ch, r]
                for q in range(w):
                    dst[q] = src[q]


@njit(cache=True, nogil=True)
def eight_at_stride2(xp, s0, s1, c0, c1, kh, kw, sh, dh, dw, oh, cols):
    """im2col (``conv_gemm_strided._im2col``'s layout) of a chunk whose outputs are 8 columns
    wide at column stride 2 (a 16×16 map's 3×3 stride-2 convolution): each tap's output row is
    8 values read every other column, a loop of fixed length LLVM turns into vector shuffles;
    ``_gather``'s table of offsets read them one by one (64 → 128 channels on 16×16, a
    16-sample chunk, one core: 105 → 58 µs). col2im's adds written this way ran no faster (109
    vs 115 µs) and 4-wide rows (8×8 maps) gained little (173 → 159): they keep the gather."""
    m = oh * 8
    for ch in range(c0, c1):
        for i in range(kh):
            for j in range(kw):
                row = cols[((ch - c0) * kh + i) * kw + j]
                for k in range(s1 - s0):
                    plane = xp[s0 + k, ch]
                    for r in range(oh):
                        src, dst = plane[r * sh + i * dh, j * dw:], row[k * m + r * 8:]
                        for q in range(8):
                            dst[q] = src[2 * q]
