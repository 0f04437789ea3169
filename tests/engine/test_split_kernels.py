"""Kernels that split their rows (or flat chunks) over the engine's cores give the one-core
result bit for bit: LayerNorm's forward and backward (whose column sums run in fixed chunks),
GELU and the fused ReLU kernels, the sums around products (kernels/sums.py) and Adam's step,
at sizes that make one part, an odd split, and many chunks."""
from __future__ import annotations

import numpy as np
import pytest

from layerloom.engine.kernels import elementwise, norm, relu, sums
from layerloom.engine.optim import Adam
from layerloom.engine.threads import engine_threads, get_threads, set_threads, size_parts


def at_threads(n: int, fn):
    """fn() with the engine on n cores, the core count restored after."""
    before = get_threads()
    set_threads(n)
    try:
        with engine_threads():
            return fn()
    finally:
        set_threads(before)


def assert_same(a: tuple, b: tuple) -> None:
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert np.array_equal(u, v, equal_nan=True)
        assert np.array_equal(np.signbit(u), np.signbit(v))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, width", [(1, 7), (5, 33), (193, 128)])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_split_over_cores_is_bit_identical(dtype, rows, width, affine):
    rng = np.random.default_rng(rows)
    x, dy = (rng.standard_normal((rows, width)).astype(dtype) for _ in range(2))
    w = rng.standard_normal(width).astype(dtype) if affine else np.zeros(0, dtype)
    b = rng.standard_normal(width).astype(dtype) if affine else np.zeros(0, dtype)

    def run():
        y, xhat, inv = norm.layer_norm_forward(x, w, b, 1e-5)
        return (y, xhat, inv) + norm.layer_norm_backward(dy, xhat, inv, w)

    one, two = at_threads(1, run), at_threads(2, run)
    assert_same(one, two)
    ref = norm.layer_norm_forward_reference(x, w, b, 1e-5)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(one[:3], ref):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 1000, 3 * relu.CHUNK + 5])
def test_element_wise_kernels_split_over_cores_are_bit_identical(dtype, size):
    rng = np.random.default_rng(size)
    x, dy, a = ((rng.standard_normal(size) * 3).astype(dtype) for _ in range(3))
    x[::97] = np.nan

    def run():
        out = relu.add_relu(x, a)
        return (elementwise.gelu_forward(x, False), elementwise.gelu_forward(x, True),
                elementwise.gelu_backward(x, dy, False), elementwise.gelu_backward(x, dy, True),
                out, relu.relu_mask_grad(dy, out))

    one, two = at_threads(1, run), at_threads(2, run)
    assert_same(one, two)
    np.testing.assert_array_equal(one[4], relu.add_relu_reference(x, a))
    np.testing.assert_array_equal(one[5], relu.relu_mask_grad_reference(dy, one[4]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, width", [(3, 5), (1024, 128), (517, 384)])
def test_sums_split_over_cores_are_bit_identical(dtype, rows, width):
    """A residual Add, a gradient sum and a bias's gradient (a bias added to a product's rows:
    test_row_parts.py)."""
    rng = np.random.default_rng(rows)
    a, b = (rng.standard_normal((rows, width)).astype(dtype) for _ in range(2))
    bias = rng.standard_normal(width).astype(dtype)

    def run():
        z = a.copy()
        sums.add_bias_rows(z, bias, 0, rows)
        return sums.add(a, b), z, sums.column_sums(a)

    one, two = at_threads(1, run), at_threads(2, run)
    assert_same(one, two)
    np.testing.assert_array_equal(one[0], a + b)
    np.testing.assert_array_equal(one[1], a + bias)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(one[2], sums.column_sums_reference(a), rtol=tol, atol=tol * rows)


def test_adam_split_over_cores_is_bit_identical():
    """Adam's step cuts the parameters into runs of about equal size, one per core."""
    shapes = [(384, 128), (384,), (128, 128), (128,), (512, 128), (512,), (128, 512), (7,)]

    def run():
        rng = np.random.default_rng(1)
        params = {f"p{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
        opt = Adam(1e-2)
        for _ in range(3):
            opt.step(params, {k: rng.standard_normal(p.shape).astype(np.float32)
                              for k, p in params.items()})
        return tuple(params.values())

    sizes = [int(np.prod(s)) for s in shapes]
    assert len(at_threads(2, lambda: size_parts(sizes))) == 2
    assert_same(at_threads(1, run), at_threads(2, run))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_split_over_cores_is_bit_identical(dtype):
    """Rows over the cores, each row's log-likelihood added in order after: the one-core loss."""
    from layerloom.engine.kernels.losses import MIN_SPLIT, xent_forward, xent_split

    rng = np.random.default_rng(4)
    z = (rng.standard_normal((MIN_SPLIT // 96 + 5, 96)) * 4).astype(dtype)
    t = rng.integers(0, 96, len(z))
    want = np.empty_like(z)
    loss, bad = xent_forward(z, t, want)
    for cores in (1, 2):
        prob = np.empty_like(z)
        assert at_threads(cores, lambda: xent_split(z, t, prob)) == (loss, bad) and bad == -1
        np.testing.assert_array_equal(prob, want)
    t[[7, len(t) - 3]] = 96  # a label out of range: the first one is named
    assert at_threads(2, lambda: xent_split(z, t, np.empty_like(z)))[1] == 7


def test_the_gradients_finite_check_splits_over_cores_and_finds_every_bad_value():
    from layerloom.engine.executor import all_finite

    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(512, 128), (128,), (128, 512)]]
    assert len(at_threads(2, lambda: size_parts([g.size for g in grads]))) == 2
    for cores in (1, 2):
        assert at_threads(cores, lambda: all_finite(grads))
    for i, bad in ((0, np.nan), (1, np.inf), (2, -np.inf)):
        spoiled = [g.copy() for g in grads]
        spoiled[i].reshape(-1)[-1] = bad
        assert not any(at_threads(cores, lambda: all_finite(spoiled)) for cores in (1, 2))
