"""The Explain tab's numbers are the network's own: the node's output is what forward returns, its
gradients are what backward gives, and dL/dY of one node is dL/dX of the next."""
from pathlib import Path

import numpy as np

from layerloom.engine.explain import dot_terms, explain_node, flops_per_sample, stats
from layerloom.engine.network import Network
from layerloom.engine.serialize import load_project

SPIRALS = Path(__file__).resolve().parents[2] / "samples" / "mlp_spirals.json"


def test_the_explained_numbers_are_forward_and_backward_own():
    graph = load_project(SPIRALS).graph
    rng = np.random.default_rng(0)
    feeds = {"points": rng.standard_normal((5, 2)).astype(np.float32),
             "label": np.array([0, 1, 2, 0, 1])}
    net = Network(graph, seed=0)
    out = net.forward(feeds, training=True)
    grads = net.backward()
    fc2 = explain_node(graph, "fc2", feeds, seed=0)
    tanh2 = explain_node(graph, "tanh2", feeds, seed=0)
    np.testing.assert_allclose(fc2.tensors["y"], out["fc2"], rtol=1e-6)
    np.testing.assert_allclose(fc2.tensors["dL/dweight"], grads["fc2.weight"], rtol=1e-5)
    np.testing.assert_allclose(fc2.tensors["dL/dbias"], grads["fc2.bias"], rtol=1e-5)
    np.testing.assert_allclose(fc2.tensors["x"], out["tanh1"], rtol=1e-6)
    np.testing.assert_allclose(fc2.tensors["dL/dy"], tanh2.tensors["dL/dx"], rtol=1e-6)
    assert fc2.loss == np.float32(net.loss())
    top, rest, bias = dot_terms(fc2.tensors["x"][0], fc2.tensors["weight"], fc2.tensors["bias"], 3)
    assert len(top) == 5 and abs(top[0][1] * top[0][2]) >= abs(top[-1][1] * top[-1][2])
    assert np.isclose(sum(w * x for _, w, x in top) + rest + bias, fc2.tensors["y"][0, 3],
                      rtol=1e-5)


def test_costs_and_statistics():
    assert flops_per_sample((64, 2), (64,)) == 2 * 64 * 2
    assert flops_per_sample((6, 1, 5, 5), (6, 24, 24)) == 2 * 150 * 576
    assert flops_per_sample(None, (6, 24, 24)) == 6 * 24 * 24
    s = stats(np.array([[3.0, -4.0]]))
    assert (s.min, s.max, s.mean, s.norm) == (-4.0, 3.0, -0.5, 5.0)
