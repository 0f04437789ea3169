"""``x @ wᵀ`` runs as ``(w @ xᵀ)ᵀ`` for large weights and few rows (engine.kernels.dense
.weight_first): Dense layers through ``matmul``, a float64 recurrent layer's per-step
``h @ W_hhᵀ`` (engine.layers.recurrent._Recurrence; float32's runs against a weight packed once,
kernels.packed). The BLAS packs the weight the cheaper way. Both arrangements must give the
same outputs and gradients, and PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from layerloom.engine.kernels import dense
from layerloom.engine.layers.recurrent import _Recurrence
from tests.engine.test_row_parts import run

CELLS = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}


def test_the_transposed_product_is_chosen_for_large_weights_and_few_rows():
    lstm_256, lstm_128 = np.zeros((1024, 256)), np.zeros((512, 128))
    assert _Recurrence(lstm_256, 32).transposed and _Recurrence(lstm_256, 64).transposed
    assert not _Recurrence(lstm_256, 128).transposed  # many rows: the product dominates
    assert not _Recurrence(lstm_128, 8).transposed  # a small weight: cheap to pack anyway
    assert _Recurrence(np.zeros((512, 512)), 16).transposed  # a 512-unit SimpleRNN
    assert not _Recurrence(lstm_256, 2).transposed  # one or two rows: the BLAS's fast paths


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_arrangements_give_the_same_product(dtype):
    rng = np.random.default_rng(1)
    w, h = rng.standard_normal((24, 10)).astype(dtype), rng.standard_normal((5, 10)).astype(dtype)
    for transposed in (False, True):
        r = _Recurrence(w, len(h))
        assert r.transposed is False  # small: then forced both ways below
        r.transposed = transposed
        r.w = np.ascontiguousarray(w if transposed else w.T)
        r.out = np.empty((24, 5) if transposed else (5, 24), dtype)
        first = r(h).copy()
        assert first.shape == (5, 24)
        np.testing.assert_allclose(first, h @ w.T, rtol=1e-12 if dtype == np.float64 else 1e-5)
        np.testing.assert_array_equal(r(h), first)  # the buffer is reused, the result the same


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("dtype", [np.float64])
def test_the_transposed_path_gives_the_plain_paths_outputs_and_gradients(
        cell, bidirectional, dtype, monkeypatch):
    plain_out, plain_grads = run(cell, bidirectional, dtype, None)
    seen = []
    monkeypatch.setattr(dense, "WEIGHT_FIRST_MIN", 0)  # every weight: the other way
    init = _Recurrence.__init__

    def spy(self, w, rows):  # the arrangement each direction's loop is handed
        init(self, w, rows)
        seen.append(self.transposed)
    monkeypatch.setattr(_Recurrence, "__init__", spy)
    for cores in (None, 2):
        out, grads = run(cell, bidirectional, dtype, cores)
        tol = 1e-12 if dtype == np.float64 else 2e-5
        for k in plain_out:
            np.testing.assert_allclose(out[k], plain_out[k], rtol=tol, atol=tol)
        for k in plain_grads:
            np.testing.assert_allclose(grads[k], plain_grads[k], rtol=tol, atol=tol)
    assert seen and all(seen)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_layer_large_enough_for_the_rule_matches_pytorch(cell):
    """At its real size (no patching): a 256-unit LSTM, a 296-unit GRU, a 512-unit RNN."""
    from layerloom.engine.graph import Graph, Node
    from layerloom.engine.network import Network

    hidden = {"LSTM": 256, "GRU": 296, "SimpleRNN": 512}[cell]
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [4, 6]}))
    g.add_node(Node("rnn", cell, {"hidden_size": hidden}))
    g.connect(("x", "y"), ("rnn", "x"))
    net = Network(g, seed=0, dtype=np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4, 6))
    gate_rows = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[cell] * hidden
    assert _Recurrence(np.zeros((gate_rows, hidden)), len(x)).transposed
    seq = net.forward({"x": x})["rnn.seq"]
    module = CELLS[cell](6, hidden, batch_first=True).double()
    params = {k.split(".", 1)[1]: torch.from_numpy(np.array(v))
              for k, v in net.params.items() if k.startswith("rnn.")}
    want, _ = functional_call(module, params, (torch.from_numpy(x),))
    np.testing.assert_allclose(seq, want.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_the_rule_wants_a_large_transposed_weight_and_few_rows():
    w = np.zeros((512, 512))
    assert dense.weight_first(128, w.T) and dense.weight_first(1, w.T)
    assert not dense.weight_first(129, w.T)  # many rows: the product dominates
    assert not dense.weight_first(64, w)  # not a transposed view: packed the cheap way already
    assert not dense.weight_first(64, np.zeros((256, 256)).T)  # small: cheap to pack anyway


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [1, 16, 128, 200])
def test_matmul_gives_the_plain_product_either_way(dtype, rows, monkeypatch):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((rows, 300)).astype(dtype)
    w, bias = rng.standard_normal((900, 300)).astype(dtype), rng.standard_normal(900).astype(dtype)
    assert dense.weight_first(rows, w.T) == (rows <= 128)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for b in (None, bias):
        got = dense.matmul(a, w.T, b)
        assert got.shape == (rows, 900) and got.flags.c_contiguous and got.dtype == dtype
        want = a.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    monkeypatch.setattr(dense, "gemm_parts", lambda m, macs: [(0, m // 3), (m // 3, m)])
    np.testing.assert_allclose(dense.matmul(a, w.T, bias), got, rtol=tol, atol=tol)


def test_a_dense_layer_large_enough_for_the_rule_matches_pytorch(monkeypatch):
    """A 600 -> 500 Dense (and its ReLU-fused form) at 32 rows, gradients included, float64."""
    from tests.engine.test_network_vs_torch import compare_with_torch
    from layerloom.engine.graph import Graph, Node

    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [600]}))
    g.add_node(Node("fc", "Dense", {"out_features": 500}))
    g.add_node(Node("act", "ReLU", {}))
    g.add_node(Node("out", "Dense", {"out_features": 4}))
    g.add_node(Node("label", "Label", {}))
    g.add_node(Node("loss", "CrossEntropyLoss", {}))
    for e in ((("x", "y"), ("fc", "x")), (("fc", "y"), ("act", "x")),
              (("act", "y"), ("out", "x")), (("out", "y"), ("loss", "input")),
              (("label", "y"), ("loss", "target"))):
        g.connect(*e)
    taken, rule = [], dense.weight_first
    monkeypatch.setattr(dense, "weight_first", lambda rows, b, max_rows=128: taken.append(
        rule(rows, b, max_rows)) or taken[-1])
    rng = np.random.default_rng(4)
    F = torch.nn.functional
    compare_with_torch(g, lambda p, x, t: F.cross_entropy(F.linear(torch.relu(F.linear(
        x, p["fc.weight"], p["fc.bias"])), p["out.weight"], p["out.bias"]), t),
        rng.standard_normal((32, 600)), rng.integers(0, 4, 32))
    assert True in taken  # the 600 -> 500 product went weight first
