"""``kernels.channels``: the per-channel gain and shift (GroupNorm, InstanceNorm) and PReLU's
slopes equal their numpy twins, element-wise parts exactly and parameter sums to rounding, in
either float type, with NaN kept where numpy keeps it; and nothing depends on the thread count."""
import numba
import numpy as np
import pytest

from layerloom.engine.kernels import channels

DTYPES = [np.float32, np.float64]
TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-4}, np.float64: {"rtol": 1e-12, "atol": 1e-10}}


def _batch(dtype, shape=(5, 6, 7, 9), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x[1, 2, 3, 4] = np.nan
    return x, rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_affine_and_its_gradients_follow_numpy(dtype):
    xhat, dy, w = _batch(dtype)
    b = w[::-1].copy()
    per = (1, -1, 1, 1)
    np.testing.assert_array_equal(channels.channel_affine(xhat, w, b),
                                  xhat * w.reshape(per) + b.reshape(per))
    dxhat, dw, db = channels.channel_affine_grads(dy, xhat, w)
    np.testing.assert_array_equal(dxhat, dy * w.reshape(per))
    np.testing.assert_allclose(dw, (dy * xhat).sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    assert np.isnan(dw[2]) and np.isfinite(np.delete(dw, 2)).all()
    assert channels.channel_affine_grads(dy, xhat, w, need_dx=False)[0] is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slopes", [1, 6])
def test_prelu_and_its_gradients_follow_numpy(dtype, slopes):
    x, dy, w = _batch(dtype, seed=1)
    w = w[:slopes]
    ws = w.reshape((1, -1, 1, 1) if slopes > 1 else ())
    np.testing.assert_array_equal(channels.prelu(x, w), np.where(x > 0, x, ws * x))
    dx, dw = channels.prelu_grads(dy, x, w)
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, ws * dy))
    contrib = np.where(x > 0, 0, x * dy)
    want = contrib.sum(axis=(0, 2, 3)) if slopes > 1 else contrib.sum(keepdims=True).reshape(1)
    np.testing.assert_allclose(dw, want, **TOL[dtype])
    assert np.isnan(dw).sum() == 1  # the NaN input's slope only


def test_sums_do_not_depend_on_the_thread_count():
    x, dy, w = _batch(np.float32, (37, 4, 10, 10), seed=2)
    before, runs = numba.get_num_threads(), []
    for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(n)
        runs.append((*channels.channel_affine_grads(dy, x, w), *channels.prelu_grads(dy, x, w)))
    numba.set_num_threads(before)
    for a, b in zip(runs[0], runs[-1]):
        np.testing.assert_array_equal(a, b)


def test_an_empty_batch_gives_empty_results_and_zero_sums():
    x, w = np.zeros((0, 3, 2, 2), np.float32), np.ones(3, np.float32)
    assert channels.channel_affine(x, w, w).shape == x.shape
    np.testing.assert_array_equal(channels.channel_affine_grads(x, x, w)[1], np.zeros(3))
    np.testing.assert_array_equal(channels.prelu_grads(x, x, w[:1])[1], np.zeros(1))
