"""A stem's weight gradient as products with its packed taps (``conv_taps_grad``): it equals the
float64 twin at strides 1 and 2, 3×3 and 5×5, over maps of one block and of several (rows that do not fill a
block, a last block cut short), over batches of several chunks; it is what ``conv_backward``
and the stride-2 phases' route return for a float32 stem that wants no input gradient (and
only then); its results do not depend on the threads;
and a network whose first convolution runs it trains as the float64 one does."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from layerloom.engine.graph import Graph, Node
from layerloom.engine.kernels import conv, conv_taps_grad
from layerloom.engine.kernels.conv_taps_grad import (prefers_taps_grad, taps_grad,
                                                     taps_grad_reference)
from layerloom.engine.network import Network


def _case(n: int, c: int, nf: int, h: int, w: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((n, c, h + 2, w + 2)).astype(np.float32)
    dy = rng.standard_normal((n, nf, h, w)).astype(np.float32)
    return xp, dy


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("n,c,nf,h,w,k", [(3, 3, 16, 32, 32, 3), (5, 1, 20, 7, 9, 3),
                                          (9, 5, 33, 13, 40, 3), (70, 2, 16, 5, 4, 3),
                                          (2, 3, 64, 300, 3, 3), (4, 1, 32, 28, 28, 5),
                                          (3, 1, 17, 9, 6, 5)])
def test_the_weight_gradient_equals_the_twin(n, c, nf, h, w, k, stride):
    """The maps are the padded input's (h + k − 1) × (w + k − 1) at ``stride``."""
    rng = np.random.default_rng(n)
    xp = rng.standard_normal((n, c, h + k - 1, w + k - 1)).astype(np.float32)
    dy = rng.standard_normal((n, nf, (h - 1) // stride + 1, (w - 1) // stride + 1))
    dy = dy.astype(np.float32)
    dw, db = taps_grad(xp, dy, k, k, (stride, stride))
    want_dw, want_db = taps_grad_reference(xp.astype(np.float64), dy.astype(np.float64), k, k,
                                           (stride, stride))
    assert dw.shape == (nf, c, k, k) and db.shape == (nf,) and dw.dtype == np.float32
    scale = np.abs(want_dw).max()
    np.testing.assert_allclose(dw, want_dw, rtol=1e-5, atol=2e-6 * scale)
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=2e-6 * np.abs(want_db).max())


def test_the_twin_is_the_textbook_sum():
    """The twin itself, against the definition written out for one filter, channel and tap."""
    xp, dy = _case(2, 2, 3, 4, 5)
    dw, db = taps_grad_reference(xp.astype(np.float64), dy.astype(np.float64), 3, 3)
    f, ch, i, j = 2, 1, 2, 0
    want = sum(float(dy[s, f, r, q]) * float(xp[s, ch, r + i, q + j])
               for s in range(2) for r in range(4) for q in range(5))
    assert dw[f, ch, i, j] == pytest.approx(want, rel=1e-12)
    assert db[f] == pytest.approx(float(dy[:, f].astype(np.float64).sum()), rel=1e-12)


def test_conv_backward_takes_it_for_a_stem_without_an_input_gradient(monkeypatch):
    xp, dy = _case(4, 3, 32, 16, 16)
    w = np.random.default_rng(1).standard_normal((32, 3, 3, 3)).astype(np.float32)
    calls = []
    real = conv.taps_grad
    monkeypatch.setattr(conv, "taps_grad", lambda *a: calls.append(a) or real(*a))
    dx, dw, db = conv.conv_backward(xp, w, dy, (1, 1), need_dx=False, pad=(1, 1))
    assert dx is None and len(calls) == 1
    want_dw, want_db = taps_grad_reference(xp.astype(np.float64), dy.astype(np.float64), 3, 3)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-4)
    conv.conv_backward(xp, w, dy, (1, 1), need_dx=True, pad=(1, 1))  # the input gradient: not
    conv.conv_backward(xp.astype(np.float64), w.astype(np.float64), dy.astype(np.float64), (1, 1),
                       need_dx=False, pad=(1, 1))  # float64: the exact path
    assert len(calls) == 1


def test_a_stride_2_stem_on_the_phases_route_takes_it(monkeypatch):
    """A stride-2 stem's layer keeps x unpadded (``conv_phases_packed``); its backward pads x
    for these products when no input gradient is wanted, and equals the twin."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 15, 16)).astype(np.float32)
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    assert conv.pad_free_route(x.shape, w.shape, x.dtype, (1, 1), (2, 2)) == "packed"
    y, kept = conv.conv_forward_unpadded(x, w, np.zeros(32, np.float32), (1, 1), "packed")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    calls = []
    real = conv.taps_grad
    monkeypatch.setattr(conv, "taps_grad", lambda *a: calls.append(a) or real(*a))
    dx, dw, db = conv.conv_backward_unpadded(kept, w.shape, dy, (1, 1), "packed", x.shape, False)
    assert dx is None and len(calls) == 1
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).astype(np.float64)
    want_dw, want_db = taps_grad_reference(xp, dy.astype(np.float64), 3, 3, (2, 2))
    np.testing.assert_allclose(dw, want_dw, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-4)
    with_dx = conv.conv_backward_unpadded(kept, w.shape, dy, (1, 1), "packed", x.shape, True)
    assert len(calls) == 1 and with_dx[0].shape == x.shape
    np.testing.assert_allclose(with_dx[1], want_dw, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape,dtype,stride,need_dx,want", [
    ((32, 3, 3, 3), np.float32, (1, 1), False, True),
    ((16, 5, 3, 3), np.float32, (1, 1), False, True),
    ((16, 6, 3, 3), np.float32, (1, 1), False, False),  # 54 taps: the row layout's products
    ((8, 3, 3, 3), np.float32, (1, 1), False, False),  # few filters
    ((32, 3, 5, 5), np.float32, (1, 1), False, False),  # 5×5 from 3: im2col's products won
    ((32, 1, 5, 5), np.float32, (2, 2), False, True),  # from one channel: here
    ((32, 1, 7, 7), np.float32, (1, 1), False, False),
    ((32, 3, 3, 3), np.float32, (2, 2), False, True),
    ((32, 3, 3, 3), np.float32, (3, 3), False, False),
    ((32, 3, 3, 3), np.float32, (1, 1), True, False),
    ((32, 3, 3, 3), np.float64, (1, 1), False, False)])
def test_the_rule(shape, dtype, stride, need_dx, want):
    assert prefers_taps_grad(shape, dtype, stride, (1, 1), 1, need_dx) is want


def test_the_results_do_not_depend_on_the_threads(monkeypatch):
    xp, dy = _case(40, 3, 24, 12, 20)
    seen = []
    real = conv_taps_grad.split_rows
    monkeypatch.setattr(conv_taps_grad, "split_rows", lambda fn, n: seen.append(n) or real(fn, n))
    before = numba.get_num_threads()
    try:
        runs = []
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            runs.append(taps_grad(xp, dy, 3, 3))
    finally:
        numba.set_num_threads(before)
    assert seen[0] >= 2  # several chunks: partial sums to add in order
    for got, want in zip(runs[1], runs[0]):
        np.testing.assert_array_equal(got, want)


def _stem_net(dtype) -> Network:
    g = Graph()
    chain = [("image", "Input", {"shape": [3, 12, 12]}),
             ("conv", "Conv2D", {"out_channels": 16, "kernel_size": [3, 3], "padding": [1, 1]}),
             ("relu", "ReLU", {}), ("flat", "Flatten", {}), ("fc", "Dense", {"out_features": 4})]
    for k, (node_id, type_id, attrs) in enumerate(chain):
        g.add_node(Node(node_id, type_id, attrs))
        if k:
            g.connect((chain[k - 1][0], "y"), (node_id, "x"))
    g.add_node(Node("label", "Label", {"kind": "class index", "shape": []}))
    g.add_node(Node("loss", "CrossEntropyLoss", {}))
    g.connect(("fc", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return Network(g, seed=3, dtype=dtype)


def test_a_network_whose_stem_runs_it_has_the_float64_gradients(monkeypatch):
    calls = []
    real = conv.taps_grad
    monkeypatch.setattr(conv, "taps_grad", lambda *a: calls.append(a) or real(*a))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 12, 12))
    y = rng.integers(0, 4, 6)
    grads = []
    for dtype in (np.float32, np.float64):
        net = _stem_net(dtype)
        net.forward({"image": x, "label": y}, training=True)
        grads.append(net.backward())
    assert len(calls) == 1  # the float32 network's stem
    for key in ("conv.weight", "conv.bias"):
        np.testing.assert_allclose(grads[0][key], grads[1][key], rtol=1e-4, atol=1e-5)
