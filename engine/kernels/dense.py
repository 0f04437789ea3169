"""One-pass kernels for the small element-wise work around a matrix product, a batch-1
matrix-vector product, and the non-finite check the executor runs on every output and gradient.

A numpy call costs about a microsecond however small its array. At batch 1 (an MLP in the
inference view) a Dense layer's bias, ReLU mask and product with the mask were three such calls
beside a matrix-vector product of a few microseconds, and checking the output for NaN took two
more; here each is one compiled pass (the check only for small arrays: numpy's sum is faster on
large ones). Same arithmetic as the numpy forms they replace:
ReLU is x·(x > 0), so −inf gives NaN exactly as the ReLU layer does.

``linear`` is what Dense and the fused Dense chain call: at one row (an MLP answering one
query) its product, bias and ReLU are one compiled pass over the weights, which reads four weight
rows at a time so that four sums are in flight (one sum at a time waits on its own additions);
at more rows the BLAS product is faster and is used (measured: the pass is as fast as OpenBLAS's
matrix-vector product for 784 → 256, twice as fast for 256 → 10, and slower from two rows up).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.packed import gemm_packed, packed
from layerloom.engine.kernels.sums import add_bias_rows
from layerloom.engine.threads import gemm_parts, run_row_parts


@njit(cache=True, nogil=True)
def add_bias(z, b):
    """z[i, :] += b for a C-contiguous 2-D z, in place."""
    n, m = z.shape
    for i in range(n):
        row = z[i]
        for j in range(m):
            row[j] += b[j]


@njit(cache=True, nogil=True)
def add_bias_relu(z, b):
    """z = (z + b)·(z + b > 0) in place (no bias when ``b`` is empty). The mask is not kept:
    z > 0 afterwards is exactly (z + b > 0), NaN and ±inf included, so backward recomputes it."""
    n, m = z.shape
    has_bias = len(b) > 0
    for i in range(n):
        row = z[i]
        for j in range(m):
            v = row[j] + b[j] if has_bias else row[j]
            row[j] = v * (v > 0)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def all_finite(flat):
    """True when no element of the 1-D array is NaN or ±inf: v·0 is 0 for every finite v and
    NaN otherwise, and a NaN survives the sum (reassociation only lets it vectorise)."""
    acc = flat[0] * 0
    for v in flat:
        acc += v * 0
    return acc == 0


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def matvec(x, w, b, out, relu):
    """out[0] = x[0]·wᵀ + b (b may be empty), then x·(x > 0) when ``relu``; x (1, k), w (m, k).
    Eight rows of w a pass, each x[i] loaded once for eight products: at batch 1 the product is
    bound by reading w from L2, and eight streams kept it busier than four (an MLP's 784×256 and
    256×256 layers 10.8 → 10.1 µs, interleaved on one core); the rows past a multiple of eight
    one at a time."""
    xr, y = x[0], out[0]
    m, k = w.shape
    zero = y.dtype.type(0)
    for j in range(0, m - 7, 8):
        w0, w1, w2, w3 = w[j], w[j + 1], w[j + 2], w[j + 3]
        w4, w5, w6, w7 = w[j + 4], w[j + 5], w[j + 6], w[j + 7]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        for i in range(k):
            v = xr[i]
            a0 += w0[i] * v
            a1 += w1[i] * v
            a2 += w2[i] * v
            a3 += w3[i] * v
            a4 += w4[i] * v
            a5 += w5[i] * v
            a6 += w6[i] * v
            a7 += w7[i] * v
        y[j], y[j + 1], y[j + 2], y[j + 3] = a0, a1, a2, a3
        y[j + 4], y[j + 5], y[j + 6], y[j + 7] = a4, a5, a6, a7
    for j in range(m - m % 8, m):
        wj = w[j]
        a = zero
        for i in range(k):
            a += wj[i] * xr[i]
        y[j] = a
    has_bias = len(b) > 0
    for j in range(m):
        v = y[j] + b[j] if has_bias else y[j]
        y[j] = v * (v > 0) if relu else v


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def linear(x2: np.ndarray, w: np.ndarray, b: np.ndarray | None, relu: bool) -> np.ndarray:
    """x2·wᵀ + b, then x·(x > 0) when ``relu``, for a 2-D x2 (rows, k)."""
    dtype = x2.dtype
    if len(x2) == 1 and (dtype is _F32 or dtype is _F64) and w.dtype is dtype:
        z = np.empty((1, len(w)), dtype)
        matvec(x2, w, _none(dtype) if b is None else b, z, relu)
        return z
    if not relu:
        return matmul(x2, w.T, b)
    z = matmul(x2, w.T)
    add_bias_relu(z, _none(z.dtype) if b is None else b)
    return z


# ``x @ wᵀ`` with a C-contiguous weight w (a Dense layer, a recurrent step) makes the BLAS pack
# the whole weight the slow way on every call; with few rows that copy costs as much as the
# product, and ``(w @ xᵀ)ᵀ`` packs it the cheap way. Measured on one core of an EPYC, float32:
# 2048 -> 256 at 64 rows 953 -> 794 µs, 1024 -> 1024 at 32 rows 1271 -> 773, 4096 -> 1024 at 16
# rows 3953 -> 2283; 2048 -> 512 at 128 rows 1.10× (two cores 1.03×); at 256 rows it lost (two
# cores 0.89×), and for weights of 64 k elements (cheap to pack anyway) too. In float64 the
# two ways are within ±6 % of each other at these sizes: one rule for both.
# Not for a few outputs (a classifier's head): 64 × 32768 → 10 ran 1.10 ms the plain way against
# 1.23, 128 × 16384 → 10 1.01 against 1.18, 64 × 8192 → 10 0.24 against 0.29 (16-32 outputs even).
WEIGHT_FIRST_MIN, WEIGHT_FIRST_MAX_ROWS, FEW_OUTPUTS = 1 << 18, 128, 16


def weight_first(rows: int, b: np.ndarray, max_rows: int = WEIGHT_FIRST_MAX_ROWS,
                 min_rows: int = 1) -> bool:
    """Compute ``a @ b`` (``rows`` rows of a) as ``(bᵀ @ aᵀ)ᵀ``: b a large transposed weight."""
    return (min_rows <= rows <= max_rows and b.size >= WEIGHT_FIRST_MIN
            and b.T.flags.c_contiguous)


def transposed(a: np.ndarray, b: np.ndarray) -> bool:
    """``matmul``'s parts compute ``a @ b`` as ``(bᵀ @ aᵀ)ᵀ`` (``weight_first``), except onto
    fewer than ``FEW_OUTPUTS`` columns."""
    return b.shape[1] >= FEW_OUTPUTS and weight_first(len(a), b)


def _into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    if transposed(a, b):
        np.copyto(out, np.matmul(b.T, a.T).T)
    else:
        np.matmul(a, b, out=out)


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (+ ``bias`` over the last axis) for 2-D operands; a large product in a graph
    whose BLAS runs on one thread (one with numba-parallel layers) is split over ``a``'s rows,
    one part per core (``engine.threads.gemm_parts``): a Transformer's products took one core of
    two before. Each part adds the bias to its own rows while they are in cache, with no second
    hand-over for it (the same sums as adding it afterwards)."""
    m, k = a.shape
    n = b.shape[1]
    # a head's forward X · Wᵀ onto few columns: one call (in two row parts 1.28 ms on two cores
    # against 1.07 in one, 64 × 32768 → 10)
    parts = gemm_parts(m, m * k * n) if n >= FEW_OUTPUTS else [(0, m)]
    fused = bias is not None and _bias_fits(a, b, bias)
    out = np.empty((m, n), np.result_type(a, b))
    weight = packed(b) if _packs(a, b) else None  # once for all parts

    def part(lo, hi):
        if weight is None:
            _into(a[lo:hi], b, out[lo:hi])
        else:
            gemm_packed(a[lo:hi], weight, out[lo:hi], False)
        if fused:
            add_bias_rows(out, bias, lo, hi)
    if len(parts) == 1:
        part(0, m)
    else:
        run_row_parts(part, parts)
    if bias is not None and not fused:
        out += bias
    return out


# float32 products with a weight of ≤ 128 k elements (it stays in L2 once packed) run through
# ``kernels.packed``'s tile kernel. One core of an EPYC, packing included, against OpenBLAS:
# 1.05-1.42× from 256 rows (2048 × 64 → 1024 1.31×, 2048 × 256 → 96 1.10×), 1.1-1.4× at 64 rows
# up to 784 inputs; it lost with more inputs at ≤ 64 rows (1024 → 128 0.95×, 2048 → 64 0.87×)
# and for outputs narrower than a panel (784 → 10 at 64 rows 0.52×).
PACKED_MAX, PACKED_MIN_ROWS, PACKED_WIDE_ROWS, PACKED_MAX_INPUTS = 1 << 17, 64, 256, 784


def _packs(a: np.ndarray, b: np.ndarray) -> bool:
    """``a @ b`` through the packed weight (see above)."""
    m, k = a.shape
    return (a.dtype is _F32 and b.dtype is _F32 and a.strides[1] == 4 and b.shape[1] >= 16
            and b.size <= PACKED_MAX and m >= PACKED_MIN_ROWS
            and (k <= PACKED_MAX_INPUTS or m >= PACKED_WIDE_ROWS))


def _bias_fits(a, b, bias) -> bool:
    """The product's rows take ``bias`` in one compiled pass (one float type throughout)."""
    dtype = a.dtype
    return ((dtype is _F32 or dtype is _F64) and b.dtype is dtype and bias.dtype is dtype
            and bias.ndim == 1 and bias.flags.c_contiguous)


def _none(dtype) -> np.ndarray:
    """The kernels' "no bias": an empty array of the kernel's type."""
    return np.empty(0, dtype)


SMALL = 4096  # elements: below, one compiled pass; above, numpy's vectorised sum is faster


def finite(a: np.ndarray) -> bool:
    """No NaN or ±inf in ``a`` (integers are always finite)."""
    dtype = a.dtype
    if dtype.kind != "f" or a.size == 0:
        return True
    if a.size <= SMALL and (dtype is _F32 or dtype is _F64):
        return bool(all_finite(a.reshape(-1)))
    # The sum propagates NaN/inf in one vectorised pass; an overflow of the sum itself (finite
    # values summing to inf) needs the exact check.
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(a.sum())) or bool(np.isfinite(a).all())
