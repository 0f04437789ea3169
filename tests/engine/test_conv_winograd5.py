"""Winograd F(4×4, 5×5) convolutions (``kernels/conv_winograd5``): the matrices are a minimal
filtering algorithm (float64, to rounding), the numpy twin is the convolution, the numba kernels
equal the float64 reference to float32 precision over a family of shapes (channels 1–80, maps
1–37, odd and even, padding 0–3, batch 1–9): forward, input, weight and bias gradients; the
entry points and the fused ReLU + max-pool pick them by the rule; the results do not depend on
the threads; and a float32 5×5 convnet trains through them as through the matrix-product
kernels they replace."""
import sys
from functools import partial

import numpy as np
import pytest

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv
from layerloom.engine.kernels import conv_winograd5 as w5
from layerloom.engine.kernels import conv_winograd5_back as w5b
from layerloom.engine.kernels import conv_winograd_tile as tile
from layerloom.engine.kernels.conv_reference import winograd_reference
from layerloom.engine.network import Network

from .graph_cases import add_after
from .test_conv_winograd import assert_trains_alike, classifier_head, train_losses
from .test_split_kernels import at_threads


def _rel(got, want) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def _tol(taps: int) -> float:
    """float32 against the float64 reference, relative to the largest value: rounding grows like
    √taps, and the 8-point transforms cost a few bits more than F(4×4, 3×3)'s."""
    return 4e-6 * np.sqrt(taps) + 4e-6


def _family(count: int, seed: int = 55) -> list:
    """(batch, C, F, H, W, padding): the edges by hand, then drawn from the ranges above."""
    rng = np.random.default_rng(seed)
    cases = [(1, 1, 1, 5, 5, 0), (2, 16, 16, 8, 8, 2), (3, 17, 20, 13, 11, 2),
             (1, 32, 32, 32, 32, 2), (4, 80, 24, 7, 9, 3), (9, 16, 48, 12, 5, 1),
             (2, 3, 16, 32, 32, 2)]
    while len(cases) < count:
        cases.append((int(rng.integers(1, 10)), int(rng.integers(1, 81)), int(rng.integers(1, 81)),
                      int(rng.integers(5, 38)), int(rng.integers(5, 38)), int(rng.integers(0, 4))))
    return cases


CASES = _family(20)


def _data(n, c, f, h, w, pad, seed=0):
    rng = np.random.default_rng(seed)
    xp = conv.pad_sides(rng.standard_normal((n, c, h, w)), pad, pad, pad, pad)
    return rng, xp, rng.standard_normal((f, c, 5, 5)) / np.sqrt(25 * c), rng.standard_normal(f)


def test_the_matrices_filter_exactly():
    """y = Aᵀ [(G g) ⊙ (Bᵀ d)] is the correlation of an 8-point d with a 5-tap g."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.standard_normal(8), rng.standard_normal(5)
        want = np.array([d[i:i + 5] @ g for i in range(4)])
        np.testing.assert_allclose(w5.AT @ ((w5.G @ g) * (w5.BT @ d)), want, rtol=1e-12,
                                   atol=1e-12)
    for k in (w5._H, w5._Q, w5._E, w5._K125, w5._K25, w5._K425, w5._K525):  # the kernels'
        entries = np.abs(np.r_[w5.AT.ravel(), w5.BT.ravel()])
        assert k.dtype == np.float32 and abs(float(k)) in entries


@pytest.mark.parametrize("n,c,f,h,w,pad", CASES[:6])
def test_numpy_twin_is_the_convolution(n, c, f, h, w, pad):
    _, xp, wt, b = _data(n, c, f, h, w, pad)
    np.testing.assert_allclose(winograd_reference(xp, wt, b, 4),
                               conv.conv2d_forward_reference(xp, wt, b, 1, 1), rtol=1e-10,
                               atol=1e-10)


def test_filter_transform_and_weight_grad_are_the_matrices():
    rng = np.random.default_rng(1)
    wt = rng.standard_normal((5, 7, 5, 5))
    want = np.einsum("ri,fcij,qj->rqfc", w5.G, wt, w5.G).reshape(64, 5, 7)
    np.testing.assert_allclose(w5.filter_transform(wt), want, rtol=1e-12, atol=1e-12)
    du = rng.standard_normal((3, 64, 5, 7))
    want = np.einsum("ri,rqfc,qj->fcij", w5.G, du.sum(axis=0).reshape(8, 8, 5, 7), w5.G)
    np.testing.assert_allclose(w5.weight_grad(du), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,c,f,h,w,pad", CASES)
def test_kernels_equal_the_float64_convolution_and_its_gradients(n, c, f, h, w, pad):
    rng, xp, wt, b = _data(n, c, f, h, w, pad)
    x32, w32, b32 = (a.astype(np.float32) for a in (xp, wt, b))
    u = w5.filter_transform(w32)
    y = w5.winograd5_forward(x32, u, b32)
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    assert y.dtype == np.float32 and y.shape == want.shape
    assert _rel(y, want) < _tol(25 * c)
    relu = w5.winograd5_forward(x32, u, b32, relu=True)
    np.testing.assert_array_equal(relu, np.maximum(y, 0))
    dy = rng.standard_normal(want.shape)
    dxp, du, db = w5b.winograd5_backward(x32, u, dy.astype(np.float32), True)
    dw = w5.weight_grad(du)
    assert dxp.dtype == dw.dtype == db.dtype == np.float32
    positions = n * want[0, 0].size
    assert _rel(dxp, conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1)) < _tol(25 * f)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 5, 5, 1, 1)) < _tol(positions)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(positions)
    none = w5b.winograd5_backward(x32, u, dy.astype(np.float32), False)
    assert none[0].size == 0
    np.testing.assert_array_equal(none[1], du)


def test_a_nan_stays_where_the_direct_convolution_puts_it():
    """One NaN input poisons the outputs whose windows hold it, as the direct sum does, and
    (through the transforms) the rest of its tiles, never another sample."""
    rng, xp, wt, b = _data(2, 16, 16, 12, 12, 2)
    x32 = xp.astype(np.float32)
    x32[1, 3, 7, 7] = np.nan
    y = w5.winograd5_forward(x32, w5.filter_transform(wt.astype(np.float32)), b.astype(np.float32))
    assert np.isfinite(y[0]).all() and np.isnan(y[1, :, 5, 5]).all()


def test_the_rule():
    assert w5.winograd5((32, 32, 5, 5), np.float32, 16, 16)
    assert w5.winograd5((16, 64, 5, 5), np.float32, 8, 9)
    assert not w5.winograd5((32, 32, 5, 5), np.float64, 16, 16)  # float64 stays exact
    assert w5.winograd5((32, 32, 5, 5), np.float32, 7, 16)  # small maps: im2col did every tap
    assert w5.winograd5((256, 256, 5, 5), np.float32, 4, 4)
    assert not w5.winograd5((32, 32, 5, 5), np.float32, 3, 16)  # 3×3 maps and smaller: im2col
    assert w5.winograd5((32, 4, 5, 5), np.float32, 32, 32)  # a 4-channel stem on a large map
    assert not w5.winograd5((32, 3, 5, 5), np.float32, 32, 32)  # RGB: the direct kernels
    assert not w5.winograd5((32, 3, 5, 5), np.float32, 16, 16)  # on a small one
    assert not w5.winograd5((32, 1, 5, 5), np.float32, 28, 28)  # one channel
    assert not w5.winograd5((16, 6, 5, 5), np.float32, 10, 10)  # LeNet-5's conv2
    assert not w5.winograd5((6, 1, 5, 5), np.float32, 28, 28)  # LeNet-5's conv1
    assert not w5.winograd5((8, 32, 5, 5), np.float32, 16, 16)  # few filters
    assert not w5.winograd5((32, 32, 3, 3), np.float32, 16, 16)
    assert not w5.winograd5((32, 32, 5, 3), np.float32, 16, 16)


def _spy(monkeypatch, callers: set | None = None) -> list:
    """The calls of the two kernels ("f", "b") through ``conv`` (by way of
    ``conv_winograd_tile``, which picks the chunks or the whole batch); ``callers`` collects
    the names of the functions that made them."""
    calls = []

    def spy(kind, fn):
        def run(*args, **kwargs):
            calls.append(kind)
            if callers is not None:
                callers.add(sys._getframe(1).f_code.co_name)
            return fn(*args, **kwargs)
        return run
    monkeypatch.setattr(conv, "winograd5_image", spy("f", tile.winograd5_image))
    monkeypatch.setattr(conv, "winograd5_image_grads", spy("b", tile.winograd5_image_grads))
    return calls


@pytest.mark.parametrize("n,c,f,h,w,pad", [(3, 16, 16, 8, 8, 2), (2, 24, 32, 13, 11, 2),
                                            (2, 32, 20, 16, 16, 0), (3, 16, 24, 4, 4, 2),
                                            (2, 20, 16, 6, 7, 2)])
def test_entry_points_and_the_fused_relu_maxpool_take_it(monkeypatch, n, c, f, h, w, pad):
    calls = _spy(monkeypatch)
    rng, xp, wt, b = _data(n, c, f, h, w, pad)
    x32, w32, b32 = (a.astype(np.float32) for a in (xp, wt, b))
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    assert _rel(conv.conv_forward(x32, w32, b32, (1, 1)), want) < _tol(25 * c)
    relu = conv.conv_forward(x32, w32, b32, (1, 1), relu=True)
    assert _rel(relu, np.maximum(want, 0)) < _tol(25 * c)
    dy = rng.standard_normal(want.shape)
    dxp, dw, _ = conv.conv_backward(x32, w32, dy.astype(np.float32), (1, 1))
    assert _rel(dxp, conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1)) < _tol(25 * f)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 5, 5, 1, 1)) < _tol(n * dy[0, 0].size)
    y, arg = conv.conv_relu_maxpool(x32, w32, b32, 2, 2, 2, 2, True)
    assert _rel(y, conv.conv_relu_maxpool_reference(xp, wt, b, (2, 2), (2, 2))) < _tol(25 * c)
    dp = rng.standard_normal(y.shape).astype(np.float32)
    dxp, dw, db = conv.conv_relu_maxpool_grads(x32, w32, dp, arg, True)
    dz = conv.unpool(dp, arg, *want.shape[2:], want.shape[3]).astype(np.float64)  # pitch OW
    assert dz.any() and _rel(db, dz.sum(axis=(0, 2, 3))) < _tol(dz[0, 0].size * n)
    assert _rel(dxp, conv.conv2d_input_grad_reference(dz, wt, *xp.shape[2:], 1, 1)) < _tol(25 * f)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dz, 5, 5, 1, 1)) < _tol(dz[0, 0].size * n)
    assert calls == ["f", "f", "b", "f", "b"]
    conv.conv_forward(xp, wt, b, (1, 1))  # float64: the exact kernels
    assert len(calls) == 5


def test_chunks_are_fixed_by_the_shapes_not_the_threads():
    rng = np.random.default_rng(3)
    xp = rng.standard_normal((20, 32, 20, 20)).astype(np.float32)
    wt = (rng.standard_normal((48, 32, 5, 5)) / 28).astype(np.float32)
    dy = rng.standard_normal((20, 48, 16, 16)).astype(np.float32)
    bounds = w5.geometry(xp, 48)[0]
    assert len(bounds) - 1 >= 4  # work for every core

    def run():
        u = w5.filter_transform(wt)
        return (w5.winograd5_forward(xp, u, np.zeros(48, np.float32)),
                *w5b.winograd5_backward(xp, u, dy, True))
    for one, two in zip(at_threads(1, run), at_threads(2, run)):
        assert np.array_equal(one, two)


def test_the_fused_step_equals_the_plain_layers(monkeypatch):
    """Conv2D+ReLU+MaxPool2D pools this kernel's output at pitch OW and hands the un-pooled
    gradient back to it: the same outputs, gradients and Adam steps as the plain layers."""
    from tests.engine.test_conv_fusion import check_same

    callers = set()
    calls = _spy(monkeypatch, callers)
    g = Graph()
    prev = add_after(g, None, "image", "Input", {"shape": [16, 17, 16]})
    prev = add_after(g, prev, "c1", "Conv2D", {"out_channels": 16, "kernel_size": [5, 5],
                                               "padding": [2, 2]})
    prev = add_after(g, add_after(g, prev, "r1", "ReLU"), "pool", "MaxPool2D",
                     {"kernel_size": [3, 3]})
    check_same(classifier_head(g, prev, 4), np.float32, expect={"Conv2D+ReLU+MaxPool2D"})
    assert "f" in calls and "b" in calls
    assert callers == {"conv_relu_maxpool", "conv_relu_maxpool_grads",  # the fused step
                       "conv_forward_unpadded", "conv_backward_unpadded"}  # the plain layers


def test_the_layers_route_reads_x_unpadded_and_transforms_the_filters_once(monkeypatch):
    """A Conv2D layer hands x over unpadded on the "winograd5" route (the kernels read the
    padding in place), and the backward takes the filters' transform the forward made (one
    call a step, not two); output and gradients equal the float64 convolution's."""
    made = []
    monkeypatch.setattr(conv, "filter_transform5",
                        lambda w, _real=conv.filter_transform5: made.append(1) or _real(w))
    rng, xp, wt, b = _data(3, 16, 24, 6, 7, 2, seed=3)
    x = xp[:, :, 2:-2, 2:-2]
    assert conv.pad_free_route(x.shape, wt.shape, np.float32, (2, 2), (1, 1)) == "winograd5"
    assert conv.pad_free_route(x.shape, wt.shape, np.float64, (2, 2), (1, 1)) == ""
    x32, w32, b32 = (np.ascontiguousarray(a, dtype=np.float32) for a in (x, wt, b))
    y, kept = conv.conv_forward_unpadded(x32, w32, b32, (2, 2), "winograd5", relu=True)
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    assert _rel(y, np.maximum(want, 0)) < _tol(25 * 16)
    dy = rng.standard_normal(want.shape)
    dx, dw, db = conv.conv_backward_unpadded(kept, wt.shape, dy.astype(np.float32), (2, 2),
                                             "winograd5", x.shape, True)
    assert len(made) == 1
    dxp = conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1)
    assert dx.shape == x.shape and _rel(dx, dxp[:, :, 2:-2, 2:-2]) < _tol(25 * 24)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 5, 5, 1, 1)) < _tol(3 * 42)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(3 * 42)
    none = conv.conv_backward_unpadded(kept, wt.shape, dy.astype(np.float32), (2, 2),
                                       "winograd5", x.shape, False)
    assert none[0] is None and np.array_equal(none[1], dw)


@pytest.mark.parametrize("n,c,f,h,w,pad", [(5, 16, 16, 13, 11, 2), (4, 3, 16, 32, 32, 2),
                                            (3, 17, 20, 9, 16, 1), (2, 16, 24, 6, 7, 3)])
def test_the_chunks_read_the_padding_in_place_as_a_padded_copy_bit_for_bit(n, c, f, h, w, pad):
    """``winograd5_forward`` / ``winograd5_backward`` of x with its padding given equal those of
    x's zero-padded copy bit for bit (the same values reach the transforms; the input gradient
    is the padded one's inside), with and without ReLU and the input gradient."""
    rng, xp, wt, b = _data(n, c, f, h, w, pad, seed=5)
    x32 = np.ascontiguousarray(xp[:, :, pad:pad + h, pad:pad + w], dtype=np.float32)
    xp32, u, b32 = xp.astype(np.float32), w5.filter_transform(wt.astype(np.float32)), \
        b.astype(np.float32)
    for relu in (False, True):
        y = w5.winograd5_forward(x32, u, b32, relu, (pad, pad))
        assert np.array_equal(y, w5.winograd5_forward(xp32, u, b32, relu))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, du, db = w5b.winograd5_backward(x32, u, dy, True, (pad, pad))
    dxp, du_p, db_p = w5b.winograd5_backward(xp32, u, dy, True)
    assert dx.shape == x32.shape and np.array_equal(dx, dxp[:, :, pad:pad + h, pad:pad + w])
    assert np.array_equal(du, du_p) and np.array_equal(db, db_p)
    assert w5b.winograd5_backward(x32, u, dy, False, (pad, pad))[0].size == 0


@pytest.mark.parametrize("k,c", [(5, 16), (3, 16)])
def test_the_fused_step_makes_the_filters_transform_once(monkeypatch, k, c):
    """Conv2D → ReLU → MaxPool2D as one step on Winograd (5×5: F(4×4, 5×5); 3×3: F(4×4, 3×3)):
    one transform a training step, made by the step and handed to both kernels."""
    from tests.engine.test_conv_fusion import check_same, fused_types

    made = []
    for name in ("filter_transform5", "filter_transform"):
        real = getattr(conv, name)
        monkeypatch.setattr(conv, name, lambda *a, _r=real: made.append(1) or _r(*a))

    def graph() -> Graph:
        g = Graph()
        prev = add_after(g, None, "image", "Input", {"shape": [c, 12, 12]})
        prev = add_after(g, prev, "c1", "Conv2D", {"out_channels": 16, "kernel_size": [k, k],
                                                   "padding": [k // 2, k // 2]})
        prev = add_after(g, add_after(g, prev, "r1", "ReLU"), "pool", "MaxPool2D",
                         {"kernel_size": [2, 2]})
        return classifier_head(g, prev, 4)
    net = Network(graph(), seed=0, dtype=np.float32)
    assert fused_types(net) == {"Conv2D+ReLU+MaxPool2D"}
    rng = np.random.default_rng(0)
    net.forward({"image": rng.standard_normal((2, c, 12, 12)).astype(np.float32),
                 "label": np.array([0, 3])}, training=True)
    net.backward()
    assert len(made) == 1
    check_same(graph(), np.float32, expect={"Conv2D+ReLU+MaxPool2D"})


def _convnet() -> Graph:
    g = Graph()
    add = partial(add_after, g)
    conv5 = lambda c: {"out_channels": c, "kernel_size": [5, 5], "padding": [2, 2]}  # noqa: E731
    prev = add(None, "image", "Input", {"shape": [3, 12, 12]})
    prev = add(add(prev, "c0", "Conv2D", conv5(16)), "r0", "ReLU")
    prev = add(add(prev, "c1", "Conv2D", conv5(16)), "r1", "ReLU")
    prev = add(add(add(prev, "c2", "Conv2D", conv5(16)), "r2", "ReLU"), "pool", "MaxPool2D",
               {"kernel_size": [2, 2]})
    return classifier_head(g, prev)


def test_a_5x5_convnet_trains_through_winograd_as_through_the_product_kernels(monkeypatch):
    """c1 (plain, with its ReLU) and c2 (fused with ReLU + max-pool) run F(4×4, 5×5); the stem
    c0 (3 channels) does not."""
    calls = _spy(monkeypatch)
    fast = train_losses(_convnet(), 20)
    assert calls.count("f") == 20 * 2 and calls.count("b") == 20 * 2
    monkeypatch.setattr(conv, "winograd5", lambda *a: False)
    plain = train_losses(_convnet(), 20)
    assert_trains_alike(fast, plain)
