"""Winograd over the whole batch on maps that are one tile, the transforms as matrix products:
F(4×4, 5×5) on 8×8 tiles (a 32×32 image after three 2×2 pools), F(4×4, 3×3) on 6×6 tiles
(ResNet-18's last stage; the phases of a stride-2 5×5 convolution onto 4×4 outputs) and
F(6×6, 3×3) on 8×8 tiles (6×6 outputs; the same Bᵀ as F(4×4, 5×5)).

A sample's channel is then one a×a tile d, and Bᵀ d B is an a² × a² matrix (Bᵀ ⊗ Bᵀ) times the
tile's values: the whole batch's input transform is one product reading the input in place (its
rows are the (sample, channel) maps). The layers hand a map over unpadded with its padding (a
4×4 map padded by 2 or 1): the product then takes only the columns that meet the map (64 × 16 or
36 × 16, a quarter or less of the multiply-adds), and the adjoint writes the map's gradient, the
padding's never made. The output transform (Aᵀ ⊗ Aᵀ, 16 × a²) and the backward's two adjoints
are products too. V is kept point by point as (a², N, C) and M as (a², N, F), so each point's
product is one BLAS call over the batch, M[p] = V[p] · U[p]ᵀ, and the backward's dV[p] = dM[p] ·
U[p], dU[p] = dM[p]ᵀ · V[p] (one dU, not one per chunk). The transforms' products split the batch
over the cores in fixed runs of samples (``_cut``), the points' products the points; the bias
gradient sums over the same runs: nothing depends on the thread count.

F(4×4, 5×5): the chunked kernels (``conv_winograd5``) close every row of tiles with a spare one,
which on a 4×4 map is half of every product's columns; their row-by-row transforms took ~70 % of
the time for ~5 % of the multiply-adds (128 → 128, batch 64, one core: 12.7 of 17.9 ms). The
dense product multiplies more (4096 against ~1,000 a tile) at the BLAS's rate. Forward + backward
with the input gradient (without the filters' transforms), batch 64, against the chunks or the
row transforms' whole batch before, one core / two: 16 → 16 0.73 → 0.58 / 0.41 → 0.37 ms, 64 →
64 4.34 → 2.94 / 2.22 → 1.55, 128 → 128 12.8 → 9.5 / 6.6 → 4.8, 256 → 256 45.0 → 33.3 / 23.0 →
17.2; reading the map unpadded then (against the padded copy): 64 → 64 4.28 → 2.51 / 2.19 →
1.20 ms, 128 → 128 13.0 → 10.1 / 8.2 → 5.6, 128 → 256 20.8 → 18.1 / 11.6 → 9.3 (the four-stage
5×5 CNN's step 1.43× → 1.52× PyTorch's on one core). Larger maps keep to the chunks (on 2×2
tiles a sample the whole batch lost: V and M out of cache). F(4×4, 3×3): see ``one_tile3``;
F(6×6, 3×3): ``conv_winograd_plan.winograd_tile``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.blas import NO_TRANS, TRANS, gemm
from layerloom.engine.kernels.conv_winograd5 import AT, BT, winograd5_forward
from layerloom.engine.kernels.conv_winograd5_back import winograd5_backward
from layerloom.engine.kernels.conv_winograd_plan import MATRICES
from layerloom.engine.threads import split_rows

# per tile side a, (Bᵀ ⊗ Bᵀ) (a² × a²): vec(Bᵀ d B) = K · vec(d), row-major vec; per (a, output
# side m), (Aᵀ ⊗ Aᵀ) (m² × a²): F(4×4, 5×5), F(4×4, 3×3) and F(6×6, 3×3), whose Bᵀ is F(4×4, 5×5)'s
KIN = {8: np.kron(BT, BT).astype(np.float32),
       6: np.kron(MATRICES[4][0], MATRICES[4][0]).astype(np.float32)}
KOUT = {(8, 4): np.kron(AT, AT).astype(np.float32),
        (6, 4): np.kron(MATRICES[4][2], MATRICES[4][2]).astype(np.float32),
        (8, 6): np.kron(MATRICES[6][2], MATRICES[6][2]).astype(np.float32)}
K8 = KIN[8]
MAX_ELEMENTS = 1 << 24  # of V and M together (64 MB): a larger batch keeps to the chunks


def whole_batch5(c: int, nf: int, n: int, oh: int, ow: int) -> bool:
    """True when this file runs an F(4×4, 5×5) convolution (``conv_winograd5.winograd5`` said
    so) of ``n`` samples, C → F channels onto OH × OW outputs: maps of one tile (4×4 outputs),
    V and M of the whole batch within ``MAX_ELEMENTS``."""
    return _one_tile(64, c, nf, n, oh, ow)


def one_tile3(c: int, nf: int, n: int, oh: int, ow: int) -> bool:
    """True when a Winograd F(4×4, 3×3) convolution (``conv_winograd_plan.winograd_tile`` said
    4) of ``n`` samples, C → F channels onto OH × OW outputs runs here: maps of one tile (4×4
    outputs), V and M within ``MAX_ELEMENTS``. Forward + backward with the input gradient,
    batch 64, one core / two, against the better of the chunks and the row transforms' whole
    batch (``conv_winograd_batch``): 16 → 16 0.46 → 0.22 / 0.29 → 0.20 ms, 64 → 64 2.18 →
    1.23 / 1.22 → 1.16, 128 → 128 5.47 → 4.05 / 3.13 → 2.76, 256 → 256 20.7 → 15.7 / 12.3 →
    9.7, 512 → 512 72.3 → 60.5 / 49.4 → 41.1: every channel count gained."""
    return _one_tile(36, c, nf, n, oh, ow)


def _one_tile(points: int, c: int, nf: int, n: int, oh: int, ow: int) -> bool:
    """4×4 outputs of a non-empty batch whose V and M (``points`` a tile) fit ``MAX_ELEMENTS``."""
    return n > 0 and (oh, ow) == (4, 4) and points * (c + nf) * n <= MAX_ELEMENTS


def winograd5_image(x, u, b, relu: bool = False, pad: tuple = (0, 0)) -> np.ndarray:
    """``conv_winograd5.winograd5_forward``'s result for x zero-padded by ``pad`` (read in
    place: the padding's zeros are never made), over the whole batch where ``whole_batch5`` says
    so, in chunks otherwise: the one place that picks for every 5×5 route."""
    if _whole5(x, u, pad):
        return tile_forward(x, u, b, relu, pad)
    return winograd5_forward(x, u, b, relu, pad)


def winograd5_image_grads(x, u, dy, need_dx: bool, pad: tuple = (0, 0)) -> tuple:
    """(d x (without ``pad``) or empty, dU (groups, 64, F, C), d bias) of ``winograd5_image``,
    by the same choice (``conv_winograd5.weight_grad`` takes either dU)."""
    if _whole5(x, u, pad):
        return tile_backward(x, u, dy, need_dx, pad)
    return winograd5_backward(x, u, dy, need_dx, pad)


def _whole5(x, u, pad: tuple) -> bool:
    """``whole_batch5`` for x zero-padded by ``pad`` under the filters' transform U."""
    n, c, h, w = x.shape
    return whole_batch5(c, u.shape[1], n, h + 2 * pad[0] - 4, w + 2 * pad[1] - 4)


def transform_columns(a: int, pad: tuple, h: int, w: int) -> np.ndarray:
    """The columns of (Bᵀ ⊗ Bᵀ) for a×a tiles that meet an H × W map padded by ``pad`` to a×a
    (a² × H·W): the transform of the map itself, the padding's zeros left out (a 4×4 map padded
    by 2 onto 8×8: 64 × 16, a quarter of the multiply-adds, and no padded copy)."""
    key = (a, int(pad[0]), int(pad[1]), h, w)
    if key not in _COLUMNS:
        if h + 2 * key[1] != a or w + 2 * key[2] != a:
            raise ValueError(f"a {h}×{w} map padded by {tuple(pad)} is not one {a}×{a} tile")
        cols = KIN[a].reshape(a * a, a, a)[:, key[1]:key[1] + h, key[2]:key[2] + w]
        _COLUMNS[key] = np.ascontiguousarray(cols.reshape(a * a, h * w))
    return _COLUMNS[key]


_COLUMNS: dict = {}


def _side(u: np.ndarray) -> int:
    """The tile side a of the filters' transform U (a², F, C)."""
    return {64: 8, 36: 6}[u.shape[0]]


@njit(cache=True, nogil=True)
def _input(x, kx, v, n0, n1):
    """V[:, n0:n1] (a² × (n1 − n0)·C of the (a², N, C) array) = Kx · the samples' maps ᵀ, Kx
    the transform's columns for x's H·W values (``transform_columns``)."""
    n, c, pts, hw = x.shape[0], x.shape[1], kx.shape[0], kx.shape[1]
    gemm(NO_TRANS, TRANS, pts, (n1 - n0) * c, hw, kx.ctypes.data, hw,
         x.ctypes.data + 4 * n0 * c * hw, hw, 0, v.ctypes.data + 4 * n0 * c, n * c, False)


@njit(cache=True, nogil=True)
def _output(mm, ak, b, out, relu, n0, n1):
    """out[n0:n1] = AK · M's columns of samples n0..n1, + b, then max(·, 0) when ``relu``."""
    n, nf, (outs, pts) = out.shape[0], out.shape[1], ak.shape
    for s in range(n0, n1):
        for f in range(nf):
            out[s, f] = b[f]
    gemm(TRANS, TRANS, (n1 - n0) * nf, outs, pts, mm.ctypes.data + 4 * n0 * nf, n * nf,
         ak.ctypes.data, pts, 1, out.ctypes.data + 4 * n0 * nf * outs, outs, False)
    if relu:
        zero = np.zeros(1, out.dtype)[0]
        for s in range(n0, n1):
            flat = out[s].ravel()
            for i in range(flat.size):
                v = flat[i]
                flat[i] = v if v >= zero or v != v else zero  # np.maximum's NaN and −0


@njit(cache=True, nogil=True)
def _products(u, v, mm, p0, p1):
    """M[p] = V[p] · U[p]ᵀ for the points p0..p1."""
    for p in range(p0, p1):
        np.dot(v[p], u[p].T, mm[p])


def tile_forward(x, u, b, relu: bool = False, pad: tuple = (0, 0), m: int = 4) -> np.ndarray:
    """conv(x zero-padded by ``pad``) + b (N, F, m, m) of the float32 batch (N, C, H, W), H + 2·ph
    = W + 2·pw = a, U (a², F, C) the filters' F(m×m, r×r) transform (``conv_winograd5`` for 5×5,
    ``conv_winograd_plan`` for 3×3); then max(·, 0) when ``relu``."""
    x, a = np.ascontiguousarray(x), _side(u)
    (n, c, h, w), kx = x.shape, transform_columns(a, pad, x.shape[2], x.shape[3])
    pts, nf = u.shape[0], u.shape[1]
    v, mm = np.empty((pts, n, c), np.float32), np.empty((pts, n, nf), np.float32)
    out = np.empty((n, nf, m, m), np.float32)
    bias, relu = np.ascontiguousarray(b, dtype=np.float32), bool(relu)
    cut, ak = _cut(n), KOUT[(a, m)]
    split_rows(lambda q0, q1: _input_parts(x, kx, v, cut, q0, q1), len(cut) - 1)
    split_rows(lambda p0, p1: _products(u, v, mm, p0, p1), pts)
    split_rows(lambda q0, q1: _output_parts(mm, ak, bias, out, relu, cut, q0, q1), len(cut) - 1)
    return out


def _cut(n: int) -> np.ndarray:
    """The fixed runs of samples the transforms' products take, one BLAS call each, whatever
    the threads: OpenBLAS's result for a column can depend on how many columns the call has
    (on a Haswell-kernel EPYC the forward differed in the last bits between one core and two
    while the split followed the threads)."""
    parts = max(1, min(8, n))
    return np.arange(parts + 1, dtype=np.int64) * n // parts


@njit(cache=True, nogil=True)
def _input_parts(x, kx, v, cut, q0, q1):
    """``_input`` for the fixed runs q0..q1 (samples cut[q]..cut[q + 1])."""
    for q in range(q0, q1):
        _input(x, kx, v, cut[q], cut[q + 1])


@njit(cache=True, nogil=True)
def _output_parts(mm, ak, b, out, relu, cut, q0, q1):
    """``_output`` for the fixed runs q0..q1."""
    for q in range(q0, q1):
        _output(mm, ak, b, out, relu, cut[q], cut[q + 1])


@njit(cache=True, nogil=True)
def _grad_input(dy, ak, dm, db, n0, n1, part):
    """dM[:, n0:n1] = AKᵀ · dy's samples n0..n1 ᵀ; their bias gradient into db[part]."""
    n, nf, (outs, pts) = dy.shape[0], dy.shape[1], ak.shape
    gemm(TRANS, TRANS, pts, (n1 - n0) * nf, outs, ak.ctypes.data, pts,
         dy.ctypes.data + 4 * n0 * nf * outs, outs, 0, dm.ctypes.data + 4 * n0 * nf, n * nf, False)
    for s in range(n0, n1):
        for f in range(nf):
            total, flat = 0.0, dy[s, f].ravel()
            for q in range(outs):
                total += flat[q]
            db[part, f] += total


@njit(cache=True, nogil=True)
def _grad_parts(x, dy, kx, ak, v, dm, db, cut, q0, q1):
    """V's and dM's columns of the fixed parts q0..q1 (samples cut[q]..cut[q + 1])."""
    for q in range(q0, q1):
        _input(x, kx, v, cut[q], cut[q + 1])
        _grad_input(dy, ak, dm, db, cut[q], cut[q + 1], q)


@njit(cache=True, nogil=True)
def _grad_products(u, v, dm, du, dv, need_dx, p0, p1):
    """dU[p] = dM[p]ᵀ · V[p] and, with ``need_dx``, dV[p] = dM[p] · U[p]."""
    for p in range(p0, p1):
        np.dot(dm[p].T, v[p], du[p])
        if need_dx:
            np.dot(dm[p], u[p], dv[p])


@njit(cache=True, nogil=True)
def _adjoint(dv, kx, dx, n0, n1):
    """dx[n0:n1] (as rows of H·W) = dV's columns of samples n0..n1 ᵀ · Kx: the gradient of the
    map itself, the padding's never made."""
    n, c, pts, hw = dx.shape[0], dx.shape[1], kx.shape[0], kx.shape[1]
    gemm(TRANS, NO_TRANS, (n1 - n0) * c, hw, pts, dv.ctypes.data + 4 * n0 * c, n * c,
         kx.ctypes.data, hw, 0, dx.ctypes.data + 4 * n0 * c * hw, hw, False)


@njit(cache=True, nogil=True)
def _adjoint_parts(dv, kx, dx, cut, q0, q1):
    """``_adjoint`` for the fixed runs q0..q1."""
    for q in range(q0, q1):
        _adjoint(dv, kx, dx, cut[q], cut[q + 1])


def tile_backward(x, u, dy, need_dx: bool, pad: tuple = (0, 0), m: int = 4) -> tuple:
    """(d x or empty, dU as (1, a², F, C), d bias) of ``tile_forward``: what the chunked
    backwards return, for ``weight_grad``."""
    x, dy, a = np.ascontiguousarray(x), np.ascontiguousarray(dy, dtype=np.float32), _side(u)
    (n, c, h, w), kx = x.shape, transform_columns(a, pad, x.shape[2], x.shape[3])
    pts, nf, need = u.shape[0], u.shape[1], bool(need_dx)
    v, dm = np.empty((pts, n, c), np.float32), np.empty((pts, n, nf), np.float32)
    dv = np.empty((pts, n, c) if need else (pts, 0, c), np.float32)
    cut, ak = _cut(n), KOUT[(a, m)]  # fixed: nor do the bias gradient's sums
    parts = len(cut) - 1
    db = np.zeros((parts, nf), np.float64)
    split_rows(lambda q0, q1: _grad_parts(x, dy, kx, ak, v, dm, db, cut, q0, q1), parts)
    du = np.empty((1, pts, nf, c), np.float32)
    split_rows(lambda p0, p1: _grad_products(u, v, dm, du[0], dv, need, p0, p1), pts)
    dx = np.empty((n if need else 0, c, h, w), np.float32)
    if need:
        split_rows(lambda q0, q1: _adjoint_parts(dv, kx, dx, cut, q0, q1), parts)
    return dx, du, np.add.reduce(db, axis=0, initial=0).astype(np.float32)
