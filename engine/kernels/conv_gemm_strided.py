"""Strided (and dilated, grouped) convolutions as matrix products over chunks of samples: the
forward, the input gradient (also ConvTranspose2d's forward) and the weight gradient.

The row-by-row kernels of ``conv_strided`` and ``conv_grouped`` read a strided input one element
at a time; a transposed convolution at stride 2 took 20–50× PyTorch's time through them. Here a
chunk's receptive fields are copied once into a (taps × positions) matrix, column k·OH·OW + r·OW
+ q holding sample k's output position (r, q) and row (c, i, j) the input value at
(r·sh + i·dh, q·sw + j·dw) of channel c (im2col), and the BLAS does the rest: Y = W·cols,
dW = dY·colsᵀ, dcols = Wᵀ·dY, whose entries are added back onto the input positions they came
from (col2im). Each group is its own product. The chunks, whose bounds depend on the shapes
alone, are split over the cores by ``engine.threads.split_rows`` (not numba's ``prange``: its
OpenMP workers spin beside the engine's own, and a parfor costs seconds to compile); weight
gradients are summed per chunk (or fixed run of chunks) in order: results do not depend on the
thread count.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so threadpoolctl can limit it)
from numba import njit

from layerloom.engine.kernels.conv_flat import chunk_bounds
from layerloom.engine.kernels.conv_rows import crop, eight_at_stride2, from_rows, to_rows
from layerloom.engine.kernels.conv_winograd_batch import MIN_PRODUCT
from layerloom.engine.kernels.packed import gemm_packed, pack, panels_shape
from layerloom.engine.threads import split_rows

POSITIONS = 256  # output positions per chunk: a (taps × 256) matrix stays in L2 (2048 did not:
# 5×5 stride-2 convolutions of 32–64 channels ran their forward 25–38 % and backward 13–26 %
# slower at batch 64, one core, CPU time)
GATHER_BELOW = 16  # output columns: narrower maps' im2col gathers (one core, a 16-sample chunk:
# 128 → 256 3×3 stride 2 on 8×8 inputs 558 → 132 µs, col2im 610 → 167; 256 → 256 3×3 on 4×4
# 556 → 253; 64 → 128 on 16×16 134 → 62); at OW 16 a 5×5's runs copied faster (142 vs 170 µs)
SMALL_MAP = 36  # outputs of a map (6×6) up to which stride-1 5×5-and-up ones run here
WINOGRAD_MAP = 16  # and 3×3 ones below this (Winograd's F(4×4, 3×3) needs 4×4 maps)
SMALL_MAP3 = 25  # and 3×3 ones of C·F < MIN_PRODUCT up to this (5×5; see ``_small_map``)
PARTS = 8  # the weight gradient's partial sums: each over a fixed run of chunks, whatever the
# thread count (one per chunk made and summed 13 MB for a 32→64 5×5 at batch 64)


def prefers_gemm_strided(w_shape: tuple, groups: int, stride: tuple = (2, 2),
                         dtype=np.float32, out_positions: int | None = None) -> bool:
    """Enough taps and filters per group for real products (a depthwise convolution, one
    channel per group, stays on the direct kernels). At stride 1 only float32 with large kernels
    (5×5 and up) over many filters: their 25·C-deep products suit the BLAS; a CIFAR stem's 3→32
    5×5 took 0.6–0.8× the time of ``conv_gemm``'s forward and backward here (one core, b64).
    float64 stays where it was: the fused conv + ReLU + max-pool (``conv_gemm``) and the plain
    layers then sum in one order, so a fused LeNet equals the unfused one to the last bits.
    Given the output's ``out_positions``, float32 convolutions over ≥ 32 channels in and out
    on small maps come here too (``_small_map``)."""
    nf, cpg, kh, kw = w_shape
    if tuple(stride) == (1, 1):
        if np.dtype(dtype) != np.float32 or groups != 1:
            return False
        small = out_positions is not None and kh >= 3 and kw >= 3 and cpg >= 32 and \
            nf >= 32 and _small_map(kh * kw, cpg * nf, out_positions)
        return small or (kh >= 5 and kw >= 5 and nf >= 16 and cpg * kh * kw >= 64)
    return cpg * kh * kw >= 8 and nf // groups >= 4


def _small_map(taps: int, pairs: int, positions: int) -> bool:
    """A stride-1 convolution of ``taps`` taps and C·F ``pairs`` on a map of ``positions``
    outputs that runs here: 5×5 and up on ≤ ``SMALL_MAP``; 3×3 below 4×4 (``WINOGRAD_MAP``,
    where F(4×4, 3×3) does not apply), and on 5×5 maps unless ``conv_winograd_batch`` takes
    them. 3×3 on 4×4 to 6×6 maps all ran here until the Winograd kernels beat it (forward +
    backward, batch 64, one core: 64 → 64 on 4×4 3.7 → 2.4 ms, 128 → 128 12.5 → 8.1, 512 → 512
    183 → 88, 256 → 256 on 6×6 99.7 → 74.3). On 6×6 maps C·F below ``MIN_PRODUCT`` stayed here
    too (128 → 128 won or lost ~20 % from run to run); through the Conv2D layer, alternating,
    one / two cores, Winograd took 64 → 64 7.5 → 6.9 / 4.0 → 3.4 ms, 128 → 128 26.2 → 21.8 /
    13.3 → 11.0, 64 → 128 13.4 → 11.6 / 6.8 → 5.7, 128 → 64 15.0 → 13.1 (32 → 32 2.6 vs 2.7),
    while on 5×5 maps im2col kept ahead (64 → 64 5.4 vs 6.4 / 2.9 vs 3.4, 128 → 128 17.5 vs
    20.8 / 9.7 vs 10.9)."""
    if taps > 9:
        return positions <= SMALL_MAP
    return positions < WINOGRAD_MAP or (WINOGRAD_MAP < positions <= SMALL_MAP3
                                        and pairs < MIN_PRODUCT)


@njit(cache=True, nogil=True)
def _phases(xp, s0, s1, c0, c1, sh, sw, ph, back):
    """ph[k, c − c0, a, b, u, v] = xp[s0 + k, c, u·sh + a, v·sw + b] (the stride's polyphase
    components: each is read with unit steps); with ``back`` the reverse, added onto xp."""
    hp, wp = xp.shape[2], xp.shape[3]
    for k in range(s1 - s0):
        for ch in range(c0, c1):
            for y in range(hp):
                a, u = y % sh, y // sh
                line = xp[s0 + k, ch, y]
                for b in range(sw):
                    dst = ph[k, ch - c0, a, b, u]
                    if back:
                        for v in range((wp - b + sw - 1) // sw):
                            line[v * sw + b] += dst[v]
                    else:
                        for v in range((wp - b + sw - 1) // sw):
                            dst[v] = line[v * sw + b]


@njit(cache=True, nogil=True)
def _runs(planes, c0, c1, p0, kh, kw, dh, dw, sh, sw, oh, ow, cols, back):
    """cols[(c − c0, i, j), k·OH·OW + r·OW + q] = phase ((i·dh) mod sh, (j·dw) mod sw) of
    channel c at row r + ⌊i·dh / sh⌋, column q + ⌊j·dw / sw⌋: ``planes`` (K, C·sh·sw, H, W)
    holds each channel's sh·sw phases in turn, channel c0 at p0 (with ``back`` the reverse,
    added onto the planes)."""
    for k in range(planes.shape[0]):
        for ch in range(c0, c1):
            for i in range(kh):
                a, oi = (i * dh) % sh, (i * dh) // sh
                for j in range(kw):
                    b, oj = (j * dw) % sw, (j * dw) // sw
                    plane = planes[k, ((ch - p0) * sh + a) * sw + b]
                    row = cols[((ch - c0) * kh + i) * kw + j]
                    for r in range(oh):
                        src, dst = plane[r + oi, oj:oj + ow], row[k * oh * ow + r * ow:]
                        if back:
                            for q in range(ow):
                                src[q] += dst[q]
                        else:
                            for q in range(ow):
                                dst[q] = src[q]


@njit(cache=True, nogil=True)
def _gather(xp, s0, s1, c0, c1, kh, kw, sh, sw, dh, dw, oh, ow, cols, back):
    """``_im2col`` for maps narrower than ``GATHER_BELOW``: each tap's row is one long loop
    over the chunk's positions, reading the input through one table of their offsets (the
    same for every tap), where the runs' copies of OW values spent their time starting loops.
    The same values, added in the same order."""
    _, c, hp, wp = xp.shape
    flat = xp.reshape(xp.size)
    m = (s1 - s0) * oh * ow
    src = np.empty(m, np.int64)
    p = 0
    for k in range(s1 - s0):
        for r in range(oh):
            for q in range(ow):
                src[p] = ((s0 + k) * c * hp + r * sh) * wp + q * sw
                p += 1
    for ch in range(c0, c1):
        for i in range(kh):
            for j in range(kw):
                off, row = (ch * hp + i * dh) * wp + j * dw, cols[((ch - c0) * kh + i) * kw + j]
                if back:
                    for p in range(m):
                        flat[src[p] + off] += row[p]
                else:
                    for p in range(m):
                        row[p] = flat[src[p] + off]


@njit(cache=True, nogil=True)
def _im2col(xp, s0, s1, c0, c1, kh, kw, sh, sw, dh, dw, oh, ow, cols, back):
    """cols[(c − c0, i, j), k·OH·OW + r·OW + q] = xp[s0 + k, c, r·sh + i·dh, q·sw + j·dw] for
    channels c0:c1; with ``back`` the reverse, added onto xp (col2im).

    The chunk is first split into its polyphase components (one strided pass over the input, not
    one per tap): tap (i, j) then reads phase ((i·dh) mod sh, (j·dw) mod sw) from row
    r + ⌊i·dh / sh⌋, column q + ⌊j·dw / sw⌋, OW contiguous values per output row. Each sum
    adds the same terms in the same order as a direct gather would (``_gather``, which narrow
    maps take; 8-wide ones at stride 2 copy their rows in ``conv_rows.eight_at_stride2``)."""
    if ow == 8 and sw == 2 and not back:
        eight_at_stride2(xp, s0, s1, c0, c1, kh, kw, sh, dh, dw, oh, cols)
        return
    if ow < GATHER_BELOW:
        _gather(xp, s0, s1, c0, c1, kh, kw, sh, sw, dh, dw, oh, ow, cols, back)
        return
    if sh == 1 and sw == 1:  # the input is its own single phase
        _runs(xp[s0:s1], c0, c1, 0, kh, kw, dh, dw, 1, 1, oh, ow, cols, back)
        return
    hq, wq = (xp.shape[2] + sh - 1) // sh, (xp.shape[3] + sw - 1) // sw
    if back:
        ph = np.zeros((s1 - s0, c1 - c0, sh, sw, hq, wq), xp.dtype)
    else:
        ph = np.empty((s1 - s0, c1 - c0, sh, sw, hq, wq), xp.dtype)
        _phases(xp, s0, s1, c0, c1, sh, sw, ph, False)
    _runs(ph.reshape(s1 - s0, (c1 - c0) * sh * sw, hq, wq), c0, c1, c0, kh, kw, dh, dw, sh, sw,
          oh, ow, cols, back)
    if back:
        _phases(xp, s0, s1, c0, c1, sh, sw, ph, True)


@njit(inline="always")
def _packed_product(a, b, c, accumulate):
    """c (+)= a · b through ``kernels.packed``'s tile kernel, b (any strides) packed first (a
    copy at ~60 GB/s): the chunks' products (F × taps · taps × 256, Wᵀ · dZ, cols · dZᵀ) ran
    there at 107-112 GFLOP/s against OpenBLAS's 85-100 (one core of an EPYC)."""
    panels = np.empty(panels_shape(b.shape[0], b.shape[1]), np.float32)
    pack(b, panels)
    gemm_packed(a, panels, c, accumulate)


@njit(inline="always")
def _product(a, b, c, fast):
    """c = a · b: float32 (``fast``) on the tile kernel, float64 by the BLAS (the exact path)."""
    if fast:
        _packed_product(a, b, c, False)
    else:
        np.dot(a, b, c)


@njit(cache=True, nogil=True)
def forward_part(xp, w2, b, kh, kw, sh, sw, dh, dw, groups, bounds, out, fast, relu, c0, c1):
    """Chunks c0..c1 of ``gemm_forward_strided``, serially. A one-sample chunk of an ungrouped
    convolution (maps of ≥ 256 positions) multiplies straight into its output: its rows are
    the sample's maps, and ``from_rows``' copy of them cost ~1 ms of a 32 → 64 5×5 stride-2
    forward at b64. ``relu``: max(·, 0) with the bias, as ``np.maximum`` (NaN and −0 kept)."""
    fpg, cpg = len(w2) // groups, w2.shape[1] // (kh * kw)
    oh, ow = out.shape[2], out.shape[3]
    zero = np.zeros(1, out.dtype)[0]
    for ci in range(c0, c1):
        s0, s1 = bounds[ci], bounds[ci + 1]
        cols = np.empty((cpg * kh * kw, (s1 - s0) * oh * ow), xp.dtype)
        direct = groups == 1 and s1 - s0 == 1
        res = out[s0].reshape(fpg, oh * ow) if direct else \
            np.empty((fpg, (s1 - s0) * oh * ow), xp.dtype)
        for g in range(groups):
            _im2col(xp, s0, s1, g * cpg, (g + 1) * cpg, kh, kw, sh, sw, dh, dw, oh, ow, cols,
                    False)
            _product(w2[g * fpg:(g + 1) * fpg], cols, res, fast)
            for f in range(fpg):
                row, bias = res[f], b[g * fpg + f]
                for p in range(row.size):
                    v = row[p] + bias
                    row[p] = max(v, zero) if relu else v
            if not direct:
                from_rows(res, s0, s1, g * fpg, out)


def gemm_forward_strided(xp, w, b, sh, sw, dh, dw, groups, relu=False):
    """conv(xp) + b of an already padded, C-contiguous batch; ``w`` C-contiguous; ``relu``:
    then max(·, 0), in each chunk's pass (a separate numpy pass ran on one core: 0.4 ms of a
    32 → 64 3×3 stride-2 forward at b64)."""
    n, c, hp, wp = xp.shape
    nf, cpg, kh, kw = w.shape
    oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    w2 = w.reshape(nf, cpg * kh * kw)
    out = np.empty((n, nf, oh, ow), xp.dtype)
    bounds = chunk_bounds(n, POSITIONS, oh * ow)
    fast = xp.dtype == np.float32
    split_rows(lambda c0, c1: forward_part(xp, w2, b, kh, kw, sh, sw, dh, dw, groups, bounds,
                                           out, fast, bool(relu), c0, c1), len(bounds) - 1)
    return out


@njit(cache=True, nogil=True)
def input_grad_part(dy, w2, kh, kw, sh, sw, dh, dw, groups, bounds, dxp, fast, c0, c1):
    """Chunks c0..c1 of ``gemm_input_grad_strided``, serially."""
    oh, ow = dy.shape[2], dy.shape[3]
    fpg, cpg = len(w2) // groups, w2.shape[1] // (kh * kw)
    for ci in range(c0, c1):
        s0, s1 = bounds[ci], bounds[ci + 1]
        dz = np.empty((fpg, (s1 - s0) * oh * ow), dy.dtype)
        cols = np.empty((cpg * kh * kw, (s1 - s0) * oh * ow), dy.dtype)
        for g in range(groups):
            to_rows(dy, s0, s1, g * fpg, (g + 1) * fpg, dz)
            _product(np.ascontiguousarray(w2[g * fpg:(g + 1) * fpg].T), dz, cols, fast)
            _im2col(dxp, s0, s1, g * cpg, (g + 1) * cpg, kh, kw, sh, sw, dh, dw, oh, ow, cols,
                    True)


def gemm_input_grad_strided(dy, w, hp, wp, sh, sw, dh, dw, groups):
    """d padded input (N, C, Hp, Wp) of the convolution from its output gradient."""
    n, nf, oh, ow = dy.shape
    _, cpg, kh, kw = w.shape
    w2 = w.reshape(nf, cpg * kh * kw)
    dxp = np.zeros((n, cpg * groups, hp, wp), dy.dtype)
    bounds = chunk_bounds(n, POSITIONS, oh * ow)
    fast = dy.dtype == np.float32
    split_rows(lambda c0, c1: input_grad_part(dy, w2, kh, kw, sh, sw, dh, dw, groups, bounds, dxp,
                                              fast, c0, c1), len(bounds) - 1)
    return dxp


@njit(cache=True, nogil=True)
def backward_part(xp, wt, dy, kh, kw, sh, sw, dh, dw, bounds, dw_parts, db_parts, dx, ph, pw,
                  need_dx, fast, p0, p1):
    """Partial sums p0..p1 of ``gemm_backward_strided``, serially: partial pi over its fixed run
    of chunks into dw_parts[pi] and db_parts[pi], the input gradient into dx (each chunk's
    made in a zeroed padded scratch and cropped by (ph, pw) into dx's samples). ``fast``
    (float32): dw_parts is (parts, groups, taps + 1, F/groups), each chunk's dWᵀ = cols · dZᵀ
    added in place by the tile kernel (``_packed_product``), and cols' extra row of ones
    makes the last row db (dz's rows summed one by one took 1.2 ms of a 32→64 3×3 stride-2
    backward's 21, at b64: a dependent add per element); else (parts, 1, F, taps) by the BLAS
    and db_parts."""
    groups, taps, fpg = wt.shape
    cpg, oh, ow = taps // (kh * kw), dy.shape[2], dy.shape[3]
    k, parts = len(bounds) - 1, len(dw_parts)
    tmp = np.empty((0 if fast else fpg, taps), xp.dtype)  # the BLAS's dW of a chunk
    for pi in range(p0, p1):
        for ci in range((pi * k) // parts, ((pi + 1) * k) // parts):
            s0, s1 = bounds[ci], bounds[ci + 1]
            dz = np.empty((fpg, (s1 - s0) * oh * ow), xp.dtype)
            dxp = np.zeros((s1 - s0 if need_dx else 0,) + xp.shape[1:], xp.dtype)
            with_ones = np.empty((taps + 1 if fast else taps, (s1 - s0) * oh * ow), xp.dtype)
            with_ones[taps:] = 1  # (fast) the bias gradient's row
            cols = with_ones[:taps]
            for g in range(groups):
                to_rows(dy, s0, s1, g * fpg, (g + 1) * fpg, dz)
                _im2col(xp, s0, s1, g * cpg, (g + 1) * cpg, kh, kw, sh, sw, dh, dw, oh, ow,
                        cols, False)
                if fast:
                    _packed_product(with_ones, dz.T, dw_parts[pi, g], True)
                else:
                    np.dot(dz, cols.T, tmp)
                    dw_parts[pi, 0, g * fpg:(g + 1) * fpg] += tmp
                    for f in range(fpg):
                        db_parts[pi, g * fpg + f] += dz[f].sum()
                if need_dx:
                    _product(wt[g], dz, cols, fast)
                    _im2col(dxp, 0, s1 - s0, g * cpg, (g + 1) * cpg, kh, kw, sh, sw, dh, dw,
                            oh, ow, cols, True)
            if need_dx:
                crop(dxp, ph, pw, dx, s0)


def gemm_backward_strided(xp, w, dy, sh, sw, dh, dw, groups, need_dx: bool,
                          pad: tuple = (0, 0)) -> tuple:
    """(d input without its ``pad`` or empty, d weight, d bias) of the convolution of ``xp``:
    the weight gradient's and the input gradient's products in one pass over the chunks, which
    copy dY into rows once for both (the input gradient's are the same products, so the same
    sums, as ``gemm_input_grad_strided``'s). The partials are summed in order, from zero. The
    input gradient comes out C-contiguous and cropped, each chunk's in its part: a zeroed
    padded batch, then a view into it, cost two one-core passes (numpy's zeros, and the copy or
    strided sum its consumer made: ~0.5 ms each for 32 channels on 32×32 at b64)."""
    n, c, hp, wp = xp.shape
    nf, cpg, kh, kw = w.shape
    fpg, taps = nf // groups, cpg * kh * kw
    wt = np.ascontiguousarray(w.reshape(groups, fpg, taps).transpose(0, 2, 1))  # each group's Wᵀ
    bounds = chunk_bounds(n, POSITIONS, dy.shape[2] * dy.shape[3])
    parts = min(len(bounds) - 1, PARTS)  # partial sums over runs of chunks: not one per chunk
    fast = xp.dtype == np.float32  # (backward_part's layouts)
    dw_parts = np.zeros((parts, groups, taps + 1, fpg) if fast else (parts, 1, nf, taps),
                        xp.dtype)
    db_parts = np.zeros((0 if fast else parts, nf), xp.dtype)
    ph, pw = pad
    dx = np.empty((n if need_dx else 0, c, hp - 2 * ph, wp - 2 * pw), xp.dtype)
    need = bool(need_dx)
    split_rows(lambda p0, p1: backward_part(xp, wt, dy, kh, kw, sh, sw, dh, dw, bounds, dw_parts,
                                            db_parts, dx, ph, pw, need, fast, p0, p1), parts)
    dw_sum = np.add.reduce(dw_parts, axis=0, initial=0)
    if fast:  # C-contiguous: the optimizer's one-pass kernel takes it as it is
        db = dw_sum[:, taps].reshape(nf)
        dw_sum = np.ascontiguousarray(dw_sum[:, :taps].transpose(0, 2, 1))
    else:
        db, dw_sum = np.add.reduce(db_parts, axis=0, initial=0), dw_sum[0]
    return dx, dw_sum.reshape(nf, cpg, kh, kw), db


@njit(cache=True, nogil=True)
def transposed_part(gp, w2, x, kh, kw, sh, sw, dh, dw, groups, bounds, dw_parts, dx, need_dx,
                    c0, c1):
    """Chunks c0..c1 of ``gemm_transposed_backward``, serially: chunk ci's dW into dw_parts[ci]."""
    fpg, opg = len(w2) // groups, w2.shape[1] // (kh * kw)
    oh, ow = x.shape[2], x.shape[3]
    for ci in range(c0, c1):
        s0, s1 = bounds[ci], bounds[ci + 1]
        cols = np.empty((opg * kh * kw, (s1 - s0) * oh * ow), gp.dtype)
        xr = np.empty((fpg, (s1 - s0) * oh * ow), gp.dtype)
        res = np.empty((fpg, (s1 - s0) * oh * ow), gp.dtype)
        for g in range(groups):
            _im2col(gp, s0, s1, g * opg, (g + 1) * opg, kh, kw, sh, sw, dh, dw, oh, ow, cols,
                    False)
            to_rows(x, s0, s1, g * fpg, (g + 1) * fpg, xr)
            np.dot(xr, cols.T, dw_parts[ci, g * fpg:(g + 1) * fpg])
            if need_dx:
                np.dot(w2[g * fpg:(g + 1) * fpg], cols, res)
                from_rows(res, s0, s1, g * fpg, dx)


def gemm_transposed_backward(gp, w, x, sh, sw, dh, dw, groups, need_dx: bool) -> tuple:
    """(dx or empty, dW) of a transposed convolution from its padded full output gradient
    ``gp``: dx is the convolution of gp with W, dW[c, f, tap] = Σ x[c] · gp[f, …]; one im2col of
    gp serves both (the plain route built it twice). The per-chunk dW are summed in order."""
    n = len(gp)
    c, cpg, kh, kw = w.shape  # (in, out / groups, kh, kw): the convolution's filters are x's
    oh, ow = x.shape[2], x.shape[3]
    w2 = w.reshape(c, cpg * kh * kw)
    bounds = chunk_bounds(n, POSITIONS, oh * ow)
    k = len(bounds) - 1
    dw_parts = np.zeros((k, c, cpg * kh * kw), gp.dtype)
    dx = np.zeros((n if need_dx else 0, c, oh, ow), gp.dtype)
    need = bool(need_dx)
    split_rows(lambda c0, c1: transposed_part(gp, w2, x, kh, kw, sh, sw, dh, dw, groups, bounds,
                                              dw_parts, dx, need, c0, c1), k)
    return dx, np.add.reduce(dw_parts, axis=0, initial=0).reshape(c, cpg, kh, kw)
