"""Direct convolution for strides above 1, row by row (the flat layout of ``conv`` needs stride 1).

Self-contained on purpose: numba's cache only notices edits to a kernel's own file, so these
kernels call nothing defined elsewhere. Parallel over the batch (forward, input gradient) and over
filters (weight gradient), so no two threads write one value.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def forward_strided(xp, w, b, sh, sw):
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.empty((n, nf, oh, ow), dtype=xp.dtype)
    for s in prange(n):
        for f in range(nf):
            out[s, f] = b[f]
            for ch in range(c):
                for i in range(kh):
                    for j in range(kw):
                        wv = w[f, ch, i, j]
                        for r in range(oh):
                            orow = out[s, f, r]
                            xrow = xp[s, ch, r * sh + i, j:j + sw * (ow - 1) + 1:sw]
                            for q in range(ow):
                                orow[q] += wv * xrow[q]
    return out


@njit(cache=True, nogil=True, parallel=True)
def backward_strided(xp, w, dy, sh, sw, need_dx):
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    oh, ow = dy.shape[2], dy.shape[3]
    dw = np.zeros((nf, c, kh, kw), xp.dtype)
    db = np.zeros(nf, xp.dtype)
    for f in prange(nf):  # over filters: no two threads write one weight
        for s in range(n):
            for r in range(oh):
                for q in range(ow):
                    db[f] += dy[s, f, r, q]
            for ch in range(c):
                for i in range(kh):
                    for j in range(kw):
                        acc = dw[f, ch, i, j]
                        for r in range(oh):
                            drow = dy[s, f, r]
                            xrow = xp[s, ch, r * sh + i, j:j + sw * (ow - 1) + 1:sw]
                            for q in range(ow):
                                acc += drow[q] * xrow[q]
                        dw[f, ch, i, j] = acc
    dxp = np.zeros((n if need_dx else 0, c, hp, wp), xp.dtype)
    if need_dx:
        for s in prange(n):
            for f in range(nf):
                for ch in range(c):
                    for i in range(kh):
                        for j in range(kw):
                            wv = w[f, ch, i, j]
                            for r in range(oh):
                                drow = dy[s, f, r]
                                xrow = dxp[s, ch, r * sh + i, j:j + sw * (ow - 1) + 1:sw]
                                for q in range(ow):
                                    xrow[q] += wv * drow[q]
    return dxp, dw, db
