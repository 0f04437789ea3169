"""The plan's fused steps equal the unfused reference: forward (every node), loss, every gradient.

float64 to 1e-10, float32 loosely; LeNet-5 and small graphs with odd sizes, a 3×3 / 2 pool, exact
ties, NaN, frozen nodes and activations a caller asks to keep. Fusion must not cross a node with
two readers, a frozen boundary, or attributes the fused kernel does not support.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.executor import NonFiniteError
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import load_project

LENET = Path(__file__).resolve().parents[2] / "samples" / "lenet5.json"
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


def chain(g: Graph, nodes: list[tuple]) -> None:
    """Add ``(id, type, attrs)`` nodes and connect each to the one before."""
    prev = None
    for node_id, type_id, attrs in nodes:
        g.add_node(Node(node_id, type_id, attrs))
        if prev is not None:
            g.connect((prev, "y"), (node_id, "x"))
        prev = node_id


def small_cnn(pool=None, act="ReLU", conv_stride=(1, 1), conv=None) -> Graph:
    """Odd image sizes, padding, an odd filter count, a 3×3 / 2 pool and a Dense → act chain."""
    g = Graph()
    chain(g, [("image", "Input", {"shape": [3, 11, 9]}),
              ("conv", "Conv2D", {"out_channels": 5, "kernel_size": [3, 2], "padding": [1, 0],
                                  "stride": list(conv_stride), **(conv or {})}),
              ("relu", "ReLU", {}),
              ("pool", "MaxPool2D", pool or {"kernel_size": [3, 3], "stride": [2, 2]}),
              ("flat", "Flatten", {}),
              ("fc1", "Dense", {"out_features": 7}),
              ("act", act, {}),
              ("fc2", "Dense", {"out_features": 4})])
    g.add_node(Node("label", "Label", {}))
    g.add_node(Node("loss", "CrossEntropyLoss", {}))
    g.connect(("fc2", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return g


def feeds(g: Graph, n=6, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    image = g.nodes["image"].attrs["shape"]
    return {"image": rng.standard_normal((n, *image)), "label": rng.integers(0, 4, n)}


def fused_ids(net: Network) -> set:
    return {m.node_id for s in net.executor.schedule for m in s.members}


def run(net: Network, inputs: dict, keep=None):
    out = net.forward(inputs, training=True, keep=keep)
    return {n: np.array(out[n]) for n in net.graph.nodes}, net.loss(), net.backward()


def assert_same(g: Graph, inputs: dict, dtype, keep=None, expect_fused=True) -> Network:
    fused, plain = Network(g, seed=3, dtype=dtype), Network(g, seed=3, dtype=dtype, fuse=False)
    assert bool(fused_ids(fused)) == expect_fused and not fused_ids(plain)
    (a_out, a_loss, a_grads), (b_out, b_loss, b_grads) = run(fused, inputs, keep), run(plain, inputs)
    for node_id in g.nodes:
        np.testing.assert_allclose(a_out[node_id], b_out[node_id], **TOL[dtype], err_msg=node_id)
    np.testing.assert_allclose(a_loss, b_loss, **TOL[dtype])
    assert set(a_grads) == set(b_grads) == set(fused.trainable_keys)
    for key in b_grads:
        assert a_grads[key].dtype == dtype
        np.testing.assert_allclose(a_grads[key], b_grads[key], **TOL[dtype], err_msg=key)
    return fused


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lenet5_fused_equals_unfused(dtype):
    g = load_project(LENET).graph
    rng = np.random.default_rng(0)
    inputs = {"image": rng.random((9, 1, 28, 28)), "label": rng.integers(0, 10, 9)}
    net = assert_same(g, inputs, dtype)
    groups = {s.node_id: [m.node_id for m in s.members] for s in net.executor.schedule if s.members}
    assert groups == {"pool1": ["conv1", "relu1", "pool1"], "pool2": ["conv2", "relu2", "pool2"],
                      "fc3": ["fc1", "relu3", "fc2", "relu4", "fc3"]}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act", ["ReLU", "Tanh", "Sigmoid", "GELU", "LeakyReLU"])
def test_small_graph_with_odd_sizes_and_overlapping_pool(dtype, act):
    g = small_cnn(act=act)
    net = assert_same(g, feeds(g), dtype)
    assert fused_ids(net) == {"conv", "relu", "pool", "fc1", "act", "fc2"}


def signal_cnn(filters: int, channels: int) -> Graph:
    """Conv1d → ReLU → MaxPool1d (overlapping windows) → Flatten → Dense, with a loss."""
    g = Graph()
    chain(g, [("image", "Input", {"shape": [channels, 30]}),
              ("conv", "Conv1d", {"out_channels": filters, "kernel_size": 5, "padding": 2}),
              ("relu", "ReLU", {}), ("pool", "MaxPool1d", {"kernel_size": 3, "stride": 2}),
              ("flat", "Flatten", {}), ("fc", "Dense", {"out_features": 4})])
    g.add_node(Node("label", "Label", {}))
    g.add_node(Node("loss", "CrossEntropyLoss", {}))
    g.connect(("fc", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("graph", ["1-D direct", "1-D products", "2-D products"])
def test_conv_chains_fuse_in_1d_and_with_matrix_product_backwards(dtype, graph):
    """Few filters keep the direct kernels; many taps and filters take conv_gemm_back's."""
    from layerloom.engine.kernels.conv_gemm_back import prefers_gemm_backward

    if graph.startswith("1-D"):
        filters, channels = (5, 3) if graph == "1-D direct" else (40, 12)
        g, shape = signal_cnn(filters, channels), (filters, channels, 1, 5)
    else:
        g = small_cnn(conv={"out_channels": 40})
        g.set_attr("image", "shape", (8, 11, 9))
        shape = (40, 8, 3, 2)
    assert prefers_gemm_backward(shape, 30) == (graph != "1-D direct")
    net = assert_same(g, feeds(g), dtype)
    assert {"conv", "relu", "pool"} <= fused_ids(net)


@pytest.mark.parametrize("pool", [{"kernel_size": [2, 2]}, {"kernel_size": [2, 3], "stride": [1, 2]}])
def test_exact_ties_go_where_the_unfused_pool_sends_them(pool):
    g = small_cnn(pool=pool)
    net = Network(g, seed=0, dtype=np.float64)
    params = {k: np.round(v * 4) for k, v in net.params.items()}  # small integers: many ties
    inputs = feeds(g)
    inputs["image"] = np.round(inputs["image"])
    fused, plain = Network(g, dtype=np.float64, params=params), Network(g, dtype=np.float64,
                                                                        params=params, fuse=False)
    (a, la, ga), (b, lb, gb) = run(fused, inputs), run(plain, inputs)
    assert fused_ids(fused) and np.any(b["relu"] == 0)
    np.testing.assert_array_equal(a["pool"], b["pool"])
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    for key in gb:
        np.testing.assert_allclose(ga[key], gb[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_nan_inside_a_fused_chain_names_its_first_node():
    g = load_project(LENET).graph
    rng = np.random.default_rng(1)
    inputs = {"image": rng.random((2, 1, 28, 28)), "label": rng.integers(0, 10, 2)}
    for fuse in (True, False):
        net = Network(g, seed=0, fuse=fuse)
        net.params["conv2.weight"][3, 2, 1, 1] = np.nan
        with pytest.raises(NonFiniteError) as err:
            net.forward(inputs, training=True)
        assert (err.value.node_id, err.value.phase) == ("conv2", "forward")
    inputs["image"][1, 0, 5, 7] = np.nan  # one sample's pixel: only that sample turns NaN
    fused, plain = Network(g, seed=0), Network(g, seed=0, fuse=False)
    a = fused.forward(inputs, check=False)
    b = plain.forward(inputs, check=False)
    for node_id in ("conv1", "relu1", "pool1", "pool2", "fc3"):
        np.testing.assert_array_equal(np.isnan(a[node_id]), np.isnan(b[node_id]), err_msg=node_id)
    assert np.isnan(a["fc3"][1]).all() and np.isfinite(a["fc3"][0]).all()


def test_nan_gradient_in_a_fused_chain_is_named():
    g = small_cnn()
    net = Network(g, seed=0, dtype=np.float64)
    net.params["fc2.weight"][0, 0] = np.inf  # forward: inf·x in the logits -> NaN in the loss
    with pytest.raises(NonFiniteError) as err:
        net.forward(feeds(g), training=True)
    assert err.value.node_id in ("fc2", "loss")
    for fuse in (True, False):  # a NaN weight met only by the backward of the fused Dense → act
        net = Network(g, seed=0, dtype=np.float64, fuse=fuse)
        net.forward(feeds(g), training=True)
        net.params["fc1.weight"][:] = np.nan
        with pytest.raises(NonFiniteError) as err:
            net.backward()
        assert (err.value.node_id, err.value.phase) == ("fc1", "backward")


@pytest.mark.parametrize("frozen", ["conv", "relu", "fc1"])
def test_fusion_never_crosses_a_frozen_boundary(frozen):
    g = small_cnn()
    g.set_frozen(frozen, True)
    net = assert_same(g, feeds(g), np.float64)
    groups = [{m.node_id for m in s.members} for s in net.executor.schedule if s.members]
    assert all(len({g.nodes[n].frozen for n in grp}) == 1 for grp in groups)
    if frozen != "relu":
        assert f"{frozen}.weight" not in net.trainable_keys


def test_all_frozen_chain_still_fuses_and_passes_the_gradient_through():
    g = small_cnn()
    for n in ("conv", "relu", "pool"):
        g.set_frozen(n, True)
    net = assert_same(g, feeds(g), np.float64)
    assert {"conv", "relu", "pool"} <= fused_ids(net) and "conv.weight" not in net.grads


def test_requested_activations_are_never_fused_away():
    g = load_project(LENET).graph
    rng = np.random.default_rng(2)
    inputs = {"image": rng.random((3, 1, 28, 28)), "label": rng.integers(0, 10, 3)}
    net = assert_same(g, inputs, np.float64, keep={"relu1", "fc1"})
    ran = {s.node_id for s in net.executor._ran if not s.members}
    assert {"conv1", "relu1", "fc1", "relu3"} <= ran and "conv2" not in ran
    every = net.forward(inputs, keep=set(g.nodes))
    assert not any(s.members for s in net.executor._ran) and set(every) >= set(g.nodes)


def test_inner_nodes_are_still_readable_after_a_fused_forward():
    g = load_project(LENET).graph
    x = {"image": np.random.default_rng(3).random((1, 1, 28, 28)), "label": np.zeros(1, np.int64)}
    fused, plain = Network(g, seed=4, dtype=np.float64), Network(g, seed=4, dtype=np.float64, fuse=False)
    a, b = fused.forward(x), plain.forward(x)
    for node_id in ("conv2", "relu2", "fc1", "conv1"):
        assert node_id in a
        # fused and plain kernels add in different orders: an entry that nearly cancels (~1e-4)
        # may differ by an ulp of its terms, hence the small atol beside the rtol
        np.testing.assert_allclose(a[node_id], b[node_id], rtol=1e-12, atol=1e-15, err_msg=node_id)
    assert a.get("nonexistent") is None and "nonexistent" not in a


UNFUSED_POOLS = {"pool_padding": {"padding": [1, 1]}, "pool_dilation": {"dilation": [2, 1]},
                 "pool_ceil_mode": {"ceil_mode": True}}
UNFUSED_CONVS = {"groups": {"out_channels": 6, "groups": 3}, "dilation": {"dilation": [1, 2]}}


@pytest.mark.parametrize("change", ["stride", "two_readers", "no_relu", *UNFUSED_POOLS,
                                    *UNFUSED_CONVS])
def test_unsupported_chains_stay_unfused(change):
    pool = {"kernel_size": [3, 3], "stride": [2, 2], **UNFUSED_POOLS[change]} \
        if change in UNFUSED_POOLS else None
    g = small_cnn(conv_stride=(2, 1) if change == "stride" else (1, 1), pool=pool,
                  conv=UNFUSED_CONVS.get(change))
    if change == "two_readers":  # relu's output also feeds a second pool
        g.add_node(Node("pool_b", "MaxPool2D", {}))
        g.connect(("relu", "y"), ("pool_b", "x"))
    if change == "no_relu":  # conv -> pool directly
        g.remove_node("relu")
        g.connect(("conv", "y"), ("pool", "x"))
    net = assert_same(g, feeds(g), np.float64)
    # the pool stays out (the conv + pool kernel refuses these); conv → ReLU alone may fuse
    conv_relu = set() if change == "no_relu" else {"conv", "relu"}
    assert fused_ids(net) == {"fc1", "act", "fc2"} | conv_relu
    assert "Conv2D+ReLU+MaxPool2D" not in {s.layer.type_id for s in net.executor.schedule}


def test_training_holds_the_blas_to_one_thread_while_it_runs():
    """One thread pool at a time (engine.threads): inside a run the BLAS has one thread."""
    from threadpoolctl import threadpool_info

    from layerloom.engine.data import Dataset, Split
    from layerloom.engine.training import StepReport, TrainConfig, train

    g = small_cnn()
    x, y = feeds(g, n=40)["image"], feeds(g, n=40)["label"]
    data = Dataset("blobs", Split(x, y), Split(x[:8], y[:8]), Split(x[:8], y[:8]))
    run_ = train(Network(g, seed=0), data, TrainConfig(max_steps=2, batch_size=8))
    assert isinstance(next(run_), StepReport)
    assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    list(run_)


def test_a_graph_without_parallel_kernels_gives_the_cores_to_the_blas():
    import numba
    from threadpoolctl import threadpool_info

    from layerloom.engine.threads import blas_only, engine_threads, get_threads

    layers = lambda *names: [LAYERS[n] for n in names]  # noqa: E731
    assert blas_only(layers("Input", "Dense", "ReLU"))
    assert not blas_only(layers("Input", "Dense", "LSTM"))  # its rows split over the cores
    assert not blas_only(layers("Dense", "Conv2D"))
    assert not blas_only(layers("Dense", "LayerNorm"))  # its kernels are numba-parallel too
    assert not blas_only(layers("Conv1d")) and not blas_only(layers("ConvTranspose2d", "Dense"))
    assert not blas_only(layers("MaxPool1d")) and blas_only(layers("Upsample", "ZeroPad2d", "Dense"))
    with engine_threads(blas=True):
        assert numba.get_num_threads() == 1
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(n == min(get_threads(), os.cpu_count()) for n in blas)


# ------------------------------------------------------------------------------ Dense chains
def mlp(in_shape=(6,)) -> Graph:
    """Dense → ReLU → Dense → Dense (no activation between) → Tanh → Dense, MSE to values."""
    g = Graph()
    chain(g, [("image", "Input", {"shape": list(in_shape)}),
              ("fc1", "Dense", {"out_features": 5}), ("relu", "ReLU", {}),
              ("fc2", "Dense", {"out_features": 4, "bias": False}),
              ("fc3", "Dense", {"out_features": 3}), ("tanh", "Tanh", {}),
              ("fc4", "Dense", {"out_features": 2})])
    g.add_node(Node("label", "Label", {"kind": "values", "shape": [*in_shape[:-1], 2]}))
    g.add_node(Node("loss", "MSELoss", {}))
    g.connect(("fc4", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return g


def mlp_feeds(g: Graph, n: int, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    shape = g.nodes["image"].attrs["shape"]
    return {"image": rng.standard_normal((n, *shape)),
            "label": rng.standard_normal((n, *shape[:-1], 2))}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, in_shape", [(1, (6,)), (7, (6,)), (2, (3, 6)), (1, (1, 6))])
def test_a_dense_chain_equals_its_nodes_at_one_row_and_many(dtype, n, in_shape):
    """One row takes the compiled matrix-vector pass, several the BLAS; (N, T, D) runs as rows."""
    g = mlp(in_shape)
    net = assert_same(g, mlp_feeds(g, n), dtype)
    groups = [[m.node_id for m in s.members] for s in net.executor.schedule if s.members]
    assert groups == [["fc1", "relu", "fc2", "fc3", "tanh", "fc4"]]


@pytest.mark.parametrize("bad", ["fc1", "fc2", "fc3", "fc4"])
def test_a_nan_weight_met_only_by_the_backward_is_named_at_its_own_dense_node(bad):
    """The chain replays its members' backward from the saved values to name the right node.
    fc1's weight is not used by the backward at all (its input needs no gradient)."""
    g = mlp()
    for fuse in (True, False):
        net = Network(g, seed=0, dtype=np.float64, fuse=fuse)
        net.forward(mlp_feeds(g, 3), training=True)
        net.params[f"{bad}.weight"][:] = np.nan
        if bad == "fc1":
            assert all(np.isfinite(v).all() for v in net.backward().values())
            continue
        with pytest.raises(NonFiniteError) as err:
            net.backward()
        assert (err.value.node_id, err.value.phase) == (bad, "backward")


@pytest.mark.parametrize("split", ["frozen", "kept", "two_readers"])
def test_a_dense_chain_stops_where_a_node_must_stay_visible_or_frozen(split):
    g = mlp()
    keep = None
    if split == "frozen":
        for n in ("fc3", "tanh", "fc4"):
            g.set_frozen(n, True)
    elif split == "kept":
        keep = {"fc2"}
    else:  # fc2's output also feeds a second head
        g.add_node(Node("side", "ReLU", {}))
        g.connect(("fc2", "y"), ("side", "x"))
    net = assert_same(g, mlp_feeds(g, 4), np.float64, keep=keep)
    ran = net.executor._ran
    groups = [[m.node_id for m in s.members] for s in ran if s.members]
    assert groups == [["fc1", "relu", "fc2"], ["fc3", "tanh", "fc4"]]


ACTIVATION_TYPES = sorted(t for t, cls in LAYERS.items() if cls.category == "Activation")


@pytest.mark.parametrize("type_id", ACTIVATION_TYPES)
def test_a_dense_chain_absorbs_exactly_the_activations_that_declare_it(type_id):
    """``fusable_activation`` on the layer class is the whole rule: no list elsewhere."""
    g = small_cnn(act=type_id)
    if type_id == "GLU":
        g.set_attr("fc1", "out_features", 8)  # GLU halves its dim: it needs an even width
    net = assert_same(g, feeds(g), np.float64)
    assert ("act" in fused_ids(net)) == LAYERS[type_id].fusable_activation
    assert ("fc1" in fused_ids(net)) == LAYERS[type_id].fusable_activation  # Dense → act → Dense


@pytest.mark.parametrize("type_id", [t for t in ACTIVATION_TYPES if LAYERS[t].fusable_activation])
def test_a_fusable_activation_is_element_wise(type_id):
    """What the Dense chain assumes of an activation it absorbs: one input, one output, no
    parameters, the shape kept."""
    cls = LAYERS[type_id]
    a = cls.validate_attrs({})
    assert (cls.inputs, cls.outputs) == (("x",), ("y",))
    assert cls.infer(a, (5, 7)) == (5, 7) and not cls.init(a, [(5, 7)], np.random.default_rng())
