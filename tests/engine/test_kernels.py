"""Every numba kernel equals the numpy twin that defines it (float64 tight, float32 loose)."""
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.kernels import conv, elementwise, pool
from layerloom.engine.serialize import load_project

TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}
DTYPES = [np.float64, np.float32]

# (input N×C×H×W, weight O×C×KH×KW, stride, padding): LeNet's two layers, odd sizes, a 1×1
# kernel, rectangular kernels and strides, padding wider than the kernel's half.
CONV_CASES = [((3, 2, 9, 8), (4, 2, 3, 2), (1, 1), (0, 0)),
              ((2, 1, 28, 28), (6, 1, 5, 5), (1, 1), (2, 2)),
              ((1, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0)),
              ((2, 3, 11, 10), (5, 3, 3, 3), (2, 3), (1, 0)),
              ((3, 5, 7, 5), (3, 5, 1, 1), (1, 1), (0, 0)),
              ((2, 2, 5, 7), (7, 2, 2, 4), (3, 1), (2, 3)),
              ((1, 1, 4, 4), (1, 1, 4, 4), (1, 1), (0, 0))]


def padded(rng, shape, pad, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    return np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,stride,pad", CONV_CASES)
def test_conv2d_kernels_match_their_twins(dtype, xs, ws, stride, pad):
    rng = np.random.default_rng(0)
    xp = padded(rng, xs, pad, dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = conv.conv2d_forward(xp, w, b, *stride)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, conv.conv2d_forward_reference(xp, w, b, *stride), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = conv.conv2d_backward(xp, w, dy, *stride, True)
    assert dxp.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dw, conv.conv2d_weight_grad_reference(xp, dy, *ws[2:], *stride),
                               **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.conv2d_input_grad_reference(dy, w, *xp.shape[2:], *stride),
                               **TOL[dtype])
    no_dx, dw_again, _ = conv.conv2d_backward(xp, w, dy, *stride, False)
    assert no_dx is None
    np.testing.assert_array_equal(dw_again, dw)


def test_conv2d_twin_is_a_convolution():
    """The twin itself, checked by hand on one window: the kernels inherit its meaning."""
    xp = np.arange(2 * 4 * 5, dtype=np.float64).reshape(1, 2, 4, 5)
    w = np.random.default_rng(3).standard_normal((3, 2, 2, 3))
    y = conv.conv2d_forward_reference(xp, w, np.zeros(3), 2, 1)
    assert y.shape == (1, 3, 2, 3)
    np.testing.assert_allclose(y[0, 1, 1, 2], (xp[0, :, 2:4, 2:5] * w[1]).sum())


POOL_CASES = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0)),
              ((2, 2), (1, 1), (0, 0)), ((1, 3), (1, 3), (0, 1)), ((2, 2), (3, 3), (1, 1)),
              ((3, 3), (3, 3), (0, 0))]
DILATIONS = {0: (1, 1), 1: (2, 1), 2: (1, 2)}  # per POOL_CASES index; the others (1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_max_pool_kernels_match_their_twins(dtype, case):
    (k, s, pad), dil = POOL_CASES[case], DILATIONS.get(case, (1, 1))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 7)).astype(dtype)
    xp = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2),
                                     constant_values=-np.inf))
    y, arg = pool.max_pool2d_forward(xp, *k, *s, *dil)
    want_y, want_arg = pool.max_pool2d_reference(xp, *k, *s, *dil)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(arg, want_arg)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp = pool.max_pool2d_backward(dy, arg, *xp.shape[2:])
    np.testing.assert_allclose(dxp, pool.max_pool2d_backward_reference(dy, arg, *xp.shape[2:]),
                               **TOL[dtype])


def test_max_pool_ties_go_to_the_first_maximum_and_nan_is_never_hidden():
    xp = np.array([[[[1.0, 1.0], [0.0, 1.0]]]])
    y, arg = pool.max_pool2d_forward(xp, 2, 2, 2, 2, 1, 1)
    assert y[0, 0, 0, 0] == 1.0 and arg[0, 0, 0, 0] == 0  # as PyTorch: the first maximum
    xp[0, 0, 1, 1] = np.nan
    y, arg = pool.max_pool2d_forward(xp, 2, 2, 2, 2, 1, 1)
    assert np.isnan(y[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h,w", [(8, 8), (9, 7), (5, 12), (2, 3), (6, 32), (5, 65), (7, 16),
                                 (4, 29), (10, 20)])
def test_two_by_two_max_pool_keeps_the_twins_winners_among_ties_and_nans(dtype, h, w):
    """The 2×2 / 2 paths (rows of < 8 windows: vertical pairs over the map first; of ≥ 8: each
    pooled row's pairs side by side, then one flat pass; with or without an odd edge the pool
    drops) on small integers, where most windows tie, and NaNs: the same values and winners as
    the row-major scan of the numpy twin."""
    rng = np.random.default_rng(h * w)
    xp = rng.integers(-2, 3, (3, 4, h, w)).astype(dtype)
    xp[rng.random(xp.shape) < 0.05] = np.nan
    y, arg = pool.max_pool2d_forward(xp, 2, 2, 2, 2, 1, 1)
    want_y, want_arg = pool.max_pool2d_reference(xp, 2, 2, 2, 2)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(arg, want_arg)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s,pad", POOL_CASES)
def test_avg_pool_kernels_match_their_twins(dtype, k, s, pad):
    rng = np.random.default_rng(2)
    xp = padded(rng, (2, 3, 8, 7), pad, dtype)
    y = pool.avg_pool2d_forward(xp, *k, *s)
    np.testing.assert_allclose(y, pool.avg_pool2d_reference(xp, *k, *s), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp = pool.avg_pool2d_backward(dy, *k, *s, *xp.shape[2:])
    np.testing.assert_allclose(dxp, pool.avg_pool2d_backward_reference(dy, *k, *s, *xp.shape[2:]),
                               **TOL[dtype])
    # The backward twin is the forward's transpose: <avg(x), dy> == <x, avg'(dy)>.
    np.testing.assert_allclose((y * dy).sum(), (xp * dxp).sum(), rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hw", [(8, 8), (4, 6), (2, 2)])
def test_avg_pool_backward_fills_maps_its_windows_tile(dtype, hw):
    """2×2 / 2 windows that cover the map exactly: the gradient's buffer is not zeroed first,
    so every place must be written; the forward sums each window in one loop per row."""
    rng = np.random.default_rng(3)
    xp = rng.standard_normal((3, 5, *hw)).astype(dtype)
    y = pool.avg_pool2d_forward(xp, 2, 2, 2, 2)
    np.testing.assert_allclose(y, pool.avg_pool2d_reference(xp, 2, 2, 2, 2), **TOL[dtype])
    for _ in range(3):  # fresh buffers, whatever memory they reuse
        dy = rng.standard_normal(y.shape).astype(dtype)
        np.testing.assert_array_equal(pool.avg_pool2d_backward(dy, 2, 2, 2, 2, *hw),
                                      pool.avg_pool2d_backward_reference(dy, 2, 2, 2, 2, *hw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s", [((2, 2), (2, 2)), ((3, 3), (2, 2))])
def test_avg_pool_sums_start_from_zero_as_pytorchs_do(dtype, k, s):
    """A window whose first tap is infinite averages to infinity (a sum started from x · 0 made
    it NaN), and a window of −0 to +0, as PyTorch's avg_pool2d."""
    xp = np.full((1, 2, 4, 4), -0.0, dtype)
    xp[0, 0] = 1
    xp[0, 0, 0, 0] = np.inf
    y = pool.avg_pool2d_forward(xp, *k, *s)
    assert y[0, 0, 0, 0] == np.inf and np.isfinite(y[0, 0].ravel()[1:]).all()
    assert not np.signbit(y[0, 1]).any() and (y[0, 1] == 0).all()


@pytest.mark.parametrize("tanh", [False, True])
def test_gelu_kernels_match_their_twin_and_its_derivative(tanh):
    x = np.linspace(-6, 6, 301)
    np.testing.assert_allclose(elementwise.gelu_forward(x, tanh), elementwise.gelu_reference(x, tanh),
                               rtol=1e-12, atol=1e-14)
    numeric = (elementwise.gelu_reference(x + 1e-6, tanh)
               - elementwise.gelu_reference(x - 1e-6, tanh)) / 2e-6
    np.testing.assert_allclose(elementwise.gelu_backward(x, np.ones_like(x), tanh), numeric,
                               rtol=1e-6, atol=1e-8)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(elementwise.gelu_forward(x32, tanh), elementwise.gelu_reference(x, tanh),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Dense's one-pass kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_and_relu_in_one_pass_equal_the_numpy_forms(dtype):
    from layerloom.engine.kernels.dense import add_bias, add_bias_relu

    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 7)).astype(dtype)
    z[0, :3] = [np.nan, -np.inf, np.inf]  # x·(x > 0): −inf gives NaN, as the ReLU layer does
    b = rng.standard_normal(7).astype(dtype)
    want = z + b
    want_mask = want > 0
    with np.errstate(invalid="ignore"):
        want = want * want_mask
    got = z.copy()
    add_bias_relu(got, b)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got > 0, want_mask)  # what backward recomputes the mask from
    plain, no_bias = z.copy(), z.copy()
    add_bias(plain, b)
    np.testing.assert_array_equal(plain, z + b)
    add_bias_relu(no_bias, np.empty(0, dtype))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(no_bias, z * (z > 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, m", [(784, 256), (7, 3), (5, 9), (1, 1)])
@pytest.mark.parametrize("relu, bias", [(False, True), (True, True), (True, False)])
def test_one_row_product_equals_the_blas_form(dtype, k, m, relu, bias):
    """``linear`` at one row runs its own pass (4 weight rows at a time, any remainder alone);
    at more rows the BLAS. Both equal x·wᵀ + b (then x·(x > 0)), NaN and ±inf included."""
    from layerloom.engine.kernels.dense import linear

    rng = np.random.default_rng(k + m)
    x = rng.standard_normal((3, k)).astype(dtype)
    w, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal(m).astype(dtype)
    if m > 2:  # one output NaN, one +inf, one −inf (→ NaN after ReLU)
        w[0, 0], w[1, 0], w[2, 0] = np.nan, np.inf, -np.inf
        x[:, 0] = 1
    b = b if bias else None
    with np.errstate(invalid="ignore", over="ignore"):  # as the executor runs them
        want = x @ w.T + (0 if b is None else b)
        want = want * (want > 0) if relu else want
        one, rows = linear(x[:1], w, b, relu), linear(x, w, b, relu)
        strided = linear(x[:1, ::-1], w[:, ::-1], b, relu)  # any layout is still right
    # sums of k products in another order: float32 rounding grows with k (a wrong term is O(1))
    tol = dict(rtol=1e-5, atol=1e-6 * k) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert one.dtype == dtype and one.shape == (1, m)
    for got, ref in ((one, want[:1]), (rows, want), (strided, want[:1])):
        np.testing.assert_allclose(got, ref, **tol)


@pytest.mark.parametrize("a", [np.zeros(0), np.ones((3, 4), np.float32), np.ones((4, 6))[:, ::2],
                               np.array([1.0, np.nan]), np.array([[np.inf]], np.float32),
                               np.array([-np.inf, 2.0]), np.full(3, 3e38, np.float32),
                               np.array([1, 2]), np.array([np.nan], np.float16)])
def test_the_finite_check_agrees_with_numpy(a):
    from layerloom.engine.kernels.dense import finite

    assert finite(a) == bool(np.isfinite(a).all())


def test_the_finite_check_on_large_arrays_finds_one_bad_value_and_a_sum_that_overflows():
    from layerloom.engine.kernels.dense import SMALL, finite

    a = np.ones(SMALL * 3, np.float32)
    assert finite(a)
    a[-1] = np.nan
    assert not finite(a)
    assert finite(np.full(SMALL * 3, 3e38, np.float32))  # the sum overflows, the values do not


def test_parameters_start_on_a_cache_line_after_init_and_after_loading():
    from layerloom.engine.kernels import CACHE_LINE, aligned
    from layerloom.engine.network import Network

    net = Network(load_project(Path(__file__).resolve().parents[2] / "samples" / "lenet5.json").graph)
    net.load_params({k: v[...].astype(np.float64) for k, v in net.params.items()})
    for params in (net.params, Network(net.graph, params=net.params).params):
        assert all(v.ctypes.data % CACHE_LINE == 0 and v.flags.c_contiguous and v.dtype == np.float32
                   for v in params.values())
    src = np.arange(12.0).reshape(3, 4)[:, ::-2]
    got = aligned(src, np.float32)
    np.testing.assert_array_equal(got, src)
    assert got.ctypes.data % CACHE_LINE == 0 and got.flags.c_contiguous and got.flags.writeable


# --------------------------------------------------------------------- softmax cross-entropy
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_kernels_equal_their_twin(dtype):
    from layerloom.engine.kernels.losses import xent_backward, xent_forward, xent_reference

    rng = np.random.default_rng(5)
    z = (rng.standard_normal((37, 11)) * 30).astype(dtype)  # large logits: the shift matters
    z[0, :] = -np.inf
    z[0, 3] = 0  # one finite logit among −inf: probability 1
    t = rng.integers(0, 11, 37)
    t[0] = 3
    want_loss, want_prob = xent_reference(z, t)
    prob = np.empty_like(z)
    loss, bad = xent_forward(z, t, prob)
    assert bad == -1
    np.testing.assert_allclose(loss, want_loss, **TOL[dtype])
    np.testing.assert_allclose(prob, want_prob, **TOL[dtype])
    g = np.empty_like(prob)
    xent_backward(prob, t, 0.5, g)
    onehot = np.eye(11)[t]
    np.testing.assert_allclose(g, (want_prob - onehot) * 0.5, **TOL[dtype])


@pytest.mark.parametrize("bad_logit", [np.nan, np.inf])
def test_cross_entropy_turns_only_a_bad_row_nan_and_names_a_bad_label(bad_logit):
    from layerloom.engine.kernels.losses import xent_forward

    z = np.zeros((4, 3), np.float32)
    z[2, 1] = bad_logit
    prob = np.empty_like(z)
    loss, bad = xent_forward(z, np.array([0, 1, 2, 0]), prob)
    assert np.isnan(loss) and bad == -1
    assert np.isnan(prob[2]).all() and np.allclose(prob[[0, 1, 3]], 1 / 3)
    assert xent_forward(z, np.array([0, 1, 3, 0]), prob)[1] == 2  # label 3 of 3 classes
    assert xent_forward(z, np.array([-1, 1, 2, 0]), prob)[1] == 0


def test_cross_entropy_layer_refuses_a_label_out_of_range_in_one_line():
    from layerloom.engine.layers.losses import CrossEntropyLoss
    from layerloom.engine.spec import AttrValues, Ctx, ShapeError

    x = np.zeros((3, 10), np.float32)
    with pytest.raises(ShapeError, match=r"a label is outside 0\.\.9 \(got 0\.\.10\)"):
        CrossEntropyLoss.forward(AttrValues({}), {}, Ctx(), x, np.array([0, 10, 4]))
