"""Stride-1 convolutions with large kernels (5×5 and up) and stride-2 ones over many channels: one
matrix product per filter tap on the padded input (or its phases) read in place, no im2col.

In a sample's flat padded input (C rows of Hp·Wp values) the window tap (i, j) reads for output
(r, q) starts at (r + i)·Wp + q + j, so for all outputs of a band of rows it is one (C × L)
matrix at offset (r0 + i)·Wp + j with rows Hp·Wp apart, L = (rows − 1)·Wp + OW: output (r, q)
sits at column (r − r0)·Wp + q, and the Wp − OW columns between two output rows are thrown away
(``conv_gemm``'s flat layout). So the forward is Σ over taps of W_tap (F × C) · window, added
into one (F × L) accumulator by the BLAS itself (β = 1, ``kernels.blas``). The im2col of
``conv_gemm_strided`` copied the input 25 times for a 5×5 kernel into a matrix past L2 (800 ×
1024 floats for 32 channels on 32×32 maps).

The backward works on ``shifted``: dY laid out at pitch Wp (zeros in the gap columns), KW
times, row (j, f) moved j columns right. With the input's rows stacked KH times (row (i, c)
starting i·Wp later) the whole weight gradient is one product, shifted · stackedᵀ (KW·F × KH·C;
one product per tap, F × C, ran at ~65 GFLOP/s), and the input gradient is KH products
W_i (C × KW·F) · shifted added onto the windows of dX. 32 → 32 channels, 5×5, 32×32 maps,
batch 64, one core, against ``conv_gemm_strided``: forward 51 → 25 ms, backward 86 → 58 ms;
64 → 64 on 16×16 maps 35 → 26 and 64 → 53 ms; 64 → 128 on 16×16 as fast as before.

A stride-2 convolution is the sum of stride-1 ones over the input's four phases (x[c, 2u + a,
2v + b]), each with the taps i ≡ a, j ≡ b: the phases are copied once a sample (one pass, the
input's size), and everything above runs on them at pitch Wq = ⌈Wp / 2⌉.

Samples are split over the cores (``engine.threads.split_rows``); the weight gradient is summed
over fixed runs of samples (``PARTS``) in order, so it does not depend on the thread count.
Stride 2's columns split with ``phase_planes.split_row`` (an edit there recompiles this:
``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.blas import NO_TRANS, TRANS, gemm
from layerloom.engine.kernels.phase_planes import split_row
from layerloom.engine.kernels.packed import keep_alive
from layerloom.engine.threads import split_rows

BAND = 160  # output columns (rows × Wp) per forward product: 4 rows of a 36-wide input; whole
# 32×32 samples (1152) ran the 32 → 32 5×5 forward at 116 GFLOP/s, bands of 144-576 at 137-145
PARTS = 8  # the weight gradient's partial sums, each over a fixed run of samples
MAX_MAP = 64 * 64  # outputs a map, at most: the backward's buffers hold a whole sample's
# (KW·F + KH·C rows of OH·Wq: 11 MB a core for 64 channels on 64×64 maps); larger maps stay
# on im2col's chunks of 256 positions (measured here up to 32×32)


def prefers_kn2row(w_shape: tuple, groups: int, stride: tuple, dilation: tuple, dtype,
                   oh: int, ow: int, backward: bool = False) -> bool:
    """float32 over ≥ 16 channels in and out (2-D kernels: Conv1d's 1 × K were not measured). At
    stride 1 5×5-and-up kernels on maps of ≥ 256 outputs, forward and backward; measured against
    ``conv_gemm_strided`` (one core, batch 64, forward): 16 → 32 and 32 → 32 on 32×32 maps 2-2.3×
    faster, 64 → 64 on 16×16 1.35×; 128 → 128 on 8×8 10 % slower (short rows: the products are too
    narrow), a 3 → 32 stem far slower (3-deep products). At stride 2, through the input's phases,
    3×3 and larger kernels with ≥ 64 outputs a map: the forward 5×5 32 → 64 on 32×32 17.3 → 13.1 ms,
    3×3 32 → 32 on 32×32 5.1 → 3.3 ms, 64 → 128 on 16×16 5.9 → 5.3 ms (128 → 256 with 4×4 outputs
    6.0 → 7.7 ms: not taken); the backward where C·F ≤ 4096: 5×5 32 → 32 on 32×32 24.4 → 17.6 ms,
    3×3 16 → 32 and 32 → 32 on 32×32 1.2× faster, 64 → 64 on 16×16 1.1×, 32 → 64 5×5 1.04×,
    while 64 → 128 and 128 → 128 were 4-7 % slower (left to im2col). Measured again after
    im2col's gather for narrow maps and its products on the packed tile kernel: see the rule's
    comments (stride 2 keeps the forward on 16×16 outputs and of few channel pairs, the
    backward of 5×5 kernels)."""
    nf, c, kh, kw = w_shape
    if np.dtype(dtype) != np.float32 or groups != 1 or tuple(dilation) != (1, 1) \
            or c < 16 or nf < 16 or oh * ow > MAX_MAP:
        return False
    if tuple(stride) == (1, 1):
        return kh >= 5 and kw >= 5 and oh * ow >= 256
    if tuple(stride) != (2, 2) or kh < 3 or kw < 3 or oh * ow < 64:
        return False
    if backward:  # since im2col's products run on the packed tile kernel, 3×3 ones lose to it
        # on 16×16 outputs too (batch 64, two cores: 32 → 64 10.8 vs 9.2 ms, 32 → 32 6.5 vs 6.1,
        # 16 → 32 3.4 vs 3.5, a tie; one core 19.9 vs 17.5, 11.7 vs 11.6, 5.6 vs 5.8), as on
        # 8×8 outputs since its gather for narrow maps; 5×5 ones still win
        return c * nf <= 4096 and kh * kw >= 25
    return oh * ow >= 256 or c * nf < 2048  # on 8×8 outputs im2col (packed) won from 32 → 64
    # (two cores 1.09 vs 1.21 ms, 64 → 64 2.12 vs 2.21, 64 → 128 3.57 vs 4.00; one core 2.23 vs
    # 2.29, 4.27 vs 4.22, 7.04 vs 7.73); 16 → 32 and 32 → 32 tie


@njit(cache=True, nogil=True)
def _phases(xs, ph, back):
    """ph[c, a, b, u, v] = xs[c, u·sh + a, v·sw + b] (sh, sw from ph's shape): a sample's stride
    phases, each read with unit steps (tap (i, j) reads phase (i mod sh, j mod sw) from
    (r + i // sh, q + j // sw)); two columns' phases in one loop (``split_row``: a loop per
    phase, its stride a variable, became gathers). With ``back`` the reverse, xs[...] =
    ph[...], and zeros left in ph: the next sample's input-gradient products add onto it."""
    c, sh, sw = ph.shape[0], ph.shape[1], ph.shape[2]
    hp, wp = xs.shape[1], xs.shape[2]
    for ch in range(c):
        for y in range(hp):
            a, u, line = y % sh, y // sh, xs[ch, y]
            if sw == 2 and not back:  # both columns' phases in one loop, not two gathers
                split_row(line, ph[ch, a, 0, u], ph[ch, a, 1, u, :wp // 2])
                continue
            for b in range(sw):
                dst = ph[ch, a, b, u]
                if back:
                    for v in range((wp - b + sw - 1) // sw):
                        line[v * sw + b] = dst[v]
                        dst[v] = 0
                else:
                    for v in range((wp - b + sw - 1) // sw):
                        dst[v] = line[v * sw + b]


@njit(cache=True, nogil=True)
def _forward_part(xp, wt, b, out, sh, sw, rows, relu, s0, s1):
    """Samples s0..s1 of ``kn2row_forward``: per band of ``rows`` output rows, the taps'
    products into one accumulator (pitch Wq, the phases' width: Wp at stride 1), then bias
    (and ReLU, as ``np.maximum``) on the way out."""
    c, hp, wp = xp.shape[1], xp.shape[2], xp.shape[3]
    kh, kw, nf = wt.shape[0], wt.shape[1], wt.shape[2]
    oh, ow, size = out.shape[2], out.shape[3], xp.itemsize
    hq, wq = (hp + sh - 1) // sh, (wp + sw - 1) // sw
    phased = sh * sw > 1
    ph = np.zeros((c if phased else 0, sh, sw, hq, wq), xp.dtype)
    acc = np.empty((nf, rows * wq), xp.dtype)
    zero = np.zeros(1, out.dtype)[0]
    for s in range(s0, s1):
        if phased:
            _phases(xp[s], ph, False)
        base = ph.ctypes.data if phased else xp[s].ctypes.data
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            cols = (r1 - r0 - 1) * wq + ow
            for i in range(kh):
                for j in range(kw):
                    plane = ((i % sh) * sw + j % sw) * hq * wq
                    gemm(NO_TRANS, NO_TRANS, nf, cols, c, wt[i, j].ctypes.data, c,
                         base + (plane + (r0 + i // sh) * wq + j // sw) * size, sh * sw * hq * wq,
                         0 if i + j == 0 else 1, acc.ctypes.data, rows * wq, size == 8)
            for f in range(nf):
                bias, line = b[f], acc[f]
                for r in range(r0, r1):
                    src, dst = line[(r - r0) * wq:(r - r0) * wq + ow], out[s, f, r]
                    for q in range(ow):
                        v = src[q] + bias
                        dst[q] = max(v, zero) if relu else v  # np.maximum's NaN and −0
    keep_alive(ph)  # read by the BLAS through their addresses
    keep_alive(acc)


def kn2row_forward(xp: np.ndarray, w: np.ndarray, b: np.ndarray, stride: tuple = (1, 1),
                   relu: bool = False) -> np.ndarray:
    """conv(xp) + b (then max(·, 0) when ``relu``) of an already padded batch."""
    n, _, hp, wp = xp.shape
    nf, c, kh, kw = w.shape
    sh, sw = stride
    xp = np.ascontiguousarray(xp)
    out = np.empty((n, nf, (hp - kh) // sh + 1, (wp - kw) // sw + 1), xp.dtype)
    wt = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # (KH, KW, F, C): each tap's F × C
    rows = max(1, BAND // -(-wp // sw))
    split_rows(lambda s0, s1: _forward_part(xp, wt, b, out, sh, sw, rows, bool(relu), s0, s1), n)
    return out


@njit(cache=True, nogil=True)
def _backward_part(xp, wd, dy, kh, kw, sh, sw, dw_parts, db_parts, dxp, need_dx, p0, p1):
    """Partial sums p0..p1 of ``kn2row_backward``, serially: partial pi over its fixed run of
    samples into dw_parts[pi] (sh, sw, KWq·F, KHq·C) and db_parts[pi]; each sample's input
    gradient into dxp[s]. Per phase (a, b) of the input (at stride 1 the input itself) the taps
    i ≡ a, j ≡ b are a stride-1 convolution of that phase: ``shifted`` rows (j', f) hold dY at
    pitch Wq moved j' right, ``stacked`` rows (i', c) the phase from its row i'; ``wd``
    (sh, sw, KHq, C, KWq·F) holds the taps' weights, zeros where a phase has fewer taps."""
    n, c, hp, wp = xp.shape
    oh, ow, size = dy.shape[2], dy.shape[3], xp.itemsize
    nf, parts = dy.shape[1], len(dw_parts)
    khq, kwq = wd.shape[2], wd.shape[4] // nf
    hq, wq = (hp + sh - 1) // sh, (wp + sw - 1) // sw
    plane, phased = hq * wq, sh * sw > 1
    chs = sh * sw * plane  # one channel's phases (at stride 1: its map)
    ph = np.zeros((c if phased else 0, sh, sw, hq, wq), xp.dtype)
    dph = np.zeros((c if phased and need_dx else 0, sh, sw, hq, wq), xp.dtype)
    shifted = np.zeros((kwq * nf, oh * wq + kwq), xp.dtype)
    stacked = np.empty((khq * c, oh * wq + kwq), xp.dtype)
    pitch = shifted.shape[1]
    for pi in range(p0, p1):
        for s in range((pi * n) // parts, ((pi + 1) * n) // parts):
            for f in range(nf):
                for j in range(kwq):
                    line = shifted[j * nf + f]
                    for r in range(oh):
                        src, dst = dy[s, f, r], line[r * wq + j:r * wq + j + ow]
                        for q in range(ow):
                            dst[q] = src[q]
                total, flat = 0.0, dy[s, f].ravel()
                for q in range(ow * oh):
                    total += flat[q]
                db_parts[pi, f] += total
            if phased:
                _phases(xp[s], ph, False)
            src = ph.ravel() if phased else xp[s].ravel()
            dst = 0 if not need_dx else dph.ctypes.data if phased else dxp[s].ctypes.data
            for a in range(sh):
                for b in range(sw):
                    kh_a, kw_b = (kh - a + sh - 1) // sh, (kw - b + sw - 1) // sw
                    cols, at = (oh - 1) * wq + ow + kw_b - 1, (a * sw + b) * plane
                    for i in range(kh_a):
                        for ch in range(c):
                            o = ch * chs + at + i * wq
                            row, line = src[o:o + cols], stacked[i * c + ch]
                            for q in range(cols):
                                line[q] = row[q]
                    gemm(NO_TRANS, TRANS, kw_b * nf, kh_a * c, cols, shifted.ctypes.data, pitch,
                         stacked.ctypes.data, pitch, 1, dw_parts[pi, a, b].ctypes.data,
                         khq * c, size == 8)
                    for i in range(kh_a if need_dx else 0):
                        gemm(NO_TRANS, NO_TRANS, c, cols, kw_b * nf, wd[a, b, i].ctypes.data,
                             kwq * nf, shifted.ctypes.data, pitch, 1,
                             dst + (at + i * wq) * size, chs, size == 8)
            if phased and need_dx:
                _phases(dxp[s], dph, True)
    keep_alive(dph)  # read by the BLAS through their addresses
    keep_alive(shifted)
    keep_alive(stacked)


def kn2row_backward(xp: np.ndarray, w: np.ndarray, dy: np.ndarray, need_dx: bool,
                    stride: tuple = (1, 1)) -> tuple:
    """(d padded input or empty, d weight, d bias) of ``kn2row_forward``."""
    n, c, hp, wp = xp.shape
    nf, _, kh, kw = w.shape
    (sh, sw), khq, kwq = stride, -(-kh // stride[0]), -(-kw // stride[1])
    wpad = np.zeros((nf, c, khq * sh, kwq * sw), w.dtype)
    wpad[:, :, :kh, :kw] = w
    wd = np.ascontiguousarray(wpad.reshape(nf, c, khq, sh, kwq, sw).transpose(3, 5, 2, 1, 4, 0)
                              ).reshape(sh, sw, khq, c, kwq * nf)
    dxp = np.zeros((n if need_dx else 0, c, hp, wp), xp.dtype)
    parts = min(n, PARTS)
    dw_parts = np.zeros((parts, sh, sw, kwq * nf, khq * c), xp.dtype)
    db_parts = np.zeros((parts, nf), np.float64)
    xp, dy = np.ascontiguousarray(xp), np.ascontiguousarray(dy)
    split_rows(lambda p0, p1: _backward_part(xp, wd, dy, kh, kw, sh, sw, dw_parts, db_parts, dxp,
                                             bool(need_dx), p0, p1), parts)
    dw = np.add.reduce(dw_parts, axis=0, initial=0).reshape(sh, sw, kwq, nf, khq, c)
    dw = dw.transpose(3, 5, 4, 0, 2, 1).reshape(nf, c, khq * sh, kwq * sw)[:, :, :kh, :kw]
    return dxp, np.ascontiguousarray(dw), np.add.reduce(db_parts, axis=0,
                                                        initial=0).astype(xp.dtype)
