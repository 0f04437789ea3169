"""``kernels.vector_width.wide_vectors``: a kernel that calls it is compiled with LLVM's
"prefer-vector-width"="512" (16 float32 lanes where the CPU has AVX-512, nothing changed where
it has not) and computes the same bits as the same loop without it: the engine's GELU backward
equals an unmarked copy of its loop, specials included."""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels import elementwise
from layerloom.engine.kernels.elementwise import _HALF, _ONE, _R2, _R2PI, erf32, expneg32
from layerloom.engine.kernels.packed import LANES
from layerloom.engine.kernels.vector_width import WIDE_ATTRIBUTE, wide_vectors


def _body(x, dy, out):
    for i in range(len(x)):
        v = x[i]
        d = _HALF * (_ONE + erf32(v * _R2)) + v * expneg32(_HALF * v * v) * _R2PI
        out[i] = dy[i] * d


_body_jit = njit(error_model="numpy", inline="always")(_body)
_narrow = njit(error_model="numpy")(_body)  # not cached: the tests read the compiled code


@njit(error_model="numpy")
def _wide(x, dy, out):
    wide_vectors()
    _body_jit(x, dy, out)


def _inputs(n=5000):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    x[:9] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 9.0, -9.0, 100.0]
    return x, rng.standard_normal(n).astype(np.float32)


def test_a_marked_kernel_gives_the_unmarked_kernels_bits():
    x, dy = _inputs()
    wide, narrow = np.empty_like(x), np.empty_like(x)
    _wide(x, dy, wide)
    _narrow(x, dy, narrow)
    np.testing.assert_array_equal(wide.view(np.uint32), narrow.view(np.uint32))


def test_the_mark_reaches_llvm_and_on_avx512_the_loop_runs_sixteen_lanes():
    x, dy = _inputs(64)
    out = np.empty_like(x)
    _wide(x, dy, out)
    _narrow(x, dy, out)
    wide_ir = "".join(_wide.inspect_llvm().values())
    assert WIDE_ATTRIBUTE in wide_ir
    assert WIDE_ATTRIBUTE not in "".join(_narrow.inspect_llvm().values())
    if LANES == 16:  # numba targets AVX-512 here (kernels.packed read the same features)
        assert "zmm" in "".join(_wide.inspect_asm().values())
        assert "zmm" not in "".join(_narrow.inspect_asm().values())


def test_the_engines_gelu_backward_is_the_unmarked_loop():
    x, dy = _inputs(3 * elementwise.CHUNK + 17)
    want = np.empty_like(x)
    _narrow(x, dy, want)
    got = elementwise.gelu_backward(x, dy, False)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
