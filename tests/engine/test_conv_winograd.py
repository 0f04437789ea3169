"""Winograd F(m×m, 3×3) convolutions (``kernels/conv_winograd``): the numpy twin equals the direct
definition exactly (float64), the numba kernels equal the float64 reference to float32 precision
over a family of shapes (channels 1–96, images 3–40, odd and even, padding 0–2, batch 1–9),
forward, input and weight gradients, the fused ReLU + max-pool included; and a small float32
convnet trains through them as it trains through the direct kernels."""
from functools import partial

import numpy as np
import pytest

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv, conv_winograd as wg, conv_winograd_plan as plan
from layerloom.engine.kernels import conv_winograd_back as wgb
from layerloom.engine.kernels import conv_winograd_batch as wb, point_products as pp
from layerloom.engine.kernels.conv_gemm import flat_to_image
from layerloom.engine.kernels.conv_reference import winograd_reference
from layerloom.engine.network import Network
from layerloom.engine.optim import Adam

from .graph_cases import add_after
from .test_split_kernels import at_threads


def _rel(got, want) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def _tol(taps: int) -> float:
    """float32 against the float64 reference, relative to the largest value: the rounding of a
    sum of ``taps`` products grows like √taps (F(4×4, 3×3)'s transforms cost a few bits)."""
    return 2e-6 * np.sqrt(taps) + 1e-6


def _family(count: int, seed: int = 15) -> list:
    """(batch, C, F, H, W, padding) drawn from the ranges above, plus the edges by hand."""
    rng = np.random.default_rng(seed)
    cases = [(1, 1, 1, 3, 3, 0), (9, 96, 96, 8, 8, 1), (2, 16, 32, 40, 40, 1), (3, 17, 5, 3, 40, 2),
             (1, 3, 64, 32, 32, 1), (5, 64, 16, 7, 9, 0), (2, 32, 32, 6, 6, 2),
             (3, 24, 40, 13, 16, 1),  # four tile columns: the narrowest with spare tiles
             (4, 24, 16, 4, 4, 1), (3, 20, 12, 12, 10, 1)]  # rows of one and three tiles
    while len(cases) < count:
        cases.append((int(rng.integers(1, 10)), int(rng.integers(1, 97)), int(rng.integers(1, 97)),
                      int(rng.integers(3, 41)), int(rng.integers(3, 41)), int(rng.integers(0, 3))))
    return cases


CASES = _family(27)


def _data(n, c, f, h, w, pad, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    xp = conv.pad_sides(x, pad, pad, pad, pad)
    wt = rng.standard_normal((f, c, 3, 3)) / np.sqrt(9 * c)
    return rng, xp, wt, rng.standard_normal(f)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("n,c,f,h,w,pad", CASES[:8])
def test_numpy_twin_is_the_convolution(m, n, c, f, h, w, pad):
    _, xp, wt, b = _data(n, c, f, h, w, pad)
    np.testing.assert_allclose(winograd_reference(xp, wt, b, m),
                               conv.conv2d_forward_reference(xp, wt, b, 1, 1), rtol=1e-11,
                               atol=1e-11)


@pytest.mark.parametrize("m", [2, 4])
def test_filter_transforms_are_the_matrices(m):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 7, 3, 3)).astype(np.float32)
    g = plan.MATRICES[m][1]
    want = np.einsum("ri,fcij,qj->rqfc", g, w.astype(np.float64), g).reshape(-1, 5, 7)
    np.testing.assert_allclose(plan.filter_transform(w, m), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n,c,f,h,w,pad", CASES)
def test_kernel_equals_the_float64_convolution(n, c, f, h, w, pad):
    """The kernel whatever the dispatch would pick (a single channel too)."""
    _, xp, wt, b = _data(n, c, f, h, w, pad)
    x32, w32, b32 = (a.astype(np.float32) for a in (xp, wt, b))
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    flat = wg.winograd_forward_flat(x32, plan.filter_transform(w32, 4), b32, xp.shape[3])
    y = flat_to_image(flat, oh, ow, xp.shape[3])
    assert y.dtype == np.float32
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    assert _rel(y, want) < _tol(9 * c)
    image = wg.winograd_forward_flat(x32, plan.filter_transform(w32, 4), b32, ow)
    np.testing.assert_array_equal(image.reshape(y.shape), y)  # pitch OW: the image itself
    for r in range(oh - 1):  # the flat layout's gap columns are zeros
        assert not flat[:, :, r * xp.shape[3] + ow:(r + 1) * xp.shape[3]].any()


@pytest.mark.parametrize("n,c,f,h,w,pad", CASES)
def test_backward_kernel_equals_the_float64_gradients(n, c, f, h, w, pad):
    """The adjoint pass: input gradient, weight gradient (Gᵀ dU G), bias."""
    rng, xp, wt, _ = _data(n, c, f, h, w, pad)
    x32, w32 = xp.astype(np.float32), wt.astype(np.float32)
    dy = rng.standard_normal((n, f, xp.shape[2] - 2, xp.shape[3] - 2))
    dxp, du, db = wgb.winograd_backward(x32, plan.filter_transform(w32, 4), dy.astype(np.float32),
                                       True)
    dw = plan.weight_grad(du, 4)
    assert dxp.dtype == dw.dtype == db.dtype == np.float32
    positions = n * dy[0, 0].size
    assert _rel(dxp, conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1)) < _tol(9 * f)
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 3, 3, 1, 1)) < _tol(positions)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(positions)
    assert wgb.winograd_backward(x32, plan.filter_transform(w32, 4), dy.astype(np.float32),
                                False)[0].size == 0


@pytest.mark.parametrize("n,c,f,h,w,pad", CASES)
def test_entry_points_equal_the_float64_reference_with_gradients(n, c, f, h, w, pad):
    """conv_forward / conv_backward in float32 (Winograd where the rule picks it), every output
    against the float64 twins; float64 stays on the exact kernels."""
    rng, xp, wt, b = _data(n, c, f, h, w, pad)
    x32, w32, b32 = (a.astype(np.float32) for a in (xp, wt, b))
    want = conv.conv2d_forward_reference(xp, wt, b, 1, 1)
    assert _rel(conv.conv_forward(x32, w32, b32, (1, 1)), want) < _tol(9 * c)
    dy = rng.standard_normal(want.shape)
    dxp, dw, db = conv.conv_backward(x32, w32, dy.astype(np.float32), (1, 1))
    assert dxp.dtype == dw.dtype == db.dtype == np.float32
    assert _rel(dxp, conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1)) < _tol(9 * f)
    positions = n * want[0, 0].size
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 3, 3, 1, 1)) < _tol(positions)
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < _tol(positions)
    y64 = conv.conv_forward(xp, wt, b, (1, 1))
    np.testing.assert_allclose(y64, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,c,f,h,w,pad", [(3, 16, 16, 8, 8, 1), (2, 24, 32, 13, 11, 0),
                                            (4, 32, 20, 16, 16, 1), (1, 96, 64, 10, 14, 2)])
def test_fused_relu_maxpool_equals_the_reference(n, c, f, h, w, pad):
    rng, xp, wt, b = _data(n, c, f, h, w, pad)
    x32, w32, b32 = (a.astype(np.float32) for a in (xp, wt, b))
    assert plan.winograd_tile(w32.shape, np.float32, xp.shape[2] - 2, xp.shape[3] - 2)
    y, arg = conv.conv_relu_maxpool(x32, w32, b32, 2, 2, 2, 2, True)
    assert _rel(y, conv.conv_relu_maxpool_reference(xp, wt, b, (2, 2), (2, 2))) < _tol(9 * c)
    dp = rng.standard_normal(y.shape).astype(np.float32)
    got = conv.conv_relu_maxpool_grads(x32, w32, dp, arg, True)
    want = conv.conv_relu_maxpool_backward(x32, w32, dp, arg, True)  # the direct kernel
    for a, b_ in zip(got, want):
        assert _rel(a, b_) < _tol(9 * max(c, f) * n)


def test_the_rule_keeps_float64_and_small_convolutions_off_winograd():
    assert plan.winograd_tile((32, 32, 3, 3), np.float32, 16, 16)
    assert not plan.winograd_tile((32, 32, 3, 3), np.float32, 3, 16)
    assert not plan.winograd_tile((32, 32, 3, 3), np.float64, 16, 16)
    assert not plan.winograd_tile((32, 32, 5, 5), np.float32, 16, 16)
    assert not plan.winograd_tile((6, 3, 3, 3), np.float32, 28, 28)
    # 8-15 channels in on maps of ≥ 32×32 outputs; 8-15 filters on ≥ 16×16; RGB stems never
    assert plan.winograd_tile((16, 8, 3, 3), np.float32, 32, 32)
    assert not plan.winograd_tile((16, 8, 3, 3), np.float32, 16, 16)
    assert plan.winograd_tile((8, 16, 3, 3), np.float32, 16, 16)
    assert not plan.winograd_tile((8, 16, 3, 3), np.float32, 8, 8)
    assert not plan.winograd_tile((32, 3, 3, 3), np.float32, 32, 32)
    assert not plan.winograd_tile((32, 6, 3, 3), np.float32, 64, 64)


def _convnet() -> Graph:
    g = Graph()
    add = partial(add_after, g)
    conv3 = lambda c: {"out_channels": c, "kernel_size": [3, 3], "padding": [1, 1]}  # noqa: E731
    prev = add(None, "image", "Input", {"shape": [3, 12, 12]})
    prev = add(add(prev, "c0", "Conv2D", conv3(16)), "r0", "ReLU")
    prev = add(add(prev, "c1", "Conv2D", conv3(16)), "r1", "ReLU")
    prev = add(add(prev, "c2", "Conv2D", conv3(24)), "r2", "ReLU")
    prev = add(prev, "pool", "MaxPool2D", {"kernel_size": [2, 2]})
    prev = add(add(prev, "c3", "Conv2D", conv3(16)), "r3", "ReLU")
    return classifier_head(g, prev)


def classifier_head(g: Graph, prev: str, classes: int = 3) -> Graph:
    """Flatten → Dense(classes) → cross-entropy against a Label after ``prev``: the test
    convnets' common tail (``train_losses`` feeds "image" and "label")."""
    prev = add_after(g, add_after(g, prev, "flat", "Flatten"), "fc", "Dense",
                     {"out_features": classes})
    add_after(g, None, "label", "Label")
    add_after(g, prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    return g


def assert_trains_alike(fast: list, plain: list) -> None:
    """The fast kernels' losses learn and follow the plain kernels' (they go to ~0.002)."""
    assert fast[-1] < 0.5 * fast[0]  # it learns
    np.testing.assert_allclose(fast, plain, rtol=2e-3, atol=1e-3)


def train_losses(g: Graph, steps: int) -> list:
    """The losses of ``steps`` Adam steps on one fixed float32 batch of 3×12×12 images (three
    classes): the trajectories the fast and the plain kernels must share."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 3, 12, 12)).astype(np.float32)
    y = (x[:, 0, :6].mean(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 1].mean(axis=(1, 2)) > 0)
    net, opt, out = Network(g, seed=2, dtype=np.float32), Adam(3e-3), []
    for _ in range(steps):
        net.forward({"image": x, "label": y}, training=True)
        out.append(net.loss())
        opt.step(net.params, net.backward())
    return out


def test_a_convnet_trains_through_winograd_as_through_the_direct_kernels(monkeypatch):
    calls = []
    forward, backward = wg.winograd_forward_flat, wgb.winograd_backward
    for module in (conv, wb):  # the fused pool's calls, and every other route's
        monkeypatch.setattr(module, "winograd_forward_flat",
                            lambda *a: calls.append(1) or forward(*a))
        monkeypatch.setattr(module, "winograd_backward", lambda *a: calls.append(2) or backward(*a))
    fast = train_losses(_convnet(), 25)
    # c1 and c2 on the chunks; c3, on 6×6 maps, runs F(6×6, 3×3) on one tile (conv_winograd_tile)
    assert calls.count(1) == 25 * 2 and calls.count(2) == 25 * 2
    monkeypatch.setattr(conv, "winograd_tile", lambda *a: 0)
    plain = train_losses(_convnet(), 25)
    assert_trains_alike(fast, plain)


@pytest.mark.parametrize("channels, side", [(16, 32), (32, 16), (64, 8), (3, 28)])
def test_two_cores_get_equal_halves_of_the_batch(channels, side):
    """The chunk count is even (it was 11 for 16 channels on 32×32 at batch 64, and two cores
    took 29 and 35 samples), so a two-part split gives each core half the samples."""
    x = np.zeros((64, channels, side, side), np.float32)
    u = np.zeros((36, channels, channels), np.float32)
    bounds = wg._geometry(x, u, wg.M, wg.TILE_ELEMENTS, 1, 1)[0]
    assert (len(bounds) - 1) % 2 == 0
    assert bounds[(len(bounds) - 1) // 2] == 32


def test_many_channel_chunks_hold_enough_tiles_and_do_not_depend_on_the_threads():
    """With 64 channels in and out chunks of 2^19 elements would hold 80 tiles here (narrow
    per-point products); they hold about CHUNK_TILES instead, whole samples (near-equal, an
    even number of chunks for two cores: 120 each), and their results are the same at one and
    two threads (the chunks are fixed by the shapes)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((48, 64, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    u = plan.filter_transform(w, 4)
    bounds, th, tw, _, _, _ = wg._geometry(x, u, wg.M, wg.TILE_ELEMENTS, 1, 1)
    tiles = np.diff(bounds) * th * (tw + 1)
    assert 100 <= tiles.min() and tiles.max() <= wg.CHUNK_TILES + th * (tw + 1) // 2
    assert len(bounds) - 1 >= 4
    assert (len(bounds) - 1) % 2 == 0
    dy = rng.standard_normal((48, 64, 16, 16)).astype(np.float32)
    def run():
        y, kept = conv.conv_forward_unpadded(x, w, np.zeros(64, np.float32), (1, 1), "winograd")
        return (y, *conv.conv_backward_unpadded(kept, w.shape, dy, (1, 1), "winograd", x.shape,
                                                True))
    results = at_threads(1, run), at_threads(2, run)
    for one, two in zip(*results):
        assert np.array_equal(one, two)
    xp = conv.pad_sides(x[:2].astype(np.float64), 1, 1, 1, 1)
    want = conv.conv2d_forward_reference(xp, w.astype(np.float64), np.zeros(64), 1, 1)
    assert _rel(results[0][0][:2], want) < _tol(9 * 64)


def test_chunks_hold_the_nearest_whole_number_of_samples_to_chunk_tiles():
    """72 tiles a sample (64 → 64 on 32×32): 112 / 72 rounds to chunks of two samples; rounded
    down they were one sample each, whose narrow products ran 0.6-0.9× as fast."""
    x = np.zeros((64, 64, 32, 32), np.float32)
    u = np.zeros((36, 64, 64), np.float32)
    bounds, th, tw, _, _, _ = wg._geometry(x, u, wg.M, wg.TILE_ELEMENTS, 1, 1)
    assert th * (tw + 1) == 72 and set(np.diff(bounds)) == {2}


def test_the_weight_gradient_sums_fixed_runs_of_chunks_whatever_the_threads(monkeypatch):
    """12 chunks' dU in at most DU_PARTS partials (fixed runs of chunks, the cores taking whole
    runs): the same bits at one and two threads, and the per-chunk dU's sum to rounding."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((64, 16, 32, 32)).astype(np.float32)
    u = plan.filter_transform((rng.standard_normal((16, 16, 3, 3)) / 12).astype(np.float32), 4)
    dy = rng.standard_normal((64, 16, 32, 32)).astype(np.float32)
    chunks = len(wg._geometry(x, u, wg.M, wg.TILE_ELEMENTS, 1, 1)[0]) - 1

    def run():
        return wgb.winograd_backward(x, u, dy, True, 1, 1)
    one, two = at_threads(1, run), at_threads(2, run)
    assert chunks > pp.DU_PARTS and one[1].shape[0] == pp.DU_PARTS
    for a, b in zip(one, two):
        assert np.array_equal(a, b)
    monkeypatch.setattr(pp, "DU_PARTS", chunks)  # one dU a chunk, as before the runs
    per_chunk = run()
    assert per_chunk[1].shape[0] == chunks and np.array_equal(per_chunk[0], one[0])
    want = plan.weight_grad(per_chunk[1], 4)
    assert _rel(plan.weight_grad(one[1], 4), want) < 1e-5


@pytest.mark.parametrize("pool,pad", [((2, 2, 2, 2), 1), ((3, 3, 2, 2), 0), ((2, 2, 1, 1), 1)])
def test_pooled_backward_equals_the_unpooled_gradient_s_bit_for_bit(pool, pad):
    """The backward that un-pools a fused ReLU + max-pool's gradient chunk by chunk (several
    chunks here; overlapping windows add up) gives the bits of the whole batch un-pooled first."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 32, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) / 17).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y, arg = conv.conv_relu_maxpool(x, w, b, *pool, True, (pad, pad))
    dp = rng.standard_normal(y.shape).astype(np.float32)
    u = plan.filter_transform(w, 4)
    oh, ow, wp = 16 + 2 * pad - 2, 16 + 2 * pad - 2, 16 + 2 * pad
    assert len(wg._geometry(x, u, wg.M, wg.TILE_ELEMENTS, pad, pad)[0]) > 2
    want = wgb.winograd_backward(x, u, plan.unpool(dp, arg, oh, ow, wp), True, pad, pad)
    got = wgb.winograd_backward(x, u, dp, True, pad, pad, arg, wp)
    for a, b_ in zip(got, want):
        assert np.array_equal(a, b_)
    assert (arg < 0).any() and (arg >= 0).any()  # ReLU clipped some windows, not all
