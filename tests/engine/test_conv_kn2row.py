"""The product-per-tap convolutions (``conv_kn2row``: float32 stride-1 5×5-and-up kernels over many
channels, and stride-2 ones through the input's phases) and the CBLAS ``gemm`` they call
(``kernels.blas``): equal to the numpy twins over a family of shapes (bands that do not divide the
rows, non-square kernels, batches smaller than the partial sums, odd sizes, strides 2, 3 and (2, 1))
in float64 to rounding and float32 loosely, to PyTorch in float64, the same bits at one and two
threads, routed by the entry points, the fused step and the layers.
"""
import ctypes
import sys

import numpy as np
import pytest

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import blas, conv
from layerloom.engine.kernels.conv_gemm_strided import gemm_backward_strided, gemm_forward_strided
from layerloom.engine.kernels.conv_kn2row import (BAND, kn2row_backward, kn2row_forward,
                                                  prefers_kn2row)
from layerloom.engine.kernels.conv_phases_packed import phases_packed_forward

from .graph_cases import add_after
from .test_split_kernels import at_threads

TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-4)}

# (batch, channels, H, W, filters, kernel, padding): rows per band = BAND // Wp, so 36-wide
# inputs take 4 rows a band (32 output rows: 8 bands; 23: a ragged last one), a 7×5 kernel, a
# batch of 3 (fewer samples than partial sums), a single sample, maps wider than a band
FAMILY = [(3, 16, 32, 32, 16, (5, 5), 2), (2, 16, 23, 19, 17, (5, 5), 2),
          (5, 17, 16, 16, 16, (7, 5), (3, 2)), (1, 16, 20, 180, 16, (5, 5), 0),
          (9, 16, 16, 16, 20, (5, 5), 2)]


def _data(n, c, h, w, nf, k, pad, dtype, seed=0):
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((nf, c, *k)).astype(dtype)
    b = rng.standard_normal(nf).astype(dtype)
    return rng, conv.pad_sides(x, ph, ph, pw, pw), wt, b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,c,h,w,nf,k,pad", FAMILY)
def test_family_matches_the_twins(dtype, n, c, h, w, nf, k, pad):
    rng, xp, wt, b = _data(n, c, h, w, nf, k, pad, dtype)
    y = kn2row_forward(xp, wt, b)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_allclose(y, conv.conv2d_forward_reference(xp, wt, b, 1, 1), **TOL[dtype])
    assert np.array_equal(kn2row_forward(xp, wt, b, relu=True), np.maximum(y, 0))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = kn2row_backward(xp, wt, dy, True)
    assert dxp.dtype == dw.dtype == db.dtype == dtype and dw.shape == wt.shape
    np.testing.assert_allclose(dw, conv.conv2d_weight_grad_reference(xp, dy, *k, 1, 1),
                               **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.conv2d_input_grad_reference(dy, wt, *xp.shape[2:], 1, 1),
                               **TOL[dtype])
    no_dx, dw_again, db_again = kn2row_backward(xp, wt, dy, False)
    assert no_dx.size == 0 and np.array_equal(dw_again, dw) and np.array_equal(db_again, db)


# (batch, channels, H, W, filters, kernel, stride, padding): the forward through the phases
STRIDED = [(3, 16, 32, 32, 16, (5, 5), (2, 2), 2), (2, 16, 17, 15, 17, (3, 3), (2, 2), 1),
           (2, 16, 12, 13, 16, (4, 4), (2, 2), 0), (3, 16, 14, 16, 16, (3, 3), (3, 3), 1),
           (2, 16, 11, 12, 16, (5, 3), (2, 1), 2)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,c,h,w,nf,k,stride,pad", STRIDED)
def test_strided_ones_match_the_twins(dtype, n, c, h, w, nf, k, stride, pad):
    """Any stride, odd and even sizes and kernels (phases with fewer taps than others); the
    phases' last rows and columns are short."""
    rng, xp, wt, b = _data(n, c, h, w, nf, k, pad, dtype)
    y = kn2row_forward(xp, wt, b, stride)
    np.testing.assert_allclose(y, conv.grouped_forward_reference(xp, wt, b, stride, (1, 1), 1),
                               **TOL[dtype])
    assert np.array_equal(kn2row_forward(xp, wt, b, stride, relu=True), np.maximum(y, 0))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp, dw, db = kn2row_backward(xp, wt, dy, True, stride)
    np.testing.assert_allclose(dw, conv.grouped_weight_grad_reference(xp, dy, *k, stride, (1, 1),
                                                                      1), **TOL[dtype])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), **TOL[dtype])
    np.testing.assert_allclose(dxp, conv.grouped_input_grad_reference(dy, wt, *xp.shape[2:],
                                                                      stride, (1, 1), 1),
                               **TOL[dtype])
    no_dx, dw_again, _ = kn2row_backward(xp, wt, dy, False, stride)
    assert no_dx.size == 0 and np.array_equal(dw_again, dw)


@pytest.mark.parametrize("nf,side,k", [(32, 32, 3), (512, 32, 3), (32, 16, 3), (128, 16, 3),
                                       (32, 16, 7)])
def test_strided_convolutions_route_by_their_channels(nf, side, k):
    """The forward here onto 16×16 maps, or with C·F < 2048 onto smaller ones (16 → 128 on 8×8
    stays on im2col), 3×3 ones from 16 channels through ``conv_phases_packed``; the backward
    here for 7×7 kernels of C·F ≤ 4096 only: 3×3 ones, and C·F > 4096, on im2col."""
    rng, xp, wt, b = _data(3, 16, side, side, nf, (k, k), k // 2, np.float32)
    y = conv.conv_forward(xp, wt, b, (2, 2))
    forward_here = side == 32 or nf * 16 < 2048
    here = phases_packed_forward if k == 3 else lambda *a: kn2row_forward(*a, (2, 2))
    assert np.array_equal(y, here(xp, wt, b) if forward_here else
                          gemm_forward_strided(xp, wt, b, 2, 2, 1, 1, 1))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = conv.conv_backward(xp, wt, dy, (2, 2))
    want = kn2row_backward(xp, wt, dy, True, (2, 2)) if k == 7 else \
        gemm_backward_strided(xp, wt, dy, 2, 2, 1, 1, 1, True)
    for a, w in zip(got, want):
        assert np.array_equal(a, w)


def test_a_band_is_several_rows_of_the_family_s_widest_inputs():
    """The family exercises bands of several rows and of one (a 180-wide input: BAND // Wp = 0)."""
    assert BAND // 36 >= 4 and BAND // 180 == 0


@pytest.mark.parametrize("n,c,h,w,nf,k,pad", FAMILY[:3])
def test_family_is_pytorch_s_convolution(n, c, h, w, nf, k, pad):
    torch = pytest.importorskip("torch")
    rng, xp, wt, b = _data(n, c, h, w, nf, k, pad, np.float64)
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    x = torch.from_numpy(np.ascontiguousarray(xp[:, :, ph:ph + h, pw:pw + w]))
    tw, tb = torch.from_numpy(wt), torch.from_numpy(b)
    for t in (x, tw, tb):
        t.requires_grad_()
    want = torch.nn.functional.conv2d(x, tw, tb, 1, (ph, pw))
    y = kn2row_forward(xp, wt, b)
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    want.backward(torch.from_numpy(dy))
    dxp, dw, db = kn2row_backward(xp, wt, dy, True)
    np.testing.assert_allclose(dxp[:, :, ph:ph + h, pw:pw + w], x.grad.numpy(), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_the_results_do_not_depend_on_the_thread_count():
    """Samples split over the cores; the weight gradient's partial sums are fixed runs of them."""
    rng, xp, wt, b = _data(11, 16, 16, 16, 16, (5, 5), 2, np.float32)
    dy = rng.standard_normal((11, 16, 16, 16)).astype(np.float32)
    def run():
        return (kn2row_forward(xp, wt, b), *kn2row_backward(xp, wt, dy, True))
    for one, two in zip(at_threads(1, run), at_threads(2, run)):
        assert np.array_equal(one, two)


def test_the_rule_takes_many_channel_large_kernels_on_large_maps():
    f32 = np.float32
    assert prefers_kn2row((32, 32, 5, 5), 1, (1, 1), (1, 1), f32, 32, 32)
    assert prefers_kn2row((64, 64, 5, 5), 1, (1, 1), (1, 1), f32, 16, 16)
    assert not prefers_kn2row((32, 32, 5, 5), 1, (1, 1), (1, 1), np.float64, 32, 32)
    assert not prefers_kn2row((32, 3, 5, 5), 1, (1, 1), (1, 1), f32, 32, 32)  # a stem
    assert not prefers_kn2row((128, 128, 5, 5), 1, (1, 1), (1, 1), f32, 8, 8)  # small maps
    assert prefers_kn2row((64, 64, 5, 5), 1, (1, 1), (1, 1), f32, 64, 64)
    assert not prefers_kn2row((64, 64, 5, 5), 1, (1, 1), (1, 1), f32, 224, 224)  # buffers
    assert not prefers_kn2row((32, 32, 3, 3), 1, (1, 1), (1, 1), f32, 32, 32)  # Winograd's
    assert not prefers_kn2row((32, 32, 1, 25), 1, (1, 1), (1, 1), f32, 1, 400)  # a Conv1d
    assert prefers_kn2row((32, 32, 5, 5), 1, (2, 2), (1, 1), f32, 16, 16)  # the forward
    assert prefers_kn2row((32, 32, 5, 5), 1, (2, 2), (1, 1), f32, 16, 16, backward=True)
    assert not prefers_kn2row((128, 64, 5, 5), 1, (2, 2), (1, 1), f32, 16, 16, backward=True)
    assert prefers_kn2row((32, 32, 3, 3), 1, (2, 2), (1, 1), f32, 8, 8)
    # 3×3: im2col (packed) takes every backward, and the forward onto maps narrower than
    # 16×16 from C·F ≥ 2048
    assert not prefers_kn2row((64, 32, 3, 3), 1, (2, 2), (1, 1), f32, 8, 8)
    assert not prefers_kn2row((64, 32, 3, 3), 1, (2, 2), (1, 1), f32, 8, 8, backward=True)
    assert not prefers_kn2row((64, 32, 3, 3), 1, (2, 2), (1, 1), f32, 16, 16, backward=True)
    assert prefers_kn2row((32, 32, 5, 5), 1, (2, 2), (1, 1), f32, 8, 8, backward=True)
    assert not prefers_kn2row((128, 128, 3, 3), 1, (2, 2), (1, 1), f32, 8, 8)
    assert prefers_kn2row((128, 128, 3, 3), 1, (2, 2), (1, 1), f32, 16, 16)
    assert not prefers_kn2row((256, 128, 3, 3), 1, (2, 2), (1, 1), f32, 4, 4)
    assert not prefers_kn2row((32, 32, 5, 5), 1, (3, 3), (1, 1), f32, 16, 16)
    assert not prefers_kn2row((32, 32, 5, 5), 1, (1, 1), (2, 2), f32, 32, 32)
    assert not prefers_kn2row((32, 16, 5, 5), 2, (1, 1), (1, 1), f32, 32, 32)


def test_the_entry_points_route_here(monkeypatch):
    monkeypatch.setattr(conv, "winograd5", lambda *a: False)  # float32 5×5 takes F(4×4, 5×5)
    rng, xp, wt, b = _data(3, 16, 16, 16, 16, (5, 5), 2, np.float32)
    y = conv.conv_forward(xp, wt, b, (1, 1), relu=True)
    assert np.array_equal(y, kn2row_forward(xp, wt, b, relu=True))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for got, want in zip(conv.conv_backward(xp, wt, dy, (1, 1)), kn2row_backward(xp, wt, dy, True)):
        assert np.array_equal(got, want)
    assert conv.conv_backward(xp, wt, dy, (1, 1), need_dx=False)[0] is None


def test_a_5x5_cnn_trains_as_pytorch_does():
    """Through the layers: a Conv2D 16 → 16 5×5 (padding 2) on 16×16 maps in float32 after a
    3 → 16 stem; the loss and every gradient equal PyTorch's float32 ones loosely."""
    torch = pytest.importorskip("torch")
    from layerloom.engine.network import Network

    g = Graph()
    prev = add_after(g, None, "image", "Input", {"shape": [3, 16, 16]})
    for i, c_in in enumerate((3, 16), start=1):
        prev = add_after(g, prev, f"c{i}", "Conv2D", {"out_channels": 16, "kernel_size": [5, 5],
                                                      "padding": [2, 2]})
        prev = add_after(g, prev, f"r{i}", "ReLU")
    prev = add_after(g, add_after(g, prev, "flat", "Flatten"), "fc", "Dense", {"out_features": 3})
    add_after(g, None, "label", "Label")
    add_after(g, prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    net = Network(g, seed=0, dtype=np.float32)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3, 16, 16)).astype(np.float32), rng.integers(0, 3, 4)
    loss = net.forward({"image": x, "label": y}, training=True)["loss"]
    grads = net.backward()
    p = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in net.params.items()}
    t = torch.from_numpy(x)
    for i in (1, 2):
        t = torch.relu(torch.nn.functional.conv2d(t, p[f"c{i}.weight"], p[f"c{i}.bias"], 1, 2))
    out = t.flatten(1) @ p["fc.weight"].T + p["fc.bias"]
    want = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
    want.backward()
    np.testing.assert_allclose(float(np.asarray(loss)), want.item(), rtol=1e-5)
    for k, v in p.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-3, atol=1e-5)


def test_the_gemm_fallback_is_cblas_s_gemm():
    """The compiled stand-in for a numpy without a 64-bit CBLAS: C = α·op(A)·op(B) + β·C."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        fn = blas.fallback(dtype).ctypes
        ptr = ctypes.POINTER(fn.argtypes[7]._type_)
        a, bt = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)
        c = rng.standard_normal((7, 4)).astype(dtype)  # ldc 4 > n 3: the last column is kept
        want = c.copy()
        want[:, :3] = 2 * a @ bt.T + 0.5 * c[:, :3]
        fn(blas.ROW_MAJOR, blas.NO_TRANS, blas.TRANS, 7, 3, 5, dtype(2), a.ctypes.data_as(ptr), 5,
           bt.ctypes.data_as(ptr), 5, dtype(0.5), c.ctypes.data_as(ptr), 4)
        np.testing.assert_allclose(c, want, rtol=1e-5)
    assert blas.SOURCE in ("numpy's BLAS", "numba's np.dot")


@pytest.mark.parametrize("pool", [[2, 2], [3, 3]])
def test_conv_relu_maxpool_runs_fused_as_unfused(monkeypatch, pool):
    """The fused Conv2D+ReLU+MaxPool2D step pools this kernel's output at pitch OW and hands
    the un-pooled gradient back to it: the same outputs, gradients and Adam steps as the plain
    layers (tests/engine/test_conv_fusion.check_same), and it is this kernel that ran."""
    from tests.engine.test_conv_fusion import check_same

    callers, forward = set(), conv.kn2row_forward

    def spy(*args, **kwargs):
        callers.add(sys._getframe(1).f_code.co_name)
        return forward(*args, **kwargs)
    monkeypatch.setattr(conv, "kn2row_forward", spy)
    monkeypatch.setattr(conv, "winograd5", lambda *a: False)  # float32 5×5 takes F(4×4, 5×5)
    g = Graph()
    prev = add_after(g, None, "image", "Input", {"shape": [16, 17, 16]})
    prev = add_after(g, prev, "c1", "Conv2D", {"out_channels": 16, "kernel_size": [5, 5],
                                               "padding": [2, 2]})
    prev = add_after(g, add_after(g, prev, "r1", "ReLU"), "pool", "MaxPool2D",
                     {"kernel_size": pool})
    prev = add_after(g, add_after(g, prev, "flat", "Flatten"), "fc", "Dense", {"out_features": 4})
    add_after(g, None, "label", "Label")
    add_after(g, prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    check_same(g, np.float32, expect={"Conv2D+ReLU+MaxPool2D"})
    assert callers == {"conv_relu_maxpool", "conv_forward"}  # the fused step and the plain
