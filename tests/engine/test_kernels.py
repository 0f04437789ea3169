"""Every numba kernel equals the numpy twin that defines it (float64 tight, float32 loose)."""
import numpy as np
import pytest

from engine.kernels.conv import (conv2d_forward, conv2d_forward_reference, conv2d_input_grad,
                                 conv2d_input_grad_reference, conv2d_weight_grad,
                                 conv2d_weight_grad_reference)
from engine.kernels.elementwise import gelu_backward, gelu_forward, gelu_reference
from engine.kernels.pool import (avg_pool2d_backward, avg_pool2d_reference, max_pool2d_backward,
                                 max_pool2d_forward, max_pool2d_reference)

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}
GEOMETRIES = [((3, 2, 9, 8), (4, 2, 3, 2), (1, 1)), ((2, 1, 28, 28), (6, 1, 5, 5), (1, 1)),
              ((2, 3, 11, 10), (2, 3, 3, 3), (2, 3)), ((1, 6, 14, 14), (16, 6, 5, 5), (1, 1))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,stride", GEOMETRIES)
def test_conv2d_kernels_match_their_twins(dtype, xs, ws, stride):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    y = conv2d_forward(x, w, *stride)
    np.testing.assert_allclose(y, conv2d_forward_reference(x, w, *stride), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(conv2d_weight_grad(x, dy, ws[2], ws[3], *stride),
                               conv2d_weight_grad_reference(x, dy, ws[2], ws[3], *stride),
                               **TOL[dtype])
    np.testing.assert_allclose(conv2d_input_grad(dy, w, xs[2], xs[3], *stride),
                               conv2d_input_grad_reference(dy, w, xs[2], xs[3], *stride),
                               **TOL[dtype])
    assert y.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k,s", [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((3, 2), (1, 2))])
def test_pool_kernels_match_their_twins(dtype, k, s):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    y, arg = max_pool2d_forward(x, *k, *s)
    np.testing.assert_array_equal(y, max_pool2d_reference(x, *k, *s))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = max_pool2d_backward(dy, arg, 9, 8)
    # The gradient lands on each window's winner: summing it back gives dy's total per plane.
    np.testing.assert_allclose(dx.sum(axis=(2, 3)), dy.sum(axis=(2, 3)), **TOL[dtype])
    winners = np.zeros_like(x, dtype=bool).reshape(2, 3, -1)
    np.put_along_axis(winners, arg.reshape(2, 3, -1).astype(np.int64), True, axis=2)
    assert not dx.reshape(2, 3, -1)[~winners].any()
    # Average pooling backward is the transpose of its forward: <avg(x), dy> == <x, avg'(dy)>.
    ya = avg_pool2d_reference(x, *k, *s)  # same windows, so the same shape as y
    da = avg_pool2d_backward(dy, *k, *s, 9, 8)
    np.testing.assert_allclose((ya * dy).sum(), (x * da).sum(), rtol=1e-4)


@pytest.mark.parametrize("tanh", [False, True])
def test_gelu_kernels_match_their_twin_and_its_derivative(tanh):
    x = np.linspace(-6, 6, 301)
    np.testing.assert_allclose(gelu_forward(x, tanh), gelu_reference(x, tanh), rtol=1e-12, atol=1e-14)
    numeric = (gelu_reference(x + 1e-6, tanh) - gelu_reference(x - 1e-6, tanh)) / 2e-6
    np.testing.assert_allclose(gelu_backward(x, np.ones_like(x), tanh), numeric, rtol=1e-6, atol=1e-8)
