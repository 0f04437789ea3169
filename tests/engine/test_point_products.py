"""The Winograd kernels' per-point products on the tile kernel (``kernels/point_products``): the
product equals numpy's to float32 rounding for the operands the kernels hand it (a transposed
V, widths that are not whole panels, one row), the rule takes few channels in float32 only, and
a few-channel Winograd convolution on that route equals the float64 reference, forward and
backward, the same at one and two cores."""
import numpy as np
import pytest
from numba import njit

from layerloom.engine.kernels import conv
from layerloom.engine.kernels.point_products import (MAX_PAIRS, on_tiles, panel_buffer,
                                                     point_grads, product, product_rows,
                                                     transposed_points)

from .test_split_kernels import at_threads


@njit(cache=True)
def _run(a, b, transpose_b, out):
    """``product`` as the kernels call it: b or bᵀ, a buffer sized for the largest operand."""
    bb = b.T if transpose_b else b
    buf = panel_buffer(max(b.shape), max(b.shape), True)
    product(a, bb, out, buf)


@pytest.mark.parametrize("m,k,n,transpose_b", [(16, 16, 455, False), (16, 455, 16, True),
                                               (32, 16, 303, False), (1, 7, 20, False),
                                               (20, 64, 33, True), (7, 3, 16, False)])
def test_the_product_equals_numpy_s(m, k, n, transpose_b):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
    out = np.full((m, n), np.nan, np.float32)
    _run(a, b, transpose_b, out)
    want = a.astype(np.float64) @ (b.T if transpose_b else b).astype(np.float64)
    assert np.abs(out - want).max() <= 1e-5 * np.sqrt(k) * max(np.abs(want).max(), 1.0)


@njit(cache=True)
def _both(a, b, out_packed, out_rows):
    product(a, b, out_packed, panel_buffer(b.shape[0], b.shape[1], True))
    product_rows(a, b, out_rows)


@pytest.mark.parametrize("m,k,n,pitch", [(16, 16, 455, 455), (32, 16, 48, 64), (6, 32, 7, 40),
                                         (17, 3, 33, 33)])
def test_rows_read_in_place_give_the_packed_product_s_bits(m, k, n, pitch):
    """``product_rows`` reads b's rows where they lie (a row stride wider than the row, a last
    panel of 1-15 columns packed apart, or none): the same sums as ``product``'s, in order."""
    rng = np.random.default_rng(n + pitch)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, pitch)).astype(np.float32)[:, :n]
    got, want = np.full((m, n), np.nan, np.float32), np.full((m, n), np.nan, np.float32)
    _both(a, b, want, got)
    assert np.array_equal(got, want)
    assert np.abs(got - a.astype(np.float64) @ b).max() <= 1e-5 * np.sqrt(k) * np.abs(want).max()


def test_few_channels_in_float32_take_the_tile_kernel():
    assert on_tiles(16, 16, 4) and on_tiles(64, 64, 4) and on_tiles(128, 256, 4)
    assert not on_tiles(256, 256, 4) and not on_tiles(MAX_PAIRS + 1, 1, 4)
    assert not on_tiles(16, 16, 8)
    assert panel_buffer(16, 40, False).size == 0 and panel_buffer(16, 40, True).size == 16 * 48


@pytest.mark.parametrize("c,f,side", [(16, 16, 32), (32, 64, 16), (16, 32, 20)])
def test_a_few_channel_winograd_convolution_equals_the_reference(c, f, side):
    """Through the layers' pad-free route: the forward, the input and the weight gradients
    against float64, and bit for bit the same at one and two cores."""
    rng = np.random.default_rng(c + f)
    x = rng.standard_normal((6, c, side, side)).astype(np.float32)
    w = (rng.standard_normal((f, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    dy = rng.standard_normal((6, f, side, side)).astype(np.float32)
    assert conv.pad_free_route(x.shape, w.shape, x.dtype, (1, 1), (1, 1)) == "winograd"

    def run():
        y, kept = conv.conv_forward_unpadded(x, w, np.zeros(f, np.float32), (1, 1), "winograd")
        return (y, *conv.conv_backward_unpadded(kept, w.shape, dy, (1, 1), "winograd", x.shape,
                                                True))
    one, two = at_threads(1, run), at_threads(2, run)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)
    xp = conv.pad_sides(x.astype(np.float64), 1, 1, 1, 1)
    w64, dy64 = w.astype(np.float64), dy.astype(np.float64)
    want_y = conv.conv2d_forward_reference(xp, w64, np.zeros(f), 1, 1)
    want_dx = conv.conv2d_input_grad_reference(dy64, w64, *xp.shape[2:], 1, 1)[:, :, 1:-1, 1:-1]
    want_dw = conv.conv2d_weight_grad_reference(xp, dy64, 3, 3, 1, 1)
    y, dx, dw, _ = one
    for got, want in ((y, want_y), (dx, want_dx), (dw, want_dw)):
        assert np.abs(got - want).max() <= 3e-5 * max(np.abs(want).max(), 1.0)


@pytest.mark.parametrize("shape", [(36, 128, 256), (36, 13, 21), (64, 16, 8), (36, 3, 5)])
def test_the_transposed_points_are_each_points_transpose(shape):
    """Whole 8 × 8 blocks and the edges' partial ones; over the cores, the same at one and two."""
    u = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    for threads in (1, 2):
        ut = at_threads(threads, lambda: transposed_points(u))
        assert ut.flags.c_contiguous
        np.testing.assert_array_equal(ut, u.transpose(0, 2, 1))
    assert transposed_points(u.astype(np.float64)).size == 0  # float64 keeps the BLAS


@njit(cache=True)
def _grads(dm, v, u, ut, du, vt, accumulate):
    """``point_grads`` of point 0 as the chunked backwards call it, without the input gradient."""
    point_grads(dm, v, u, ut, 0, du, vt, False, accumulate)


@pytest.mark.parametrize("tiles", [True, False])
def test_a_point_s_weight_gradient_adds_to_its_partial_on_either_route(tiles):
    """du += dm · vᵀ with ``accumulate`` (a run's later chunks, ``du_parts``), du = dm · vᵀ
    without, on the tile kernel and on the BLAS (empty Uᵀ), for rows read from larger buffers."""
    rng = np.random.default_rng(5)
    dm = rng.standard_normal((40, 90)).astype(np.float32)[:, :70]
    v = rng.standard_normal((30, 80)).astype(np.float32)[:, :70]
    u = np.zeros((1, 40, 30), np.float32)
    ut = transposed_points(u) if tiles else np.empty((0, 30, 40), np.float32)
    vt = panel_buffer(70, 30, tiles)
    start = rng.standard_normal((40, 30)).astype(np.float32)
    prod = dm.astype(np.float64) @ v.T.astype(np.float64)
    for accumulate, want in ((True, start + prod), (False, prod)):
        du = start.copy()
        _grads(dm, v, u, ut, du, vt, accumulate)
        assert np.abs(du - want).max() <= 1e-5 * np.abs(want).max()
