"""The recurrent layers' compiled time loops (``kernels.recurrent_loop``): the float32 tanh is
within a few ulp of the exact one (NaN and ±∞ kept as tanh keeps them); the forward loops equal
the float64 numpy loops (both directions, with and without biases, widths that end in a part
panel); the backward loops equal numpy loops bit for bit (float64's with numpy's products,
float32's with the packed product, ``kernels.packed``); and float32 LSTM, GRU and SimpleRNN
layers train as PyTorch's float32 ones at one and two cores."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from layerloom.engine.kernels import recurrent_loop
from layerloom.engine.kernels.packed import gemm_packed, packed
from layerloom.engine.layers import recurrent as layer
from layerloom.engine.kernels.recurrent import (gru_step_backward, lstm_step_backward,
                                                rnn_step_backward)
from layerloom.engine.network import Network
from tests.engine.test_row_parts import recurrent_graph
from tests.engine.test_split_kernels import at_threads


def test_tanh32_is_within_a_few_ulp_and_keeps_nan_and_infinities():
    grid = np.linspace(-12, 12, 400_001).astype(np.float32)
    tiny = np.float32(10.0) ** np.linspace(-30, 1, 20_001).astype(np.float32)
    x = np.concatenate([grid, tiny, -tiny, np.float32([0.0, -0.0, 7.9, 7.91, 1e30, -1e30])])
    out = np.empty_like(x)
    recurrent_loop.tanh32(x, out)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.abs(out - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert ulp.max() < 6  # 5.5 at x ≈ ±5.8, where tanh is 1 − 2e-5 (numpy's own: 1.4)
    assert np.all(np.abs(out) <= 1)
    special = np.float32([np.nan, np.inf, -np.inf])
    got = np.empty_like(special)
    recurrent_loop.tanh32(special, got)
    assert np.isnan(got[0]) and got[1] == 1 and got[2] == -1


def _forward_reference(gates, w, reverse):
    """The loop in float64 numpy (w = W_hhᵀ): gates, h, c, tanh(c)."""
    g = gates.astype(np.float64)
    t, n, g4 = g.shape
    hsz = g4 // 4
    wh = w.astype(np.float64)  # (H, 4H)
    hs, cs, tcs = (np.zeros((t, n, hsz)) for _ in range(3))
    h, c = np.zeros((n, hsz)), np.zeros((n, hsz))
    for s in (range(t - 1, -1, -1) if reverse else range(t)):
        act = np.tanh(g[s] + h @ wh)
        i, f, o = (0.5 * act[:, k * hsz:(k + 1) * hsz] + 0.5 for k in (0, 1, 3))
        gv = act[:, 2 * hsz:3 * hsz]
        c = f * c + i * gv
        g[s] = np.concatenate([i, f, gv, o], axis=1)
        tcs[s] = np.tanh(c)
        hs[s], cs[s], h = o * tcs[s], c, o * tcs[s]
    return g, hs, cs, tcs


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("n,hsz", [(1, 5), (3, 64), (16, 33)])
def test_the_forward_loop_is_the_lstm(reverse, n, hsz):
    rng = np.random.default_rng(n + hsz)
    t = 7
    gates = rng.standard_normal((t, n, 4 * hsz)).astype(np.float32)
    w_hh = (rng.standard_normal((4 * hsz, hsz)) / np.sqrt(hsz)).astype(np.float32)
    want = _forward_reference(gates, w_hh.T, reverse)
    hs, cs, tcs = (np.empty((t, n, hsz), np.float32) for _ in range(3))
    g = gates.copy()
    recurrent_loop.lstm_forward_loop(g, packed(w_hh.T), hs, cs, tcs, reverse)
    for got, ref in zip((g, hs, cs, tcs), want):
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-6)


RUNS = {"LSTM": (layer._lstm_run, 4), "GRU": (layer._gru_run, 3), "SimpleRNN": (layer._rnn_run, 1)}


@pytest.mark.parametrize("cell", sorted(RUNS))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n,hsz", [(3, 20), (16, 520)])  # 520 units: the weight-first product
def test_every_cells_forward_loop_is_its_float64_numpy_loop(cell, reverse, bias, n, hsz):
    run, gates = RUNS[cell]
    rng = np.random.default_rng(hsz + n)
    x = rng.standard_normal((9, n, 6))
    w_ih, w_hh = rng.standard_normal((gates * hsz, 6)) / 3, rng.standard_normal((gates * hsz, hsz))
    w_hh /= np.sqrt(hsz)
    b = [rng.standard_normal(gates * hsz) / 3 if bias else None for _ in range(2)]
    want, want_saved = run(x, w_ih, w_hh, *b, reverse=reverse)  # float64: the numpy loop
    f32 = [None if a is None else a.astype(np.float32) for a in (x, w_ih, w_hh, *b)]
    got, saved = run(*f32, reverse=reverse)
    assert got.dtype == np.float32 and layer._Recurrence(w_hh, n).transposed == (hsz == 520)
    np.testing.assert_allclose(got, want, rtol=5e-5, atol=5e-6)
    for g, w in zip(saved, want_saved):
        np.testing.assert_allclose(g, w, rtol=5e-5, atol=5e-6)


def _panels(w_hh):
    """The backward loops' packed weight: float32's, or none (float64 keeps the BLAS)."""
    return packed(w_hh) if w_hh.dtype == np.float32 else np.empty((0, 0, 16), np.float32)


def _product(a, w_hh, out):
    """out = a · W_hh as the loops compute it."""
    if a.dtype == np.float32:
        gemm_packed(a, packed(w_hh), out, False)
    else:
        np.matmul(a, w_hh, out=out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_the_gru_and_rnn_backward_loops_are_the_numpy_loops_bit_for_bit(dtype, reverse):
    rng = np.random.default_rng(6)
    t, n, hsz = 6, 9, 40
    dhs, dlast = rng.standard_normal((t, n, hsz)).astype(dtype), rng.standard_normal((n, hsz))
    dlast = dlast.astype(dtype)
    hs, one = rng.uniform(-0.9, 0.9, (t, n, hsz)).astype(dtype), dtype(1)
    order = range(t) if reverse else range(t - 1, -1, -1)
    zeros = np.zeros((n, hsz), dtype)
    # GRU
    gates = rng.uniform(0.05, 0.95, (t, n, 3 * hsz)).astype(dtype)
    hns, w_hh = rng.standard_normal((t, n, hsz)).astype(dtype), rng.standard_normal((3 * hsz, hsz))
    w_hh = w_hh.astype(dtype)
    dxg, dhg, drec, direct = (np.empty_like(gates), np.empty_like(gates), dlast.copy(),
                              np.empty((n, hsz), dtype))
    for s in order:
        p = s + 1 if reverse else s - 1
        gru_step_backward(dhs[s], drec, gates[s], hns[s], hs[p] if 0 <= p < t else zeros,
                          dxg[s], dhg[s], direct, one)
        _product(dhg[s], w_hh, drec)
        drec += direct
    got = np.empty_like(gates), np.empty_like(gates), dlast.copy()
    recurrent_loop.gru_backward_loop(dhs, got[2], gates, hns, hs, w_hh, _panels(w_hh), reverse,
                                     got[0], got[1], one)
    for a, b in zip(got, (dxg, dhg, drec)):
        np.testing.assert_array_equal(a, b)
    # SimpleRNN
    w_hh = rng.standard_normal((hsz, hsz)).astype(dtype)
    dpre, drec = np.empty_like(hs), dlast.copy()
    for s in order:
        rnn_step_backward(dhs[s], drec, hs[s], dpre[s], one)
        _product(dpre[s], w_hh, drec)
    got, drec2 = np.empty_like(hs), dlast.copy()
    recurrent_loop.rnn_backward_loop(dhs, drec2, hs, w_hh, _panels(w_hh), reverse, got, one)
    np.testing.assert_array_equal(got, dpre)
    np.testing.assert_array_equal(drec2, drec)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_the_backward_loop_is_the_numpy_loop_bit_for_bit(dtype, reverse):
    rng = np.random.default_rng(5)
    t, n, hsz = 6, 9, 40
    gates = rng.uniform(0.05, 0.95, (t, n, 4 * hsz)).astype(dtype)
    cs, tcs = rng.standard_normal((t, n, hsz)).astype(dtype), rng.uniform(-1, 1, (t, n, hsz))
    tcs = tcs.astype(dtype)
    dhs, w_hh = rng.standard_normal((t, n, hsz)).astype(dtype), rng.standard_normal((4 * hsz, hsz))
    w_hh, dlast = w_hh.astype(dtype), rng.standard_normal((n, hsz)).astype(dtype)
    want, drec, dc = np.empty_like(gates), dlast.copy(), np.zeros((n, hsz), dtype)
    zeros, one = np.zeros((n, hsz), dtype), dtype(1)
    for s in (range(t) if reverse else range(t - 1, -1, -1)):
        p = s + 1 if reverse else s - 1
        lstm_step_backward(dhs[s], drec, dc, gates[s], cs[p] if 0 <= p < t else zeros, tcs[s],
                           want[s], one)
        _product(want[s], w_hh, drec)
    got, drec2 = np.empty_like(gates), dlast.copy()
    recurrent_loop.lstm_backward_loop(dhs, drec2, gates, cs, tcs, w_hh, _panels(w_hh), reverse,
                                      got, one)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(drec2, drec)


TORCH = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}


@pytest.mark.parametrize("cell", sorted(TORCH))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cores", [1, 2])
def test_a_float32_recurrent_layer_trains_as_pytorchs(cell, bidirectional, cores):
    """Outputs, loss and every gradient of a recurrent layer → Dense → cross-entropy against
    PyTorch's float32 model with the same parameters; the batch's rows in one part or two."""
    net = Network(recurrent_graph(cell, bidirectional, 48), seed=0, dtype=np.float32)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((13, 7, 5)).astype(np.float32)
    label = rng.integers(0, 3, (13, 7))

    def run():
        out = net.forward({"x": x, "label": label}, training=True)
        return np.array(out["rnn.seq"]), net.loss(), net.backward()
    seq, loss, grads = at_threads(cores, run)
    rnn = TORCH[cell](5, 48, batch_first=True, bidirectional=bidirectional)
    head = torch.nn.Linear(96 if bidirectional else 48, 3)
    params = {k: torch.from_numpy(np.array(v)).requires_grad_(True) for k, v in net.params.items()}
    want, _ = functional_call(rnn, {k.split(".", 1)[1]: v for k, v in params.items()
                                    if k.startswith("rnn.")}, (torch.from_numpy(x),))
    logits = functional_call(head, {"weight": params["head.weight"], "bias": params["head.bias"]},
                             (want,))
    tloss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3),
                                              torch.from_numpy(label).reshape(-1))
    tloss.backward()
    np.testing.assert_allclose(seq, want.detach().numpy(), rtol=1e-4, atol=2e-5)
    assert abs(loss - tloss.item()) < 1e-5
    for key, value in params.items():
        np.testing.assert_allclose(grads[key], value.grad.numpy(), rtol=1e-3, atol=2e-5,
                                   err_msg=key)


def test_a_nan_in_a_step_reaches_every_later_state():
    """The executor stops a NaN at the node that made it; inside the loop it must travel on, as
    numpy's tanh carries it (the clamp must not turn it into ±1)."""
    rng = np.random.default_rng(2)
    t, n, hsz = 6, 2, 8
    gates = rng.standard_normal((t, n, 4 * hsz)).astype(np.float32)
    gates[2, 1, 3] = np.nan
    w = np.ascontiguousarray(rng.standard_normal((hsz, 4 * hsz)).astype(np.float32) / 3)
    hs, cs, tcs = (np.empty((t, n, hsz), np.float32) for _ in range(3))
    recurrent_loop.lstm_forward_loop(gates, packed(w), hs, cs, tcs, False)
    assert np.isfinite(hs[:, 0]).all() and np.isfinite(hs[:2, 1]).all()
    assert np.isnan(hs[3:, 1]).all() and np.isnan(cs[2, 1, 3])
