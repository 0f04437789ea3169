"""The whole-batch Winograd path on maps of one tile (``kernels/conv_winograd_tile``, the
transforms as products), F(4×4, 5×5) and F(4×4, 3×3): its forward and backward equal the float64
convolution to float32 precision over a family of batches and channel counts (an 8×8 or 6×6
padded input made of padding 0-3 around a map of 8×8 down to 2×2, so the tile's border holds data
or zeros), with and without ReLU and the input gradient; they agree with the chunked kernels and
do not depend on the threads; the rule sends 4×4 outputs there, and the entry points (plain
and fused with ReLU + max-pool) run through it. A map handed over unpadded (the padding left out
of the transform's columns) gives what its padded copy gives, and the layers hand their maps
over so."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv
from layerloom.engine.kernels import conv_winograd5 as w5
from layerloom.engine.kernels import conv_winograd5_back as w5b
from layerloom.engine.kernels import conv_winograd_plan as plan
from layerloom.engine.kernels import conv_winograd_tile as tile
from layerloom.engine.kernels.conv_reference import winograd_reference

from .test_conv_winograd5 import _data, _rel, _tol
from .test_split_kernels import at_threads

# (kernel side, batch, C, F, H, W, padding, relu): H + 2·padding is the tile: 8 for 5×5 (F(4×4,
# 5×5)), 6 (F(4×4, 3×3)) or 8 (F(6×6, 3×3)) for 3×3
CASES = [(5, 3, 5, 7, 4, 4, 2, False), (5, 9, 16, 12, 4, 4, 2, True), (5, 17, 8, 8, 6, 6, 1, False),
         (5, 2, 3, 4, 8, 8, 0, True), (5, 11, 12, 20, 2, 2, 3, False), (5, 1, 1, 1, 4, 4, 2, True),
         (3, 3, 5, 7, 4, 4, 1, False), (3, 9, 16, 12, 4, 4, 1, True), (3, 17, 8, 8, 6, 6, 0, True),
         (3, 2, 3, 4, 2, 2, 2, False), (3, 1, 1, 1, 4, 4, 1, True), (3, 5, 6, 9, 6, 6, 1, True),
         (3, 9, 16, 12, 8, 8, 0, False), (3, 3, 7, 5, 4, 4, 2, True), (3, 1, 1, 1, 6, 6, 1, False)]


def _f32(*arrays):
    return tuple(a.astype(np.float32) for a in arrays)


def _kernel(k: int, n, c, f, h, w, pad):
    """(rng, padded float64 input, filters, bias, the filters' transform, its gradient's, m)."""
    rng, xp, wt, b = _data(n, c, f, h, w, pad)
    if k == 3:
        wt, m = rng.standard_normal((f, c, 3, 3)) / np.sqrt(9 * c), h + 2 * pad - 2
        return rng, xp, wt, b, plan.filter_transform(wt.astype(np.float32), m), \
            lambda du: plan.weight_grad(du, m), m
    return rng, xp, wt, b, w5.filter_transform(wt.astype(np.float32)), w5.weight_grad, 4


@pytest.mark.parametrize("k,n,c,f,h,w,pad,relu", CASES)
def test_forward_and_backward_equal_the_float64_convolution(k, n, c, f, h, w, pad, relu):
    """The kernels whatever the rule would pick for the channels and the batch."""
    rng, xp, wt, b, u, weight_grad, m = _kernel(k, n, c, f, h, w, pad)
    x32, _, b32 = _f32(xp, wt, b)
    y = tile.tile_forward(x32, u, b32, relu, m=m)
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    if relu:
        want = np.maximum(want, 0)
    assert y.dtype == np.float32 and y.shape == want.shape
    assert _rel(y, want) < _tol(k * k * c)
    dy = rng.standard_normal(want.shape)
    dxp, du, db = tile.tile_backward(x32, u, dy.astype(np.float32), True, m=m)
    assert du.shape == (1, (m + k - 1) ** 2, f, c)
    positions = n * dy[0, 0].size
    assert _rel(dxp, conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1)) < \
        _tol(k * k * f)
    assert _rel(weight_grad(du), conv.conv2d_weight_grad_reference(xp, dy, k, k, 1, 1)) < \
        _tol(positions)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(positions)
    assert tile.tile_backward(x32, u, dy.astype(np.float32), False, m=m)[0].size == 0
    if pad:  # the map itself, its padding never made: the same values as the padded copy's
        x = np.ascontiguousarray(x32[:, :, pad:pad + h, pad:pad + w])
        y_in = tile.tile_forward(x, u, b32, relu, (pad, pad), m)
        assert y_in.shape == y.shape and _rel(y_in, want) < _tol(k * k * c)
        dx, du_in, db_in = tile.tile_backward(x, u, dy.astype(np.float32), True, (pad, pad), m)
        assert dx.shape == x.shape
        assert _rel(dx, dxp[:, :, pad:pad + h, pad:pad + w]) < _tol(k * k * f)
        assert _rel(weight_grad(du_in), weight_grad(du)) < _tol(positions)
        assert np.array_equal(db_in, db)


def test_f6x6_3x3_filters_exactly():
    """y = Aᵀ [(G g) ⊙ (Bᵀ d)] of F(6×6, 3×3) is the correlation of an 8-point d with a 3-tap g,
    and its numpy twin the float64 convolution over maps of several tiles."""
    bt, g6, at = plan.MATRICES[6]
    rng = np.random.default_rng(1)
    for _ in range(20):
        d, g = rng.standard_normal(8), rng.standard_normal(3)
        want = np.array([d[i:i + 3] @ g for i in range(6)])
        np.testing.assert_allclose(at @ ((g6 @ g) * (bt @ d)), want, rtol=1e-12, atol=1e-12)
    xp, wt, b = rng.standard_normal((2, 3, 15, 10)), rng.standard_normal((4, 3, 3, 3)), \
        rng.standard_normal(4)
    np.testing.assert_allclose(winograd_reference(xp, wt, b, 6),
                               conv.conv2d_forward_reference(xp, wt, b, 1, 1), atol=1e-11)


def test_it_agrees_with_the_chunks_and_not_with_the_threads():
    """The same transforms as the chunked kernels (the weight and bias gradients' sums run in
    another order), and bit for bit the same results on one core and on two."""
    rng, xp, wt, b = _data(21, 24, 16, 4, 4, 2, seed=4)
    x32, w32, b32 = _f32(xp, wt, b)
    u = w5.filter_transform(w32)
    dy = rng.standard_normal((21, 16, 4, 4)).astype(np.float32)

    def run():
        return (tile.tile_forward(x32, u, b32, True), *tile.tile_backward(x32, u, dy, True))
    one, two = at_threads(1, run), at_threads(2, run)
    for a, c in zip(one, two):
        assert np.array_equal(a, c)
    assert _rel(one[0], w5.winograd5_forward(x32, u, b32, True)) < _tol(25 * 24)
    dx, du, db = w5b.winograd5_backward(x32, u, dy, True)
    assert _rel(one[1], dx) < _tol(25 * 16)
    positions = 21 * 16
    assert _rel(one[3], db) < _tol(positions)
    assert _rel(w5.weight_grad(one[2]), w5.weight_grad(du)) < _tol(positions)


def test_3x3_agrees_with_the_chunks_and_not_with_the_threads():
    """F(4×4, 3×3) on 4×4 maps (the padding read in place): as ``conv_winograd``'s chunks, and
    bit for bit the same on one core and on two."""
    from .test_conv_winograd_batch import agrees_with_the_chunks_on_any_threads

    rng = np.random.default_rng(6)
    x32 = rng.standard_normal((21, 24, 4, 4)).astype(np.float32)
    u = plan.filter_transform((rng.standard_normal((16, 24, 3, 3)) / 15).astype(np.float32), 4)
    b32, dy = rng.standard_normal(16).astype(np.float32), \
        rng.standard_normal((21, 16, 4, 4)).astype(np.float32)

    def run():
        return (tile.tile_forward(x32, u, b32, True, (1, 1)),
                *tile.tile_backward(x32, u, dy, True, (1, 1)))
    agrees_with_the_chunks_on_any_threads(run, x32, u, b32, dy)
    assert tile.one_tile3(24, 16, 21, 4, 4) and not tile.one_tile3(24, 16, 21, 8, 8)


def test_the_rule_takes_4x4_maps_only():
    assert tile.whole_batch5(256, 256, 64, 4, 4)
    assert tile.whole_batch5(128, 128, 64, 4, 4)
    assert tile.whole_batch5(16, 16, 1, 4, 4)
    assert not tile.whole_batch5(256, 256, 64, 8, 8)  # 2×2 tiles a sample: the chunks
    assert not tile.whole_batch5(256, 256, 64, 5, 5)  # and any map but one tile
    assert not tile.whole_batch5(512, 512, 1024, 4, 4)  # V and M past MAX_ELEMENTS
    assert not tile.whole_batch5(256, 256, 0, 4, 4)  # an empty batch: nothing to group


def _counted(monkeypatch) -> list:
    """The names of the whole-batch kernels run from now on, in order."""
    calls = []
    for name in ("tile_forward", "tile_backward"):
        real = getattr(tile, name)
        monkeypatch.setattr(tile, name, lambda *a, _real=real, _n=name: calls.append(_n) or
                            _real(*a))
    return calls


def test_a_conv2d_of_256_filters_on_4x4_maps_runs_through_it(monkeypatch):
    """``conv_forward`` / ``conv_backward`` (the Conv2D layer's) and the fused ReLU + max-pool:
    the whole batch runs each way, and values equal the float64 convolution's."""
    calls = _counted(monkeypatch)
    rng, xp, wt, b = _data(2, 128, 256, 4, 4, 2, seed=7)
    x32, w32, b32 = _f32(xp, wt, b)
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    assert _rel(conv.conv_forward(x32, w32, b32, (1, 1), relu=True), np.maximum(want, 0)) < \
        _tol(25 * 128)
    dy = rng.standard_normal(want.shape)
    dx, dw, db = conv.conv_backward(x32, w32, dy.astype(np.float32), (1, 1), pad=(2, 2))
    assert calls == ["tile_forward", "tile_backward"]
    dx_want = conv.conv2d_input_grad_reference(dy, wt, 8, 8, 1, 1)[:, :, 2:6, 2:6]
    assert _rel(dx, dx_want) < _tol(25 * 256)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 5, 5, 1, 1)) < _tol(32)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(32)
    y, arg = conv.conv_relu_maxpool(x32, w32, b32, 2, 2, 2, 2, True)
    assert _rel(y, np.maximum(want, 0).reshape(2, 256, 2, 2, 2, 2).max(axis=(3, 5))) < \
        _tol(25 * 128)
    dp = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = conv.conv_relu_maxpool_grads(x32, w32, dp, arg, True)
    assert calls[2:] == ["tile_forward", "tile_backward"]
    dz = conv.unpool(dp, arg, 4, 4, 4).astype(np.float64)
    assert _rel(dx, conv.conv2d_input_grad_reference(dz, wt, 8, 8, 1, 1)) < _tol(25 * 256)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dz, 5, 5, 1, 1)) < _tol(32)


def test_a_map_and_padding_that_are_not_one_tile_are_refused():
    with pytest.raises(ValueError, match="not one 8×8 tile"):
        tile.transform_columns(8, (1, 1), 4, 4)
    assert tile.transform_columns(8, (2, 2), 4, 4).shape == (64, 16)
    assert np.array_equal(tile.transform_columns(8, (0, 0), 8, 8), tile.K8)
    assert tile.transform_columns(6, (1, 1), 4, 4).shape == (36, 16)


@pytest.mark.parametrize("k,side,m", [(5, 4, 4), (3, 4, 4), (3, 6, 6)])
def test_the_layers_hand_one_tile_maps_over_unpadded(monkeypatch, k, side, m):
    """Conv2D (5×5 or 3×3, 'same' padding) on maps of one tile's outputs (4×4; 6×6 for F(6×6,
    3×3)), plain, with ReLU and fused with ReLU + max-pool, in a network trained a step in
    float32: the whole batch gets x itself (the padding passed along, no padded copy), and the
    loss and every gradient equal the float64 network's (the exact kernels) to float32
    precision."""
    from layerloom.engine.graph import Graph
    from layerloom.engine.network import Network

    from .graph_cases import add_after
    from .test_conv_winograd import classifier_head

    from layerloom.engine.kernels import conv_winograd_batch

    seen = []
    real = tile.tile_forward
    for module in (tile, conv_winograd_batch):  # the 5×5 and the 3×3 dispatchers' name
        monkeypatch.setattr(module, "tile_forward", lambda x, u, b, relu=False, pad=(0, 0), m=4:
                            seen.append((x.shape[2:], tuple(pad), m))
                            or real(x, u, b, relu, pad, m))
    g = Graph()
    prev = add_after(g, None, "image", "Input", {"shape": [16, side, side]})
    same = {"out_channels": 24, "kernel_size": [k, k], "padding": [k // 2, k // 2]}
    prev = add_after(g, prev, "c1", "Conv2D", same)  # a plain Conv2D
    prev = add_after(g, add_after(g, prev, "c2", "Conv2D", same), "r2", "ReLU")  # Conv2D+ReLU
    prev = add_after(g, add_after(g, prev, "c3", "Conv2D", same), "r3", "ReLU")
    prev = add_after(g, prev, "pool", "MaxPool2D", {"kernel_size": [2, 2]})  # fused with c3
    g = classifier_head(g, prev, 5)
    rng = np.random.default_rng(2)
    feed = {"image": rng.standard_normal((6, 16, side, side)), "label": rng.integers(0, 5, 6)}
    out = {}
    for dtype in (np.float64, np.float32):
        net = Network(g, seed=1, dtype=dtype)
        net.forward(feed, training=True)
        out[dtype] = net.loss(), net.backward()
    assert seen == [((side, side), (k // 2, k // 2), m)] * 3
    (loss64, g64), (loss32, g32) = out[np.float64], out[np.float32]
    assert abs(loss32 - loss64) < 1e-4 * max(1.0, abs(loss64))
    for key in g64:
        assert _rel(g32[key], g64[key]) < 1e-3, key
