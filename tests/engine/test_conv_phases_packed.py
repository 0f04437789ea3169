"""float32 3×3 convolutions at stride 2 on the packed tile kernel over the input's phases
(``kernels.conv_phases_packed``): the phases split as numpy's slices split them, the forward
equal to the float64 reference over odd and even sides, channel and filter counts that fill no
tile or panel evenly, maps of one partial panel, with the bias and the ReLU (NaN kept); the
same bits on one core and two; ``conv_forward`` takes it where ``conv_kn2row`` was chosen,
and the Conv2D layer, plain and fused with its ReLU, gives its values."""
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


def _data(n, c, hp, wp, nf, seed=0):
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((n, c, hp, wp)).astype(np.float32)
    w = rng.standard_normal((nf, c, 3, 3)).astype(np.float32)
    return xp, w, rng.standard_normal(nf).astype(np.float32)


@pytest.mark.parametrize("h,w", [(6, 6), (7, 9), (5, 4), (3, 3)])
@pytest.mark.parametrize("top,left", [(0, 0), (1, 1), (2, 1), (1, 2)])
def test_phases_split_as_numpy_slices_the_padded_copy(h, w, top, left):
    """Every value of the zero-padded copy's phases where numpy's slices put it, the padding's
    zeros included (the buffer's own: nothing writes them)."""
    x = np.random.default_rng(1).standard_normal((3, h, w)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (top, top), (left, left)))
    hq, wq = (h + 2 * top + 1) // 2, (w + 2 * left + 1) // 2
    ph = np.zeros(3 * 4 * hq * wq, np.float32)
    cpp.split_phases(x, ph, hq, wq, top, left)
    planes = ph.reshape(3, 2, 2, hq, wq)
    for a in (0, 1):
        for b in (0, 1):
            want = xp[:, a::2, b::2]
            assert np.array_equal(planes[:, a, b, :want.shape[1], :want.shape[2]], want)


@pytest.mark.parametrize("n,c,hp,wp,nf", FAMILY)
@pytest.mark.parametrize("relu", [False, True])
def test_family_matches_the_reference(n, c, hp, wp, nf, relu):
    xp, w, b = _data(n, c, hp, wp, nf)
    y = cpp.phases_packed_forward(xp, w, b, relu)
    want = conv.grouped_forward_reference(*(a.astype(np.float64) for a in (xp, w, b)), (2, 2),
                                          (1, 1), 1)
    want = np.maximum(want, 0) if relu else want
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == want.shape
    np.testing.assert_allclose(y, want, **TOL)


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
