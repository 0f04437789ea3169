"""float32 1×1 convolutions through the packed tile kernel (``kernels.packed``): the forward
Y_n = [W | b] · [X_n ; 1], the input gradient dX_n = Wᵀ · dY_n and the weight gradient
Σ_n dY_n · X_nᵀ, one sample at a time.

A 1×1 convolution is a product only C (or F) deep over many pixels: at 32×32 maps OpenBLAS ran
16-128 deep products at 23-51 GFLOP/s (the bottleneck ResNet's 1×1 layers, 2/3 of its
inference), far from the ~110 the tile kernel reaches. Read in place, a sample's channels lie
a map apart (4 KB on 32×32), every B row of a tile in the same cache set: no faster. So each
sample's pixels are first copied into panels of 16 (``packed.pack``; at stride 2 the stride's
pixels are taken first, ``_taken``), then one ``gemm_packed`` over the panels writes the
sample's output rows in place. The bias is a row of ones under the pixels and a column of W:
its fused multiply-add by 1 rounds as the sum's ``+ b`` (the same bits as the product then the
bias), and no pass of its own. The ReLU (as ``np.maximum``) is one pass over the sample's
output while it is in cache. Each output is the sum over the channels in order, one rounding a
step, whatever the split of the batch over the cores. The weight gradient contracts over the pixels,
the contiguous axis of both operands: the one of fewer channels is transposed into panels
(``_columns``), the other read in place, over fixed runs of samples (``WEIGHT_PARTS``).

``packed_pointwise``, ``packed_input_grad_wins`` and ``packed_weight_grad_wins`` have the
rules, with their measurements.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.packed import PANEL, gemm_packed, pack
from layerloom.engine.threads import split_rows

WEIGHT_PARTS = 8  # fixed runs of samples whose weight gradients are summed apart, in order
MIN_OUTPUTS = 16  # a sample's output pixels: one panel (fewer would leave it mostly empty)
MAX_OUTPUTS = 64  # from 8×8 maps on, the BLAS's products (``packed_pointwise``)


def packed_pointwise(w_shape: tuple, groups: int, dtype, stride: tuple, out_hw) -> bool:
    """True when ``packed_forward`` runs this 1×1 convolution's forward (before the BLAS's
    products in ``conv_pointwise``): float32 at stride 1 with ≥ 128 filters onto maps of 16 to
    63 outputs (4×4 to 7×7), where a sample's BLAS product is only a few columns wide. Measured
    at batch 64 on an AVX2 VM against the BLAS's product a sample (bias and ReLU in its pass),
    one core / two: 256 → 512 on 4×4 1.18× / 1.12×, 512 → 512 1.27× / 1.27×, 256 → 256 1.15× /
    1.18×, 256 → 1024 1.23× / 1.29×. On larger maps the BLAS's product won (``conv_pointwise.
    _wide``; on the AVX-512 VMs this kernel had won 1.1-1.9× there against the products with
    whole-batch bias and ReLU passes before them). Stride 2 stays with the BLAS: in the
    bottleneck ResNet the forward's copy of the stride's pixels ran 0.5-2.5 ms by where the
    input lay against the copy's buffer, which the gather into panels felt more."""
    outputs = out_hw[0] * out_hw[1]
    return (np.dtype(dtype) == np.float32 and tuple(w_shape[2:]) == (1, 1) and groups == 1
            and tuple(stride) == (1, 1) and MIN_OUTPUTS <= outputs < MAX_OUTPUTS
            and w_shape[0] >= 128)


def packed_input_grad_wins(w_shape: tuple, dtype, outputs: int) -> bool:
    """True when ``packed_input_grad`` makes the input gradient of a 1×1 convolution the BLAS
    route (``conv_pointwise``) runs: float32 onto ≥ 256 outputs, from as many channels as
    filters or from ≥ 64 channels and ≥ F/2. Measured at batch 64 against the BLAS's products,
    one core / two: 64 → 32 on 32×32 1.40× / 1.50×, 64 → 16 2.20× / 2.05×, 32 → 32 1.38× /
    1.37×, 64 → 128 at stride 2 onto 16×16 1.39× / 1.84×, 128 → 64 on 16×16 1.07× / 1.30×,
    128 → 32 1.40× / 1.45×, 64 → 64 1.10× / 1.05×, 64 → 128 0.96× / 1.10×. Here the gather
    copies dY (F floats a pixel against C·F multiply-adds): many filters onto few channels
    lost (32 → 128 on 16×16 0.88× / 0.89×, 32 → 64 0.74× / 0.80×), as did maps of < 256
    outputs (64 → 64 on 8×8 0.86× / 0.88×, on 14×14 0.84× / 0.86×)."""
    nf, c = w_shape[:2]
    return (np.dtype(dtype) == np.float32 and outputs >= 256
            and (c >= nf or (c >= 64 and 2 * c >= nf)))


def packed_weight_grad_wins(w_shape: tuple, dtype, stride: tuple) -> bool:
    """True when ``packed_weight_grad`` makes the weight gradient of a 1×1 convolution the BLAS
    route (``conv_pointwise``) runs: float32, ≥ 16 channels and ≥ 16 filters, C·F ≥ 1024, at
    stride 1 or from ≥ 64 of each. Measured at batch 64 against the BLAS's product per sample,
    one core / two: on 32×32 maps 16 → 64 1.56× / 1.70×, 32 → 64 1.35× / 1.47×, 64 → 32
    1.60× / 1.47×, 64 → 16 2.22× / 2.37×, 32 → 32 1.52× / 1.38×; 48 → 96 on 16×16 1.27× /
    1.30×, 128 → 128 1.33× / 1.17×, 256 → 64 on 8×8 1.62× / 1.64×, 40 → 80 on 28×28 1.17× /
    1.18×; at stride 2 64 → 128 onto 16×16 1.11× / 1.27×, 128 → 256 onto 8×8 1.23× / 1.27×.
    The copy into panels is the smaller operand's (min(C, F) floats a pixel against C·F
    multiply-adds): small products lost (32 → 16 0.72×, 16 → 16 0.57×, 24 → 40 on 20×20
    0.59×, 3 → 64 0.44× / 0.42×), as did 32 → 64 at stride 2 (0.97× / 0.83×), whose
    stride's positions are copied first."""
    nf, c = w_shape[:2]
    small = min(c, nf)
    return (np.dtype(dtype) == np.float32 and small >= 16 and c * nf >= 1024
            and (tuple(stride) == (1, 1) or small >= 64))


@njit(cache=True, nogil=True)
def forward_part(xp, wb, sh, sw, y, relu, s0, s1):
    """y[s] (F, OH·OW) = wb (F, C + 1: W | b) · [xp[s] at the stride ; 1] for s0 ≤ s < s1,
    then max(·, 0) as ``np.maximum(·, 0)`` (NaN kept, −0 made 0) when ``relu``."""
    c = xp.shape[1]
    nf, hw = y.shape[1], y.shape[2]
    buf = np.empty((-(-hw // PANEL), c + 1, PANEL), np.float32)  # ``pack`` fills rows < C
    buf[:, c, :] = 1
    strided = sh != 1 or sw != 1
    xs = np.empty((c if strided else 0, hw), np.float32)
    zero = np.float32(0)
    for s in range(s0, s1):
        if strided:  # the stride's pixels first, then into panels as at stride 1
            _taken(xp[s], sh, sw, xs)
        pack(xs if strided else xp[s].reshape(c, hw), buf[:, :c])
        gemm_packed(wb, buf, y[s], False)
        out = y[s].reshape(nf * hw)
        if relu:
            for i in range(nf * hw):
                v = out[i]
                out[i] = v if v > zero or v != v else zero


@njit(cache=True, nogil=True)
def input_grad_part(dy, wt, sh, sw, dxp, s0, s1):
    """dxp[s] = Wᵀ · dy[s] (wt (C, F) contiguous; dy (N, F, OH, OW)) put at the stride's
    positions of the padded input, zeros elsewhere, for s0 ≤ s < s1."""
    nf, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    c, hp, wp = dxp.shape[1], dxp.shape[2], dxp.shape[3]
    hw = oh * ow
    buf = np.empty((-(-hw // PANEL), nf, PANEL), np.float32)
    direct = sh == 1 and sw == 1 and hp == oh and wp == ow
    scratch = np.empty((0 if direct else c, hw), np.float32)
    for s in range(s0, s1):
        pack(dy[s].reshape(nf, hw), buf)
        if direct:
            gemm_packed(wt, buf, dxp[s].reshape(c, hw), False)
            continue
        gemm_packed(wt, buf, scratch, False)
        dxp[s] = 0
        for k in range(c):
            for r in range(oh):
                row = dxp[s, k, r * sh]
                for q in range(ow):
                    row[q * sw] = scratch[k, r * ow + q]


@njit(cache=True, nogil=True)
def _columns(src, buf):
    """buf[p, q, j] = src[16p + j, q] (src (K, HW) contiguous): src's rows as the columns of
    panels of 16, one row a pixel; spare columns left alone. By blocks of 16 pixels, so a
    block's stores stay in one 1 KB run (a row at a time over all the pixels stored a float a
    cache line, 16 times over: twice the time)."""
    k, hw = src.shape
    whole = hw // PANEL * PANEL
    for p in range(buf.shape[0]):
        dst, r0, r1 = buf[p], p * PANEL, min(k, (p + 1) * PANEL)
        if r1 - r0 == PANEL:  # constant trip counts: LLVM unrolls the 16 × 16 block
            for q0 in range(0, whole, PANEL):
                for j in range(PANEL):
                    row = src[r0 + j]
                    for q in range(PANEL):
                        dst[q0 + q, j] = row[q0 + q]
        else:
            for q0 in range(0, whole, PANEL):
                for r in range(r0, r1):
                    row = src[r]
                    for q in range(PANEL):
                        dst[q0 + q, r - r0] = row[q0 + q]
        for r in range(r0, r1):
            for q in range(whole, hw):
                dst[q, r - r0] = src[r, q]


@njit(cache=True, nogil=True)
def _taken(x, sh, sw, out):
    """out (C, OH·OW) = x (C, Hp, Wp) at the stride's positions."""
    oh, ow = (x.shape[1] - 1) // sh + 1, (x.shape[2] - 1) // sw + 1
    for ch in range(x.shape[0]):
        for r in range(oh):
            row, dst = x[ch, r * sh], out[ch, r * ow:(r + 1) * ow]
            for q in range(ow):
                dst[q] = row[q * sw]


@njit(cache=True, nogil=True)
def weight_grad_part(xp, dy, sh, sw, x_columns, sums, p0, p1):
    """sums[pi] = Σ over part pi's samples s of dY_s (F × OH·OW) · X_sᵀ (X at the stride's
    positions), for parts p0 ≤ pi < p1, with ``x_columns`` as (F, C rounded up to 16) from X's
    channels in panels, else transposed, (C, F rounded up) from dY's: the operand of fewer
    channels is the one copied. The samples of a part in order, each product adding onto the
    last (the parts are fixed runs of samples, not the cores')."""
    n, c = xp.shape[0], xp.shape[1]
    nf, hw = dy.shape[1], dy.shape[2] * dy.shape[3]
    parts, width = len(sums), sums.shape[2]
    strided = sh != 1 or sw != 1
    xs = np.empty((c if strided else 0, hw), np.float32)
    buf = np.zeros((width // PANEL, hw, PANEL), np.float32)  # spare columns stay 0
    for pi in range(p0, p1):
        for s in range(pi * n // parts, (pi + 1) * n // parts):
            x2 = xs if strided else xp[s].reshape(c, hw)
            if strided:
                _taken(xp[s], sh, sw, xs)
            d2 = dy[s].reshape(nf, hw)
            _columns(x2 if x_columns else d2, buf)
            gemm_packed(d2 if x_columns else x2, buf, sums[pi], s > pi * n // parts)


def packed_forward(xp: np.ndarray, w: np.ndarray, b: np.ndarray, stride: tuple,
                   relu: bool = False) -> np.ndarray:
    """conv(xp) + b for a float32 1×1 ``w`` (F, C, 1, 1) over a C-contiguous batch, then
    max(·, 0) when ``relu``."""
    xp = np.ascontiguousarray(xp)
    n, c, hp, wp = xp.shape
    sh, sw = (int(s) for s in stride)
    oh, ow = (hp - 1) // sh + 1, (wp - 1) // sw + 1
    nf = len(w)
    wb = np.empty((nf, c + 1), np.float32)
    wb[:, :c] = w.reshape(nf, c)
    wb[:, c] = b
    y = np.empty((n, nf, oh * ow), np.float32)
    relu = bool(relu)
    split_rows(lambda s0, s1: forward_part(xp, wb, sh, sw, y, relu, s0, s1), n)
    return y.reshape(n, nf, oh, ow)


def packed_input_grad(dy: np.ndarray, w: np.ndarray, padded_hw: tuple,
                      stride: tuple) -> np.ndarray:
    """The gradient of the (Hp, Wp) padded float32 input of ``packed_forward`` from its output
    gradient dy (N, F, OH, OW)."""
    dy = np.ascontiguousarray(dy, np.float32)
    n, nf = dy.shape[:2]
    c = w.shape[1]
    wt = np.ascontiguousarray(w.reshape(nf, c).T)
    dxp = np.empty((n, c, *padded_hw), np.float32)
    sh, sw = (int(s) for s in stride)
    split_rows(lambda s0, s1: input_grad_part(dy, wt, sh, sw, dxp, s0, s1), n)
    return dxp


def packed_weight_grad(xp: np.ndarray, dy: np.ndarray, stride: tuple) -> np.ndarray:
    """dW (F, C, 1, 1) of ``packed_forward``'s float32 1×1 weight: Σ_n dY_n · X_nᵀ over fixed
    runs of samples (``WEIGHT_PARTS``), their sums added in order: the same for any thread
    count."""
    xp = np.ascontiguousarray(xp, np.float32)
    dy = np.ascontiguousarray(dy, np.float32)
    n, c, nf = len(xp), xp.shape[1], dy.shape[1]
    parts, x_columns = max(1, min(n, WEIGHT_PARTS)), c <= nf
    rows, cols = (nf, c) if x_columns else (c, nf)
    sums = np.empty((parts, rows, -(-cols // PANEL) * PANEL), np.float32)
    sh, sw = (int(s) for s in stride)
    split_rows(lambda p0, p1: weight_grad_part(xp, dy, sh, sw, x_columns, sums, p0, p1), parts)
    dw = np.add.reduce(sums, axis=0)[:, :cols]
    return np.ascontiguousarray(dw if x_columns else dw.T).reshape(nf, c, 1, 1)
