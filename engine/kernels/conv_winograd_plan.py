"""The plain-numpy side of ``conv_winograd``: the transform matrices, the filters' transforms
(U = G g Gᵀ forward, the weight gradient Gᵀ dU G back), the rule that picks Winograd for a
convolution, and the un-pooling that hands the fused ReLU + max-pool's gradient to the backward.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_winograd5 import BT as _BT8
from layerloom.engine.kernels.winograd_filters import filters_grad, transform_filters
from layerloom.engine.threads import split_rows

# the transform matrices (Lavin & Gray 2016): Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A
MATRICES = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], np.float64)),
    # F(6×6, 3×3): the points 0, ±1, ±2, ±½, ∞ of F(4×4, 5×5), whose 8-point Bᵀ it shares; G
    # solved for that Bᵀ and checked exact (tests/engine): one 8×8 tile a 6×6 output map
    6: (_BT8,
        np.array([[-1, 0, 0], [-2 / 9, -2 / 9, -2 / 9], [-2 / 9, 2 / 9, -2 / 9],
                  [1 / 90, 1 / 45, 2 / 45], [1 / 90, -1 / 45, 2 / 45], [32 / 45, 16 / 45, 8 / 45],
                  [32 / 45, -16 / 45, 8 / 45], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 1, 1, 0]]
                 + [[0, 1, (-1) ** k, 2 ** k, (-2) ** k, .5 ** k, (-.5) ** k, k == 5]
                    for k in range(1, 6)], np.float64)),
}
KRON = {m: np.kron(g, g) for m, (_, g, _) in MATRICES.items()}  # (a², 9): U = (G ⊗ G) · vec(g)


def filter_transform(w: np.ndarray, m: int) -> np.ndarray:
    """U (a², F, C): U[p, f, c] = (G w[f, c] Gᵀ)[p], in ``w``'s dtype: the product with G ⊗ G
    (a² × 9), over the cores (``winograd_filters``)."""
    return transform_filters(w, KRON[m])


MIN_CHANNELS = 16
FEW_CHANNELS = 8  # channels in or filters from which maps of ≥ FEW_MAP outputs a side take it
FEW_MAP = 16  # (8-15 filters from ≥ 16 channels; 8-15 channels in: maps of ≥ 2·FEW_MAP)


def winograd_tile(w_shape: tuple, dtype, oh: int, ow: int) -> int:
    """m of the F(m×m, 3×3) that runs this stride-1 convolution and its backward, 0 for none:
    float32 3×3 filters with enough channels in and out for the products to outweigh the
    transforms. Measured at batch 64, interleaved with the kernels it replaces on one thread:
    forward 1.6-2× the matrix-product kernel's speed on 32×32, 16×16 and 8×8 maps of 32-128
    channels, backward 1.4-1.7×. A 6×6 output map takes F(6×6, 3×3), one 8×8 tile
    (``conv_winograd_tile``), where F(4×4, 3×3)'s 2×2 tiles spent 44 % of the products past the
    map: forward + backward with the input gradient through the layer's route, batch 64, one
    core / two: 16 → 16 1.17 → 0.55 ms, 64 → 64 6.86 → 3.19 / 3.49 → 1.80, 128 → 128 22.6 →
    12.6 / 11.8 → 5.8, 256 → 256 73.0 → 41.4 / 38.4 → 21.5.

    Fewer channels (2026-12-06, forward + backward with the input gradient, b64, one core /
    two, against the direct kernels on the packed tile kernel): 8 → 16 on 32×32 9.1 → 7.6 ms,
    8 → 32 17.3 → 13.3, 12 → 32 25.3 → 16.3, 8 → 8 5.1 vs 5.3 / 3.5 → 2.8, 16 → 8 on 16×16
    2.5 → 2.2 / 2.0 → 1.5; but 8 → 16 on 16×16 even (2.5 vs 2.3 / 1.5 vs 1.6), on 8×8 0.8 vs
    0.9, and from 3-6 channels the direct kernels won (3 → 32 9.0 vs 11.3, 6 → 16 7.2 vs 7.6)."""
    nf, c, kh, kw = w_shape
    if dtype != np.float32 or (kh, kw) != (3, 3) or min(nf, c) < FEW_CHANNELS or min(oh, ow) < 4:
        return 0
    side = min(oh, ow)
    if (c < MIN_CHANNELS and side < 2 * FEW_MAP) or (nf < MIN_CHANNELS and side < FEW_MAP):
        return 0
    return 6 if (oh, ow) == (6, 6) else 4


def tile_of(u: np.ndarray) -> int:
    """m of the F(m×m, 3×3) whose filter transform U (a², F, C) is: a = m + 2."""
    return int(round(np.sqrt(u.shape[0]))) - 2


def weight_grad(du: np.ndarray, m: int) -> np.ndarray:
    """dW (F, C, 3, 3) = Gᵀ dU G from ``winograd_backward``'s partial dU (summed in order)."""
    return filters_grad(du, KRON[m], 3, 3)


@njit(cache=True, nogil=True)
def unpool_part(dp, arg, wp, dz, s0, s1):
    """dz[:s1 - s0] = the output gradient of samples s0..s1 from their fused ReLU + max-pool's:
    dp at ``arg``'s winners (flat r·wp + q, −1 where ReLU clipped), zeros elsewhere. Each
    sample's planes are zeroed here, while they come into cache for the scatter. The Winograd
    backward calls it per chunk."""
    _, nf, ph, pw = dp.shape
    oh, ow = dz.shape[2], dz.shape[3]
    for s in range(s0, s1):
        plane = dz[s - s0].reshape(nf * oh * ow)
        for q in range(len(plane)):
            plane[q] = 0.0
        for f in range(nf):
            for r in range(ph):
                for q in range(pw):
                    at = arg[s, f, r, q]
                    if at >= 0:
                        plane[(f * oh + at // wp) * ow + at % wp] += dp[s, f, r, q]


def unpool(dp, arg, oh, ow, wp):
    """The gradient (N, F, OH, OW) of a convolution's output from its fused ReLU + max-pool's:
    dp where ``arg`` (flat index r·Wp + q, −1 where ReLU clipped) says, zeros elsewhere. The
    samples are split over the cores by ``engine.threads.split_rows`` (not numba's ``prange``,
    whose OpenMP workers would spin beside the engine's own)."""
    n, nf = dp.shape[:2]
    dz = np.empty((n, nf, oh, ow), dp.dtype)
    split_rows(lambda s0, s1: unpool_part(dp, arg, wp, dz[s0:s1], s0, s1), n)
    return dz
