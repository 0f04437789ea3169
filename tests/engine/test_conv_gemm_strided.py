"""The im2col matrix-product convolutions (``conv_gemm_strided``: 5×5 and strided convolutions)
over families of shapes: stride 1, 2 and 3, kernels 2–7 (odd and even), padding, odd and even
sizes, few and many channels, batches that split into several chunks (and one that does not),
dilation and groups. Each equals the numpy twins (float64 to rounding, float32 loosely) and
PyTorch's convolution in float64; the one-pass backward equals the separate kernels bit for bit.
"""
import itertools
from functools import partial

import numpy as np
import pytest

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv
from layerloom.engine.kernels.conv_gemm_strided import (gemm_backward_strided,
                                                        gemm_forward_strided,
                                                        gemm_input_grad_strided,
                                                        gemm_transposed_backward,
                                                        prefers_gemm_strided)
from layerloom.engine.kernels.conv_polyphase import polyphase

from .graph_cases import add_after
from .test_split_kernels import at_threads

TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-4, atol=1e-4)}

# (batch, channels, H, W, filters, kernel, stride, padding): the strided CNN's layers scaled
# down, odd sizes and kernels, an even kernel, a stride of 3, a tall and a wide map, a 5×5 at
# stride 1 (routed here only with ≥ 16 filters), a one-sample batch, batches that split into
# chunks of several samples (8×8 outputs: four per 256 positions) with a ragged last one, and
# 16×16 outputs (the strided CNN's conv2), whose one-sample chunks multiply into the output.
FAMILY = [(3, 8, 16, 16, 16, (5, 5), (2, 2), 2), (3, 4, 32, 32, 16, (5, 5), (2, 2), 2),
          (2, 16, 9, 11, 8, (5, 5), (2, 2), 2),
          (5, 3, 17, 13, 6, (3, 3), (2, 2), 1), (2, 4, 12, 10, 5, (4, 4), (2, 2), 1),
          (2, 5, 14, 15, 7, (3, 5), (3, 2), 0), (2, 3, 7, 20, 8, (5, 5), (2, 3), 2),
          (4, 3, 11, 12, 16, (5, 5), (1, 1), 2), (3, 6, 9, 8, 20, (7, 5), (1, 1), 3),
          (1, 6, 10, 10, 8, (5, 5), (2, 2), 2), (11, 2, 16, 16, 4, (2, 2), (2, 2), 0)]


def _data(n, c, h, w, nf, k, stride, pad, dtype, groups=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((nf, c // groups, *k)).astype(dtype)
    b = rng.standard_normal(nf).astype(dtype)
    return rng, conv.pad_sides(x, pad, pad, pad, pad), wt, b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,c,h,w,nf,k,stride,pad", FAMILY)
def test_family_matches_the_twins(dtype, n, c, h, w, nf, k, stride, pad):
    """The kernels themselves, and the entry points (which take them for every strided case and
    for float32 at stride 1; float64 at stride 1 keeps its exact kernels)."""
    rng, xp, wt, b = _data(n, c, h, w, nf, k, stride, pad, dtype)
    routed = prefers_gemm_strided(wt.shape, 1, stride, dtype)
    assert routed == (dtype == np.float32 or stride != (1, 1))
    y = gemm_forward_strided(xp, wt, b, *stride, 1, 1, 1)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_allclose(y, conv.grouped_forward_reference(xp, wt, b, stride, (1, 1), 1),
                               **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = gemm_backward_strided(xp, wt, dy, *stride, 1, 1, 1, True)
    assert dxp.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(xp, dy, *k, stride, (1, 1),
                                                                      1), **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(dy, wt, *xp.shape[2:],
                                                                      stride, (1, 1), 1),
                               **TOL[dtype])
    # one pass for both gradients = the input-gradient kernel (ConvTranspose2d's forward) exactly
    assert np.array_equal(dxp, gemm_input_grad_strided(dy, wt, *xp.shape[2:], *stride, 1, 1, 1))
    no_dx, dw_again, db_again = gemm_backward_strided(xp, wt, dy, *stride, 1, 1, 1, False)
    assert no_dx.size == 0 and np.array_equal(dw_again, dw) and np.array_equal(db_again, db)
    # a transposed convolution of dy (its weight is wt): the gradients from its full output xp
    dx_t, dw_t = gemm_transposed_backward(xp, wt, dy, *stride, 1, 1, 1, True)
    np.testing.assert_allclose(dx_t, y - b.reshape(1, -1, 1, 1), **TOL[dtype])
    np.testing.assert_allclose(dw_t, dw, **TOL[dtype])
    # the entry points: these kernels where routed (not to the phases' Winograd, which takes
    # float32 5×5 convolutions at stride 2 from ≥ 4 channels), the same values either way
    got = conv.conv_forward(xp, wt, b, stride), conv.conv_backward(xp, wt, dy, stride)
    taken = routed and not polyphase(wt.shape, dtype, stride, (1, 1), 1, y.shape[2:])
    direct = stride == (1, 1) and conv._direct_not_im2col(wt.shape, dtype, y.shape[2:])
    for i, (a, want) in enumerate(zip((got[0], *got[1]), (y, dxp, dw, db))):
        if taken and not (direct and i == 0):  # the forward of these: the direct kernel
            assert np.array_equal(a, want)
        else:
            np.testing.assert_allclose(a, want, **TOL[dtype])


@pytest.mark.parametrize("n,c,h,w,nf,k,stride,pad", FAMILY[:9])
def test_family_is_pytorch_s_convolution(n, c, h, w, nf, k, stride, pad):
    """The kernels in float64 against torch.nn.functional.conv2d with its own padding,
    gradients included."""
    torch = pytest.importorskip("torch")
    rng, xp, wt, b = _data(n, c, h, w, nf, k, stride, pad, np.float64)
    x = torch.from_numpy(np.ascontiguousarray(xp[:, :, pad:pad + h, pad:pad + w]))
    tw, tb = torch.from_numpy(wt), torch.from_numpy(b)
    for t in (x, tw, tb):
        t.requires_grad_()
    want = torch.nn.functional.conv2d(x, tw, tb, stride, pad)
    y = gemm_forward_strided(xp, wt, b, *stride, 1, 1, 1)
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    want.backward(torch.from_numpy(dy))
    dxp, dw, db = gemm_backward_strided(xp, wt, dy, *stride, 1, 1, 1, True)
    np.testing.assert_allclose(dxp[:, :, pad:pad + h, pad:pad + w], x.grad.numpy(), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,dil,groups", list(itertools.product([(2, 2), (1, 1)],
                                                                     [(1, 1), (2, 1)], [1, 2])))
def test_dilated_and_grouped_ones_match_the_twins(stride, dil, groups):
    """Dilation moves taps across phases (2·i mod 2 = 0: every tap in one phase); groups take
    their own channel slices. At stride 1 with groups the direct kernels decide."""
    dtype = np.float64
    rng, xp, wt, b = _data(3, 4, 13, 12, 16, (5, 5), stride, 2, dtype, groups)
    y = conv.conv_forward(xp, wt, b, stride, dil, groups)
    np.testing.assert_allclose(y, conv.grouped_forward_reference(xp, wt, b, stride, dil, groups),
                               **TOL[dtype])
    dy = rng.standard_normal(y.shape)
    dxp, dw, db = conv.conv_backward(xp, wt, dy, stride, dil, groups)
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(xp, dy, 5, 5, stride, dil,
                                                                      groups), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(dy, wt, *xp.shape[2:],
                                                                      stride, dil, groups),
                               **TOL[dtype])
    kd, kw, kb = gemm_backward_strided(xp, wt, dy, *stride, *dil, groups, False)
    assert kd.size == 0
    np.testing.assert_allclose(kw, dw, **TOL[dtype])
    np.testing.assert_allclose(kb, db, **TOL[dtype])


def test_stride_one_routes_only_large_kernels_over_many_filters():
    assert prefers_gemm_strided((32, 3, 5, 5), 1, (1, 1))
    assert not prefers_gemm_strided((32, 3, 5, 5), 1, (1, 1), np.float64)  # the exact kernels
    assert not prefers_gemm_strided((32, 32, 3, 3), 1, (1, 1))  # 3×3: the stride-1 kernels
    assert not prefers_gemm_strided((6, 1, 5, 5), 1, (1, 1))  # LeNet's few filters
    assert not prefers_gemm_strided((32, 1, 5, 5), 32, (1, 1))  # depthwise
    assert prefers_gemm_strided((6, 1, 5, 5), 1, (2, 2))


def _strided_cnn(c=16, size=(13, 12)):
    """The strided benchmark CNN in small: a 5×5 stride-1 stem over ≥ 16 filters (routed to the
    im2col products), 5×5 stride-2 and 3×3 stride-2 convolutions, each with a ReLU, a pool."""
    g = Graph()
    add = partial(add_after, g)
    prev = add(None, "image", "Input", {"shape": [3, *size]})
    for i, (k, s, p) in enumerate(((5, 1, 2), (5, 2, 2), (3, 2, 0)), start=1):
        prev = add(prev, f"c{i}", "Conv2D", {"out_channels": c, "kernel_size": [k, k],
                                             "stride": [s, s], "padding": [p, p]})
        prev = add(prev, f"r{i}", "ReLU")
    prev = add(add(prev, "pool", "MaxPool2D", {"kernel_size": [2, 2]}), "flat", "Flatten")
    prev = add(prev, "fc", "Dense", {"out_features": 4})
    add(None, "label", "Label")
    add(prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_strided_cnn_runs_fused_as_unfused(dtype):
    """Conv2D+ReLU steps over the im2col products equal the plain layers: outputs, loss,
    gradients and two Adam steps' parameters (tests/engine/test_conv_fusion.check_same)."""
    from tests.engine.test_conv_fusion import check_same

    check_same(_strided_cnn(), dtype, expect={"Conv2D+ReLU"})


def test_stride_one_3x3_on_small_maps_routes_here_over_many_channels():
    """F(4×4, 3×3) needs maps of 4×4: below that, with ≥ 32 channels in and out, 3×3
    convolutions run these products (the layers then pad: ``winograd_pad_free`` says 0), and
    on 5×5 maps too unless the whole-batch Winograd takes them (``test_conv_winograd_batch``);
    6×6 ones take Winograd's chunks."""
    f32 = np.float32
    assert prefers_gemm_strided((64, 64, 3, 3), 1, (1, 1), f32, 9)
    assert prefers_gemm_strided((64, 64, 3, 3), 1, (1, 1), f32, 25)
    assert not prefers_gemm_strided((64, 64, 3, 3), 1, (1, 1), f32, 36)
    assert not prefers_gemm_strided((64, 64, 3, 3), 1, (1, 1), f32, 16)  # 4×4: Winograd
    assert not prefers_gemm_strided((64, 64, 3, 3), 1, (1, 1), f32)  # no output size given
    assert not prefers_gemm_strided((64, 64, 3, 3), 1, (1, 1), np.float64, 9)
    assert not prefers_gemm_strided((16, 16, 3, 3), 1, (1, 1), f32, 9)
    rng, xp, wt, b = _data(5, 32, 3, 3, 32, (3, 3), (1, 1), 1, np.float32)
    assert conv.winograd_pad_free((5, 32, 3, 3), wt.shape, np.float32, (1, 1), (1, 1)) == 0
    y = conv.conv_forward(xp, wt, b, (1, 1), relu=True)
    assert np.array_equal(y, np.maximum(gemm_forward_strided(xp, wt, b, 1, 1, 1, 1, 1), 0))
    np.testing.assert_allclose(y, np.maximum(conv.conv2d_forward_reference(xp, wt, b, 1, 1), 0),
                               **TOL[np.float32])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for got, want in zip(conv.conv_backward(xp, wt, dy, (1, 1)),
                         gemm_backward_strided(xp, wt, dy, 1, 1, 1, 1, 1, True)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("stride,dilation", [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((3, 2), (2, 1)),
                                             ((2, 1), (1, 2))])
def test_gather_equals_the_runs_bit_for_bit(stride, dilation):
    """Narrow maps' im2col (``_gather``, one offset table for all taps) and the wide maps' (the
    phases' runs) copy the same values and add the col2im sums in the same order: run both on
    a map wide enough for the runs."""
    from layerloom.engine.kernels.conv_gemm_strided import GATHER_BELOW, _gather, _im2col

    rng = np.random.default_rng(3)
    n, c, kh, kw, hp, wp = 3, 4, 3, 2, 41, 44
    oh = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    assert ow >= GATHER_BELOW  # _im2col takes the runs here
    xp = rng.standard_normal((n, c, hp, wp)).astype(np.float32)
    args = (1, 3, 1, 4, kh, kw, *stride, *dilation, oh, ow)
    runs, gathered = (np.empty((3 * kh * kw, 2 * oh * ow), np.float32) for _ in range(2))
    _im2col(xp, *args, runs, False)
    _gather(xp, *args, gathered, False)
    np.testing.assert_array_equal(runs, gathered)
    back_runs, back_gathered = np.zeros_like(xp), np.zeros_like(xp)
    _im2col(back_runs, *args, runs, True)
    _gather(back_gathered, *args, runs, True)
    np.testing.assert_array_equal(back_runs, back_gathered)
    assert np.count_nonzero(back_runs[1:3, 1:])  # the chunk's samples and channels, filled
    assert not np.count_nonzero(back_runs[0]) and not np.count_nonzero(back_runs[:, 0])


@pytest.mark.parametrize("kh,kw,sh,dh,dw", [(3, 3, 2, 1, 1), (5, 5, 2, 1, 1), (3, 2, 1, 2, 2),
                                           (1, 4, 3, 1, 1)])
def test_eight_wide_rows_at_stride_2_equal_the_gather(kh, kw, sh, dh, dw):
    """Outputs 8 columns wide at column stride 2 take ``conv_rows.eight_at_stride2`` in
    ``_im2col``'s forward: the same matrix as the offset table's gather, for a chunk inside a
    larger batch and a channel range inside the map's."""
    from layerloom.engine.kernels.conv_gemm_strided import _gather, _im2col

    rng = np.random.default_rng(5)
    wp = 2 * 7 + dw * (kw - 1) + 1 + 1  # an odd column past the last window, never read
    hp = 11 + dh * (kh - 1)
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    xp = rng.standard_normal((4, 5, hp, wp)).astype(np.float32)
    args = (1, 3, 1, 4, kh, kw, sh, 2, dh, dw, oh, 8)
    eight, gathered = (np.full((3 * kh * kw, 2 * oh * 8), np.nan, np.float32) for _ in range(2))
    _im2col(xp, *args, eight, False)
    _gather(xp, *args, gathered, False)
    np.testing.assert_array_equal(eight, gathered)
    assert not np.isnan(eight).any()


def test_float32_chunk_products_run_on_the_tile_kernel():
    """float32's products are ``kernels.packed``'s (F × taps · taps × positions, dWᵀ = cols ·
    dZᵀ accumulated in place with db as a row of ones, Wᵀ · dZ): a one-chunk batch (16×16
    outputs) equals them computed here from the same im2col matrix, bit for bit, forward,
    weight and input gradient."""
    from layerloom.engine.kernels.conv_gemm_strided import _im2col
    from layerloom.engine.kernels.packed import gemm_packed, packed

    rng = np.random.default_rng(5)
    c, nf, k = 6, 20, 3  # 20 filters: a panel and a ragged one
    xp = rng.standard_normal((1, c, 33, 33)).astype(np.float32)
    w = rng.standard_normal((nf, c, k, k)).astype(np.float32)
    dy = rng.standard_normal((1, nf, 16, 16)).astype(np.float32)
    cols = np.empty((c * k * k, 256), np.float32)
    _im2col(xp, 0, 1, 0, c, k, k, 2, 2, 1, 1, 16, 16, cols, False)
    w2, dz = w.reshape(nf, -1), dy.reshape(nf, 256)
    y = np.empty((nf, 256), np.float32)
    gemm_packed(w2, packed(cols), y, False)
    assert np.array_equal(gemm_forward_strided(xp, w, np.zeros(nf, np.float32), 2, 2, 1, 1, 1),
                          y.reshape(1, nf, 16, 16))
    dwt = np.zeros((c * k * k, nf), np.float32)
    gemm_packed(cols, packed(dz.T), dwt, True)
    dcols = np.empty_like(cols)
    gemm_packed(np.ascontiguousarray(w2.T), packed(dz), dcols, False)
    dxp = np.zeros_like(xp)
    _im2col(dxp, 0, 1, 0, c, k, k, 2, 2, 1, 1, 16, 16, dcols, True)
    db = np.zeros((1, nf), np.float32)  # the bias gradient: a row of ones through the same pass
    gemm_packed(np.ones((1, 256), np.float32), packed(dz.T), db, True)
    got_dx, got_dw, got_db = gemm_backward_strided(xp, w, dy, 2, 2, 1, 1, 1, True)
    assert np.array_equal(got_dw, dwt.T.reshape(w.shape)) and np.array_equal(got_dx, dxp)
    assert np.array_equal(got_db, db[0])
    assert got_dw.flags.c_contiguous  # (the optimizer's one-pass update takes it as it is)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,side", [(1, 33), (5, 17)])  # one-sample chunks; several a chunk
def test_the_relu_in_the_chunks_is_numpy_s(dtype, n, side):
    """``relu``: max(conv + b, 0) in each chunk's pass, NaN kept as ``np.maximum`` keeps it,
    and the entry point's fused Conv2D → ReLU takes it."""
    rng = np.random.default_rng(6)
    xp = rng.standard_normal((n, 4, side, side)).astype(dtype)
    xp[0, 1, 5, 5] = np.nan
    w, b = rng.standard_normal((8, 4, 3, 3)).astype(dtype), rng.standard_normal(8).astype(dtype)
    want = np.maximum(gemm_forward_strided(xp, w, b, 2, 2, 1, 1, 1), 0)
    assert np.isnan(want).any() and (want == 0).any()
    got = gemm_forward_strided(xp, w, b, 2, 2, 1, 1, 1, relu=True)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(conv.conv_forward(xp, w, b, (2, 2), relu=True), want, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,c,h,w,nf,k,stride,pad,groups", [
    (5, 3, 17, 13, 6, (3, 3), (2, 2), 1, 1), (64, 8, 16, 16, 16, (3, 3), (2, 2), 1, 1),
    (3, 8, 16, 16, 16, (5, 5), (2, 2), 2, 1), (4, 8, 9, 11, 8, (3, 3), (2, 2), 1, 4),
    (2, 5, 14, 15, 7, (3, 5), (3, 2), 0, 1)])
def test_the_input_gradient_comes_out_cropped_as_the_padded_one_s_inside(
        dtype, n, c, h, w, nf, k, stride, pad, groups):
    """Each chunk's input gradient is made in a zeroed padded scratch and cropped into dx in
    its part: the padded gradient's inside, bit for bit, C-contiguous (a view into a padded
    batch cost its consumer a one-core copy), at one thread as at two; dW and db unchanged."""
    rng, xp, wt, _ = _data(n, c, h, w, nf, k, stride, pad, dtype, groups)
    oh, ow = ((xp.shape[2] - k[0]) // stride[0] + 1, (xp.shape[3] - k[1]) // stride[1] + 1)
    dy = rng.standard_normal((n, nf, oh, ow)).astype(dtype)
    args = (xp, wt, dy, *stride, 1, 1, groups, True)
    dxp, dw, db = gemm_backward_strided(*args)
    for threads in (1, 2):
        dx, dw2, db2 = at_threads(threads, lambda: gemm_backward_strided(*args, (pad, pad)))
        assert dx.flags.c_contiguous and dx.shape == (n, c, h, w)
        np.testing.assert_array_equal(dx, dxp[:, :, pad:pad + h, pad:pad + w])
        np.testing.assert_array_equal(dw2, dw)
        np.testing.assert_array_equal(db2, db)
    padded = conv.conv_backward(xp, wt, dy, stride, (1, 1), groups, True)[0]  # any route
    through = conv.conv_backward(xp, wt, dy, stride, (1, 1), groups, True, (pad, pad))[0]
    np.testing.assert_array_equal(through, padded[:, :, pad:pad + h, pad:pad + w])
