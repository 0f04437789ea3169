"""float32 1×1 convolutions through the packed tile kernel (``kernels.conv_pointwise_packed``):
the forward with its bias as a row of ones and the ReLU, the input gradient put at the stride's
positions, the weight gradient from either operand in panels. They equal the float64
references (float32 loosely) over maps of whole and partial panels (fewer than 16 pixels, a
last panel short), strides 1-3 and padding; they do not depend on how the batch is split over
the cores; the 1×1 entry points take them where the rules say."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv, conv_pointwise
from layerloom.engine.kernels.conv_pointwise import pointwise, pointwise_backward
from layerloom.engine.kernels.conv_pointwise_packed import (packed_forward, packed_input_grad,
                                                            packed_input_grad_wins,
                                                            packed_pointwise, packed_weight_grad,
                                                            packed_weight_grad_wins)
from layerloom.engine.threads import engine_threads, get_threads, set_threads

TOL = dict(rtol=2e-5, atol=2e-5)

# (batch, channels, H, W, filters, stride, padding): 16 panels; a last panel of 15 pixels; one
# panel exactly; 9 pixels (one short panel); stride 2 with padding; a stride of 3 by 2
FAMILY = [(3, 16, 16, 16, 32, (1, 1), 0), (2, 5, 9, 7, 20, (1, 1), 0),
          (1, 33, 4, 4, 7, (1, 1), 0), (2, 6, 3, 3, 13, (1, 1), 0),
          (2, 8, 10, 10, 12, (2, 2), 1), (3, 4, 7, 9, 6, (3, 2), 0)]


def _data(n, c, h, w, nf, pad, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((nf, c, 1, 1)).astype(np.float32)
    return rng, conv.pad_sides(x, pad, pad, pad, pad), wt, rng.standard_normal(nf).astype(
        np.float32)


def _spy(monkeypatch, name: str) -> list:
    """Calls of ``conv_pointwise``'s ``name`` (the packed kernels' entry points) go on a list."""
    calls, real = [], getattr(conv_pointwise, name)

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)
    monkeypatch.setattr(conv_pointwise, name, spy)
    return calls


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("n,c,h,w,nf,stride,pad", FAMILY)
def test_family_matches_the_references(n, c, h, w, nf, stride, pad):
    rng, xp, wt, b = _data(n, c, h, w, nf, pad)
    y = packed_forward(xp, wt, b, stride)
    want = conv.grouped_forward_reference(*_f64(xp, wt, b), stride, (1, 1), 1)
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == want.shape
    np.testing.assert_allclose(y, want, **TOL)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dxp = packed_input_grad(dy, wt, xp.shape[2:], stride)
    assert dxp.dtype == np.float32 and dxp.shape == xp.shape
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(
        *_f64(dy, wt), *xp.shape[2:], stride, (1, 1), 1), **TOL)
    dw = packed_weight_grad(xp, dy, stride)
    assert dw.dtype == np.float32 and dw.shape == wt.shape
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(
        *_f64(xp, dy), 1, 1, stride, (1, 1), 1), **TOL)


@pytest.mark.parametrize("c,nf", [(20, 40), (40, 20), (16, 16)])
def test_either_operand_in_panels_gives_the_weight_gradient(c, nf):
    """X's channels in panels (C ≤ F) or dY's filters (transposed back): more samples than the
    fixed runs (``WEIGHT_PARTS``), channel counts off the panels' 16, a map of 12×12."""
    rng, xp, wt, _ = _data(19, c, 12, 12, nf, 0, seed=7)
    dy = rng.standard_normal((19, nf, 12, 12)).astype(np.float32)
    want = conv.grouped_weight_grad_reference(*_f64(xp, dy), 1, 1, (1, 1), (1, 1), 1)
    np.testing.assert_allclose(packed_weight_grad(xp, dy, (1, 1)), want, rtol=0,  # float32 sums
                               atol=1e-5 * np.abs(want).max())  # of 2,736 terms


def test_the_bias_row_rounds_as_the_sum_then_the_bias():
    """W · x and then + b, or b as one more multiply-add by 1: the same bits (one rounding)."""
    rng, xp, wt, b = _data(2, 24, 8, 8, 40, 0, seed=5)
    with_bias = packed_forward(xp, wt, b, (1, 1))
    without = packed_forward(xp, wt, np.zeros_like(b), (1, 1))
    assert np.array_equal(with_bias, without + b[None, :, None, None])


def test_the_relu_is_numpys_maximum_nan_kept():
    rng, xp, wt, b = _data(2, 8, 6, 6, 16, 0, seed=2)
    xp[0, 3, 2, 4] = np.nan  # NaN through one pixel of every filter
    y = packed_forward(xp, wt, b, (1, 1))
    relu = packed_forward(xp, wt, b, (1, 1), relu=True)
    assert np.isnan(relu[0, :, 2, 4]).all() and (relu >= 0).sum() == relu.size - 16
    np.testing.assert_array_equal(relu, np.maximum(y, 0))


def test_results_do_not_depend_on_the_thread_count():
    rng, xp, wt, b = _data(7, 12, 9, 9, 20, 0, seed=3)
    dy = rng.standard_normal((7, 20, 9, 9)).astype(np.float32)
    results, before = [], get_threads()
    try:
        for threads in (1, 2):
            set_threads(threads)
            with engine_threads(False):
                results.append((packed_forward(xp, wt, b, (1, 1), relu=True),
                                packed_input_grad(dy, wt, xp.shape[2:], (1, 1)),
                                packed_weight_grad(xp, dy, (1, 1))))
    finally:
        set_threads(before)
    for one, two in zip(*results):
        assert np.array_equal(one, two)


@pytest.mark.parametrize("w_shape,out_hw,stride,packed", [
    ((512, 256, 1, 1), (4, 4), (1, 1), True),  # many filters on a 4×4 map
    ((256, 256, 1, 1), (7, 7), (1, 1), True),
    ((128, 512, 1, 1), (4, 4), (1, 1), True),  # ... from more channels
    ((256, 256, 1, 1), (8, 8), (1, 1), False),  # from 8×8 on: the BLAS's (``_wide``)
    ((64, 32, 1, 1), (32, 32), (1, 1), False),  # a bottleneck's widening 1×1
    ((64, 64, 1, 1), (4, 4), (1, 1), False),  # 64 filters on a small map: the BLAS's
    ((256, 128, 1, 1), (4, 4), (2, 2), False),  # stride 2: the BLAS's
    ((512, 256, 1, 1), (2, 2), (1, 1), False),  # < 16 outputs
    ((256, 256, 3, 3), (4, 4), (1, 1), False)])
def test_the_forward_takes_the_packed_route_where_its_rule_says(monkeypatch, w_shape, out_hw,
                                                                stride, packed):
    assert packed_pointwise(w_shape, 1, np.float32, stride, out_hw) == packed
    assert not packed_pointwise(w_shape, 1, np.float64, stride, out_hw)
    assert not packed_pointwise(w_shape, 2, np.float32, stride, out_hw)
    calls = _spy(monkeypatch, "packed_forward")
    hw = [o * s for o, s in zip(out_hw, stride)]
    rng, xp, _, b = _data(2, w_shape[1], *hw, w_shape[0], 0, seed=4)
    wt = rng.standard_normal(w_shape).astype(np.float32)
    y = conv.conv_forward(xp, wt, b, stride, relu=True)
    assert len(calls) == int(packed)
    np.testing.assert_allclose(y, np.maximum(conv.grouped_forward_reference(  # the 3×3 on
        *_f64(xp, wt, b), stride, (1, 1), 1), 0), rtol=1e-3, atol=1e-3)  # Winograd: loosely


@pytest.mark.parametrize("w_shape,hw,stride,packed", [
    ((32, 64, 1, 1), (32, 32), (1, 1), True),  # as many channels as filters or more
    ((128, 64, 1, 1), (32, 32), (2, 2), True),  # ≥ 64 channels, ≥ F/2: a projection
    ((64, 32, 1, 1), (32, 32), (1, 1), False),  # more filters than 32 channels
    ((64, 64, 1, 1), (8, 8), (1, 1), False)])  # < 256 outputs
def test_the_backward_takes_the_packed_input_gradient_where_its_rule_says(monkeypatch, w_shape,
                                                                          hw, stride, packed):
    oh, ow = ((s - 1) // st + 1 for s, st in zip(hw, stride))
    assert packed_input_grad_wins(w_shape, np.float32, oh * ow) == packed
    assert not packed_input_grad_wins(w_shape, np.float64, oh * ow)
    rng, xp, wt, _ = _data(2, w_shape[1], *hw, w_shape[0], 0, seed=6)
    dy = rng.standard_normal((2, w_shape[0], oh, ow)).astype(np.float32)
    calls = _spy(monkeypatch, "packed_input_grad")
    dxp, dw, db = conv.conv_backward(xp, wt, dy, stride)
    assert len(calls) == int(packed)
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(
        *_f64(dy, wt), *xp.shape[2:], stride, (1, 1), 1), **TOL)
    none, dw_again, db_again = pointwise_backward(xp, wt, dy, stride, False)
    assert none is None and np.array_equal(dw_again, dw) and np.array_equal(db_again, db)
    assert len(calls) == int(packed)


@pytest.mark.parametrize("w_shape,hw,stride,packed", [
    ((64, 32, 1, 1), (16, 16), (1, 1), True),  # a bottleneck's widening 1×1
    ((16, 64, 1, 1), (16, 16), (1, 1), True),  # ... its narrowing one
    ((128, 64, 1, 1), (16, 16), (2, 2), True),  # a projection of ≥ 64 channels at stride 2
    ((64, 32, 1, 1), (16, 16), (2, 2), False),  # ... of fewer
    ((16, 32, 1, 1), (16, 16), (1, 1), False),  # a small product
    ((64, 3, 1, 1), (16, 16), (1, 1), False)])  # 3 channels
def test_the_backward_takes_the_packed_weight_gradient_where_its_rule_says(monkeypatch, w_shape,
                                                                           hw, stride, packed):
    assert packed_weight_grad_wins(w_shape, np.float32, stride) == packed
    assert not packed_weight_grad_wins(w_shape, np.float64, stride)
    calls = _spy(monkeypatch, "packed_weight_grad")
    oh, ow = ((s - 1) // st + 1 for s, st in zip(hw, stride))
    rng, xp, wt, _ = _data(3, w_shape[1], *hw, w_shape[0], 0, seed=8)
    dy = rng.standard_normal((3, w_shape[0], oh, ow)).astype(np.float32)
    dxp, dw, db = conv.conv_backward(xp, wt, dy, stride)
    assert len(calls) == int(packed)
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(
        *_f64(xp, dy), 1, 1, stride, (1, 1), 1), **TOL)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL)
