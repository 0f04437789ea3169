"""Direct convolution for strides above 1, row by row (the flat layout of ``conv`` needs stride 1).

Self-contained on purpose: numba's cache only notices edits to a kernel's own file, so these
kernels call nothing defined elsewhere. Each is a serial ``_part`` over a range of samples
(forward, input gradient) or of filters (weight gradient), so no two parts write one value and
results do not depend on the thread count; the Python wrappers split the range over the cores
with ``engine.threads.split_rows``, not numba's ``prange`` (an OpenMP pool's spinning workers
took the second core from the engine's row threads, and a parfor costs seconds to compile).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.threads import split_rows


@njit(cache=True, nogil=True)
def forward_strided_part(xp, w, b, sh, sw, out, s0, s1):
    """Samples s0..s1 of ``forward_strided``."""
    c = xp.shape[1]
    nf, _, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    for s in range(s0, s1):
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


def forward_strided(xp, w, b, sh, sw):
    n, _, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    out = np.empty((n, nf, (hp - kh) // sh + 1, (wp - kw) // sw + 1), dtype=xp.dtype)
    split_rows(lambda s0, s1: forward_strided_part(xp, w, b, sh, sw, out, s0, s1), n)
    return out


@njit(cache=True, nogil=True)
def weight_grad_strided_part(xp, dy, sh, sw, dw, db, f0, f1):
    """Filters f0..f1 of the weight and bias gradients into ``dw`` and ``db`` (zeros)."""
    n, c = xp.shape[0], xp.shape[1]
    _, _, kh, kw = dw.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for f in range(f0, f1):
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


@njit(cache=True, nogil=True)
def input_grad_strided_part(w, dy, sh, sw, dxp, s0, s1):
    """Samples s0..s1 of the padded input's gradient into ``dxp`` (zeros)."""
    nf, c, kh, kw = w.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for s in range(s0, s1):
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


def backward_strided(xp, w, dy, sh, sw, need_dx):
    """(d padded input or empty, d weight, d bias): filters split over the cores for the weight
    gradient (no two parts write one weight), samples for the input gradient."""
    n, c, hp, wp = xp.shape
    dw, db = np.zeros(w.shape, xp.dtype), np.zeros(len(w), xp.dtype)
    split_rows(lambda f0, f1: weight_grad_strided_part(xp, dy, sh, sw, dw, db, f0, f1), len(w))
    dxp = np.zeros((n if need_dx else 0, c, hp, wp), xp.dtype)
    if need_dx:
        split_rows(lambda s0, s1: input_grad_strided_part(w, dy, sh, sw, dxp, s0, s1), n)
    return dxp, dw, db
