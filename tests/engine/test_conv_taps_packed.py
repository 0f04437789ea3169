"""The chunked convolution backward's products through the packed tile kernel (float32, ≥ 16
filters: ``conv_taps_packed``): each product equals numpy's; the plain and the fused backward equal
the float64 twins for filter counts that fill panels or leave them part-empty, over batches cut into
several chunks; and the results do not depend on the thread count."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from layerloom.engine.kernels import conv_flat, conv_flat_back
from layerloom.engine.kernels import conv_reference as ref
from layerloom.engine.kernels.conv_taps_packed import (MIN_FILTERS, input_grad_packed,
                                                       weight_grad_packed)
from tests.engine.test_fused_kernels import TOL, unfused_backward


@pytest.mark.parametrize("nf,n", [(16, 40), (20, 293), (33, 512)])
def test_the_weight_gradient_product_is_numpys(nf, n):
    """dw2[f, (r, j)] += Σ_p dz[f, at + p] · rows[r, j + p], and db[f] += Σ_p dz[f, at + p],
    added on."""
    rng = np.random.default_rng(nf + n)
    c_kh, kw, at = 4, 3, 2
    rows = rng.standard_normal((c_kh + 1, n + kw + 5), dtype=np.float32)
    dz = rng.standard_normal((nf, at + n + 3), dtype=np.float32)
    dw2 = rng.standard_normal((nf, c_kh * kw), dtype=np.float32)
    want = dw2.astype(np.float64)
    for r in range(c_kh):
        for j in range(kw):
            want[:, r * kw + j] += dz[:, at:at + n].astype(np.float64) @ rows[r, j:j + n]
    db = rng.standard_normal(nf, dtype=np.float32)
    want_db = db + dz[:, at:at + n].astype(np.float64).sum(axis=1)
    start = dw2.astype(np.float64)
    weight_grad_packed(rows, dz, at, c_kh, kw, n, dw2, db)
    np.testing.assert_allclose(dw2, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-4)
    weight_grad_packed(rows, dz, at, c_kh, kw, n, dw2, db[:0])  # an empty db: dw2 alone
    np.testing.assert_allclose(dw2, 2 * want - start, rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n", [1, 16, 45])
def test_the_input_gradient_product_reads_its_windows_in_place(n):
    rng = np.random.default_rng(n)
    wt = rng.standard_normal((7, 10), dtype=np.float32)
    src = rng.standard_normal(300, dtype=np.float32)
    offs = rng.integers(0, 300 - n - 16, 10).astype(np.int64)  # 16 floats to spare, as dz has
    got = np.full((8, -(-n // 16) * 16 + 3), 7.0, np.float32)  # a pitch that takes whole panels
    input_grad_packed(src, wt, offs, n, got)
    assert np.all(got[7] == 7.0) and np.all(got[:, -3:] == 7.0)  # nothing past the panels
    windows = np.stack([src[o:o + n] for o in offs]).astype(np.float64)
    np.testing.assert_allclose(got[:7, :n], wt.astype(np.float64) @ windows, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("nf", [MIN_FILTERS, 20, 33])
@pytest.mark.parametrize("xs,k", [((3, 6, 14, 14), (5, 5)), ((70, 2, 9, 8), (3, 2))])
def test_the_backward_equals_the_twins(nf, xs, k):
    """Fused (ReLU, 2 × 2 pool) and plain; 70 samples of 8-column rows make several chunks."""
    rng = np.random.default_rng(nf)
    xp = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal((nf, xs[1], *k)).astype(np.float32)
    b = rng.standard_normal(nf).astype(np.float32)
    y, arg = conv_flat.conv_relu_maxpool_forward(xp, w, b, 2, 2, 2, 2, True)
    dp = rng.standard_normal(y.shape).astype(np.float32)
    got = conv_flat_back.conv_relu_maxpool_backward(xp, w, dp, arg, True)
    want = unfused_backward(*(a.astype(np.float64) for a in (xp, w, b)), (2, 2), (2, 2),
                            dp.astype(np.float64))
    for g, r in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, **TOL[np.float32])
    dy = rng.standard_normal((xs[0], nf, xs[2] - k[0] + 1, xs[3] - k[1] + 1)).astype(np.float32)
    dxp, dw, db = conv_flat_back.backward_flat(xp, w, dy, True)
    d64 = dy.astype(np.float64)
    np.testing.assert_allclose(dxp, ref.conv2d_input_grad_reference(
        d64, w.astype(np.float64), *xs[2:], 1, 1), **TOL[np.float32])
    np.testing.assert_allclose(dw, ref.conv2d_weight_grad_reference(
        xp.astype(np.float64), d64, *k, 1, 1), rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(db, d64.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)


def test_the_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(4)
    xp = rng.standard_normal((37, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((MIN_FILTERS, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((37, MIN_FILTERS, 10, 10)).astype(np.float32)
    before, runs = numba.get_num_threads(), []
    try:
        for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            runs.append(conv_flat_back.backward_flat(xp, w, dy, True))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(runs[0], runs[-1]):
        np.testing.assert_array_equal(a, b)
