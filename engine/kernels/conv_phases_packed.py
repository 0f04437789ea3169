"""float32 convolutions at stride 2 (3×3; 5×5 of few channel pairs), forward: one product per
sample on the packed tile kernel, reading the input's four phases in place (an implicit GEMM,
K = 9·C for 3×3 filters).

Output (r, q) of a stride-2 convolution reads padded input (2r + i, 2q + j). Split into its
phases x_ab[u, v] = x[2u + a, 2v + b] (each Hq × Wq, flat), tap (i, j) of output (r, q) is
phase (i mod 2, j mod 2) at (r + i // 2, q + j // 2): in a flat output layout of pitch Wq
(``conv_gemm``'s, Wq − OW columns thrown away) every tap (c, i, j) is one contiguous row read
at a fixed offset from the output's position, so the whole forward is W (F × 9·C) times those
rows, which ``packed.gemm_at`` takes as B rows at offsets (no im2col matrix, no packing pass),
accumulating the 9·C products of a register tile (``packed``). ``conv_kn2row`` ran the same sum
as nine BLAS products of depth C per band of rows (each packing its operands, each reading and
writing the accumulator), which at C = 16-64 ran well below the tile kernel's speed.

The phases are made from the unpadded input, the padding's zeros never written
(``phase_planes.split_phases``: the layers hand x over as to Winograd, ``conv.pad_free_route``'s
"packed"); the padded copy the layer made before took 1.3 ms of a 64 × 32 × 32 × 32 batch.
The kernels take any K × K filter at stride 2 (the taps of phase (a, b) are those with i ≡ a,
j ≡ b); ``packed_phases`` gives them 3×3 ones, ``few_pairs`` 3×3 and 5×5 ones of few channel
pairs or small maps. ``conv_phases_back`` runs the backward.

The kernel alone against ``conv_kn2row``'s (batch 64, bias, forward, one core / two, the same
padded input each call): 16 → 32 on 32×32 3.34 → 2.65 / 2.55 → 1.41 ms, 32 → 32 6.46 → 5.41 /
3.41 → 2.83, 32 → 64 10.8 → 9.6 / 6.9 → 5.3; through the layer ``packed_phases`` has the
figures. The bottleneck ResNet's inference (its 32 → 32 layer) 1.03-1.04× faster on two cores,
A/B in one process. The sums run in (c, i, j) order with one rounding each (``packed``): the
results differ from the BLAS's in the last bits and do not depend on the threads (a sample is
whole on one core).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.packed import PANEL, gemm_at, keep_alive
from layerloom.engine.kernels.phase_planes import phase_sides, split_phases
from layerloom.engine.threads import split_rows


MAX_CHANNELS = 64


def packed_phases(w_shape: tuple, dtype, stride: tuple, dilation: tuple, groups: int) -> bool:
    """True for the convolutions this file runs: float32 3×3 filters at stride 2 from at most
    ``MAX_CHANNELS`` channels, undilated and ungrouped, where ``conv_kn2row`` was chosen over
    im2col's route (16×16-and-up outputs, or few channel pairs). Through the Conv2D layer in
    inference (no padded copy here; a new input each call, A/B in one process, batch 64, two
    cores / one) against the padded kn2row: 16 → 32 on 32×32 1.86× / 1.35×, 32 → 32 1.56× /
    1.29×, 32 → 64 1.20× / 1.21×, 48 → 64 1.08× / 1.21×, 64 → 64 1.12-1.16× / 1.10×, 64 → 128
    1.13× / 1.07×; in training even (0.98-1.01×: the backward makes the padded copy). Where
    im2col runs (8×8 outputs of many channel pairs) this lost, as the phases' pitch wastes a
    fifth to a third of the products there: 64 → 128 on 16×16 0.85×, 128 → 128 on 8×8 0.75×,
    256 → 256 0.62× (two cores); 64 → 64 on 16×16 even."""
    return (np.dtype(dtype) == np.float32 and tuple(w_shape[2:]) == (3, 3)
            and w_shape[1] <= MAX_CHANNELS and tuple(stride) == (2, 2)
            and tuple(dilation) == (1, 1) and groups == 1)


SMALL_WORK = 1 << 16  # C·F·OH·OW up to which 5×5 stride-2 convolutions of ≤ 32 filters run here
FEW_CHANNELS = 16  # 3×3 stride-2 ones from fewer channels than this, onto ≥ 8×8 outputs


def few_pairs(w_shape: tuple, dtype, stride: tuple, dilation: tuple, groups: int,
              out_hw) -> bool:
    """True for the stride-2 convolutions of few channel pairs this file runs too (float32,
    plain), where the phases' Winograd (``conv_polyphase``), im2col or the direct strided
    kernels cost more in copies and transforms than the products they serve. Forward +
    backward with the input gradient, batch 64, against the route before, one core / two (ms):

    - 5×5 with ≤ 32 filters and C·F·OH·OW ≤ ``SMALL_WORK``: 8 → 16 on 32×32 inputs 7.5 → 6.1 /
      5.3 → 4.1, 16 → 16 14.2 → 11.7 / 7.4 → 6.0, 8 → 16 on 16×16 2.8 → 1.8 / 2.2 → 1.0, 16 →
      32 6.6 → 5.9 / 3.5 → 3.0, 32 → 32 12.1 → 11.3 / 6.5 → 5.9, 16 → 16 on 8×8 1.5 → 1.2 / 1.2
      → 0.9; RGB stems (no input gradient) 3 → 16 on 32×32 2.7 → 1.9 / 1.5 → 1.0, 3 → 32 4.0 →
      3.6 / 2.1 → 1.9. Even at the bounds (8 → 32 on 32×32 11.0 vs 10.8, 16 → 32 on 8×8 2.1 vs
      2.0); past them the Winograd won: 16 → 32 on 32×32 20.4 vs 18.6, 16 → 64 on 16×16 10.9
      vs 9.2, 32 → 64 21.5 vs 16.2.
    - 3×3 from fewer than ``FEW_CHANNELS`` channels onto ≥ 8×8 outputs (from 16 ``conv_kn2row``'s
      rule and ``packed_phases`` take them): 4 → 16 on 32×32 2.7 → 2.0 / 1.5 → 1.0, 8 → 16
      4.8 → 3.3 / 3.7 → 2.5, 8 → 32 9.7 → 7.7 / 4.9 → 3.8, 8 → 16 on 16×16 1.9 → 1.6 / 1.0 →
      0.8, 12 → 24 2.1 → 1.8 / 1.2 → 1.0; RGB stems 3 → 16 on 32×32 1.5 → 1.2 / 0.75 → 0.61,
      3 → 32 on 64×64 8.3 → 7.9, 3 → 32 on 32×32 even (3.0 / 1.1). Onto 4×4 outputs im2col won
      (16 → 32 on 8×8 1.05 vs 0.81)."""
    nf, c = w_shape[0], w_shape[1]
    if not (np.dtype(dtype) == np.float32 and tuple(stride) == (2, 2)
            and tuple(dilation) == (1, 1) and groups == 1):
        return False
    if tuple(w_shape[2:]) == (3, 3):
        return c < FEW_CHANNELS and min(out_hw) >= 8
    return (tuple(w_shape[2:]) == (5, 5) and nf <= 32
            and c * nf * out_hw[0] * out_hw[1] <= SMALL_WORK)


@njit(cache=True, nogil=True)
def tap_offsets(c, kh, kw, hq, wq):
    """Offset of tap (c, i, j) from an output's position in the flat phases, in the weight's
    order (c, i, j)."""
    offs = np.empty(c * kh * kw, np.int64)
    t = 0
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                offs[t] = ((ch * 4 + (i % 2) * 2 + j % 2) * hq + i // 2) * wq + j // 2
                t += 1
    return offs


@njit(cache=True, nogil=True)
def _forward_part(x, w2, b, out, relu, top, left, kh, kw, s0, s1):
    """Samples s0..s1 of ``phases_packed_forward``: the sample's phases, one product into a
    (F × panels·16) accumulator at pitch Wq, then bias (and ReLU, as ``np.maximum``) on the way
    out."""
    c, nf, oh, ow = x.shape[1], out.shape[1], out.shape[2], out.shape[3]
    hq, wq = phase_sides(x.shape[2], x.shape[3], top, left)
    panels = -(-((oh - 1) * wq + ow) // PANEL)
    # the last panel reads up to 15 positions past the last output: room for it after the planes
    ph = np.zeros(c * 4 * hq * wq + 2 * PANEL, x.dtype)
    offs = tap_offsets(c, kh, kw, hq, wq)
    acc = np.empty((nf, panels * PANEL), x.dtype)
    zero = np.zeros(1, out.dtype)[0]
    for s in range(s0, s1):
        split_phases(x[s], ph, 4 * hq * wq, hq * wq, hq, wq, top, left, False)
        gemm_at(np.int64(w2.ctypes.data), w2.shape[1], nf, w2.shape[1],
                np.int64(ph.ctypes.data), PANEL, panels, offs, np.int64(acc.ctypes.data),
                panels * PANEL, False)
        for f in range(nf):
            bias, line = b[f], acc[f]
            for r in range(oh):
                src, dst = line[r * wq:r * wq + ow], out[s, f, r]
                for q in range(ow):
                    v = src[q] + bias
                    dst[q] = max(v, zero) if relu else v  # np.maximum's NaN and −0
    keep_alive(ph)  # read and written by the tile kernel through their addresses
    keep_alive(w2)
    keep_alive(acc)


def phases_packed_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool = False,
                          pad: tuple = (0, 0)) -> np.ndarray:
    """conv(x zero-padded by ``pad``) + b at stride 2 (then max(·, 0) when ``relu``) of a
    float32 batch, for K × K filters (``packed_phases``, ``few_pairs``). The padding is
    never copied: the phases are made from x with their zeros in place (the layers hand x over
    unpadded, as to Winograd: ``conv.pad_free_route``)."""
    n, c, h, wd = x.shape
    nf, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    top, left = int(pad[0]), int(pad[1])
    x = np.ascontiguousarray(x)
    out = np.empty((n, nf, (h + 2 * top - kh) // 2 + 1, (wd + 2 * left - kw) // 2 + 1),
                   np.float32)
    w2 = np.ascontiguousarray(w.reshape(nf, -1), dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    split_rows(lambda s0, s1: _forward_part(x, w2, b, out, bool(relu), top, left, kh, kw, s0,
                                                  s1), n)
    return out
