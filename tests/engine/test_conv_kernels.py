"""Convolutions with groups, dilation and any stride equal their numpy twins (float64 tight,
float32 loose), and the twins equal PyTorch's convolution."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv

TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}

# (input N×C×H×W, filters, kernel, stride, dilation, groups): depthwise, depthwise with a channel
# multiplier, grouped, dilated, strided and dilated, a 1-row (Conv1d) case, plain ones through the
# same entry points, five taps (the tail after four), and a single filter.
CASES = [((2, 4, 9, 8), 4, (3, 3), (1, 1), (1, 1), 4),
         ((3, 3, 7, 6), 6, (3, 2), (1, 1), (1, 1), 3),
         ((2, 6, 8, 9), 4, (2, 3), (1, 1), (2, 1), 2),
         ((2, 2, 10, 9), 3, (3, 3), (1, 1), (2, 3), 1),
         ((2, 4, 11, 10), 8, (3, 3), (2, 3), (2, 1), 4),
         ((3, 4, 1, 17), 6, (1, 5), (1, 2), (1, 2), 2),
         ((2, 3, 9, 8), 5, (3, 3), (1, 1), (1, 1), 1),
         ((2, 3, 9, 8), 5, (2, 3), (2, 1), (1, 1), 1),
         ((1, 5, 6, 7), 5, (1, 5), (1, 1), (1, 1), 5),
         ((2, 2, 5, 5), 1, (2, 2), (1, 1), (1, 1), 1)]


def _case(shape, nf, k, groups, dtype, seed=0):
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((nf, shape[1] // groups, *k)).astype(dtype)
    return rng, xp, w, rng.standard_normal(nf).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,nf,k,stride,dil,groups", CASES)
def test_grouped_dilated_kernels_match_their_twins(dtype, shape, nf, k, stride, dil, groups):
    rng, xp, w, b = _case(shape, nf, k, groups, dtype)
    y = conv.conv_forward(xp, w, b, stride, dil, groups)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, conv.grouped_forward_reference(xp, w, b, stride, dil, groups),
                               **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = conv.conv_backward(xp, w, dy, stride, dil, groups, True)
    assert dxp.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(xp, dy, *k, stride, dil,
                                                                      groups), **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(dy, w, *shape[2:], stride,
                                                                      dil, groups), **TOL[dtype])
    assert conv.conv_backward(xp, w, dy, stride, dil, groups, False)[0] is None


@pytest.mark.parametrize("stride", [(1, 1), (2, 3)])
def test_input_gradient_leaves_rows_past_the_last_window_zero(stride):
    """ConvTranspose2d's output_padding: the padded input is taller than the windows cover."""
    rng, _, w, _ = _case((1, 2, 1, 1), 4, (3, 2), 2, np.float64)
    dy = rng.standard_normal((2, 4, 3, 4))
    hp = stride[0] * 2 + 3 + 1
    wp = stride[1] * 3 + 2 + 2
    dxp = conv.conv_input_grad(dy, w, hp, wp, stride, (1, 1), 2)
    want = conv.grouped_input_grad_reference(dy, w, hp, wp, stride, (1, 1), 2)
    np.testing.assert_allclose(dxp, want, rtol=1e-12, atol=1e-12)
    assert not dxp[:, :, -1].any() and not dxp[:, :, :, -2:].any()


@pytest.mark.parametrize("shape,nf,k,stride,dil,groups", CASES[:6])
def test_the_twins_are_pytorch_s_convolution(shape, nf, k, stride, dil, groups):
    torch = pytest.importorskip("torch")
    _, xp, w, b = _case(shape, nf, k, groups, np.float64)
    want = torch.nn.functional.conv2d(torch.from_numpy(xp), torch.from_numpy(w),
                                      torch.from_numpy(b), stride, 0, dil, groups)
    got = conv.grouped_forward_reference(xp, w, b, stride, dil, groups)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


# Shapes the matrix-product backward takes (Conv1d's usual ones, a deeper 2-D map, a chunk split
# that leaves one sample alone), each also forced through it: the twin decides.
GEMM_CASES = [((5, 16, 1, 20), (32, 16, 1, 5)), ((3, 8, 7, 6), (40, 8, 3, 2)),
              ((9, 12, 1, 300), (32, 12, 1, 4))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws", GEMM_CASES)
def test_the_matrix_product_backward_matches_the_twins(dtype, xs, ws):
    from layerloom.engine.kernels.conv_gemm_back import gemm_backward_flat, prefers_gemm_backward

    rng = np.random.default_rng(4)
    xp = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    dy = rng.standard_normal((xs[0], ws[0], xs[2] - ws[2] + 1, xs[3] - ws[3] + 1)).astype(dtype)
    assert prefers_gemm_backward(w.shape, dy.shape[2] * dy.shape[3])
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-3, atol=2e-4)  # sums of ~2,700
    for dxp, dw, db in (conv.conv2d_backward(xp, w, dy, 1, 1, True),
                        gemm_backward_flat(xp, w, dy, True)):
        assert dxp.dtype == dw.dtype == db.dtype == dtype
        np.testing.assert_allclose(dw, conv.conv2d_weight_grad_reference(xp, dy, *ws[2:], 1, 1),
                                   **tol)
        np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **tol)
        np.testing.assert_allclose(dxp, conv.conv2d_input_grad_reference(dy, w, *xs[2:], 1, 1),
                                   **tol)
    no_dx, dw_again, _ = gemm_backward_flat(xp, w, dy, False)
    assert no_dx.size == 0 and np.array_equal(dw_again, dw)


@pytest.mark.parametrize("dtype,products", [(np.float32, False), (np.float64, True)])
def test_a_few_channel_3x3_backward_in_float32_stays_on_the_tile_kernel(monkeypatch, dtype,
                                                                        products):
    """An RGB stem's 3 → 32 3×3 backward: float32 runs the direct kernels' chunked backward
    (its products on the packed tile kernel), float64 the matrix products; both the gradients."""
    calls = []
    real = conv.gemm_backward_flat
    monkeypatch.setattr(conv, "gemm_backward_flat",
                        lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(7)
    xp = rng.standard_normal((3, 3, 14, 14)).astype(dtype)
    w = rng.standard_normal((32, 3, 3, 3)).astype(dtype)
    dy = rng.standard_normal((3, 32, 12, 12)).astype(dtype)
    dxp, dw, db = conv.conv_backward(xp, w, dy, (1, 1))
    assert bool(calls) == products
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, conv.conv2d_weight_grad_reference(xp, dy, 3, 3, 1, 1), **tol)
    np.testing.assert_allclose(dxp, conv.conv2d_input_grad_reference(dy, w, 14, 14, 1, 1), **tol)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **tol)


# Strided convolutions the matrix products take: plain, grouped and dilated, a 1-row one.
STRIDED = [((2, 3, 9, 8), 8, (3, 3), (2, 2), (1, 1), 1), ((3, 4, 11, 10), 8, (3, 2), (2, 3),
                                                          (2, 1), 2),
           ((2, 6, 1, 19), 6, (1, 4), (1, 3), (1, 2), 1)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,nf,k,stride,dil,groups", STRIDED)
def test_strided_matrix_products_match_the_twins(dtype, shape, nf, k, stride, dil, groups):
    from layerloom.engine.kernels.conv_gemm_strided import (gemm_transposed_backward,
                                                            prefers_gemm_strided)

    rng, xp, w, b = _case(shape, nf, k, groups, dtype, seed=5)
    assert prefers_gemm_strided(w.shape, groups)
    y = conv.conv_forward(xp, w, b, stride, dil, groups)
    np.testing.assert_allclose(y, conv.grouped_forward_reference(xp, w, b, stride, dil, groups),
                               **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = conv.conv_backward(xp, w, dy, stride, dil, groups, True)
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(xp, dy, *k, stride, dil,
                                                                      groups), **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(dy, w, *shape[2:], stride,
                                                                      dil, groups), **TOL[dtype])
    # a transposed convolution of dy (its weight is w): the gradients from its full output xp
    dx_t, dw_t = gemm_transposed_backward(xp, w, dy, *stride, *dil, groups, True)
    np.testing.assert_allclose(dx_t, y - b.reshape(1, -1, 1, 1), **TOL[dtype])
    np.testing.assert_allclose(dw_t, dw, **TOL[dtype])
