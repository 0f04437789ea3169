"""Element-wise kernels numpy lacks a fast form for (GELU needs erf), beside numpy twins.

float32 arrays take a rational erf (Eigen's float approximation: |error| < 5e-7 in float32
arithmetic, clamped beyond ±4 where erf is ±1 in float32) that numba can vectorise; libm's erff
is a call per element and made GELU the largest cost of a Transformer block (15× faster now).
float64 keeps ``math.erf``. Flat chunks of an array split over the engine's cores
(``engine.threads.split_rows``); an array of one chunk stays on the calling thread.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from layerloom.engine.kernels.vector_width import wide_vectors
from layerloom.engine.threads import split_rows

CHUNK = 1 << 14  # elements per chunk
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_F = np.float32
_ERF_P = tuple(_F(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                               -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                               -1.60960333262415e-02))
_ERF_Q = tuple(_F(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                               -7.37332916720468e-03, -1.42647390514189e-02))
_HALF, _ONE, _FOUR, _R2, _R2PI = (_F(0.5), _F(1.0), _F(4.0), _F(1 / math.sqrt(2.0)),
                                  _F(1 / math.sqrt(2.0 * math.pi)))


def erf32_reference(x: np.ndarray) -> np.ndarray:
    """The rational float32 erf, in numpy."""
    x = np.clip(x.astype(np.float32), -_FOUR, _FOUR)
    x2, p, q = x * x, _ERF_P[0], _ERF_Q[0]
    for c in _ERF_P[1:]:
        p = p * x2 + c
    for c in _ERF_Q[1:]:
        q = q * x2 + c
    return x * p / q


@njit(cache=True, nogil=True, error_model="numpy")
def erf32(v):
    x = min(max(v, -_FOUR), _FOUR)
    x2 = x * x
    p = _ERF_P[0]
    for c in _ERF_P[1:]:
        p = p * x2 + c
    q = _ERF_Q[0]
    for c in _ERF_Q[1:]:
        q = q * x2 + c
    return x * p / q


# Cephes' expf: exp(v) = 2^k · exp(r), k = round(v·log2 e), r = v − k·ln 2 (ln 2 split in two for
# precision), exp(r) = 1 + r + r²·P(r). Also used by the attention softmax (engine.kernels.attention).
LOG2E, LN2_HI, LN2_LO = _F(1.4426950408889634), _F(0.693359375), _F(-2.12194440e-4)
EXP_P = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                              1.6666665459e-1, 5.0000001201e-1))
_U_MAX = _F(86.0)  # exp(-86) is still a normal float32


def expneg32_reference(u: np.ndarray) -> np.ndarray:
    """exp(-u) for u >= 0 in float32 (Cephes' expf: u = k·ln2 - r, polynomial in r, times 2^-k)."""
    u = np.minimum(u.astype(np.float32), _U_MAX)
    k = np.floor(u * LOG2E + _HALF)
    r = (k * LN2_HI - u) + k * LN2_LO
    p = EXP_P[0]
    for c in EXP_P[1:]:
        p = p * r + c
    return (p * r * r + r + _ONE) * np.ldexp(_ONE, -k.astype(np.int32))


@intrinsic
def f32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits`` (a register move, no memory)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(cache=True, nogil=True, error_model="numpy")
def expneg32(u):
    """The twin above with 2^-k written as its float32 bits, (127 - k) << 23 (0 <= k <= 125 for
    u <= 86): no libm call, so it vectorises (np.exp in a numba loop is a scalar call per
    element: GELU's backward took 8× its forward), and no chain of seven selects that built
    2^-k from k's bits before (GELU's backward 723 → 581 µs for 512k floats, same values)."""
    u = min(u, _U_MAX)
    k = np.floor(u * LOG2E + _HALF)
    r = (k * LN2_HI - u) + k * LN2_LO
    p = EXP_P[0]
    for c in EXP_P[1:]:
        p = p * r + c
    return (p * r * r + r + _ONE) * f32_from_bits((np.int32(127) - np.int32(k)) << 23)


def gelu_reference(x: np.ndarray, tanh: bool) -> np.ndarray:
    if tanh:
        return 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


@njit(cache=True, nogil=True, error_model="numpy")
def gelu_forward_chunks(x, tanh, out, c0, c1):
    # slices, so the loop counts from 0: an index from range(lo, hi) may be negative for all
    # numba knows, and the wrap-around test made this loop 1.7× slower
    xs, os_ = x[c0 * CHUNK:c1 * CHUNK], out[c0 * CHUNK:c1 * CHUNK]
    if x.itemsize == 4 and not tanh:
        for i in range(len(xs)):
            v = xs[i]
            os_[i] = _HALF * v * (_ONE + erf32(v * _R2))
        return
    for i in range(len(xs)):
        v = xs[i]
        if tanh:
            os_[i] = 0.5 * v * (1.0 + math.tanh(_SQRT_2_PI * (v + 0.044715 * v * v * v)))
        else:
            os_[i] = 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def gelu_forward(x: np.ndarray, tanh: bool) -> np.ndarray:
    """GELU of a flat array (erf, or the tanh approximation)."""
    out = np.empty_like(x)
    split_rows(lambda c0, c1: gelu_forward_chunks(x, tanh, out, c0, c1), -(-x.size // CHUNK))
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def gelu_backward_chunks(x, dy, tanh, out, c0, c1):
    wide_vectors()  # 16 lanes on AVX-512: 3.6 → 2.75 ms for 2 M floats, one core (the
    # forward, bound by its division, stayed at 1.6)
    lo, hi = c0 * CHUNK, c1 * CHUNK
    xs, ds, os_ = x[lo:hi], dy[lo:hi], out[lo:hi]  # slices: see gelu_forward_chunks
    if x.itemsize == 4 and not tanh:
        for i in range(len(xs)):
            v = xs[i]
            d = _HALF * (_ONE + erf32(v * _R2)) + v * expneg32(_HALF * v * v) * _R2PI
            os_[i] = ds[i] * d
        return
    for i in range(len(xs)):
        v = xs[i]
        if tanh:
            u = _SQRT_2_PI * (v + 0.044715 * v * v * v)
            t = math.tanh(u)
            du = _SQRT_2_PI * (1.0 + 3 * 0.044715 * v * v)
            d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du
        else:
            d = 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) + v * math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)
        os_[i] = ds[i] * d


def gelu_backward(x: np.ndarray, dy: np.ndarray, tanh: bool) -> np.ndarray:
    """dy · GELU'(x) of flat arrays."""
    out = np.empty_like(x)
    split_rows(lambda c0, c1: gelu_backward_chunks(x, dy, tanh, out, c0, c1),
               -(-x.size // CHUNK))
    return out
