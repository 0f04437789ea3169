"""1×1 convolutions as stacked matrix products (``kernels.conv_pointwise``): the stride's
positions taken from the padded input (strides 1–3, odd sizes, padding), the gradients put back
there, zeros elsewhere. They equal the numpy twins (float64 to rounding, float32 loosely) and
PyTorch's convolution in float64; the weight and bias gradients do not depend on how the batch
is split over the cores; the entry points take this route where its rule says so."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv
from layerloom.engine.kernels.conv_pointwise import (pointwise, pointwise_backward,
                                                     pointwise_forward)
from layerloom.engine.threads import engine_threads, get_threads, set_threads

TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-4, atol=1e-4)}

# (batch, channels, H, W, filters, stride, padding): the ResNet projections' shapes scaled down,
# odd sizes (the stride's last position short of the edge), a stride of 3, unequal strides, a
# padded 1×1 (the padding's zeros are positions too), one sample, a batch that splits unevenly
FAMILY = [(4, 16, 16, 16, 32, (2, 2), 0), (3, 8, 9, 11, 12, (2, 2), 0),
          (2, 5, 10, 7, 6, (3, 3), 0), (3, 4, 8, 9, 5, (1, 2), 0), (2, 6, 7, 7, 4, (2, 2), 1),
          (1, 3, 6, 6, 8, (1, 1), 0), (5, 7, 5, 6, 9, (1, 1), 1)]


def _data(n, c, h, w, nf, pad, dtype, seed=0):
    rng = np.random.default_rng(seed)
    xp = conv.pad_sides(rng.standard_normal((n, c, h, w)).astype(dtype), pad, pad, pad, pad)
    wt = rng.standard_normal((nf, c, 1, 1)).astype(dtype)
    return rng, xp, wt, rng.standard_normal(nf).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,c,h,w,nf,stride,pad", FAMILY)
def test_family_matches_the_twins(dtype, n, c, h, w, nf, stride, pad):
    rng, xp, wt, b = _data(n, c, h, w, nf, pad, dtype)
    y = pointwise_forward(xp, wt, b, stride)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_allclose(y, conv.grouped_forward_reference(xp, wt, b, stride, (1, 1), 1),
                               **TOL[dtype])
    relu = pointwise_forward(xp, wt, b, stride, relu=True)
    assert np.array_equal(relu, np.maximum(y, 0))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = pointwise_backward(xp, wt, dy, stride, True)
    assert dxp.dtype == dw.dtype == db.dtype == dtype and dxp.shape == xp.shape
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(xp, dy, 1, 1, stride,
                                                                      (1, 1), 1), **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(dy, wt, *xp.shape[2:],
                                                                      stride, (1, 1), 1),
                               **TOL[dtype])
    none, dw_again, db_again = pointwise_backward(xp, wt, dy, stride, False)
    assert none is None and np.array_equal(dw_again, dw) and np.array_equal(db_again, db)


@pytest.mark.parametrize("n,c,h,w,nf,stride,pad", FAMILY[:5])
def test_pytorchs_convolution_in_float64(n, c, h, w, nf, stride, pad):
    torch = pytest.importorskip("torch")
    rng, xp, wt, b = _data(n, c, h, w, nf, 0, np.float64)
    xt = torch.tensor(xp, requires_grad=True)
    wtt, bt = torch.tensor(wt, requires_grad=True), torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wtt, bt, stride=stride, padding=pad)
    xpad = conv.pad_sides(xp, pad, pad, pad, pad)
    y = pointwise_forward(xpad, wt, b, stride)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    dxp, dw, db = pointwise_backward(xpad, wt, dy, stride, True)
    dx = dxp[:, :, pad:pad + xp.shape[2], pad:pad + xp.shape[3]]
    for got, want in ((dx, xt.grad), (dw, wtt.grad), (db, bt.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


def test_the_gradients_do_not_depend_on_the_thread_count():
    rng, xp, wt, b = _data(9, 16, 12, 12, 24, 0, np.float32, seed=3)
    dy = rng.standard_normal((9, 24, 6, 6)).astype(np.float32)
    results, before = [], get_threads()
    try:
        for threads in (1, 2):
            set_threads(threads)
            with engine_threads(False):
                results.append((pointwise_forward(xp, wt, b, (2, 2)),
                                *pointwise_backward(xp, wt, dy, (2, 2), True)))
    finally:
        set_threads(before)
    for one, two in zip(*results):
        assert np.array_equal(one, two)


@pytest.mark.parametrize("w_shape,out_hw,forward,backward", [
    ((32, 16, 1, 1), (16, 16), True, True),  # a ResNet projection
    ((128, 32, 1, 1), (32, 32), False, True),  # large maps: the direct forward kept
    ((16, 32, 1, 1), (32, 32), True, True),  # ... unless a sample's output is small
    ((16, 16, 1, 1), (64, 64), False, True),
    ((128, 64, 1, 1), (4, 4), True, False),  # tiny maps: the backward kept
    ((256, 256, 1, 1), (8, 8), False, False),  # many weights: both kept
    ((32, 16, 3, 3), (16, 16), False, False)])
def test_the_entry_points_take_the_route_where_the_rule_says(w_shape, out_hw, forward,
                                                             backward):
    assert pointwise(w_shape, 1, out_hw) == forward
    assert pointwise(w_shape, 1, out_hw, backward=True) == backward
    assert not pointwise(w_shape, 2, out_hw) and not pointwise(w_shape, 2, out_hw, True)
    rng = np.random.default_rng(1)
    nf, c = w_shape[:2]
    xp = rng.standard_normal((2, c, out_hw[0] * 2, out_hw[1] * 2)).astype(np.float32)
    wt = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(nf).astype(np.float32)
    if w_shape[2] == 1:
        y = conv.conv_forward(xp, wt, b, (2, 2))
        np.testing.assert_allclose(y, pointwise_forward(xp, wt, b, (2, 2)), **TOL[np.float32])
        dy = rng.standard_normal(y.shape).astype(np.float32)
        for got, want in zip(conv.conv_backward(xp, wt, dy, (2, 2)),
                             pointwise_backward(xp, wt, dy, (2, 2), True)):
            np.testing.assert_allclose(got, want, **TOL[np.float32])


@pytest.mark.parametrize("case", FAMILY[:3])
def test_a_convolution_without_bias_skips_its_sums_not_its_gradients(case):
    """``need_db=False`` (a Conv2D without bias, before a BatchNorm): the same input and weight
    gradients bit for bit, zeros for the bias it does not have; through ``conv_backward`` too."""
    n, c, h, w, nf, stride, pad = case
    rng, xp, wt, _ = _data(n, c, h, w, nf, pad, np.float32)
    dy = rng.standard_normal((n, nf, (h + 2 * pad - 1) // stride[0] + 1,
                              (w + 2 * pad - 1) // stride[1] + 1)).astype(np.float32)
    dx, dw, db = pointwise_backward(xp, wt, dy, stride, True)
    dx2, dw2, db2 = pointwise_backward(xp, wt, dy, stride, True, need_db=False)
    assert np.array_equal(dx, dx2) and np.array_equal(dw, dw2)
    assert np.abs(db).max() > 0 and not db2.any()
    with_bias = conv.conv_backward(xp, wt, dy, stride, need_db=True)
    without = conv.conv_backward(xp, wt, dy, stride, need_db=False)
    assert all(np.array_equal(a, b) for a, b in zip(with_bias[:2], without[:2]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 1)])
def test_the_bias_and_relu_in_the_products_pass_are_numpys_bits(dtype, stride):
    """``forward_part`` adds the bias (and a residual) and clips in its pass over each sample:
    the same bits as numpy's stacked product, ``+ b`` (``+ r``), then ``np.maximum(·, 0)`` (NaN
    kept), on 1 and 2 cores."""
    rng, xp, wt, b = _data(5, 7, 9, 11, 6, 0, dtype)
    xp[1, 2, 0, 4] = np.nan  # a position every stride takes
    ref = np.matmul(wt.reshape(6, 7), np.ascontiguousarray(
        xp[:, :, ::stride[0], ::stride[1]]).reshape(5, 7, -1)) + b[:, None]
    before = get_threads()
    try:
        for threads in (1, 2):
            set_threads(threads)
            with engine_threads(False):
                plain = pointwise_forward(xp, wt, b, stride)
                clipped = pointwise_forward(xp, wt, b, stride, relu=True)
            assert np.array_equal(plain.reshape(ref.shape), ref, equal_nan=True)
            assert np.array_equal(clipped.reshape(ref.shape), np.maximum(ref, 0),
                                  equal_nan=True)
    finally:
        set_threads(before)
    assert np.isnan(clipped).any() and (clipped == 0).any()
    r = rng.standard_normal(plain.shape).astype(dtype)  # a residual block's shortcut
    summed = pointwise_forward(xp, wt, b, stride, relu=True, residual=r)
    assert np.array_equal(summed, np.maximum(plain + r, 0), equal_nan=True)


@pytest.mark.parametrize("w_shape,out_hw,dtype,blas", [
    ((64, 32, 1, 1), (32, 32), np.float32, True),  # a bottleneck's widening 1×1: ``_wide``
    ((32, 64, 1, 1), (16, 16), np.float32, True),  # ... narrowing
    ((256, 256, 1, 1), (8, 8), np.float32, True),  # many weights from 8×8 on
    ((64, 32, 1, 1), (32, 32), np.float64, False),  # float64 keeps the rule above
    ((64, 32, 1, 1), (4, 4), np.float32, True),  # the rule above (tiny maps)
    ((512, 256, 1, 1), (4, 4), np.float32, False)])  # the packed kernel's
def test_float32_forwards_onto_wide_maps_take_the_blas_product_a_sample(monkeypatch, w_shape,
                                                                        out_hw, dtype, blas):
    from layerloom.engine.kernels import conv_pointwise

    calls, real = [], conv_pointwise.forward_part
    monkeypatch.setattr(conv_pointwise, "forward_part",
                        lambda *args: calls.append(args[0].shape) or real(*args))
    rng = np.random.default_rng(2)
    xp = rng.standard_normal((2, w_shape[1], *out_hw)).astype(dtype)
    wt = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    y = conv.conv_forward(xp, wt, b, (1, 1), relu=True)
    assert bool(calls) == blas
    want = np.maximum(conv.grouped_forward_reference(
        *(a.astype(np.float64) for a in (xp, wt, b)), (1, 1), (1, 1), 1), 0)
    np.testing.assert_allclose(y, want, **TOL[dtype])
