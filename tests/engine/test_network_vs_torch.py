"""Whole graphs, not single layers: the executor's backward equals PyTorch autograd and finite
differences — gradients summed where a tensor fans out, frozen nodes skipped but passed through."""
import numpy as np
import pytest

from layerloom.engine.gradcheck import check_network
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS

torch = pytest.importorskip("torch")
F = torch.nn.functional


def build(nodes, edges) -> Graph:
    g = Graph()
    for node_id, type_id, attrs in nodes:
        g.add_node(Node(node_id, type_id, attrs))
    for src, dst in edges:
        g.connect(tuple(src.split(".")), tuple(dst.split(".")))
    return g


def fan_out_graph() -> Graph:
    """x -> fc1 -> tanh, which feeds two branches (b1 -> sigmoid, b2) that an Add joins again."""
    return build(
        [("x", "Input", {"shape": [5]}), ("t", "Label", {}),
         ("fc1", "Dense", {"out_features": 6}), ("act", "Tanh", {}),
         ("b1", "Dense", {"out_features": 6}), ("sig", "Sigmoid", {}),
         ("b2", "Dense", {"out_features": 6}), ("add", "Add", {}),
         ("head", "Dense", {"out_features": 3}), ("loss", "CrossEntropyLoss", {})],
        [("x.y", "fc1.x"), ("fc1.y", "act.x"), ("act.y", "b1.x"), ("act.y", "b2.x"),
         ("b1.y", "sig.x"), ("sig.y", "add.a"), ("b2.y", "add.b"), ("add.y", "head.x"),
         ("head.y", "loss.input"), ("t.y", "loss.target")])


def fan_out_torch(p, x, t):
    h = torch.tanh(F.linear(x, p["fc1.weight"], p["fc1.bias"]))
    s = torch.sigmoid(F.linear(h, p["b1.weight"], p["b1.bias"])) + F.linear(h, p["b2.weight"], p["b2.bias"])
    return F.cross_entropy(F.linear(s, p["head.weight"], p["head.bias"]), t)


def lenet_graph(batch_shape=(1, 28, 28)) -> Graph:
    return build(
        [("image", "Input", {"shape": list(batch_shape)}), ("label", "Label", {}),
         ("conv1", "Conv2D", {"out_channels": 6, "kernel_size": 5, "padding": 2}),
         ("relu1", "ReLU", {}), ("pool1", "MaxPool2D", {"kernel_size": 2}),
         ("conv2", "Conv2D", {"out_channels": 16, "kernel_size": 5}),
         ("relu2", "ReLU", {}), ("pool2", "MaxPool2D", {"kernel_size": 2}),
         ("flat", "Flatten", {}), ("fc1", "Dense", {"out_features": 120}), ("relu3", "ReLU", {}),
         ("fc2", "Dense", {"out_features": 84}), ("relu4", "ReLU", {}),
         ("fc3", "Dense", {"out_features": 10}), ("loss", "CrossEntropyLoss", {})],
        [("image.y", "conv1.x"), ("conv1.y", "relu1.x"), ("relu1.y", "pool1.x"),
         ("pool1.y", "conv2.x"), ("conv2.y", "relu2.x"), ("relu2.y", "pool2.x"),
         ("pool2.y", "flat.x"), ("flat.y", "fc1.x"), ("fc1.y", "relu3.x"), ("relu3.y", "fc2.x"),
         ("fc2.y", "relu4.x"), ("relu4.y", "fc3.x"), ("fc3.y", "loss.input"),
         ("label.y", "loss.target")])


def lenet_torch(p, x, t):
    h = F.max_pool2d(torch.relu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=2)), 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, p["conv2.weight"], p["conv2.bias"])), 2)
    h = torch.relu(F.linear(h.flatten(1), p["fc1.weight"], p["fc1.bias"]))
    h = torch.relu(F.linear(h, p["fc2.weight"], p["fc2.bias"]))
    return F.cross_entropy(F.linear(h, p["fc3.weight"], p["fc3.bias"]), t)


def compare_with_torch(graph, torch_loss, x, t):
    """Loss and every gradient of a float64 Network against autograd over the same weights."""
    net = Network(graph, seed=1, dtype=np.float64)
    net.forward({"x" if "x" in graph.nodes else "image": x, "t" if "t" in graph.nodes else "label": t},
                training=True)
    grads = net.backward()
    trainable = set(net.trainable_keys)
    tp = {k: torch.tensor(v, requires_grad=k in trainable) for k, v in net.params.items()}
    loss = torch_loss(tp, torch.tensor(x), torch.tensor(t))
    loss.backward()
    np.testing.assert_allclose(net.loss(), loss.item(), rtol=1e-10)
    assert set(grads) == trainable
    for key in trainable:
        np.testing.assert_allclose(grads[key], tp[key].grad.numpy(), rtol=1e-6, atol=1e-10,
                                   err_msg=key)
    return net, grads


def batch(shape, classes, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)), rng.integers(0, classes, n)


def test_fan_out_gradients_are_summed_like_pytorch():
    x, t = batch((5,), 3)
    net, grads = compare_with_torch(fan_out_graph(), fan_out_torch, x, t)
    assert set(grads) == {f"{n}.{p}" for n in ("fc1", "b1", "b2", "head") for p in ("weight", "bias")}


def test_frozen_node_gets_no_gradient_but_passes_one_through():
    g = fan_out_graph()
    g.set_frozen("b1", True)
    x, t = batch((5,), 3, seed=1)
    net, grads = compare_with_torch(g, fan_out_torch, x, t)
    assert "b1.weight" not in grads and "b1.bias" not in grads
    assert "b1.weight" in net.params  # frozen, not gone: its weights still shape the output
    # fc1 sits upstream of the frozen branch: its gradient still includes what flows through b1.
    g.set_frozen("b1", False)
    _, unfrozen = compare_with_torch(g, fan_out_torch, x, t)
    np.testing.assert_allclose(grads["fc1.weight"], unfrozen["fc1.weight"], rtol=1e-12)


def test_lenet5_loss_and_gradients_match_pytorch():
    x, t = batch((1, 28, 28), 10, n=5, seed=2)
    net, grads = compare_with_torch(lenet_graph(), lenet_torch, x, t)
    assert net.forward({"image": x, "label": t})["pool2"].shape == (5, 16, 5, 5)
    assert len(grads) == 10


def small_cnn() -> Graph:
    """Every CNN family in one small graph: conv, pooling, activations, dropout, split/concat."""
    return build(
        [("x", "Input", {"shape": [2, 7, 6]}), ("t", "Label", {}),
         ("conv", "Conv2D", {"out_channels": 4, "kernel_size": [3, 2], "padding": 1}),
         ("act", "GELU", {}), ("pool", "AvgPool2D", {"kernel_size": 2, "stride": 1}),
         ("split", "Split", {"dim": 1}), ("lrelu", "LeakyReLU", {"negative_slope": 0.2}),
         ("cat", "Concat", {"dim": 1}), ("mp", "MaxPool2D", {"kernel_size": 3, "stride": 2, "padding": 1}),
         ("flat", "Flatten", {}), ("drop", "Dropout", {"p": 0.25}),
         ("fc", "Dense", {"out_features": 3}), ("loss", "CrossEntropyLoss", {})],
        [("x.y", "conv.x"), ("conv.y", "act.x"), ("act.y", "pool.x"), ("pool.y", "split.x"),
         ("split.a", "lrelu.x"), ("lrelu.y", "cat.a"), ("split.b", "cat.b"), ("cat.y", "mp.x"),
         ("mp.y", "flat.x"), ("flat.y", "drop.x"), ("drop.y", "fc.x"), ("fc.y", "loss.input"),
         ("t.y", "loss.target")])


@pytest.mark.parametrize("make,shape", [(small_cnn, (2, 7, 6)), (fan_out_graph, (5,))])
def test_gradcheck_finds_no_mismatch_in_correct_graphs(make, shape):
    x, t = batch(shape, 3, n=4)
    assert check_network(make(), {"x": x, "t": t}, samples_per_param=6) == []


def test_gradcheck_reports_a_wrong_backward(monkeypatch):
    # A Tanh whose backward forgets the derivative: everything upstream of it is now wrong.
    monkeypatch.setattr(LAYERS["Tanh"], "backward", staticmethod(lambda a, p, ctx, dy: ((dy,), {})))
    x, t = batch((5,), 3, n=4)
    problems = check_network(fan_out_graph(), {"x": x, "t": t})
    assert problems and all(line.startswith("fc1.") for line in problems)
    assert "finite difference" in problems[0]
