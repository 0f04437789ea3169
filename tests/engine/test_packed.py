"""The float32 product against a packed weight (``kernels.packed``): the recurrent layers' steps
and ``dense.matmul``'s products with small weights. It equals the float64 product for every row
count (tiles of 1-6 rows on AVX2, 1-12 on AVX-512), every width (whole and part panels, pairs of
panels and a last one alone) and every inner size, accumulating or not; it leaves the columns
beyond the output's alone; a row's result does not depend on the rows beside it (the batch split
over cores gives the same bits), nor on the vector width the CPU has; integer-valued operands
give the exact product; a NaN stays in its row."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from layerloom.engine.kernels import packed as packed_module
from layerloom.engine.kernels.packed import PANEL, gemm_packed, packed, panels_shape


def _operands(m, k, n, seed=0):
    rng = np.random.default_rng(seed + 100 * m + 10 * k + n)
    return (rng.standard_normal((m, k), dtype=np.float32),
            rng.standard_normal((k, n), dtype=np.float32),
            rng.standard_normal((m, n), dtype=np.float32))


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 16, 24, 32, 37])
@pytest.mark.parametrize("k,n", [(1, 16), (7, 5), (64, 40), (256, 1024), (100, 33)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_the_product_is_the_float64_product(m, k, n, accumulate):
    a, b, c = _operands(m, k, n)
    want = a.astype(np.float64) @ b.astype(np.float64) + (c if accumulate else 0)
    gemm_packed(a, packed(b), c, accumulate)
    scale = np.abs(a).astype(np.float64) @ np.abs(b) + 1  # float32 rounding grows with k
    assert np.all(np.abs(c - want) <= 4e-7 * scale * np.sqrt(k) + 1e-6)


def test_the_packed_layout_is_panels_of_16_columns_padded_with_zeros():
    b = np.arange(5 * 21, dtype=np.float32).reshape(5, 21)
    p = packed(b)
    assert p.shape == panels_shape(5, 21) == (2, 5, PANEL)
    np.testing.assert_array_equal(p[0], b[:, :16])
    np.testing.assert_array_equal(p[1, :, :5], b[:, 16:])
    assert not p[1, :, 5:].any()
    np.testing.assert_array_equal(packed(np.asfortranarray(b)), p)  # any strides
    np.testing.assert_array_equal(packed(b.T.copy().T), p)


@pytest.mark.parametrize("n", [16, 21])
def test_strided_rows_and_the_columns_beyond_the_output(n):
    a, b, _ = _operands(9, 30, n)
    wide_a = np.full((9, 41), np.nan, np.float32)
    wide_a[:, :30] = a
    wide_c = np.full((9, n + 7), 5.0, np.float32)
    gemm_packed(wide_a[:, :30], packed(b), wide_c[:, :n], False)
    plain = np.empty((9, n), np.float32)
    gemm_packed(a, packed(b), plain, False)
    np.testing.assert_array_equal(wide_c[:, :n], plain)
    assert np.all(wide_c[:, n:] == 5.0)  # never written, not even by the last tile


def test_a_rows_result_does_not_depend_on_the_rows_beside_it():
    """The same bits for the whole batch at once and for any split of its rows (the recurrent
    loops split the batch over cores)."""
    a, b, c = _operands(32, 256, 200)
    p = packed(b)
    whole = c.copy()
    gemm_packed(a, p, whole, True)
    for cut in (1, 5, 16, 31):
        parts = c.copy()
        gemm_packed(a[:cut], p, parts[:cut], True)
        gemm_packed(a[cut:], p, parts[cut:], True)
        np.testing.assert_array_equal(parts, whole)


def test_integer_operands_give_the_exact_product():
    rng = np.random.default_rng(4)
    a = rng.integers(-8, 9, (11, 70)).astype(np.float32)
    b = rng.integers(-8, 9, (70, 45)).astype(np.float32)
    c = rng.integers(-100, 100, (11, 45)).astype(np.float32)
    want = (a.astype(np.int64) @ b.astype(np.int64) + c.astype(np.int64)).astype(np.float32)
    gemm_packed(a, packed(b), c, True)
    np.testing.assert_array_equal(c, want)


def test_a_nan_stays_in_its_row_and_an_empty_product_is_zero():
    a, b, _ = _operands(8, 12, 20)
    a[3, 7] = np.nan
    c = np.zeros((8, 20), np.float32)
    gemm_packed(a, packed(b), c, False)
    assert np.isnan(c[3]).all() and np.isfinite(np.delete(c, 3, axis=0)).all()
    empty = np.full((4, 20), 9.0, np.float32)
    gemm_packed(np.zeros((4, 0), np.float32), packed(np.zeros((0, 20), np.float32)), empty, False)
    assert not empty.any()


def test_dense_products_the_rule_takes_run_through_the_packed_weight(monkeypatch):
    """``dense.matmul`` (Dense layers, attention's projections, the recurrent layers' input
    projection) takes float32 products with a small weight through the packed kernel: the
    float64 product's values, the bias added, and the same bits for any split into parts."""
    from layerloom.engine.kernels import dense

    rng = np.random.default_rng(8)
    a = rng.standard_normal((300, 100), dtype=np.float32)
    w, bias = rng.standard_normal((40, 100), dtype=np.float32), rng.standard_normal(40)
    bias = bias.astype(np.float32)
    assert dense._packs(a, w.T) and not dense._packs(a[:20], w.T)  # few rows: the BLAS
    assert not dense._packs(a.astype(np.float64), w.T.astype(np.float64))
    calls = []
    monkeypatch.setattr(dense, "gemm_packed",
                        lambda *args: calls.append(len(args[0])) or gemm_packed(*args))
    got = dense.matmul(a, w.T, bias)
    assert calls == [300]
    want = a.astype(np.float64) @ w.T.astype(np.float64) + bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(dense, "gemm_parts", lambda m, macs: [(0, 7), (7, 150), (150, m)])
    np.testing.assert_array_equal(dense.matmul(a, w.T, bias), got)
    assert sorted(calls[1:]) == [7, 143, 150]  # the parts run side by side


_AVX2_CHILD = """
import json, sys
import numpy as np
from layerloom.engine.kernels import packed
a, b, c = (np.asarray(v, np.float32) for v in json.load(sys.stdin))
packed.gemm_packed(a, packed.packed(b), c, True)
print(json.dumps({"lanes": packed.LANES, "c": c.view(np.uint32).tolist()}))
"""


@pytest.mark.skipif(packed_module.LANES == 8, reason="the host has no AVX-512: its tile is AVX2's")
def test_the_avx512_tile_gives_the_avx2_tiles_bits():
    """On a CPU with AVX-512 the tile spans two panels in 16-float registers; numba told to
    compile for AVX2 (a child process: the features are read once) runs the 8-float tile. Each
    element is the same k-ordered chain of fused multiply-adds either way: the same bits."""
    a, b, c = _operands(37, 70, 72, seed=5)
    here = c.copy()
    gemm_packed(a, packed(b), here, True)
    env = dict(os.environ, NUMBA_CPU_NAME="haswell",
               NUMBA_CPU_FEATURES="+avx,+avx2,+fma,+f16c,+sse4.2,+popcnt,+bmi,+bmi2,+lzcnt")
    out = subprocess.run([sys.executable, "-c", _AVX2_CHILD], env=env, capture_output=True,
                         text=True, timeout=600,
                         input=json.dumps([a.tolist(), b.tolist(), c.tolist()]), check=True)
    child = json.loads(out.stdout)
    assert child["lanes"] == 8 and packed_module.LANES == 16
    np.testing.assert_array_equal(np.asarray(child["c"], np.uint32).view(np.float32), here)
