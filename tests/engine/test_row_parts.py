"""Recurrent layers split the batch's rows over the engine's cores (engine.threads.run_row_parts):
outputs and gradients must not depend on how many parts ran."""
from __future__ import annotations

import numpy as np
import pytest

from layerloom.engine import threads
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.threads import engine_threads, row_parts, run_row_parts


def recurrent_graph(cell: str, bidirectional: bool, hidden: int = 12) -> Graph:
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [7, 5]}))
    g.add_node(Node("rnn", cell, {"hidden_size": hidden, "bidirectional": bidirectional}))
    g.add_node(Node("head", "Dense", {"out_features": 3}))
    g.add_node(Node("label", "Label", {"kind": "class index", "shape": [7]}))
    g.add_node(Node("loss", "CrossEntropyLoss", {}))
    g.connect(("x", "y"), ("rnn", "x"))
    g.connect(("rnn", "seq"), ("head", "x"))
    g.connect(("head", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return g


def run(cell: str, bidirectional: bool, dtype, cores: int | None):
    """(rnn's outputs, every gradient) of one training pass with the rows split over ``cores``
    (None: outside any engine_threads block, one part)."""
    net = Network(recurrent_graph(cell, bidirectional), seed=3, dtype=dtype)
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((13, 7, 5)), "label": rng.integers(0, 3, (13, 7))}
    if cores is None:
        out = net.forward(feed, training=True)
        grads = net.backward()
    else:
        threads.set_threads(cores)
        try:
            with engine_threads(blas=True):
                assert len(row_parts(13)) == min(cores, 13 // threads.MIN_ROWS)
                out = net.forward(feed, training=True)
                grads = net.backward()
        finally:
            threads.set_threads(threads.default_threads())
    return {k: np.array(out[k]) for k in ("rnn.seq", "rnn.last")}, grads


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_split_rows_give_the_unsplit_outputs_and_gradients(cell, bidirectional, dtype):
    ref_out, ref_grads = run(cell, bidirectional, dtype, None)
    for cores in (2, 3):
        out, grads = run(cell, bidirectional, dtype, cores)
        tol = 1e-12 if dtype == np.float64 else 2e-5
        for k in ref_out:
            np.testing.assert_allclose(out[k], ref_out[k], rtol=tol, atol=tol)
        assert set(grads) == set(ref_grads)
        for k in ref_grads:
            np.testing.assert_allclose(grads[k], ref_grads[k], rtol=tol, atol=tol, err_msg=k)


def test_row_parts_cover_every_row_once_and_leave_small_batches_whole():
    threads.set_threads(2)
    try:
        with engine_threads(blas=True):
            assert row_parts(9) == [(0, 4), (4, 9)]
            assert row_parts(threads.MIN_ROWS * 2 - 1) == [(0, threads.MIN_ROWS * 2 - 1)]
        assert row_parts(64) == [(0, 64)]  # outside an engine_threads block: one part
    finally:
        threads.set_threads(threads.default_threads())


def test_a_failing_part_raises_after_every_part_ended():
    ended = []

    def fn(lo, hi):
        if lo:
            raise ValueError("bad part")
        ended.append(lo)
        return lo

    with pytest.raises(ValueError, match="bad part"):
        run_row_parts(fn, [(0, 4), (4, 8)])
    assert ended == [0]
    assert run_row_parts(lambda lo, hi: hi - lo, [(0, 4), (4, 9)]) == [4, 5]


def transformer_graph() -> Graph:
    """A pre-norm block (LayerNorm is numba-parallel, so its BLAS runs on one thread) wide
    enough that its products are split over the cores."""
    g = Graph()
    nodes = [("x", "Input", {"shape": [32, 64]}), ("ln", "LayerNorm", {}),
             ("attn", "MultiHeadSelfAttention", {"embed_dim": 64, "num_heads": 4, "causal": True}),
             ("ff1", "Dense", {"out_features": 256}), ("gelu", "GELU", {}),
             ("ff2", "Dense", {"out_features": 64}), ("head", "Dense", {"out_features": 5})]
    for i, (node_id, type_id, attrs) in enumerate(nodes):
        g.add_node(Node(node_id, type_id, attrs))
        if i:
            g.connect((nodes[i - 1][0], "y"), (node_id, "x"))
    g.add_node(Node("label", "Label", {"kind": "class index", "shape": [32]}))
    g.add_node(Node("loss", "CrossEntropyLoss", {}))
    g.connect(("head", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_split_products_give_the_unsplit_outputs_and_gradients(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((16, 32, 64)), "label": rng.integers(0, 5, (16, 32))}
    results = []
    for cores in (None, 2):
        net = Network(transformer_graph(), seed=0, dtype=dtype)
        if cores is None:
            results.append((np.array(net.forward(feed, training=True)["head"]), net.backward()))
            continue
        threads.set_threads(cores)
        split = []
        monkeypatch.setattr(threads, "run_row_parts", lambda fn, parts: split.append(parts) or
                            [fn(*part) for part in parts])
        monkeypatch.setattr("layerloom.engine.kernels.dense.run_row_parts", threads.run_row_parts)
        try:
            with engine_threads(blas=False):
                results.append((np.array(net.forward(feed, training=True)["head"]),
                                net.backward()))
        finally:
            threads.set_threads(threads.default_threads())
        assert split and all(len(parts) == 2 for parts in split)
    (y0, g0), (y1, g1) = results
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y1, y0, rtol=tol, atol=tol)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=tol, atol=tol, err_msg=k)


def test_matmul_splits_rows_only_beside_a_one_thread_blas():
    from layerloom.engine.kernels.dense import matmul

    a, b = np.random.default_rng(2).standard_normal((2, 512, 256))
    threads.set_threads(2)
    try:
        with engine_threads(blas=False):
            assert threads.gemm_parts(512, 512 * 256 * 256) == [(0, 256), (256, 512)]
            np.testing.assert_allclose(matmul(a, b.T), a @ b.T, rtol=1e-13)
        with engine_threads(blas=True):  # the BLAS has the cores itself
            assert threads.gemm_parts(512, 512 * 256 * 256) == [(0, 512)]
        assert threads.gemm_parts(512, 512 * 256 * 256) == [(0, 512)]
    finally:
        threads.set_threads(threads.default_threads())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_adds_the_bias_in_each_row_part_as_after_the_product(dtype):
    from layerloom.engine.kernels.dense import matmul

    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal((512, 256)).astype(dtype) for _ in range(2))
    bias = rng.standard_normal(512).astype(dtype)
    got, plain = {}, {}
    try:
        for cores in (1, 2):
            threads.set_threads(cores)
            with engine_threads(blas=False):
                assert len(threads.gemm_parts(512, 512 * 256 * 512)) == cores
                got[cores] = matmul(a, b.T, bias)
                if cores == 1:  # the products alone, as one part and as the two halves
                    plain[1] = matmul(a, b.T)
                    plain[2] = np.concatenate([matmul(a[:256], b.T), matmul(a[256:], b.T)])
    finally:
        threads.set_threads(threads.default_threads())
    # the products themselves are the BLAS's or the tile kernel's: whether they equal numpy's
    # multi-threaded ``a @ b.T`` bit for bit depends on the machine's OpenBLAS (not on this code)
    np.testing.assert_array_equal(got[1], plain[1] + bias)
    np.testing.assert_array_equal(got[2], plain[2] + bias)
    np.testing.assert_allclose(got[1], a.astype(np.float64) @ b.T.astype(np.float64) + bias,
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_head_of_few_outputs_is_one_plain_product_on_any_cores(dtype, monkeypatch):
    """X · Wᵀ onto fewer than ``FEW_OUTPUTS`` columns (a classifier's head after a large
    flatten) runs as one plain product: the transposed arrangement and a split over the rows
    both ran slower there (64 × 32768 → 10: 1.23 and, on two cores, 1.28 ms against 1.10)."""
    from layerloom.engine.kernels import dense

    rng = np.random.default_rng(4)
    x, w = (rng.standard_normal((rows, 32768)).astype(dtype) for rows in (64, 10))
    assert dense.weight_first(64, w.T)  # a weight large enough for the transposed product,
    assert not dense.transposed(x, w.T)  # but onto 10 columns
    assert dense.transposed(x, np.zeros((64, 32768), dtype).T)  # onto 64 columns
    split = []
    monkeypatch.setattr(dense, "run_row_parts", lambda fn, parts: split.append(parts) or
                        [fn(*part) for part in parts])
    got = {}
    try:
        for cores in (1, 2):
            threads.set_threads(cores)
            with engine_threads(blas=False):
                got[cores] = dense.matmul(x, w.T)
                wide = dense.matmul(x, rng.standard_normal((32768, 64)).astype(dtype))
    finally:
        threads.set_threads(threads.default_threads())
    assert split == [[(0, 32), (32, 64)]]  # only the 64-column product, on two cores
    assert wide.shape == (64, 64)
    np.testing.assert_array_equal(got[2], got[1])
    tol = 2e-3 if dtype == np.float32 else 1e-10  # sums of 32768 terms of size ~1
    np.testing.assert_allclose(got[1], x @ w.T, rtol=tol, atol=tol)
