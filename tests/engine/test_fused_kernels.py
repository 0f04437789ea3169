"""The fused conv + bias + ReLU + max-pool kernels equal their numpy twin (float64 tight, float32
loose), and their backward equals the unfused chain's: conv backward of relu′ · pool backward."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv, conv_flat, pool

TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}
DTYPES = [np.float64, np.float32]

# (padded input N×C×Hp×Wp, weight O×C×KH×KW, pool kernel, pool stride): LeNet's two layers,
# odd sizes with a 3×3 / 2 pool, an odd filter count, non-square windows, a pool that drops edges.
CASES = [((2, 1, 32, 32), (6, 1, 5, 5), (2, 2), (2, 2)),
         ((3, 6, 14, 14), (16, 6, 5, 5), (2, 2), (2, 2)),
         ((2, 3, 11, 9), (5, 3, 3, 3), (3, 3), (2, 2)),
         ((1, 2, 8, 10), (3, 2, 2, 3), (2, 3), (1, 2)),
         ((3, 4, 9, 7), (7, 4, 1, 1), (3, 2), (3, 2))]


def unfused_backward(xp, w, b, pk, ps, dp):
    """The reference chain's gradients: pool backward, ReLU mask, conv backward (numpy twins)."""
    z = conv.conv2d_forward_reference(xp, w, b, 1, 1)
    r = np.maximum(z, 0)
    _, arg = pool.max_pool2d_reference(r, *pk, *ps)
    dr = pool.max_pool2d_backward_reference(dp, arg, *r.shape[2:])
    dz = dr * (z > 0)
    return (conv.conv2d_input_grad_reference(dz, w, *xp.shape[2:], 1, 1),
            conv.conv2d_weight_grad_reference(xp, dz, *w.shape[2:], 1, 1), dz.sum(axis=(0, 2, 3)))


def random_case(seed: int, xs: tuple, ws: tuple, dtype) -> tuple:
    """(padded input, weights, bias) drawn from a standard normal, in ``dtype``; the generator
    goes on to draw whatever the test needs next."""
    rng = np.random.default_rng(seed)
    return (rng, *(rng.standard_normal(shape).astype(dtype) for shape in (xs, ws, ws[0])))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,pk,ps", CASES)
def test_fused_kernels_match_the_unfused_twins(dtype, xs, ws, pk, ps):
    rng, xp, w, b = random_case(1, xs, ws, dtype)
    y, arg = conv.conv_relu_maxpool_forward(xp, w, b, *pk, *ps, True)
    assert y.dtype == dtype and arg.shape == y.shape
    np.testing.assert_allclose(y, conv.conv_relu_maxpool_reference(xp, w, b, pk, ps), **TOL[dtype])
    dp = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = conv.conv_relu_maxpool_backward(xp, w, dp, arg, True)
    ref = unfused_backward(xp.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                           pk, ps, dp.astype(np.float64))
    for got, want in zip((dxp, dw, db), ref):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **TOL[dtype])
    no_dx, dw_again, _ = conv.conv_relu_maxpool_backward(xp, w, dp, arg, False)
    assert no_dx.size == 0
    np.testing.assert_array_equal(dw_again, dw)


def test_fused_pool_ties_go_to_the_first_maximum_and_relu_clips_to_no_gradient():
    """Integer data makes exact ties: the first maximum in row-major order takes the gradient,
    as in the unfused pool; a window whose maximum is ≤ 0 passes no gradient at all."""
    rng = np.random.default_rng(2)
    xp = rng.integers(-1, 2, (2, 2, 9, 9)).astype(np.float64)
    w = rng.integers(-1, 2, (3, 2, 2, 2)).astype(np.float64)
    b = np.array([0.0, 1.0, -1.0])
    for pk, ps in (((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 2), (1, 1))):
        y, arg = conv.conv_relu_maxpool_forward(xp, w, b, *pk, *ps, True)
        np.testing.assert_array_equal(y, conv.conv_relu_maxpool_reference(xp, w, b, pk, ps))
        assert (arg == -1).any() and (y == 0).any()
        np.testing.assert_array_equal(arg == -1, y <= 0)
        dp = rng.standard_normal(y.shape)
        got = conv.conv_relu_maxpool_backward(xp, w, dp, arg, True)
        for g, want in zip(got, unfused_backward(xp, w, b, pk, ps, dp)):
            np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)


def first_winners(acc: np.ndarray, wp: int, ph: int, pw: int) -> tuple:
    """2×2 / 2 pooling of flat maps (F, L) the slow way: NaN if the window holds one, else its
    first maximum in row-major order; ReLU after it; the winner's index, -1 where ReLU clips it
    or it is NaN (no gradient to route)."""
    out, arg = np.empty((len(acc), ph, pw), acc.dtype), np.empty((len(acc), ph, pw), np.int32)
    for f, r, q in np.ndindex(out.shape):
        at = [2 * r * wp + 2 * q + i * wp + j for i in (0, 1) for j in (0, 1)]
        nan = [k for k in at if np.isnan(acc[f, k])]
        win = nan[0] if nan else max(at, key=lambda k: (acc[f, k], -k))
        out[f, r, q] = acc[f, win] if nan or acc[f, win] > 0 else 0
        arg[f, r, q] = win if not nan and acc[f, win] > 0 else -1
    return out, arg


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("oh,ow,wp",
                         [(28, 28, 32), (10, 10, 14), (9, 11, 13), (7, 6, 6), (11, 9, 9),
                          (8, 32, 34), (5, 65, 66), (16, 16, 16), (6, 25, 25)])
def test_two_by_two_pool_of_flat_maps_keeps_the_first_nan_or_maximum(dtype, oh, ow, wp):
    """Small integers and NaNs, even and odd row pitches, maps with an odd edge the pool drops:
    ties go where the row-major scan sends them (the vertical pairs first must not change
    that, nor each window's four in turn on rows of 16 and 32 windows, nor the compact pairs'
    flat pass on rows of 8-15), a NaN is never pooled away."""
    rng = np.random.default_rng(oh * wp)
    nf, size = 5, (oh - 1) * wp + ow
    acc = rng.integers(-2, 3, (nf + 1, size + 3)).astype(dtype)
    acc[rng.random(acc.shape) < 0.03] = np.nan
    ph, pw = oh // 2, ow // 2
    out, arg = np.empty((nf, ph, pw), dtype), np.empty((nf, ph, pw), np.int32)
    conv_flat.relu_maxpool_flat(acc, 3, out, arg, wp, 2, 2, 2, 2)
    want_out, want_arg = first_winners(acc[:nf, 3:], wp, ph, pw)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(arg, want_arg)
    assert np.isnan(out).any() and (arg == -1).any()


def test_fused_pool_never_hides_a_nan():
    xp = np.random.default_rng(3).standard_normal((1, 1, 6, 6))
    xp[0, 0, 1, 1] = np.nan
    w, b = np.ones((2, 1, 2, 2)), np.array([0.0, -100.0])  # filter 1 is clipped to 0 elsewhere
    y, _ = conv.conv_relu_maxpool_forward(xp, w, b, 2, 2, 2, 2, True)
    want = conv.conv_relu_maxpool_reference(xp, w, b, (2, 2), (2, 2))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    assert np.isnan(y[0, :, 0, 0]).all() and np.isnan(y).sum() == 2  # one window per filter


def test_results_do_not_depend_on_the_thread_count():
    import numba

    rng = np.random.default_rng(4)
    xp, w = rng.standard_normal((37, 3, 12, 12)), rng.standard_normal((5, 3, 3, 3))
    b = rng.standard_normal(5)
    before = numba.get_num_threads()
    runs = []
    for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(n)
        y, arg = conv.conv_relu_maxpool_forward(xp, w, b, 2, 2, 2, 2, True)
        runs.append((y, *conv.conv_relu_maxpool_backward(xp, w, np.ones_like(y), arg, True)))
    numba.set_num_threads(before)
    for a, b_ in zip(runs[0], runs[-1]):
        np.testing.assert_array_equal(a, b_)


def test_chunked_backward_over_many_samples_matches_the_twins():
    """The backward lays up to CHUNK // lp samples end to end in one row (conv_flat's row
    layout; lp = 64 here): a batch in uneven chunks of many samples each still equals the twins
    exactly, for the fused backward and for the plain convolution's."""
    from layerloom.engine.kernels.conv_flat import CHUNK

    rng = np.random.default_rng(7)
    xp, w = rng.standard_normal((4 * (CHUNK // 64) + 5, 2, 9, 8)), rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    y, arg = conv.conv_relu_maxpool_forward(xp, w, b, 2, 2, 2, 2, True)
    dp = rng.standard_normal(y.shape)
    got = conv.conv_relu_maxpool_backward(xp, w, dp, arg, True)
    for g, want in zip(got, unfused_backward(xp, w, b, (2, 2), (2, 2), dp)):
        np.testing.assert_allclose(g, want, **TOL[np.float64])
    dy = rng.standard_normal((len(xp), 3, 7, 7))
    dxp, dw, db = conv.conv2d_backward(xp, w, dy, 1, 1, True)
    np.testing.assert_allclose(dxp, conv.conv2d_input_grad_reference(dy, w, 9, 8, 1, 1),
                               **TOL[np.float64])
    np.testing.assert_allclose(dw, conv.conv2d_weight_grad_reference(xp, dy, 3, 2, 1, 1),
                               **TOL[np.float64])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[np.float64])


@pytest.mark.parametrize("want_arg", [True, False])
def test_one_sample_on_the_calling_thread_equals_the_same_sample_in_a_batch(want_arg):
    """A batch of one takes the kernel's serial branch, a batch of three its parallel loop:
    sample by sample they agree exactly, and without ``want_arg`` no winners are kept."""
    rng = np.random.default_rng(5)
    xp, w, b = rng.standard_normal((3, 2, 9, 8)), rng.standard_normal((3, 2, 3, 3)), np.ones(3)
    y, arg = conv.conv_relu_maxpool(xp, w, b, 3, 3, 2, 2, want_arg)
    assert len(arg) == (3 if want_arg else 0)
    for s in range(3):
        one, one_arg = conv.conv_relu_maxpool(xp[s:s + 1].copy(), w, b, 3, 3, 2, 2, want_arg)
        np.testing.assert_array_equal(one[0], y[s])
        if want_arg:
            np.testing.assert_array_equal(one_arg[0], arg[s])
    np.testing.assert_allclose(y, conv.conv_relu_maxpool_reference(xp, w, b, (3, 3), (2, 2)),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_kernel_equals_its_twin_bit_for_bit(dtype):
    from layerloom.engine.kernels.optim import adam_update, adam_update_reference

    rng = np.random.default_rng(6)
    state = [rng.standard_normal(257).astype(dtype) for _ in range(3)]
    state[2] = np.abs(state[2])  # v ≥ 0
    state[1][:8] = state[2][:8] = np.finfo(dtype).tiny * dtype(1.0005)  # decays below the
    # smallest normal number in one step: flushed to 0
    a, b = [s.copy() for s in state], [s.copy() for s in state]
    f = np.dtype(dtype).type
    scalars = (f(0.9), f(1 - 0.9), f(0.999), f(1 - 0.999), f(0.01 / (1 - 0.9 ** 3)),
               f(1 - 0.999 ** 3), f(1e-8), np.finfo(dtype).tiny)
    for _ in range(3):
        g = rng.standard_normal(257).astype(dtype)
        g[:8] = 0
        adam_update(*[a[0], g, a[1], a[2]], *scalars)
        adam_update_reference(*[b[0], g, b[1], b[2]], *scalars)
    for x, y in zip(a, b):
        assert x.dtype == dtype
        np.testing.assert_array_equal(x, y)
    assert not a[1][:8].any() and not a[2][:8].any()


def test_float32_erf_equals_its_twin_and_erf():
    import math

    from layerloom.engine.kernels import elementwise

    x = np.linspace(-9, 9, 20001).astype(np.float32)
    got = np.array([elementwise.erf32(v) for v in x[::50]], dtype=np.float32)
    np.testing.assert_allclose(got, elementwise.erf32_reference(x[::50]), rtol=2e-7, atol=1e-7)
    exact = np.array([math.erf(float(v)) for v in x])
    assert np.abs(elementwise.erf32_reference(x) - exact).max() < 5e-7
    y = elementwise.gelu_forward(x, False)
    assert y.dtype == np.float32
    phi = np.array([0.5 * (1 + math.erf(float(v) / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(y, x * phi, rtol=1e-5, atol=2e-6)


# Convolutions with many taps and filters, where the forward runs as matrix products (conv_gemm).
GEMM_CASES = [((4, 6, 14, 14), (16, 6, 5, 5), (2, 2), (2, 2)),
              ((3, 8, 11, 9), (9, 8, 3, 3), (3, 3), (2, 2))]


def test_the_matrix_product_forward_is_chosen_for_many_taps_and_filters_only():
    from layerloom.engine.kernels.conv_gemm import prefers_gemm

    assert prefers_gemm((16, 6, 5, 5), 64)  # LeNet's conv2
    assert not prefers_gemm((6, 1, 5, 5), 64)  # LeNet's conv1: the direct kernel is faster
    assert not prefers_gemm((16, 6, 5, 5), 1)  # one sample: the serial direct kernel
    assert all(prefers_gemm(ws, xs[0]) for xs, ws, _, _ in GEMM_CASES)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,pk,ps", GEMM_CASES)
def test_matrix_product_forward_equals_the_direct_kernel_and_the_twin(dtype, xs, ws, pk, ps):
    _, xp, w, b = random_case(7, xs, ws, dtype)
    y, arg = conv.conv_relu_maxpool(xp, w, b, *pk, *ps, True)  # the dispatcher: matrix products
    direct = conv.conv_relu_maxpool_forward(xp, w, b, *pk, *ps, True)
    assert y.dtype == dtype and arg.shape == y.shape
    np.testing.assert_allclose(y, conv.conv_relu_maxpool_reference(xp, w, b, pk, ps), **TOL[dtype])
    if dtype == np.float64:  # float32 sums in another order could flip a near-tie
        np.testing.assert_array_equal(arg, direct[1])
    plain = conv.conv2d_forward(xp, w, b, 1, 1)
    assert plain.flags.c_contiguous and plain.dtype == dtype
    np.testing.assert_allclose(plain, conv.conv2d_forward_reference(xp, w, b, 1, 1), **TOL[dtype])
