"""Pooling, BatchNorm and the strided and grouped convolutions split their samples (or channels,
or filters) over the cores with ``engine.threads.split_rows``: they give the one-part result bit
for bit, however the range is cut.

The split is forced here (uneven parts, run one after another), so the check does not depend on
how many cores the machine has."""
from __future__ import annotations

import numpy as np
import pytest

from layerloom.engine.kernels import batchnorm, conv_grouped, conv_strided, pool

DTYPES = [np.float64, np.float32]


def cuts(n: int) -> list[tuple[int, int]]:
    """Uneven parts of [0, n): one item, then the rest in two (fewer when n is small)."""
    bounds = sorted({0, min(1, n), (n + 1) // 2 + 1 if n > 2 else n, n})
    return list(zip(bounds[:-1], bounds[1:]))


def both_ways(monkeypatch, module, call) -> tuple:
    """(one part, cut parts) results of ``call()`` with ``module.split_rows`` forced either way."""
    monkeypatch.setattr(module, "split_rows", lambda fn, n: fn(0, n))
    whole = call()
    monkeypatch.setattr(module, "split_rows", lambda fn, n: [fn(lo, hi) for lo, hi in cuts(n)])
    return whole, call()


def assert_same_bits(a, b) -> None:
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()


def data(shape, dtype, seed=0, nan=False):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if nan:
        x.flat[::7] = np.nan
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("window", [(2, 2, 2, 2, 1, 1), (3, 2, 1, 2, 2, 1)])
def test_pooling_split_over_the_batch_gives_the_one_part_result(monkeypatch, dtype, n, window):
    kh, kw, sh, sw, dh, dw = window
    xp = data((n, 3, 9, 8), dtype, nan=True)
    y, arg = pool.max_pool2d_forward(xp, *window)
    dy = data(y.shape, dtype, seed=1)
    for call in (lambda: pool.max_pool2d_forward(xp, *window),
                 lambda: pool.max_pool2d_backward(dy, arg, 9, 8),
                 lambda: pool.avg_pool2d_forward(xp, kh, kw, sh, sw),
                 lambda: pool.avg_pool2d_backward(dy, kh, kw, sh, sw, 9, 8)):
        assert_same_bits(*both_ways(monkeypatch, pool, call))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 7), (5, 3, 33), (2, 6, 64)])
@pytest.mark.parametrize("affine,relu", [(True, False), (False, True)])
def test_batch_norm_split_over_channels_gives_the_one_part_result(monkeypatch, dtype, shape,
                                                                   affine, relu):
    c = shape[1]
    x = data(shape, dtype) * 3 + 1
    w, b = (data(c, dtype, 1), data(c, dtype, 2)) if affine else (np.empty(0, dtype),) * 2
    y, mean, _, inv_std = batchnorm.batch_norm_forward(x, w, b, 1e-5, relu)
    dy = data(shape, dtype, 3)
    for call in (lambda: batchnorm.batch_norm_forward(x, w, b, 1e-5, relu),
                 lambda: batchnorm.batch_norm_inference(x, w, b, mean, inv_std, relu),
                 lambda: batchnorm.batch_norm_backward(x, y, dy, mean, inv_std, w, True, relu, True),
                 lambda: batchnorm.batch_norm_backward(x, y, dy, mean, inv_std, w, False, relu,
                                                       False)):
        assert_same_bits(*both_ways(monkeypatch, batchnorm, call))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,nf", [(1, 1), (5, 3)])
@pytest.mark.parametrize("stride", [(2, 2), (3, 1)])
def test_strided_convolution_split_gives_the_one_part_result(monkeypatch, dtype, n, nf, stride):
    xp, w, b = data((n, 2, 11, 10), dtype), data((nf, 2, 3, 2), dtype, 1), data(nf, dtype, 2)
    dy = data(conv_strided.forward_strided(xp, w, b, *stride).shape, dtype, 3)
    for call in (lambda: conv_strided.forward_strided(xp, w, b, *stride),
                 lambda: conv_strided.backward_strided(xp, w, dy, *stride, True),
                 lambda: conv_strided.backward_strided(xp, w, dy, *stride, False)):
        assert_same_bits(*both_ways(monkeypatch, conv_strided, call))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,nf,groups", [(1, 4, 4, 4), (5, 6, 4, 2), (3, 3, 6, 3)])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 1)])
def test_grouped_convolution_split_gives_the_one_part_result(monkeypatch, dtype, n, c, nf, groups,
                                                             dilation):
    kh, kw = 3, 2
    xp, b = data((n, c, 10, 11), dtype), data(nf, dtype, 2)
    w = data((nf, c // groups, kh, kw), dtype, 1)
    dy = data(conv_grouped.grouped_forward_flat(xp, w, b, *dilation, groups).shape, dtype, 3)
    calls = [lambda: conv_grouped.grouped_forward_flat(xp, w, b, *dilation, groups),
             lambda: conv_grouped.grouped_weight_grad_flat(xp, dy, kh, kw, *dilation, groups)]
    stride = (2, 3)
    dys = data(conv_grouped.grouped_forward_rows(xp, w, b, *stride, *dilation, groups).shape,
               dtype, 4)
    calls += [lambda: conv_grouped.grouped_forward_rows(xp, w, b, *stride, *dilation, groups),
              lambda: conv_grouped.grouped_input_grad_rows(dys, w, 10, 11, *stride, *dilation,
                                                           groups),
              lambda: conv_grouped.grouped_weight_grad_rows(xp, dys, kh, kw, *stride, *dilation,
                                                            groups)]
    for call in calls:
        assert_same_bits(*both_ways(monkeypatch, conv_grouped, call))
