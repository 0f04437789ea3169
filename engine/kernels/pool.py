"""2-D pooling kernels beside the numpy twins that define them.

Inputs arrive already padded (with -inf for max, zeros for average: PyTorch's count_include_pad).
Max-pool saves the flat index (row · padded width + column) of each window's winner, so the
backward only touches winning positions — a quarter of the input for 2×2 pooling. Every kernel
is a serial ``_part`` over a range of samples, and its wrapper splits the batch over the cores
(``engine.threads.split_rows``, not numba's ``prange``: an OpenMP pool's spinning workers took the
second core from the engine's row threads, and a parfor costs seconds to compile). Each sample's
planes belong to one part, so overlapping windows never race and results do not depend on the
thread count. 2×2 windows at stride 2 take ``pair_winners``, also the fused convolution's pool
(``conv_flat``, recompiled with an edit here: ``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from layerloom.engine.threads import split_rows


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
@njit(cache=True, nogil=True)
def beats(u, v):
    """u wins over v in a max-pool window: larger, or NaN against a number. A NaN is never
    hidden from the non-finite check (as PyTorch and np.max)."""
    return (u > v) | ((u != u) & (v == v))


@njit(cache=True, nogil=True)
def right_wins(x, y, kx, ky):
    """A window's right column winner y takes it from the left one's x: y ``beats`` x, or ties
    it (NaN with NaN too) from a row above: the row-major first (kx, ky: their rows, or their
    flat indices)."""
    tie = (x == y) | ((x != x) & (y != y))
    return beats(y, x) | (tie & (ky < kx))


@njit(cache=True, nogil=True)
def relu_pool_store(o, g, q, best, where, zero):
    """o[q] = a window's winner after ReLU (NaN kept); g[q] = its index, -1 where ReLU clips."""
    keep = best > 0
    o[q] = best if keep | (best != best) else zero
    g[q] = where if keep else -1


@njit(cache=True, nogil=True)
def pair_scratch(ph, pw, wp, dtype):
    """``pair_winners``' scratch rows for maps of ph × pw windows at row pitch wp."""
    nv = max((2 * ph - 2) * wp + 2 * pw, 0)
    return np.empty(nv, dtype), np.empty(nv, np.int32)


QUAD_ROWS = 16  # pooled columns (a multiple of) from which ``_quad_winners`` runs a map


@njit(cache=True, nogil=True, error_model="numpy")
def _quad_winners(a, wp, out, arg):
    """``pair_winners`` after a ReLU for maps of a multiple of ``QUAD_ROWS`` pooled columns:
    each window's four values compared in row-major order (a later one wins only if it ``beats`` the best so
    far: the first maximum, NaN kept), every step a select. Whole rows of 16 windows vectorise;
    a row of fewer, or its remainder, runs the selects as branches that random values mispredict
    (2-3× slower than the pairs below at 8 or 14 windows a row): on 32×32 maps, batch 64, one
    core, 6.3 → 1.5 ms for 32 channels with ReLU, where the pairs' horizontal step mispredicted.
    Without the ReLU (a plain MaxPool2D) LLVM left the same loop scalar, branching: 9.5 ms
    against the pairs' 5.5; that one runs ``_compact_winners``."""
    ph, pw = out.shape
    zero = np.zeros(1, a.dtype)[0]
    step, across, diagonal = np.int32(1), np.int32(wp), np.int32(wp + 1)
    for r in range(ph):
        base = 2 * r * wp
        top, low = a[base:base + 2 * pw], a[base + wp:base + wp + 2 * pw]
        o, g = out[r], arg[r]
        for q in range(pw):
            best, k = top[2 * q], np.int32(0)
            v = top[2 * q + 1]
            best, k = (v, step) if beats(v, best) else (best, k)
            v = low[2 * q]
            best, k = (v, across) if beats(v, best) else (best, k)
            v = low[2 * q + 1]
            best, k = (v, diagonal) if beats(v, best) else (best, k)
            relu_pool_store(o, g, q, best, np.int32(base + 2 * q) + k, zero)


COMPACT_PAIRS = 16  # a pooled row's values (2·PW) from which ``_compact_winners`` runs a map


@njit(cache=True, nogil=True, error_model="numpy")
def _compact_winners(a, wp, out, arg, relu, vv, vk):
    """``pair_winners`` for rows of ≥ ``COMPACT_PAIRS`` / 2 windows: the vertical pairs of each
    pooled row's two rows only (a loop of 2·PW that vectorises), kept side by side with each
    winner's flat index, then every horizontal pair of the map in one flat loop of selects. The
    pairs' per-row horizontal loop of PW windows ran scalar and branching, and random values
    mispredicted; batch 64, one core: a plain 2×2 max-pool of 32 channels on 32×32 maps 5.9 →
    1.5 ms, 64 on 16×16 4.1 → 1.4, 32 on 28×28 5.2 → 3.0, 16 on 24×24 1.5 → 0.35 (rows of 8
    values, 8×8 maps, kept the pairs: 3.3 against 3.7). The same winners: a tie between the
    two columns' winners goes to the upper one, then the left (the smaller flat index). The
    pairs' scratch (``pair_scratch``: (2·PH − 2)·WP + 2·PW ≥ PH·2·PW, as WP ≥ 2·PW) holds it."""
    ph, pw = out.shape
    w2 = 2 * pw
    for r in range(ph):
        base = 2 * r * wp
        top, low = a[base:base + w2], a[base + wp:base + wp + w2]
        xs, ks = vv[r * w2:(r + 1) * w2], vk[r * w2:(r + 1) * w2]
        for k in range(w2):
            lower = beats(low[k], top[k])
            xs[k] = low[k] if lower else top[k]
            ks[k] = np.int32(base + wp + k) if lower else np.int32(base + k)
    o, g = out.reshape(ph * pw), arg.reshape(ph * pw)
    zero = np.zeros(1, a.dtype)[0]
    for i in range(ph * pw):
        x, y, kx, ky = vv[2 * i], vv[2 * i + 1], vk[2 * i], vk[2 * i + 1]
        second = right_wins(x, y, kx, ky)
        best = y if second else x
        where = ky if second else kx
        if relu:
            relu_pool_store(o, g, i, best, where, zero)
        else:
            o[i], g[i] = best, where


@njit(cache=True, nogil=True, error_model="numpy")
def pair_winners(a, wp, out, arg, relu, vv, vk):
    """2×2 / 2 max-pool of one flat map ``a`` (row pitch wp) into out, arg (PH × PW; arg the
    flat index r·wp + q of each winner), after a ReLU when ``relu`` (``relu_pool_store``).
    Rows of 16k windows after a ReLU run ``_quad_winners``, other rows of ≥ 8 windows
    ``_compact_winners``; shorter ones (8×8 maps and smaller) the pairs here:

    Each vertical pair's winner (u, u + wp) first, over the whole map in one loop of
    unit-stride loads that vectorises, then per pooled row each horizontal pair of those. Ties
    go to the first in row-major order, as PyTorch's: between a bottom-left and a top-right
    winner, to the top-right one. The pairs the other way round (horizontal first, stride-2
    loads) ran scalar: 1.3-2× slower (LeNet-5's conv1 pool, batch 64, one core 0.21 → 0.14
    ms; a (64, 32, 32, 32) pool 1.0 → 0.56 ms)."""
    ph, pw = out.shape
    nv = len(vv)
    if nv == 0:
        return
    if relu and pw % QUAD_ROWS == 0:
        _quad_winners(a, wp, out, arg)
        return
    if 2 * pw >= COMPACT_PAIRS:
        _compact_winners(a, wp, out, arg, relu, vv, vk)
        return
    top, low = a[:nv], a[wp:wp + nv]
    low_row, top_row = np.int32(1), np.int32(0)
    for j in range(nv):
        lower = beats(low[j], top[j])
        vv[j] = low[j] if lower else top[j]
        vk[j] = low_row if lower else top_row
    zero = np.zeros(1, a.dtype)[0]
    for r in range(ph):
        o, g, base = out[r], arg[r], 2 * r * wp
        xs, ks = vv[base:base + 2 * pw], vk[base:base + 2 * pw]
        for q in range(pw):
            x, y, kx, ky = xs[2 * q], xs[2 * q + 1], ks[2 * q], ks[2 * q + 1]
            second = right_wins(x, y, kx, ky)
            best = y if second else x
            where = base + 2 * q + (ky * wp + 1 if second else kx * wp)
            if relu:
                relu_pool_store(o, g, q, best, where, zero)
            else:
                o[q], g[q] = best, where


@njit(cache=True, nogil=True)
def max_pool2d_part(xp, kh, kw, sh, sw, dh, dw, out, arg, s0, s1):
    """Samples s0..s1 of ``max_pool2d_forward``."""
    c, hp, wp = xp.shape[1], xp.shape[2], xp.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    if kh == kw == sh == sw == 2 and dh == dw == 1:
        vv, vk = pair_scratch(oh, ow, wp, xp.dtype)
        for b in range(s0, s1):
            for ch in range(c):
                pair_winners(xp[b, ch].reshape(hp * wp), wp, out[b, ch], arg[b, ch], False, vv,
                             vk)
        return
    for b in range(s0, s1):
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
                            # Strict: the first maximum wins. Selects, not a branch: on
                            # random data the branch mispredicted (a 2×2 pool of
                            # (64, 32, 32, 32) on one core: 10.4 → 5.5 ms).
                            take = beats(v, best)
                            at = (r0 + i * dh) * wp + q0 + j * dw
                            best, where = (v, at) if take else (best, where)
                    out[b, ch, r, q] = best
                    arg[b, ch, r, q] = where


def max_pool2d_forward(xp, kh, kw, sh, sw, dh, dw):
    """Returns (out, arg) where arg holds the flat index (row · width + col) of each winner;
    taps ``dh`` rows and ``dw`` columns apart."""
    xp = np.ascontiguousarray(xp)  # the 2×2 path reads each plane flat
    n, c, hp, wp = xp.shape
    oh, ow = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
    out = np.empty((n, c, oh, ow), dtype=xp.dtype)
    arg = np.empty((n, c, oh, ow), dtype=np.int32)
    split_rows(lambda s0, s1: max_pool2d_part(xp, kh, kw, sh, sw, dh, dw, out, arg, s0, s1), n)
    return out, arg


@njit(cache=True, nogil=True)
def max_pool2d_backward_part(dy, arg, dxp, s0, s1):
    """Samples s0..s1 of ``max_pool2d_backward`` into the flat planes ``dxp`` (zeros)."""
    c, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    for b in range(s0, s1):
        for ch in range(c):
            flat, g, at = dxp[b, ch], dy[b, ch], arg[b, ch]
            for r in range(oh):
                for q in range(ow):
                    flat[at[r, q]] += g[r, q]


def max_pool2d_backward(dy, arg, hp, wp):
    n, c = dy.shape[:2]
    dxp = np.zeros((n, c, hp * wp), dtype=dy.dtype)
    split_rows(lambda s0, s1: max_pool2d_backward_part(dy, arg, dxp, s0, s1), n)
    return dxp.reshape(n, c, hp, wp)


@njit(cache=True, nogil=True)
def avg_pool2d_part(xp, kh, kw, sh, sw, out, s0, s1):
    """Samples s0..s1 of ``avg_pool2d_forward``: per output row, each window row's taps added
    into a row of sums, one loop over the row per tap (2×2 / 2 windows: one loop over both
    columns, an interleaved load LLVM vectorises). Each sum is PyTorch's, in its order (window
    rows, then columns, from zero), divided once. A loop per output with its taps inside ran
    ~5× slower (64 × 16 × 32 × 32, one core: 1.46 ms). 2×2 / 2 windows sum their four taps in
    one loop over the output row, the same order: clearing and rereading a row of sums for
    each output row was most of the time on small maps (64 × 64 × 8 × 8, two cores: 189 →
    36 µs; 64 × 16 × 32 × 32 106 → 42)."""
    c, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    div, zero = out.dtype.type(kh * kw), out.dtype.type(0)
    acc = np.empty(ow, out.dtype)
    for b in range(s0, s1):
        for ch in range(c):
            plane = xp[b, ch]
            for r in range(oh):
                if kh == kw == sh == sw == 2:
                    top, low, dst = plane[2 * r], plane[2 * r + 1], out[b, ch, r]
                    for q in range(ow):
                        dst[q] = ((((zero + top[2 * q]) + top[2 * q + 1]) + low[2 * q])
                                  + low[2 * q + 1]) / div
                    continue
                acc[:] = 0
                for i in range(kh):
                    row = plane[r * sh + i]
                    if kw == 2 and sw == 2:
                        for q in range(ow):
                            acc[q] = (acc[q] + row[2 * q]) + row[2 * q + 1]
                    else:
                        for j in range(kw):
                            for q in range(ow):
                                acc[q] += row[q * sw + j]
                dst = out[b, ch, r]
                for q in range(ow):
                    dst[q] = acc[q] / div


def avg_pool2d_forward(xp, kh, kw, sh, sw):
    n, c, hp, wp = xp.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.empty((n, c, oh, ow), dtype=xp.dtype)
    split_rows(lambda s0, s1: avg_pool2d_part(xp, kh, kw, sh, sw, out, s0, s1), n)
    return out


@njit(cache=True, nogil=True)
def avg_pool2d_backward_part(dy, kh, kw, sh, sw, dxp, s0, s1):
    """Samples s0..s1 of ``avg_pool2d_backward`` into ``dxp`` (zeros where no window
    writes). Windows that do not overlap (stride ≥ kernel) each write their share into their
    own places, a loop over the row per tap (2×2 / 2: per window row); overlapping ones add,
    one output after another as before (an input's shares summed in the outputs' order)."""
    c, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    div = dy.dtype.type(kh * kw)
    g = np.empty(ow, dy.dtype)
    apart = sh >= kh and sw >= kw
    for b in range(s0, s1):
        for ch in range(c):
            plane = dxp[b, ch]
            for r in range(oh):
                src = dy[b, ch, r]
                for q in range(ow):
                    g[q] = src[q] / div
                for i in range(kh):
                    row = plane[r * sh + i]
                    if not apart:
                        for q in range(ow):
                            for j in range(kw):
                                row[q * sw + j] += g[q]
                    elif kw == 2 and sw == 2:
                        for q in range(ow):
                            row[2 * q] = g[q]
                            row[2 * q + 1] = g[q]
                    else:
                        for j in range(kw):
                            for q in range(ow):
                                row[q * sw + j] = g[q]


def avg_pool2d_backward(dy, kh, kw, sh, sw, hp, wp):
    n, c, oh, ow = dy.shape
    tiled = (kh, kw) == (sh, sw) and (hp, wp) == (oh * sh, ow * sw)  # every place written
    dxp = (np.empty if tiled else np.zeros)((n, c, hp, wp), dtype=dy.dtype)
    split_rows(lambda s0, s1: avg_pool2d_backward_part(dy, kh, kw, sh, sw, dxp, s0, s1), n)
    return dxp
