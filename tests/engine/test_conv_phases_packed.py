"""float32 convolutions at stride 2 on the packed tile kernel over the input's phases
(``kernels.conv_phases_packed``; ``test_phase_planes`` checks the phases' split): the forward
equal to the float64 reference over odd and even sides, channel and filter counts that fill no
tile or panel evenly, maps of one partial panel, 3×3, 5×5 and 7×7 filters, with the bias and the
ReLU (NaN kept); the same bits on one core and two; ``conv_forward`` takes it where
``conv_kn2row`` was chosen and for 3×3 and 5×5 ones of few channel pairs (``few_pairs``), and the
Conv2D layer gives its values, the input handed over unpadded."""
from functools import partial

import numpy as np
import pytest

from layerloom.engine import registry
from layerloom.engine.kernels import conv
from layerloom.engine.kernels import conv_phases_packed as cpp
from layerloom.engine.kernels.conv_kn2row import kn2row_forward
from layerloom.engine.spec import AttrValues, Ctx
from layerloom.engine.threads import engine_threads, get_threads, set_threads

TOL = dict(rtol=2e-5, atol=2e-5)

# (batch, channels, padded H, padded W, filters): even sides; odd sides (the shorter phases);
# one channel; a map of 2×2 outputs (one partial panel); filters past a 6-row tile and a panel
FAMILY = [(3, 16, 34, 34, 32), (2, 5, 17, 19, 7), (2, 1, 9, 12, 13), (1, 17, 6, 5, 1),
          (2, 33, 11, 11, 20)]


def _data(n, c, hp, wp, nf, seed=0, k=3):
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((n, c, hp, wp)).astype(np.float32)
    w = rng.standard_normal((nf, c, k, k)).astype(np.float32)
    return xp, w, rng.standard_normal(nf).astype(np.float32)


@pytest.mark.parametrize("n,c,hp,wp,nf,k", [(*shape, k) for shape in FAMILY for k in (3, 5, 7)
                                             if min(shape[2:4]) >= k])
@pytest.mark.parametrize("relu", [False, True])
def test_family_matches_the_reference(n, c, hp, wp, nf, k, relu):
    xp, w, b = _data(n, c, hp, wp, nf, k=k)
    y = cpp.phases_packed_forward(xp, w, b, relu)
    want = conv.grouped_forward_reference(*(a.astype(np.float64) for a in (xp, w, b)), (2, 2),
                                          (1, 1), 1)
    want = np.maximum(want, 0) if relu else want
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5 * k * k / 9)  # sums of C·k² terms


@pytest.mark.parametrize("pad", [(1, 1), (2, 1), (0, 2)])
def test_the_padding_read_in_place_is_the_padded_copy(pad):
    xp, w, b = _data(3, 5, 15, 12, 7)
    y = cpp.phases_packed_forward(xp, w, b, True, pad)
    padded = conv.pad_sides(xp, pad[0], pad[0], pad[1], pad[1])
    assert np.array_equal(y, cpp.phases_packed_forward(padded, w, b, True))


def test_relu_keeps_nan_and_the_bias_reaches_every_output():
    xp, w, b = _data(2, 4, 9, 9, 8)
    xp[1, 2, 4, 4] = np.nan
    y = cpp.phases_packed_forward(xp, w, b, relu=True)
    plain = cpp.phases_packed_forward(xp, w, b)
    assert np.isnan(y[1]).any() and not np.isnan(y[0]).any()
    assert np.array_equal(y, np.maximum(plain, 0), equal_nan=True)
    zero = cpp.phases_packed_forward(np.zeros_like(xp), w, b)
    assert np.array_equal(zero, np.broadcast_to(b[None, :, None, None], zero.shape))


def test_one_core_and_two_give_the_same_bits():
    xp, w, b = _data(6, 16, 18, 18, 24)
    before = get_threads()
    try:
        outs = []
        for t in (1, 2):
            set_threads(t)
            with engine_threads():
                outs.append(cpp.phases_packed_forward(xp, w, b, relu=True))
    finally:
        set_threads(before)
    assert np.array_equal(outs[0], outs[1])


def test_only_float32_3x3_at_stride_2_plain_from_few_channels():
    shape = (32, 16, 3, 3)
    assert cpp.packed_phases(shape, np.float32, (2, 2), (1, 1), 1)
    assert not cpp.packed_phases(shape, np.float64, (2, 2), (1, 1), 1)
    assert not cpp.packed_phases((32, 16, 5, 5), np.float32, (2, 2), (1, 1), 1)
    assert cpp.packed_phases((128, 64, 3, 3), np.float32, (2, 2), (1, 1), 1)
    assert not cpp.packed_phases((64, 128, 3, 3), np.float32, (2, 2), (1, 1), 1)
    assert not cpp.packed_phases(shape, np.float32, (1, 1), (1, 1), 1)
    assert not cpp.packed_phases(shape, np.float32, (2, 2), (2, 2), 1)
    assert not cpp.packed_phases(shape, np.float32, (2, 2), (1, 1), 2)


def test_conv_forward_takes_it_where_kn2row_was_chosen(monkeypatch):
    """32 → 32 onto 16×16 outputs (``conv_kn2row``'s rule): this file's forward, whose values
    are kn2row's up to the sums' order; 5×5 at stride 2 there stays on kn2row."""
    calls, real = [], cpp.phases_packed_forward

    def spy(*args, **kwargs):
        calls.append(args[1].shape)
        return real(*args, **kwargs)
    monkeypatch.setattr(conv, "phases_packed_forward", spy)
    xp, w, b = _data(2, 32, 34, 34, 32)
    y = conv.conv_forward(xp, w, b, (2, 2), relu=True)
    assert calls == [w.shape]
    assert np.array_equal(y, real(xp, w, b, relu=True))
    np.testing.assert_allclose(y, kn2row_forward(xp, w, b, (2, 2), relu=True), **TOL)
    w5 = np.random.default_rng(3).standard_normal((32, 32, 5, 5)).astype(np.float32)
    conv.conv_forward(conv.pad_sides(xp, 1, 1, 1, 1), w5, b, (2, 2))
    assert calls == [w.shape]


def test_the_conv2d_layer_hands_it_the_input_unpadded(monkeypatch):
    """Conv2D 3×3 / 2, padding 1, 16 → 32 on 32×32: the pad-free route (no padded copy in the
    forward or the backward), its values this file's; the backward runs ``conv_phases_back``
    and gives the reference's gradients."""
    calls, real = [], conv.phases_packed_backward

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)
    monkeypatch.setattr(conv, "phases_packed_backward", spy)
    padded = conv.pad_sides
    monkeypatch.setattr(conv, "pad_sides", lambda *a: pytest.fail("a padded copy was made"))
    layer = registry.get("Conv2D")
    a = {name: attr.default for name, attr in layer.attrs.items()}
    a.update(out_channels=32, kernel_size=[3, 3], stride=[2, 2], padding=[1, 1])
    a = AttrValues(a)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 16, 32, 32)).astype(np.float32)
    p = {k: v.astype(np.float32) for k, v in layer.init(a, [x.shape], rng).items()}
    assert conv.pad_free_route(x.shape, p["weight"].shape, np.float32, (1, 1), (2, 2)) == "packed"
    ctx = Ctx(True, None, (True,))
    y = layer.forward(a, p, ctx, x)
    assert np.array_equal(y, cpp.phases_packed_forward(x, p["weight"], p["bias"], pad=(1, 1)))
    assert ctx.saved[0][0].shape == x.shape  # kept unpadded
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (dx,), grads = layer.backward(a, p, ctx, dy)
    assert calls == [x.shape]
    xp, w64 = padded(x, 1, 1, 1, 1).astype(np.float64), p["weight"].astype(np.float64)
    np.testing.assert_allclose(dx, conv.grouped_input_grad_reference(
        dy.astype(np.float64), w64, 34, 34, (2, 2), (1, 1), 1)[:, :, 1:33, 1:33], **TOL)
    np.testing.assert_allclose(grads["weight"], conv.grouped_weight_grad_reference(
        xp, dy.astype(np.float64), 3, 3, (2, 2), (1, 1), 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads["bias"], dy.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)


def test_few_channel_pairs_from_the_rule():
    take = partial(cpp.few_pairs, dtype=np.float32, stride=(2, 2), dilation=(1, 1), groups=1)
    assert take((16, 8, 5, 5), out_hw=(16, 16)) and take((16, 16, 5, 5), out_hw=(16, 16))
    assert take((32, 32, 5, 5), out_hw=(8, 8)) and take((32, 3, 5, 5), out_hw=(16, 16))
    assert not take((32, 16, 5, 5), out_hw=(16, 16))  # C·F·OH·OW past SMALL_WORK
    assert not take((64, 8, 5, 5), out_hw=(8, 8))  # more than 32 filters
    assert take((16, 8, 3, 3), out_hw=(16, 16)) and take((64, 15, 3, 3), out_hw=(8, 8))
    assert take((32, 3, 3, 3), out_hw=(32, 32))  # an RGB stem
    assert not take((32, 16, 3, 3), out_hw=(16, 16))  # from 16 channels: packed_phases's rule
    assert not take((32, 8, 3, 3), out_hw=(4, 4)) and not take((16, 8, 7, 7), out_hw=(8, 8))
    assert not cpp.few_pairs((16, 8, 5, 5), np.float64, (2, 2), (1, 1), 1, (8, 8))
    assert not cpp.few_pairs((16, 8, 3, 3), np.float32, (1, 1), (1, 1), 1, (8, 8))
    assert not cpp.few_pairs((16, 8, 5, 5), np.float32, (2, 2), (2, 2), 1, (8, 8))
    assert not cpp.few_pairs((16, 8, 3, 3), np.float32, (2, 2), (1, 1), 2, (8, 8))


@pytest.mark.parametrize("c,nf,side,pad,k", [(8, 16, 16, 2, 5), (3, 32, 32, 2, 5),
                                             (16, 16, 15, 1, 5), (3, 16, 32, 1, 3),
                                             (8, 12, 17, 1, 3)])
def test_the_conv2d_layer_runs_few_channel_pairs_here(monkeypatch, c, nf, side, pad, k):
    """Conv2D 5×5 / 2 and 3×3 / 2 of few channel pairs: the pad-free "packed" route (not the
    phases' Winograd, im2col or the direct strided kernels), forward and backward
    (``conv_phases_back``), no padded copy; gradients the reference's; ``conv_forward`` of the
    padded input takes the same kernel."""
    calls, real = [], conv.phases_packed_backward
    monkeypatch.setattr(conv, "phases_packed_backward",
                        lambda *a: calls.append(a[0].shape) or real(*a))
    padded = conv.pad_sides
    monkeypatch.setattr(conv, "pad_sides", lambda *a: pytest.fail("a padded copy was made"))
    layer = registry.get("Conv2D")
    a = {name: attr.default for name, attr in layer.attrs.items()}
    a.update(out_channels=nf, kernel_size=[k, k], stride=[2, 2], padding=[pad, pad])
    a = AttrValues(a)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, c, side, side)).astype(np.float32)
    p = {name: v.astype(np.float32) for name, v in layer.init(a, [x.shape], rng).items()}
    assert conv.pad_free_route(x.shape, p["weight"].shape, np.float32, (pad, pad),
                               (2, 2)) == "packed"
    ctx = Ctx(True, None, (True,))
    y = layer.forward(a, p, ctx, x)
    assert np.array_equal(y, cpp.phases_packed_forward(x, p["weight"], p["bias"],
                                                       pad=(pad, pad)))
    xp = padded(x, pad, pad, pad, pad)
    assert np.array_equal(conv.conv_forward(xp, p["weight"], p["bias"], (2, 2)), y)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (dx,), grads = layer.backward(a, p, ctx, dy)
    assert calls == [x.shape]
    w64, dy64, hp = p["weight"].astype(np.float64), dy.astype(np.float64), side + 2 * pad
    np.testing.assert_allclose(dx, conv.grouped_input_grad_reference(
        dy64, w64, hp, hp, (2, 2), (1, 1), 1)[:, :, pad:pad + side, pad:pad + side], **TOL)
    np.testing.assert_allclose(grads["weight"], conv.grouped_weight_grad_reference(
        xp.astype(np.float64), dy64, k, k, (2, 2), (1, 1), 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads["bias"], dy.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)
