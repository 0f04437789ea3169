"""Element-wise activations in one compiled pass each way: ReLU, LeakyReLU, Sigmoid, SiLU, the
ELU family (ELU, SELU, CELU), Hardswish and Hardsigmoid; Softplus, LogSigmoid and Mish in
``activation_log``, whose cached kernels an edit here recompiles (``kernels.cache_stamp``).

The layers computed these in numpy: a handful of passes over the batch each way, temporaries in
float64 where a Python float met an array (``np.where(x > 0, 1.0, slope)``), two or three
arrays saved for the backward. On a (64, 32, 32, 32) float32 batch, one core, forward +
backward against PyTorch 2.13: LeakyReLU 10.0 ms (PyTorch 1.0), Sigmoid 13.5 (1.7), SiLU 15.4
(2.0), ELU 21.4 (4.1), Hardswish 6.6 (1.0), ReLU 2.6 (1.1). Here each direction is one loop
over flat chunks that numba vectorises, the chunks split over the engine's cores
(``engine.threads.split_rows``; an array of one chunk stays on the calling thread).

The piecewise ones (ReLU, LeakyReLU, Hardswish, Hardsigmoid) do the numpy code's arithmetic in
either float type. The exponential ones run here in float32 only, with the vectorisable
``elementwise.expneg32`` (Cephes' expf, ~1 ulp) and, for ELU's e^x − 1 near 0, a Taylor
polynomial (|x| < ½: ≤ 1 ulp where e^x − 1 would lose the leading digits); float64 keeps
numpy's libm calls (the exact path equal to PyTorch). NaN propagates as in the numpy code: it passes
forward and takes the slope the comparisons give it.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.elementwise import expneg32
from layerloom.engine.threads import split_rows

CHUNK = 1 << 15  # elements per chunk: 128 KB of float32
_F32 = np.dtype(np.float32)
_ZERO, _ONE, _HALF = np.float32(0.0), np.float32(1.0), np.float32(0.5)
_BIG = np.float32(87.0)  # e^-87 is below float32's smallest normal: σ(-87) rounds to ~0
# e^x − 1 = x + x²/2! + … + x⁸/8! for |x| < ½ (the next term ≤ 3e-8 of the result)
_EXPM1_C = tuple(np.float32(1.0 / f) for f in (40320, 5040, 720, 120, 24, 6, 2, 1))


def kernel_dtype(*arrays: np.ndarray, float32_only: bool = False) -> bool:
    """Whether the arrays take these kernels: one float type (float32 only for the exponential
    ones), every array of it."""
    dtype = arrays[0].dtype
    ok = dtype == _F32 or (dtype == np.float64 and not float32_only)
    return ok and all(a.dtype == dtype for a in arrays)


def map_chunks(kernel, arrays: tuple, consts: tuple = (), outputs: int = 1):
    """kernel(*arrays, *consts, *outs, c0, c1) over the CHUNK-element chunks of the arrays, flat
    and C-contiguous, split over the cores; returns the outs (new arrays shaped and typed as
    arrays[0]), one array or a tuple of several."""
    flats = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    outs = [np.empty_like(flats[0]) for _ in range(outputs)]
    split_rows(lambda c0, c1: kernel(*flats, *consts, *outs, c0, c1),
               -(-flats[0].size // CHUNK))
    shaped = tuple(o.reshape(arrays[0].shape) for o in outs)
    return shaped[0] if outputs == 1 else shaped


# ------------------------------------------------------------------------ piecewise, any float
@njit(cache=True, nogil=True)
def _relu_chunks(fx, fy, c0, c1):
    zero = np.zeros(1, fx.dtype)[0]
    x, y = fx[c0 * CHUNK:c1 * CHUNK], fy[c0 * CHUNK:c1 * CHUNK]  # slices: indices from 0
    for i in range(len(x)):
        v = x[i]
        y[i] = v if v > zero or v != v else zero


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0) (NaN kept, +0 for x ≤ 0); the backward is ``relu.relu_mask_grad`` on it."""
    return map_chunks(_relu_chunks, (x,))


@njit(cache=True, nogil=True)
def _leaky_chunks(fx, slope, fy, c0, c1):
    zero = np.zeros(1, fx.dtype)[0]  # an integer 0 compares in float64 and stops vectorising
    x, y = fx[c0 * CHUNK:c1 * CHUNK], fy[c0 * CHUNK:c1 * CHUNK]
    for i in range(len(x)):
        v = x[i]
        y[i] = v if v > zero else slope * v


@njit(cache=True, nogil=True)
def _leaky_grad_chunks(fd, fx, slope, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, x, o = fd[lo:hi], fx[lo:hi], fo[lo:hi]
    zero = np.zeros(1, fx.dtype)[0]
    for i in range(len(d)):
        o[i] = d[i] if x[i] > zero else slope * d[i]


def leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    """x where x > 0, else slope·x (slope rounded to x's type, as x·scale did)."""
    return map_chunks(_leaky_chunks, (x,), (x.dtype.type(slope),))


def leaky_relu_grad(dy: np.ndarray, x: np.ndarray, slope: float) -> np.ndarray:
    return map_chunks(_leaky_grad_chunks, (dy, x), (dy.dtype.type(slope),))


@njit(inline="always")
def _clip_shifted(v, three, six, zero):
    """clip(v + 3, 0, 6) in np.clip's order: NaN stays NaN."""
    t = v + three
    t = zero if t < zero else t
    return six if t > six else t


@njit(cache=True, nogil=True)
def _hardswish_chunks(fx, three, six, fy, c0, c1):
    zero = np.zeros(1, fx.dtype)[0]
    x, y = fx[c0 * CHUNK:c1 * CHUNK], fy[c0 * CHUNK:c1 * CHUNK]
    for i in range(len(x)):
        v = x[i]
        y[i] = v * _clip_shifted(v, three, six, zero) / six


@njit(cache=True, nogil=True)
def _hardswish_grad_chunks(fd, fx, three, half, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, x, o = fd[lo:hi], fx[lo:hi], fo[lo:hi]
    zero, one = np.zeros(1, fd.dtype)[0], np.ones(1, fd.dtype)[0]
    for i in range(len(d)):
        v = x[i]
        slope = zero if v < -three else (v / three + half if v <= three else one)
        o[i] = d[i] * slope


def hardswish(x: np.ndarray) -> np.ndarray:
    """x·clip(x + 3, 0, 6)/6."""
    c = x.dtype.type
    return map_chunks(_hardswish_chunks, (x,), (c(3), c(6)))


def hardswish_grad(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dy·(0 below −3, x/3 + ½ up to 3, 1 above): PyTorch's slope at the kinks."""
    c = dy.dtype.type
    return map_chunks(_hardswish_grad_chunks, (dy, x), (c(3), c(0.5)))


@njit(cache=True, nogil=True)
def _hardsigmoid_chunks(fx, three, six, fy, c0, c1):
    zero = np.zeros(1, fx.dtype)[0]
    x, y = fx[c0 * CHUNK:c1 * CHUNK], fy[c0 * CHUNK:c1 * CHUNK]
    for i in range(len(x)):
        y[i] = _clip_shifted(x[i], three, six, zero) / six


@njit(cache=True, nogil=True)
def _hardsigmoid_grad_chunks(fd, fx, three, six, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, x, o = fd[lo:hi], fx[lo:hi], fo[lo:hi]
    zero = np.zeros(1, fd.dtype)[0]
    for i in range(len(d)):
        v = x[i]
        o[i] = d[i] / six if -three < v < three else zero


def hardsigmoid(x: np.ndarray) -> np.ndarray:
    """clip(x + 3, 0, 6)/6."""
    c = x.dtype.type
    return map_chunks(_hardsigmoid_chunks, (x,), (c(3), c(6)))


def hardsigmoid_grad(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dy/6 where −3 < x < 3, else 0."""
    c = dy.dtype.type
    return map_chunks(_hardsigmoid_grad_chunks, (dy, x), (c(3), c(6)))


# --------------------------------------------------------------------- exponential, float32
@njit(inline="always")
def sigmoid_scalar32(v):
    """σ(v) split by sign (e^-|v| never overflows); NaN stays NaN."""
    a = abs(v)
    e = expneg32(a) if a < _BIG else _ZERO  # σ(±inf) exactly 1 / 0, as with libm's exp
    s = _ONE / (_ONE + e) if v >= _ZERO else e / (_ONE + e)
    return v if v != v else s


@njit(cache=True, nogil=True, error_model="numpy")
def _sigmoid_chunks(fx, fy, c0, c1):
    x, y = fx[c0 * CHUNK:c1 * CHUNK], fy[c0 * CHUNK:c1 * CHUNK]
    for i in range(len(x)):
        y[i] = sigmoid_scalar32(x[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _silu_chunks(fx, fy, fs, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    x, y, s = fx[lo:hi], fy[lo:hi], fs[lo:hi]
    for i in range(len(x)):
        v = x[i]
        g = sigmoid_scalar32(v)
        s[i] = g
        y[i] = v * g


def sigmoid32(x: np.ndarray) -> np.ndarray:
    """σ(x) of a float32 array."""
    return map_chunks(_sigmoid_chunks, (x,))


def silu32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x·σ(x), σ(x)) of a float32 array."""
    return map_chunks(_silu_chunks, (x,), outputs=2)


@njit(inline="always")
def _expm1_neg32(v):
    """e^v − 1 for v ≤ 0 in float32: the Taylor polynomial near 0, e^v − 1 beyond −½."""
    p = _EXPM1_C[0]
    for c in _EXPM1_C[1:]:
        p = p * v + c
    return p * v if v > -_HALF else expneg32(-v) - _ONE


@njit(cache=True, nogil=True, error_model="numpy")
def _elu_chunks(fx, alpha, inner, lift, scale, fy, fslope, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    x, y, slope = fx[lo:hi], fy[lo:hi], fslope[lo:hi]
    for i in range(len(x)):
        v = x[i]
        pos = v > _ZERO
        u = (_ZERO if pos else v) / inner  # min(x, 0) / inner, NaN kept
        y[i] = (v if pos or v != v else alpha * _expm1_neg32(u)) * scale
        slope[i] = _ONE if pos else (v if v != v else lift * expneg32(-u))


def elu32(x: np.ndarray, alpha: float, inner: float = 1.0,
          scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(scale·(x if x > 0 else alpha·(e^(x/inner) − 1)), the slope without ``scale``) of a
    float32 array: ELU (inner 1), CELU (inner alpha), SELU (its alpha and scale)."""
    f = np.float32
    return map_chunks(_elu_chunks, (x,), (f(alpha), f(inner), f(alpha / inner), f(scale)),
                      outputs=2)


# ------------------------------------------------------------------ backward products, any float
@njit(cache=True, nogil=True)
def _scaled_product_chunks(fa, fb, scale, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    a, b, o = fa[lo:hi], fb[lo:hi], fo[lo:hi]
    for i in range(len(a)):
        o[i] = a[i] * b[i] * scale


def scaled_product(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """a·b·scale, left to right: a gradient times a saved slope (times SELU's scale)."""
    return map_chunks(_scaled_product_chunks, (a, b), (a.dtype.type(scale),))


@njit(cache=True, nogil=True)
def _sigmoid_grad_chunks(fd, fy, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, y, o = fd[lo:hi], fy[lo:hi], fo[lo:hi]
    one = np.ones(1, fd.dtype)[0]
    for i in range(len(d)):
        o[i] = d[i] * y[i] * (one - y[i])


def sigmoid_grad(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy·y·(1 − y) from the forward's output."""
    return map_chunks(_sigmoid_grad_chunks, (dy, y))


@njit(cache=True, nogil=True)
def _silu_grad_chunks(fd, fx, fs, fo, c0, c1):
    lo, hi = c0 * CHUNK, c1 * CHUNK
    d, x, s, o = fd[lo:hi], fx[lo:hi], fs[lo:hi], fo[lo:hi]
    one = np.ones(1, fd.dtype)[0]
    for i in range(len(d)):
        o[i] = d[i] * s[i] * (one + x[i] * (one - s[i]))


def silu_grad(dy: np.ndarray, x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """dy·σ·(1 + x·(1 − σ)) from the input and its saved σ."""
    return map_chunks(_silu_grad_chunks, (dy, x, s))
