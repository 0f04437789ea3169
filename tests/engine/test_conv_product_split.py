"""The convolutions built on matrix products (Winograd, im2col backward, strided) split their
chunks or samples over the cores with ``engine.threads.split_rows``: every way of splitting must
give the one-part result bit for bit (each part computes whole chunks; partial sums are per chunk
or per fixed run of chunks and are added in order afterwards). The split is done by hand here, so
the test does not depend on how many cores the machine has."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv_gemm_back as gb, conv_gemm_strided as gs
from layerloom.engine.kernels import conv_winograd as wg, conv_winograd_plan as plan
from layerloom.engine.kernels import conv_winograd_back as wgb


def _splits(n: int) -> list:
    """One part; two halves; every item alone, run last to first."""
    half = n // 2
    return [[(0, n)], [(0, half), (half, n)] if half else [(0, n)],
            [(i, i + 1) for i in reversed(range(n))]]


def _results(monkeypatch, modules, call) -> list:
    """call()'s arrays under each way of splitting of ``_splits``."""
    results = []
    for way in range(3):
        def split(fn, n, way=way):
            for lo, hi in _splits(n)[way]:
                fn(lo, hi)
        for module in modules:
            monkeypatch.setattr(module, "split_rows", split)
        out = call()
        results.append([np.array(a) for a in (out if isinstance(out, tuple) else (out,))])
    return results


def _same(results) -> None:
    one = results[0]
    for other in results[1:]:
        assert len(other) == len(one)
        for a, b in zip(one, other):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def _pool_arg(rng, n, nf, ph, pw, wp) -> np.ndarray:
    """A fused 2×2 max-pool's winners (flat index r·Wp + q), −1 for about a third (ReLU)."""
    r = 2 * np.arange(ph)[:, None] + rng.integers(0, 2, (n, nf, ph, pw))
    q = 2 * np.arange(pw)[None, :] + rng.integers(0, 2, (n, nf, ph, pw))
    return np.where(rng.random((n, nf, ph, pw)) < 0.3, -1, r * wp + q).astype(np.int32)


@pytest.mark.parametrize("dtype", [np.float32])  # the engine's Winograd is float32 only: its
# float64 variants, compiled for this test alone, were 50 s of a fresh cache's compiling
@pytest.mark.parametrize("n,c,f,h,w", [(1, 16, 16, 11, 13), (9, 17, 20, 18, 16)])
def test_winograd_splits_give_the_one_part_result(monkeypatch, dtype, n, c, f, h, w):
    rng = np.random.default_rng(3)
    xp = rng.standard_normal((n, c, h, w)).astype(dtype)
    u = plan.filter_transform(rng.standard_normal((f, c, 3, 3)).astype(dtype), 4)
    b = rng.standard_normal(f).astype(dtype)
    oh, ow = h - 2, w - 2
    dy = rng.standard_normal((n, f, oh, ow)).astype(dtype)
    dp = rng.standard_normal((n, f, oh // 2, ow // 2)).astype(dtype)
    arg = _pool_arg(rng, n, f, oh // 2, ow // 2, w)
    for call in (lambda: wg.winograd_forward_flat(xp, u, b, w),
                 lambda: wg.winograd_forward_flat(xp, u, b, ow),
                 lambda: wgb.winograd_backward(xp, u, dy, True),
                 lambda: wgb.winograd_backward(xp, u, dy, False),
                 lambda: plan.unpool(dp, arg, oh, ow, w)):
        _same(_results(monkeypatch, (wg, plan), call))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c,f,h,w,k", [(1, 4, 32, 9, 11, 3), (13, 3, 33, 8, 30, 5)])
def test_matrix_product_backward_splits_give_the_one_part_result(monkeypatch, dtype, n, c, f, h,
                                                                  w, k):
    rng = np.random.default_rng(4)
    xp = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, k, k)).astype(dtype)
    oh, ow = h - k + 1, w - k + 1
    dy = rng.standard_normal((n, f, oh, ow)).astype(dtype)
    dp = rng.standard_normal((n, f, oh // 2, ow // 2)).astype(dtype)
    arg = _pool_arg(rng, n, f, oh // 2, ow // 2, w)
    for need in (True, False):
        _same(_results(monkeypatch, (gb,), lambda: gb.gemm_backward_flat(xp, wt, dy, need)))
        _same(_results(monkeypatch, (gb,),
                       lambda: gb.gemm_backward_pooled(xp, wt, dp, arg, oh, ow, need)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c,h,w,f,k,stride,dil,groups", [
    (1, 4, 9, 11, 8, 3, (2, 2), (1, 1), 1),
    (47, 3, 15, 15, 8, 3, (2, 2), (1, 1), 1),  # 10 chunks: the weight gradient's 8 runs
    (20, 4, 11, 12, 12, 3, (3, 2), (1, 2), 2)])
def test_strided_splits_give_the_one_part_result(monkeypatch, dtype, n, c, h, w, f, k, stride,
                                                 dil, groups):
    rng = np.random.default_rng(5)
    xp = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, k, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    oh = (h - dil[0] * (k - 1) - 1) // stride[0] + 1
    ow = (w - dil[1] * (k - 1) - 1) // stride[1] + 1
    dy = rng.standard_normal((n, f, oh, ow)).astype(dtype)
    geometry = (*stride, *dil, groups)
    calls = [lambda: gs.gemm_forward_strided(xp, wt, b, *geometry),
             lambda: gs.gemm_input_grad_strided(dy, wt, h, w, *geometry)]
    for need in (True, False):
        calls += [lambda need=need: gs.gemm_backward_strided(xp, wt, dy, *geometry, need),
                  lambda need=need: gs.gemm_transposed_backward(xp, wt, dy, *geometry, need)]
    for call in calls:
        _same(_results(monkeypatch, (gs,), call))
