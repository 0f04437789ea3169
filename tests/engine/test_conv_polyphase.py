"""5×5 stride-2 convolutions through the input's phases and Winograd (``kernels/conv_polyphase``):
the phases split and merge exactly, the entry points equal the float64 references over a family
of shapes (odd and even sides, padding 0–2, 4–128 channels, batches 1–5; forward with and without
the ReLU, input, weight and bias gradients), give the same bits at one and two threads, take only
the shapes the rule names, and a float32 convnet with stride-2 5×5 convolutions trains through
them as through the matrix-product kernels."""
from functools import partial

import numpy as np
import pytest

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv, conv_polyphase as pp
from layerloom.engine.layers import conv as conv_layers
from layerloom.engine.network import Network

from .graph_cases import add_after
from .test_conv_winograd import assert_trains_alike, classifier_head, train_losses
from .test_split_kernels import at_threads

# (batch, C, F, H, W, padding): the strided CNN's conv2 and conv3 scaled in batch, odd sides,
# a tall map, few channels (4: 16 phase channels), 128 channels, maps of 8-9 outputs a side
FAMILY = [(2, 32, 64, 32, 32, 2), (1, 64, 128, 16, 16, 2), (3, 4, 16, 17, 15, 2),
          (5, 8, 16, 17, 18, 1), (2, 16, 24, 21, 19, 0), (1, 128, 16, 16, 16, 2),
          (4, 16, 32, 16, 16, 2)]


def _rel(got, want) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def _data(n, c, f, h, w, pad, seed=0):
    rng = np.random.default_rng(seed)
    xp = conv.pad_sides(rng.standard_normal((n, c, h, w)), pad, pad, pad, pad)
    return rng, xp, rng.standard_normal((f, c, 5, 5)) / np.sqrt(25 * c), rng.standard_normal(f)


@pytest.mark.parametrize("n,c,f,h,w,pad", FAMILY)
def test_entry_points_equal_the_float64_references(n, c, f, h, w, pad):
    rng, xp, wt, b = _data(n, c, f, h, w, pad)
    x32, w32, b32 = (a.astype(np.float32) for a in (xp, wt, b))
    want = conv.conv2d_forward_reference(xp, wt, b, 2, 2)
    assert pp.polyphase(wt.shape, np.float32, (2, 2), (1, 1), 1, want.shape[2:])
    y = pp.polyphase_forward(x32, w32, b32)  # (conv_forward takes few filters elsewhere)
    assert y.dtype == np.float32 and y.shape == want.shape and y.flags.c_contiguous
    tol = 2e-6 * np.sqrt(25 * c) + 1e-6
    assert _rel(y, want) < tol
    relu = pp.polyphase_forward(x32, w32, b32, relu=True)
    assert np.array_equal(relu, np.maximum(y, 0))
    dy = rng.standard_normal(want.shape)
    dxp, dw, db = pp.polyphase_backward(x32, w32, dy.astype(np.float32), True)
    assert dxp.shape == xp.shape and dw.shape == wt.shape and db.shape == b.shape
    assert dxp.dtype == dw.dtype == db.dtype == np.float32
    positions = n * want[0, 0].size
    assert _rel(dxp, conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 2, 2)) < \
        2e-6 * np.sqrt(25 * f) + 1e-6
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 5, 5, 2, 2)) < \
        2e-6 * np.sqrt(positions) + 1e-6
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < 1e-5
    no_dx, dw2, db2 = pp.polyphase_backward(x32, w32, dy.astype(np.float32), False)
    assert no_dx is None and np.array_equal(dw2, dw) and np.array_equal(db2, db)


@pytest.mark.parametrize("n,c,f,h,w,pad", [(3, 32, 64, 8, 8, 2), (2, 32, 64, 16, 16, 2),
                                         (2, 16, 24, 17, 16, 2), (2, 8, 16, 16, 16, 1)])
def test_the_layers_entry_points_equal_the_float64_references(n, c, f, h, w, pad):
    """``phases_forward`` / ``phases_backward`` take x unpadded with the padding: with even
    sides and padding the phases are x's own (the padding read in place around them, onto 4×4
    outputs left out of the one-tile transforms' products), otherwise x padded as split."""
    rng, xp, wt, b = _data(n, c, f, h, w, pad, seed=4)
    x32 = np.ascontiguousarray(xp[:, :, pad:pad + h, pad:pad + w]).astype(np.float32)
    w32, b32 = wt.astype(np.float32), b.astype(np.float32)
    want = conv.conv2d_forward_reference(xp, wt, b, 2, 2)
    y, kept = pp.phases_forward(x32, w32, b32, (pad, pad), relu=True)
    own = h % 2 == w % 2 == pad % 2 == 0
    assert kept[0].shape[2:] == ((h // 2, w // 2) if own else pp.phase_sides(h, w, pad, pad))
    assert _rel(y, np.maximum(want, 0)) < 2e-6 * np.sqrt(25 * c) + 1e-6
    dy = rng.standard_normal(want.shape) * (want > 0)
    dx, dw, db = pp.phases_backward(kept, wt.shape, dy.astype(np.float32), (h, w), True)
    dxp = conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 2, 2)
    assert dx.shape == (n, c, h, w)
    assert _rel(dx, dxp[:, :, pad:pad + h, pad:pad + w]) < 2e-6 * np.sqrt(25 * f) + 1e-6
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 5, 5, 2, 2)) < \
        2e-6 * np.sqrt(n * want[0, 0].size) + 1e-6
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < 1e-5


@pytest.mark.parametrize("hp,wp", [(20, 20), (17, 23)])
def test_phases_split_and_merge_exactly(hp, wp):
    x = np.random.default_rng(1).standard_normal((3, 5, hp, wp)).astype(np.float32)
    x4 = pp.phases(x)
    assert x4.shape == (3, 20, (hp + 1) // 2, (wp + 1) // 2)
    for k, (a, b) in enumerate(pp.PHASES):
        part = x[:, :, a::2, b::2]
        assert np.array_equal(x4[:, 5 * k:5 * (k + 1), :part.shape[2], :part.shape[3]], part)
        assert not x4[:, 5 * k:5 * (k + 1), part.shape[2]:].any()  # an odd side's zero row
    assert np.array_equal(pp.merge_phases(x4, hp, wp), x)
    w = np.arange(2 * 3 * 25, dtype=np.float32).reshape(2, 3, 5, 5)
    w4 = pp.phase_weights(w)
    assert w4.shape == (2, 12, 3, 3) and np.array_equal(w4[:, :3], w[:, :, ::2, ::2])
    assert not w4[:, 9:, 2].any() and not w4[:, 3:6, :, 2].any()  # the padded 6th row / column


@pytest.mark.parametrize("h,w,pad", [(12, 12, (2, 2)), (13, 11, (1, 2)), (9, 16, (0, 1)),
                                     (7, 8, (3, 0))])
def test_phases_pad_as_they_are_made_and_merge_back_unpadded(h, w, pad):
    """The phases of x padded as they are made equal those of a padded copy, bit for bit, and
    ``merge_phases`` with the padding gives back x itself (the padding's places dropped)."""
    x = np.random.default_rng(2).standard_normal((3, 5, h, w)).astype(np.float32)
    xp = conv.pad_sides(x, pad[0], pad[0], pad[1], pad[1])
    x4 = pp.phases(x, pad)
    assert np.array_equal(x4, pp.phases(xp)) and x4.flags.c_contiguous
    assert np.array_equal(pp.merge_phases(x4, h, w, pad), x)


@pytest.mark.parametrize("plane", [0, 10 ** 6])
def test_small_planes_zeroed_first_equal_the_margins_written(monkeypatch, plane):
    """``phases`` zeroes the batch first for small planes (``SMALL_PLANE``) and writes the
    margins' zeros row by row for larger ones: the same values either way, garbage nowhere."""
    x = np.random.default_rng(4).standard_normal((3, 5, 9, 12)).astype(np.float32)
    want = pp.phases(x, (2, 1))
    monkeypatch.setattr(pp, "SMALL_PLANE", plane)
    for _ in range(3):  # fresh buffers that may reuse the last one's memory
        np.testing.assert_array_equal(pp.phases(x, (2, 1)), want)
        np.full(want.shape, np.nan, np.float32)


def _strided_layers() -> Graph:
    """A 5×5 stride-2 Conv2D + ReLU, a plain one (padding 1), one before a BatchNorm; 40
    filters (32 or fewer onto maps this small run ``conv_phases_packed.few_pairs``)."""
    g = Graph()
    add = partial(add_after, g)

    def conv5(c: int, p: int = 2) -> dict:
        return {"out_channels": c, "kernel_size": [5, 5], "stride": [2, 2], "padding": [p, p]}
    prev = add(None, "image", "Input", {"shape": [8, 64, 61]})  # c3: 8×8 outputs
    prev = add(add(prev, "c1", "Conv2D", conv5(40)), "r1", "ReLU")  # Conv2D+ReLU
    prev = add(prev, "c2", "Conv2D", conv5(40, 1))
    prev = add(add(add(prev, "c3", "Conv2D", conv5(40)), "bn", "BatchNorm2d"), "r3", "ReLU")
    return classifier_head(g, prev)


def test_the_layers_phases_of_the_unpadded_input_equal_a_padded_copy_s_bit_for_bit(monkeypatch):
    """Conv2D, Conv2D+ReLU and Conv2D+BatchNorm2d hand x over unpadded to the phases (and keep
    them and the filters' transform for the backward): the same losses and gradients, bit for
    bit, as padding a copy and splitting it in the backward again."""
    routes = []
    route = conv_layers.pad_free_route
    monkeypatch.setattr(conv_layers, "pad_free_route",
                        lambda *a: routes.append(route(*a)) or routes[-1])
    kept = train_grads(_strided_layers(), 3)
    assert routes.count("phases") == 3 * 3
    monkeypatch.setattr(conv_layers, "pad_free_route", lambda *a: "")
    copied = train_grads(_strided_layers(), 3)
    for a, b in zip(kept, copied, strict=True):
        np.testing.assert_array_equal(a, b)


def train_grads(g: Graph, steps: int) -> list:
    """Every step's loss and gradients (by key) training ``g`` in float32 by plain SGD."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, *g.nodes["image"].attrs["shape"])).astype(np.float32)
    y = rng.integers(0, 3, 3)
    net, out = Network(g, seed=1, dtype=np.float32), []
    for _ in range(steps):
        net.forward({"image": x, "label": y}, training=True)
        grads = net.backward()
        out += [net.loss()] + [grads[k] for k in sorted(grads)]
        for k in grads:
            net.params[k] -= 0.01 * grads[k]
    return out


def test_results_do_not_depend_on_the_threads():
    rng, xp, wt, b = _data(9, 32, 64, 16, 16, 2, seed=3)
    x32, w32, b32 = (a.astype(np.float32) for a in (xp, wt, b))
    dy = rng.standard_normal((9, 64, 8, 8)).astype(np.float32)

    def run():
        return (conv.conv_forward(x32, w32, b32, (2, 2)), *conv.conv_backward(x32, w32, dy, (2, 2)))
    for one, two in zip(at_threads(1, run), at_threads(2, run)):
        assert np.array_equal(one, two)


def test_the_rule():
    take = partial(pp.polyphase, dtype=np.float32, stride=(2, 2), dilation=(1, 1), groups=1)
    assert take((64, 32, 5, 5), out_hw=(16, 16)) and take((16, 4, 5, 5), out_hw=(8, 9))
    assert take((128, 128, 5, 5), out_hw=(8, 8)) and not take((256, 128, 5, 5), out_hw=(4, 4))
    assert not take((16, 4, 5, 5), out_hw=(4, 4)) and not take((64, 64, 5, 5), out_hw=(7, 7))
    assert take((512, 256, 5, 5), out_hw=(4, 4), n=64)  # the whole batch's phases
    assert take((256, 256, 5, 5), out_hw=(4, 4), n=64)  # one tile a phase channel, any C·F
    assert take((64, 32, 5, 5), out_hw=(4, 4), n=64) and not take((32, 16, 5, 5), out_hw=(4, 4),
                                                                   n=64)  # from 32 channels
    assert not take((256, 256, 5, 5), out_hw=(6, 6), n=64)  # C·F below BATCH_PRODUCT
    assert not take((64, 256, 5, 5), out_hw=(16, 16))  # beyond 128 channels
    assert not take((8, 32, 5, 5), out_hw=(16, 16)) and not take((32, 3, 5, 5), out_hw=(16, 16))
    assert not take((32, 32, 3, 3), out_hw=(16, 16)) and not take((32, 32, 5, 5), out_hw=(3, 9))
    assert not pp.polyphase((32, 32, 5, 5), np.float64, (2, 2), (1, 1), 1, (16, 16))
    assert not pp.polyphase((32, 32, 5, 5), np.float32, (1, 1), (1, 1), 1, (16, 16))
    assert not pp.polyphase((32, 32, 5, 5), np.float32, (2, 2), (2, 2), 1, (16, 16))
    assert not pp.polyphase((32, 16, 5, 5), np.float32, (2, 2), (1, 1), 2, (16, 16))


def _strided_convnet() -> Graph:
    g = Graph()
    add = partial(add_after, g)
    conv5 = {"out_channels": 40, "kernel_size": [5, 5], "stride": [2, 2], "padding": [4, 4]}
    prev = add(None, "image", "Input", {"shape": [3, 12, 12]})
    prev = add(add(prev, "c0", "Conv2D", {"out_channels": 8, "kernel_size": [3, 3],
                                          "padding": [1, 1]}), "r0", "ReLU")
    prev = add(add(prev, "c1", "Conv2D", conv5), "r1", "ReLU")  # 8 → 40 on 8×8 outputs (padding 4)
    return classifier_head(g, prev)


def test_a_convnet_trains_through_the_phases_as_through_the_product_kernels(monkeypatch):
    calls = []
    forward, backward = pp.phases_forward, pp.phases_backward
    monkeypatch.setattr(conv, "phases_forward", lambda *a: calls.append(1) or forward(*a))
    monkeypatch.setattr(conv, "phases_backward", lambda *a: calls.append(2) or backward(*a))
    fast = train_losses(_strided_convnet(), 25)
    assert calls.count(1) == 25 and calls.count(2) == 25
    monkeypatch.setattr(conv, "polyphase", lambda *a: False)
    plain = train_losses(_strided_convnet(), 25)
    assert_trains_alike(fast, plain)
