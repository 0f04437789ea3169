"""The whole-batch Winograd path (``kernels/conv_winograd_batch``): its forward and backward equal
the float64 convolution to float32 precision over odd and even small maps, paddings 0-2, with
and without ReLU and the input gradient; they agree with the chunked kernels and do not depend
on the threads; the rule sends many-channel small maps there (and maps of one tile, 4×4
outputs, to ``conv_winograd_tile``'s products), and a Conv2D layer of 256 channels on 4×4 maps
runs through them and trains as the direct kernels do."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv, conv_winograd as wg
from layerloom.engine.kernels import conv_winograd_plan as plan
from layerloom.engine.kernels import conv_winograd_back as wgb
from layerloom.engine.kernels import conv_winograd_batch as wb
from layerloom.engine.kernels.conv_gemm_strided import prefers_gemm_strided

from .test_conv_winograd import _rel, _tol
from .test_split_kernels import at_threads

# (batch, C, F, H, W, padding, relu): maps of 1-3 tile rows and columns, groups of 8 cut unevenly
CASES = [(3, 5, 7, 4, 4, 1, False), (9, 16, 12, 6, 6, 1, True), (17, 8, 8, 12, 12, 0, False),
         (2, 3, 4, 5, 7, 2, True), (11, 12, 20, 9, 3, 1, False), (1, 1, 1, 3, 3, 0, True)]


def _data(n, c, f, h, w, pad, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((f, c, 3, 3)) / np.sqrt(9 * c)
    return rng, x, wt, rng.standard_normal(f)


def _f32(*arrays):
    return tuple(a.astype(np.float32) for a in arrays)


def _counted(monkeypatch) -> list:
    """The names of the whole-batch kernels run from now on (every route reaches them through
    ``winograd_image``), in order: the row transforms' and, on 4×4 outputs, the products'."""
    calls = []
    for name in ("batch_forward", "batch_backward", "tile_forward", "tile_backward"):
        real = getattr(wb, name)
        monkeypatch.setattr(wb, name, lambda *a, _real=real, _n=name: calls.append(_n) or
                            _real(*a))
    return calls


@pytest.mark.parametrize("n,c,f,h,w,pad,relu", CASES)
def test_forward_and_backward_equal_the_float64_convolution(n, c, f, h, w, pad, relu):
    """The kernels whatever the rule would pick, x read unpadded with its padding in place."""
    rng, x, wt, b = _data(n, c, f, h, w, pad)
    x32, w32, b32 = _f32(x, wt, b)
    u = plan.filter_transform(w32, 4)
    y = wb.batch_forward(x32, u, b32, pad, pad, relu)
    xp = conv.pad_sides(x, pad, pad, pad, pad)
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    if relu:
        want = np.maximum(want, 0)
    assert y.dtype == np.float32 and y.shape == want.shape
    assert _rel(y, want) < _tol(9 * c)
    dy = rng.standard_normal(want.shape)
    dx, du, db = wb.batch_backward(x32, u, dy.astype(np.float32), True, pad, pad)
    dxp = conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1)
    assert _rel(dx, dxp[:, :, pad:pad + h, pad:pad + w]) < _tol(9 * f)
    positions = n * dy[0, 0].size
    dw = plan.weight_grad(du, 4)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 3, 3, 1, 1)) < _tol(positions)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(positions)
    assert wb.batch_backward(x32, u, dy.astype(np.float32), False, pad, pad)[0].size == 0


def test_maps_wider_than_three_tiles_are_refused():
    """V and M hold no spare tiles: a 13-column output (4 tile columns) would not fit them."""
    x = np.zeros((2, 4, 5, 13), np.float32)
    u = plan.filter_transform(np.zeros((4, 4, 3, 3), np.float32), 4)
    with pytest.raises(ValueError, match="at most 12 columns, not 13"):
        wb.batch_forward(x, u, np.zeros(4, np.float32), 1, 1)
    with pytest.raises(ValueError, match="at most 12 columns"):
        wb.batch_backward(x, u, np.zeros((2, 4, 5, 13), np.float32), True, 1, 1)


def test_it_agrees_with_the_chunks_and_not_with_the_threads():
    """The same transforms as the chunked kernels (the products' and the sums' rounding
    differ), and bit for bit the same results on one core and on two."""
    rng, x, wt, b = _data(21, 24, 16, 8, 8, 1, seed=4)
    x32, w32, b32 = _f32(x, wt, b)
    u = plan.filter_transform(w32, 4)
    dy = rng.standard_normal((21, 16, 8, 8)).astype(np.float32)

    def run():
        return (wb.batch_forward(x32, u, b32, 1, 1, True),
                *wb.batch_backward(x32, u, dy, True, 1, 1))
    agrees_with_the_chunks_on_any_threads(run, x32, u, b32, dy)


def agrees_with_the_chunks_on_any_threads(run, x32, u, b32, dy) -> None:
    """``run()`` (forward with ReLU, then dx, dU, d bias of x padded by 1) gives the same bits on
    one core and on two, and what ``conv_winograd``'s chunks give up to the products' and the
    sums' rounding (the sums over positions run in another order: whole, not per chunk)."""
    one, two = at_threads(1, run), at_threads(2, run)
    for a, c in zip(one, two):
        assert np.array_equal(a, c)
    ow, c, f = dy.shape[3], x32.shape[1], dy.shape[1]
    chunked = wg.winograd_forward_flat(x32, u, b32, ow, 1, 1, True).reshape(one[0].shape)
    assert _rel(one[0], chunked) < _tol(9 * c)
    dx, du, db = wgb.winograd_backward(x32, u, dy, True, 1, 1)
    assert _rel(one[1], dx) < _tol(9 * f)
    positions = len(dy) * dy[0, 0].size
    assert _rel(one[3], db) < _tol(positions)
    assert _rel(plan.weight_grad(one[2], 4), plan.weight_grad(du, 4)) < _tol(positions)


def test_the_rule_takes_many_channel_small_maps_only():
    assert wb.whole_batch(256, 256, 64, 4, 4)
    assert wb.whole_batch(512, 512, 64, 8, 8)
    assert wb.whole_batch(256, 512, 32, 12, 12)
    assert wb.whole_batch(128, 128, 64, 4, 4) and wb.one_tile3(16, 16, 64, 4, 4)  # one tile
    assert not wb.whole_batch(128, 128, 64, 8, 8)  # C·F below MIN_PRODUCT: the chunks
    assert not wb.whole_batch(256, 256, 64, 16, 16)  # 4 tile columns: the chunks
    assert not wb.whole_batch(512, 512, 1024, 8, 8)  # V and M past MAX_ELEMENTS
    assert not wb.whole_batch(256, 256, 0, 4, 4)  # an empty batch: nothing to group
    f32 = np.float32  # im2col keeps what Winograd cannot take, and what it did not beat
    assert not prefers_gemm_strided((64, 64, 3, 3), 1, (1, 1), f32, 16)  # 4×4: Winograd
    assert not prefers_gemm_strided((256, 256, 3, 3), 1, (1, 1), f32, 36)  # whole batch
    assert not prefers_gemm_strided((128, 128, 3, 3), 1, (1, 1), f32, 36)  # 6×6: the chunks
    assert prefers_gemm_strided((128, 128, 3, 3), 1, (1, 1), f32, 25)  # 5×5, C·F < 2^16
    assert prefers_gemm_strided((512, 512, 3, 3), 1, (1, 1), f32, 9)  # 3×3 maps
    assert prefers_gemm_strided((64, 64, 5, 5), 1, (1, 1), f32, 36)


def _through_the_route(calls, rng, x, wt, b, pad: int, stride: int, route: str,
                       kernels: str = "tile") -> None:
    """``conv_forward_unpadded`` / ``conv_backward_unpadded`` on ``route``: the whole batch ran
    both ways (``calls``), and output and gradients equal the float64 convolution's."""
    x32, w32, b32 = _f32(x, wt, b)
    y, kept = conv.conv_forward_unpadded(x32, w32, b32, (pad, pad), route)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv.conv_backward_unpadded(kept, wt.shape, dy.astype(np.float32), (pad, pad),
                                             route, x.shape, True)
    assert calls == [f"{kernels}_forward", f"{kernels}_backward"]
    xp, (k, h, w) = conv.pad_sides(x, pad, pad, pad, pad), (wt.shape[2], *x.shape[2:])
    taps, positions = k * k * x.shape[1], len(x) * dy[0, 0].size
    assert _rel(y, conv.conv2d_forward_reference(xp, wt, b, stride, stride)) < _tol(taps)
    dxp = conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], stride, stride)
    assert _rel(dx, dxp[:, :, pad:pad + h, pad:pad + w]) < _tol(taps)
    dw_want = conv.conv2d_weight_grad_reference(xp, dy, k, k, stride, stride)
    assert _rel(dw, dw_want) < _tol(positions)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(positions)


def test_a_conv2d_layer_of_256_channels_on_4x4_maps_runs_through_it(monkeypatch):
    """Through the layer's entry points (x handed over unpadded): the route is Winograd, the
    whole batch runs it (forward and backward, counted), and output and gradients equal the
    float64 convolution."""
    calls = _counted(monkeypatch)
    rng, x, wt, b = _data(2, 256, 256, 4, 4, 1, seed=7)
    assert conv.pad_free_route(x.shape, wt.shape, np.float32, (1, 1), (1, 1)) == "winograd"
    _through_the_route(calls, rng, x, wt, b, 1, 1, "winograd")


def test_a_fused_relu_and_max_pool_runs_the_whole_batch_too(monkeypatch):
    """Conv2D → ReLU → MaxPool fused into one step (a VGG-style stage's last convolution), 256
    channels on 8×8 maps: the whole batch runs it, pooled at pitch OW, and output and gradients
    equal the float64 convolution's (with the pool's winners the step picked)."""
    calls = _counted(monkeypatch)
    rng, x, wt, b = _data(2, 256, 256, 8, 8, 1, seed=9)
    x32, w32, b32 = _f32(x, wt, b)
    y, arg = conv.conv_relu_maxpool(x32, w32, b32, 2, 2, 2, 2, True, (1, 1))
    xp = conv.pad_sides(x, 1, 1, 1, 1)
    z = np.maximum(conv.conv2d_forward_reference(xp, wt, b, 1, 1), 0)
    assert _rel(y, z.reshape(2, 256, 4, 2, 4, 2).max(axis=(3, 5))) < _tol(9 * 256)
    dp = rng.standard_normal(y.shape)
    dx, dw, db = conv.conv_relu_maxpool_grads(x32, w32, dp.astype(np.float32), arg, True, (1, 1))
    assert calls == ["batch_forward", "batch_backward"]
    dz = plan.unpool(dp, arg, 8, 8, 8)  # the pool's winners, at pitch OW
    assert _rel(dx, conv.conv2d_input_grad_reference(dz, wt, 10, 10, 1, 1)[:, :, 1:9, 1:9]) < \
        _tol(9 * 256)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dz, 3, 3, 1, 1)) < _tol(128)
    assert _rel(db, dz.sum(axis=(0, 2, 3))) < _tol(128)


def test_a_5x5_stride_2_conv_of_256_channels_on_8x8_maps_takes_the_phases_whole(monkeypatch):
    """5×5 stride-2 convolutions of ≥ 32 channels onto 4×4 maps take the phases' Winograd
    (``conv_polyphase``), one tile a phase channel: route, calls and values."""
    calls = _counted(monkeypatch)
    rng, x, _, b = _data(2, 256, 512, 8, 8, 2, seed=11)
    wt = rng.standard_normal((512, 256, 5, 5)) / np.sqrt(25 * 256)
    assert conv.pad_free_route(x.shape, wt.shape, np.float32, (2, 2), (2, 2)) == "phases"
    assert conv.pad_free_route(x.shape, (256, 256, 5, 5), np.float32, (2, 2),
                               (2, 2)) == "phases"  # 4×4 outputs: one tile, any C·F
    assert conv.pad_free_route((2, 128, 8, 8), (256, 128, 5, 5), np.float32, (2, 2),
                               (2, 2)) == "phases"
    assert conv.pad_free_route((2, 16, 8, 8), (32, 16, 5, 5), np.float32, (2, 2),
                               (2, 2)) == "packed"  # few channel pairs: conv_phases_packed
    assert conv.pad_free_route((2, 128, 12, 12), (256, 128, 5, 5), np.float32, (2, 2),
                               (2, 2)) == ""  # 6×6 outputs, C·F = 2^15: im2col
    _through_the_route(calls, rng, x, wt, b, 2, 2, "phases")
