"""The backward of float32 stride-2 convolutions (3×3, 5×5, 7×7) over the input's phases on the
packed tile kernel (``kernels.conv_phases_back``): input, weight and bias gradients equal to the
float64 reference over even and odd sides, paddings that start the columns on either phase,
channel and filter counts that fill no tile or panel evenly, one channel, maps of one output;
the weight gradient the same with and without the input gradient; the same bits on one core and
two (``test_conv_phases_packed`` checks that the Conv2D layer's backward runs it)."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv
from layerloom.engine.kernels import conv_phases_back as cpb

from .test_split_kernels import at_threads

TOL = dict(rtol=2e-5, atol=2e-5)

# (batch, channels, H, W, filters, padding): even sides; odd sides (the shorter phases); a
# padding of 2 rows and 1 column, of none, of 2 columns; one channel; filters past a 6-row
# tile and a 16-wide panel; a map of one output; then 5×5 filters (an RGB stem, odd sides,
# paddings 2/1/0, one output) and 7×7 ones
FAMILY = [(3, 16, 32, 32, 32, (1, 1), 3), (2, 5, 15, 17, 7, (1, 1), 3),
          (2, 7, 9, 12, 13, (2, 1), 3), (2, 33, 11, 11, 20, (0, 0), 3),
          (3, 1, 8, 7, 17, (1, 0), 3), (2, 4, 6, 9, 5, (0, 2), 3), (1, 3, 3, 3, 2, (0, 0), 3),
          (2, 3, 32, 32, 16, (2, 2), 5), (2, 8, 17, 15, 13, (2, 1), 5),
          (3, 16, 16, 16, 32, (2, 2), 5), (2, 5, 9, 11, 7, (0, 0), 5), (1, 2, 5, 5, 3, (0, 0), 5),
          (2, 6, 15, 14, 9, (3, 3), 7)]


def _data(n, c, h, w, nf, pad, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((nf, c, k, k)).astype(np.float32)
    oh, ow = (h + 2 * pad[0] - k) // 2 + 1, (w + 2 * pad[1] - k) // 2 + 1
    return x, wt, rng.standard_normal((n, nf, oh, ow)).astype(np.float32)


def _reference(x, w, dy, pad):
    """The float64 gradients of the padded convolution, the padding's part of dx dropped."""
    (n, c, h, wd), (top, left) = x.shape, pad
    xp = np.pad(x, ((0, 0), (0, 0), (top, top), (left, left))).astype(np.float64)
    dy64, w64 = dy.astype(np.float64), w.astype(np.float64)
    dxp = conv.grouped_input_grad_reference(dy64, w64, *xp.shape[2:], (2, 2), (1, 1), 1)
    k = w.shape[2]
    dw = conv.grouped_weight_grad_reference(xp, dy64, k, k, (2, 2), (1, 1), 1)
    return dxp[:, :, top:top + h, left:left + wd], dw, dy64.sum(axis=(0, 2, 3))


@pytest.mark.parametrize("n,c,h,w,nf,pad,k", FAMILY)
def test_family_matches_the_reference(n, c, h, w, nf, pad, k):
    x, wt, dy = _data(n, c, h, w, nf, pad, k)
    dx, dw, db = cpb.phases_packed_backward(x, wt, dy, pad, True)
    want_dx, want_dw, want_db = _reference(x, wt, dy, pad)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    assert dx.shape == x.shape and dx.flags.c_contiguous and dw.shape == wt.shape
    np.testing.assert_allclose(dx, want_dx, **TOL)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-4)
    none, dw2, db2 = cpb.phases_packed_backward(x, wt, dy, pad, False)
    assert none is None and np.array_equal(dw2, dw) and np.array_equal(db2, db)


def test_one_core_and_two_give_the_same_bits():
    x, wt, dy = _data(11, 16, 18, 18, 24, (1, 1))
    outs = [at_threads(t, lambda: cpb.phases_packed_backward(x, wt, dy, (1, 1), True))
            for t in (1, 2)]
    for one, two in zip(*outs):
        assert np.array_equal(one, two)
