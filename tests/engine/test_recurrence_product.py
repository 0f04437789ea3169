"""A recurrent layer's per-step product ``h @ W_hhᵀ`` runs as ``(W_hh @ hᵀ)ᵀ`` for large
weights and few rows (engine.layers.recurrent._Recurrence): the BLAS packs the weight the cheaper
way. Both arrangements must give the same outputs and gradients, and PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from layerloom.engine.layers import recurrent
from layerloom.engine.layers.recurrent import _Recurrence
from tests.engine.test_row_parts import run

CELLS = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}


def test_the_transposed_product_is_chosen_for_large_weights_and_few_rows():
    lstm_256, lstm_128 = np.zeros((1024, 256)), np.zeros((512, 128))
    assert _Recurrence(lstm_256, 32).transposed and _Recurrence(lstm_256, 64).transposed
    assert not _Recurrence(lstm_256, 128).transposed  # many rows: the product dominates
    assert not _Recurrence(lstm_128, 8).transposed  # a small weight: cheap to pack anyway
    assert _Recurrence(np.zeros((512, 512)), 16).transposed  # a 512-unit SimpleRNN


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
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_transposed_path_gives_the_plain_paths_outputs_and_gradients(
        cell, bidirectional, dtype, monkeypatch):
    plain_out, plain_grads = run(cell, bidirectional, dtype, None)
    seen = []
    monkeypatch.setattr(recurrent, "TRANSPOSED_MIN_WEIGHT", 0)  # every weight: the other way
    monkeypatch.setattr(_Recurrence, "__call__",
                        lambda self, h, call=_Recurrence.__call__: seen.append(self.transposed)
                        or call(self, h))
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
    x = rng.standard_normal((3, 4, 6))
    gate_rows = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[cell] * hidden
    assert _Recurrence(np.zeros((gate_rows, hidden)), len(x)).transposed
    seq = net.forward({"x": x})["rnn.seq"]
    module = CELLS[cell](6, hidden, batch_first=True).double()
    params = {k.split(".", 1)[1]: torch.from_numpy(np.array(v))
              for k, v in net.params.items() if k.startswith("rnn.")}
    want, _ = functional_call(module, params, (torch.from_numpy(x),))
    np.testing.assert_allclose(seq, want.detach().numpy(), rtol=1e-10, atol=1e-12)
