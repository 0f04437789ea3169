"""CBLAS ``gemm`` inside compiled kernels: leading dimensions and accumulation, which numba's
``np.dot`` has neither of.

``conv_kn2row`` multiplies each filter tap's weights with a window of the padded input read in
place (rows ``Hp·Wp`` apart, not a contiguous matrix) and adds the product onto what the other
taps left (β = 1); through ``np.dot`` each window would be copied first (im2col: 25 copies of the
input for a 5×5 kernel) and each product summed separately.

The ``gemm`` is numpy's own BLAS (the OpenBLAS numpy ships): found with ``dlsym`` on numpy's
extension module, whose handle reaches the libraries it links, and handed to LLVM under a fixed
name that the kernels call (a numba ``ExternalFunction``). A ctypes pointer in a kernel would be
a dynamic global, which numba refuses to cache. The BLAS's threads are threadpoolctl's, as
numpy's are (``engine.threads``). Where numpy's library has no 64-bit-integer CBLAS ``gemm`` (a
numpy built against a system BLAS), the name is bound to a compiled function with the same C
signature that computes the product with numba's ``np.dot`` (SciPy's BLAS): slower, the same
results up to rounding.
Self-contained on purpose: numba's cache only notices edits to a kernel's own file.
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as ll
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the fallback's BLAS, loaded for threadpoolctl)
from numba import carray, cfunc, njit, types

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_SYMBOLS = ("scipy_cblas_{}gemm64_", "cblas_{}gemm64_")  # numpy's wheels: SciPy's ILP64 OpenBLAS
_u64, _i64, _i32 = types.uint64, types.int64, types.int32


def _signature(real, ptr=_u64):
    """CBLAS ``?gemm`` with 64-bit integers (pointers as addresses: ``arr.ctypes.data``)."""
    return types.void(_i32, _i32, _i32, _i64, _i64, _i64, real, ptr, _i64, ptr, _i64, real,
                      ptr, _i64)


@njit(nogil=True)
def _operand(ptr, trans, rows, cols, ld, dtype):
    """The (rows × cols) operand a row-major CBLAS call describes, as an array view."""
    if trans == TRANS:
        return carray(ptr, (cols, ld), dtype)[:, :rows].T
    return carray(ptr, (rows, ld), dtype)[:, :cols]


def fallback(dtype):
    """A compiled C function with CBLAS ``gemm``'s signature (row-major, as the kernels call it):
    C = α·op(A)·op(B) + β·C through numba's ``np.dot``."""
    real = types.float32 if dtype == np.float32 else types.float64

    @cfunc(_signature(real, types.CPointer(real)))
    def gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        prod = np.dot(np.ascontiguousarray(_operand(a, ta, m, k, lda, dtype)),
                      np.ascontiguousarray(_operand(b, tb, k, n, ldb, dtype)))
        out = carray(c, (m, ldc), dtype)
        for i in range(m):
            for j in range(n):
                out[i, j] = alpha * prod[i, j] + (beta * out[i, j] if beta != 0 else 0)
    return gemm


def _bind() -> str:
    """Register numpy's ``sgemm`` and ``dgemm`` (or the fallbacks) with LLVM; says which."""
    import numpy._core._multiarray_umath as umath

    lib, found = ctypes.CDLL(umath.__file__), "numpy's BLAS"
    for letter, dtype in (("s", np.float32), ("d", np.float64)):
        fn = next((f for f in (getattr(lib, p.format(letter), None) for p in _SYMBOLS)
                   if f is not None), None)
        if fn is None:
            address, found = fallback(dtype).address, "numba's np.dot"
        else:
            address = ctypes.cast(fn, ctypes.c_void_p).value
        ll.add_symbol(f"layerloom_{letter}gemm", address)
    return found


SOURCE = _bind()
_sgemm = types.ExternalFunction("layerloom_sgemm", _signature(types.float32))
_dgemm = types.ExternalFunction("layerloom_dgemm", _signature(types.float64))


@njit(cache=True, nogil=True)
def gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, double):
    """C (m × n, row pitch ldc) = op(A) · op(B) + beta · C, row-major; a, b, c are addresses
    (``arr.ctypes.data`` + byte offset), ``ta``/``tb`` NO_TRANS or TRANS, ``double`` picks
    float64 over float32. Nothing is checked: the caller's shapes must fit its arrays."""
    if double:
        _dgemm(np.int32(ROW_MAJOR), np.int32(ta), np.int32(tb), m, n, k, np.float64(1), a, lda,
               b, ldb, np.float64(beta), c, ldc)
    else:
        _sgemm(np.int32(ROW_MAJOR), np.int32(ta), np.int32(tb), m, n, k, np.float32(1), a, lda,
               b, ldb, np.float32(beta), c, ldc)
