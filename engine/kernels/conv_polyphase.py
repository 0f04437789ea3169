"""5×5 convolutions at stride 2 as Winograd F(4×4, 3×3) convolutions over the input's four phases.

Output (r, q) of a stride-2 convolution reads padded input (2r + i, 2q + j). Split the input into
its phases x_ab[u, v] = x[2u + a, 2v + b] and the filter, padded to 6×6 with zeros, into
g_ab[u, v] = g[2u + a, 2v + b] (3×3 each): the convolution is then Σ_ab conv(x_ab, g_ab), a stride-1
3×3 convolution over 4·C channels, which ``conv_winograd`` runs with 36 multiplications per 16
outputs and channel pair: 9·C per output where the direct sum takes 25·C (the zero taps cost 11
of the 36). The phases are one copy of the input (``phases``: the layers hand x over unpadded),
x's own where its sides and padding are even, Winograd then reading their zero margin in place
(``_kept``; fwd + bwd, b64, one core, paired: 32 → 64 onto 4×4 1.19×, 16 → 32 and 32 → 64 onto
8×8 and 16×16 1.05-1.09×), else padded as they are made; the backward runs the stride-1
backward on them and puts the input gradient back in x's places (``merge_phases``), the weight
gradient's taps back in the filter's (its padded row and column dropped). The forward keeps
the phases and the filters' transform for the backward (``phases_forward``), which made both
again before.

Measured on one core, batch 64, against ``conv_kn2row`` / ``conv_gemm_strided``, which ran these
before: 32 → 64 on 32×32 forward 19.6 → 18.1 ms, backward 49.1 → ~36 ms; 64 → 128 on 16×16
20.4 → 17.0 and 48.2 → ~33 ms; ``polyphase`` has the rule. float32 only, as Winograd's
transforms cost a few bits (relative errors ~1e-5 of the largest output).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_winograd import M
from layerloom.engine.kernels.conv_winograd_batch import (whole_batch,
                                                          winograd_image, winograd_image_grads)
from layerloom.engine.kernels.conv_winograd_plan import filter_transform, weight_grad
from layerloom.engine.kernels.conv_winograd_tile import one_tile3
from layerloom.engine.kernels.phase_planes import (merge_phases as merge, phase_sides,
                                                   split_phases)
from layerloom.engine.threads import split_rows

MAX_CHANNELS, MIN_SIDE = 128, 8  # input channels; output sides (but see ``polyphase``)
BATCH_PRODUCT = 1 << 17  # C·F from which maps of 4-7 outputs take the whole batch's phases
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))
SMALL_PLANE = 100  # phase values a plane up to which ``phases`` zeroes the whole batch first:
# the 6×6 planes of 8×8 maps padded by 2 are 56 % margins (b64, one core: 32 channels 0.53 →
# 0.25 ms), 16×16 maps' 10×10 ones 36 % (16 channels 0.67 → 0.42, 64 channels 2.0 → 1.4);
# 32×32 maps' 18×18 ones were even (2.5 vs 2.6)


def polyphase(w_shape: tuple, dtype, stride: tuple, dilation: tuple, groups: int,
              out_hw, n: int = 0) -> bool:
    """True when the phases' Winograd runs this convolution: float32 5×5 filters at stride 2,
    ≥ 16 filters from 4–128 channels (≥ 16 phase channels) on maps of ≥ 8×8 outputs. Measured
    at batch 64, forward + backward, one / two cores: 4 → 16 … 64 → 128 channels on 32×32 and
    16×16 inputs 1.07-1.58× / 0.99-1.53× the kernels before; through the Conv2D layer against
    im2col on the packed tile kernel (2026-12-05) 16 → 32 on 32×32 1.24×, 32 → 64 1.39×, 64 →
    64 on 16×16 1.29×, 128 → 128 1.23× / 1.05×. Maps of fewer outputs were taken from ≤ 64
    channels too, and lost to that im2col: 64 → 64 on 10×10 inputs 0.50× / 0.50×, on 12×12
    0.73× / 0.67×, on 14×14 0.94× / 0.91×, 16 → 32 on 8×8 0.69× / 0.62×.
    Given the batch ``n``, also C·F ≥ ``BATCH_PRODUCT`` on maps the whole batch's Winograd takes
    (``conv_winograd_batch``): 256 → 512 onto 4×4 at batch 64 1.13× / 1.05× im2col's; 256 → 256
    there was even on one core and 0.85× on two (it was 141 → 118 / 82 → 75 ms against the
    kernels before im2col's products ran on the tile kernel). Onto 4×4 outputs the phases are
    one 6×6 tile a channel (``conv_winograd_tile``'s products): from ≥ 32 channels, forward +
    backward with the input gradient, 8×8 inputs, one core / two, against im2col: 32 → 64 4.60
    → 3.93 / 3.16 → 2.79 ms, 64 → 128 15.3 → 12.9 / 9.3 → 9.0, 128 → 128 31.7 → 26.9 / 18.3 →
    16.6, 256 → 256 123 → 108 / 74 → 61 (16 → 32 even: 1.54 vs 1.54; 6×6 outputs lost, 0.69×)."""
    nf, c, kh, kw = w_shape
    side = min(out_hw)
    if not (np.dtype(dtype) == np.float32 and tuple(stride) == (2, 2) and groups == 1
            and tuple(dilation) == (1, 1) and (kh, kw) == (5, 5) and nf >= 16 and side >= 4):
        return False
    return ((4 <= c <= MAX_CHANNELS and side >= MIN_SIDE)
            or (c >= 32 and one_tile3(4 * c, nf, n, *out_hw))
            or (n > 0 and c * nf >= BATCH_PRODUCT and whole_batch(4 * c, nf, n, *out_hw)))


@njit(cache=True, nogil=True)
def _split(x, x4, top, left, margins, s0, s1):
    """Samples s0..s1 of ``phases``: phase k's channels at k·C, margins zeroed if ``margins``."""
    c, (hh, wh) = x.shape[1], x4.shape[2:]
    for s in range(s0, s1):
        split_phases(x[s], x4[s].ravel(), hh * wh, c * hh * wh, hh, wh, top, left, margins)


@njit(cache=True, nogil=True)
def _merge(dx4, dx, top, left, s0, s1):
    """Samples s0..s1 of ``merge_phases``."""
    c, (hh, wh) = dx.shape[1], dx4.shape[2:]
    for s in range(s0, s1):
        merge(dx4[s].ravel(), dx[s], hh * wh, c * hh * wh, 0, 0, wh, top, left)


def phases(x: np.ndarray, pad: tuple = (0, 0)) -> np.ndarray:
    """(N, 4·C, ⌈Hp/2⌉, ⌈Wp/2⌉): phase (a, b) of the batch zero-padded by ``pad``
    (Hp = H + 2·ph) in channels k·C..(k+1)·C for PHASES[k], made from ``x`` itself: one copy,
    not a padded copy and then the phases (with the phases kept for the backward, the
    strided 5×5 CNN's step 4-6 % faster, A/B in one process). The padding's rows and columns,
    and an odd side's shorter phase's last row (column), are zeros, which only the filters'
    zero padding reads. Samples over the cores; ``phase_planes.split_phases``, each row to
    both its phases in one loop (numpy's four strided slice copies and the margins: 1.44 →
    1.15 ms for 64 × 32 × 32 × 32 at padding 2 on one core, 16 × 16 maps even at 0.85)."""
    n, c, h, w = x.shape
    hh, wh = phase_sides(h, w, pad[0], pad[1])
    whole = tuple(pad) == (0, 0) and h % 2 == 0 and w % 2 == 0  # no margins to zero
    small = hh * wh <= SMALL_PLANE and not whole  # made zeroed: margins row by row cost more
    x4 = (np.zeros if small else np.empty)((n, 4 * c, hh, wh), x.dtype)  # than the memset
    x = np.ascontiguousarray(x)
    margins = not (small or whole)
    split_rows(lambda s0, s1: _split(x, x4, int(pad[0]), int(pad[1]), margins, s0, s1), n)
    return x4


def merge_phases(dx4: np.ndarray, h: int, w: int, pad: tuple = (0, 0)) -> np.ndarray:
    """The gradient (N, C, H, W) of the input that ``phases`` split with ``pad`` (its inverse:
    the padding's and the zero rows' gradients dropped), ``phase_planes.merge_phases`` a
    sample (numpy's slices: 1.25 → 0.91 ms onto 64 × 32 × 32 × 32, 0.51 → 0.60 onto 16 × 16)."""
    n, c4 = dx4.shape[:2]
    dx = np.empty((n, c4 // 4, h, w), dx4.dtype)
    dx4 = np.ascontiguousarray(dx4)
    split_rows(lambda s0, s1: _merge(dx4, dx, int(pad[0]), int(pad[1]), s0, s1), n)
    return dx


@njit(cache=True, nogil=True)
def _spread_taps(w, w4, back):
    """w4[f, k·C + c, i // 2, j // 2] = w[f, c, i, j], k = 2·(i mod 2) + j mod 2 (PHASES' order);
    with ``back`` the reverse, w from w4. numpy's four strided slice copies (3 values a row)
    took 1.7 ms for 128 × 64 filters a forward and 1.0 back, each step."""
    nf, c, kh, kw = w.shape
    for f in range(nf):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    k = 2 * (i % 2) + j % 2
                    if back:
                        w[f, ch, i, j] = w4[f, k * c + ch, i // 2, j // 2]
                    else:
                        w4[f, k * c + ch, i // 2, j // 2] = w[f, ch, i, j]


def phase_weights(w: np.ndarray) -> np.ndarray:
    """(F, 4·C, 3, 3): the filters padded to 6×6 with zeros, split as the input (``phases``)."""
    nf, c = w.shape[:2]
    w4 = np.zeros((nf, 4 * c, 3, 3), w.dtype)
    _spread_taps(np.ascontiguousarray(w), w4, False)
    return w4


def polyphase_forward(xp, w, b, relu: bool = False) -> np.ndarray:
    """conv(xp) + b at stride 2 (then max(·, 0) when ``relu``) of the padded batch."""
    return phases_forward(xp, w, b, (0, 0), relu)[0]


def phases_forward(x, w, b, pad: tuple, relu: bool = False) -> tuple:
    """(conv(x zero-padded by ``pad``) + b at stride 2 [then max(·, 0)], what
    ``phases_backward`` takes: the phases and the filters' transform, made once a step)."""
    x4, u, inner, _ = kept = _kept(x, w, pad)
    return winograd_image(x4, u, b, inner, relu), kept


def _kept(x, w, pad: tuple) -> tuple:
    """(the phases, the phase filters' Winograd transform, the padding Winograd reads around
    the phases in place, the padding the phases were split with). With even sides and even
    padding the phases are x's own, unpadded: x padded by 2 splits into x's phases with one
    zero row and column around each, which Winograd reads in place as padding (and onto 4×4
    outputs its input transform, a product over the 16 values of a 4×4 phase instead of the
    36 of a 6×6 one, and the input gradient's adjoint leave it out)."""
    h, w_ = x.shape[2:]
    if h % 2 == 0 and w_ % 2 == 0 and pad[0] % 2 == 0 and pad[1] % 2 == 0:
        inner, split = (pad[0] // 2, pad[1] // 2), (0, 0)
    else:
        inner, split = (0, 0), tuple(pad)
    return phases(x, split), filter_transform(phase_weights(w), M), inner, split


def polyphase_backward(xp, w, dy, need_dx: bool) -> tuple:
    """(d padded input or None, d weight, d bias) of ``polyphase_forward``."""
    return phases_backward(_kept(xp, w, (0, 0)), w.shape, dy, xp.shape[2:], need_dx)


def phases_backward(kept: tuple, w_shape: tuple, dy, hw: tuple, need_dx: bool) -> tuple:
    """(d x (of ``hw``, unpadded) or None, d weight, d bias) of ``phases_forward`` from what it
    kept (the forward's padding in it, as the phases' and Winograd's)."""
    x4, u, inner, split = kept
    dx4, du, db = winograd_image_grads(x4, u, dy, need_dx, inner)
    dw4 = weight_grad(du, M)
    dw = np.empty(w_shape, dw4.dtype)  # the padded taps' gradients dropped
    _spread_taps(dw, np.ascontiguousarray(dw4), True)
    return (merge_phases(dx4, *hw, split) if need_dx else None), dw, db
