"""ResNet-style graphs run fused (Conv2D → BatchNorm2d → ReLU, folded into one convolution in
inference; BatchNorm → ReLU; Conv2D → BatchNorm2d → residual Add → ReLU, a 1×1's shortcut added
in its products' pass; residual Add → ReLU) exactly as unfused: every node's output, the
loss, every gradient and the running statistics, in float64 and float32, training and inference;
and the BatchNorm / ReLU kernels equal their numpy twins.
"""
import numpy as np
import pytest

from layerloom.engine.graph import Graph, Node
from layerloom.engine.kernels.batchnorm import (batch_norm_backward, batch_norm_backward_reference,
                                                batch_norm_forward, batch_norm_forward_reference,
                                                batch_norm_inference)
from layerloom.engine.kernels.relu import (add_relu, add_relu_reference, relu_mask_grad,
                                           relu_mask_grad_reference)
from layerloom.engine.network import Network

from .graph_cases import add_after

FUSED = {"Conv2D+BatchNorm2d", "BatchNorm+ReLU", "Conv2D+BatchNorm2d+Add+ReLU"}
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}




def resnet(c=6, kernel=3, stride=1, groups=1, size=(9, 7), bn=None) -> Graph:
    """A stem conv → BN → ReLU, one residual block (conv → BN → ReLU → conv → BN, + the stem's
    output, ReLU), global pooling and a classifier: odd sizes, no bias, optional stride/groups."""
    g = Graph()
    conv = {"out_channels": c, "kernel_size": [kernel, kernel], "padding": [kernel // 2] * 2,
            "bias": False}
    prev = add_after(g, None, "image", "Input", {"shape": [3, *size]})
    prev = add_after(g, add_after(g, prev, "in_bn", "BatchNorm2d", bn), "in_relu", "ReLU")  # BN → ReLU
    prev = add_after(g, prev, "stem", "Conv2D", {**conv, "stride": [stride, stride]})
    prev = add_after(g, add_after(g, prev, "stem_bn", "BatchNorm2d", bn), "stem_relu", "ReLU")
    inner = add_after(g, prev, "c1", "Conv2D", {**conv, "groups": groups})
    inner = add_after(g, add_after(g, inner, "bn1", "BatchNorm2d", bn), "relu1", "ReLU")
    inner = add_after(g, add_after(g, inner, "c2", "Conv2D", conv), "bn2", "BatchNorm2d", bn)
    add = add_after(g, inner, "add", "Add", port="a")
    g.connect((prev, "y"), ("add", "b"))
    prev = add_after(g, add_after(g, add, "relu2", "ReLU"), "gap", "AdaptiveAvgPool2d")
    prev = add_after(g, add_after(g, prev, "flat", "Flatten"), "fc", "Dense", {"out_features": 4})
    add_after(g, None, "label", "Label")
    add_after(g, prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    return g


def feeds(g: Graph, n=5, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    shape = g.nodes["image"].attrs["shape"]
    return {"image": 2.0 + 3.0 * rng.standard_normal((n, *shape)), "label": rng.integers(0, 4, n)}


def fused_types(net: Network) -> set:
    return {s.layer.type_id for s in net.executor.schedule if s.members}


def check_same(g: Graph, dtype, training: bool = True, steps: int = 2, expect=FUSED) -> Network:
    fused, plain = Network(g, seed=3, dtype=dtype), Network(g, seed=3, dtype=dtype, fuse=False)
    assert fused_types(fused) == expect and not fused_types(plain)
    for step in range(steps):  # the second step starts from updated running statistics
        inputs = feeds(g, seed=step)
        a_out = fused.forward(inputs, training=training)
        b_out = plain.forward(inputs, training=training)
        for node_id in g.nodes:
            np.testing.assert_allclose(a_out[node_id], b_out[node_id], **TOL[dtype],
                                       err_msg=node_id)
        np.testing.assert_allclose(fused.loss(), plain.loss(), **TOL[dtype])
        a_grads, b_grads = fused.backward(), plain.backward()
        assert set(a_grads) == set(b_grads) == set(fused.trainable_keys)
        for key in b_grads:
            assert a_grads[key].dtype == dtype
            np.testing.assert_allclose(a_grads[key], b_grads[key], **TOL[dtype], err_msg=key)
        for key in fused.params:
            np.testing.assert_allclose(fused.params[key], plain.params[key], **TOL[dtype],
                                       err_msg=key)
    return fused


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [dict(), dict(kernel=5, stride=2), dict(kernel=1),
                                   dict(groups=2, size=(8, 8)), dict(c=3, stride=2, size=(6, 5)),
                                   dict(c=32, size=(4, 5))])  # the last: small maps on im2col
def test_resnet_fused_equals_unfused_training(dtype, shape):
    check_same(resnet(**shape), dtype)


def vgg(kernel=3, stride=1, padding=1, groups=1, bias=True) -> Graph:
    """Conv2D → ReLU (no pool after it: the Conv2D+ReLU step), Conv2D → ReLU → MaxPool2D, a
    classifier; odd sizes."""
    g = Graph()
    prev = add_after(g, None, "image", "Input", {"shape": [4, 11, 9]})
    conv = {"kernel_size": [kernel, kernel], "stride": [stride, stride],
            "padding": [padding, padding], "bias": bias}
    prev = add_after(g, prev, "c1", "Conv2D", {**conv, "out_channels": 6, "groups": groups})
    prev = add_after(g, add_after(g, prev, "r1", "ReLU"), "c2", "Conv2D", {"out_channels": 5,
                                                              "kernel_size": [3, 3]})
    prev = add_after(g, add_after(g, prev, "r2", "ReLU"), "pool", "MaxPool2D", {"kernel_size": [2, 2]})
    prev = add_after(g, add_after(g, prev, "flat", "Flatten"), "fc", "Dense", {"out_features": 4})
    add_after(g, None, "label", "Label")
    add_after(g, prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("conv", [dict(), dict(kernel=5, stride=2, padding=2),
                                  dict(stride=2, padding=0, bias=False), dict(groups=2),
                                  dict(kernel=1, padding=0)])
def test_conv_relu_fused_equals_unfused(dtype, conv):
    check_same(vgg(**conv), dtype, expect={"Conv2D+ReLU", "Conv2D+ReLU+MaxPool2D"})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bn", [{}, {"affine": False}, {"track_running_stats": False},
                                {"momentum": 0.5, "eps": 1e-3}])
def test_resnet_fused_equals_unfused_inference(dtype, bn):
    g = resnet(bn=bn)
    fused, plain = Network(g, seed=1, dtype=dtype), Network(g, seed=1, dtype=dtype, fuse=False)
    for net in (fused, plain):  # move the running statistics away from 0 and 1 first
        net.forward(feeds(g), training=True)
    a_out, b_out = fused.forward(feeds(g, seed=7)), plain.forward(feeds(g, seed=7))
    for node_id in g.nodes:
        np.testing.assert_allclose(a_out[node_id], b_out[node_id], **TOL[dtype], err_msg=node_id)
    a_grads, b_grads = fused.backward(), plain.backward()  # replays the folded convolutions
    for key in b_grads:
        np.testing.assert_allclose(a_grads[key], b_grads[key], **TOL[dtype], err_msg=key)


def test_inference_folds_batch_norm_into_the_convolution():
    """In inference a Conv2D → BatchNorm2d → ReLU step runs one convolution (with the folded
    weights) and no normalisation kernel; in training it normalises with the batch's statistics."""
    g = resnet()
    net = Network(g, seed=0)
    net.forward(feeds(g), training=True)
    step = next(s for s in net.executor.schedule if s.layer.type_id == "Conv2D+BatchNorm2d")
    assert net.executor.ctxs[step.node_id].saved[0] is not None
    net.forward(feeds(g))
    assert net.executor.ctxs[step.node_id].saved[0] is None


def test_nodes_asked_for_run_as_steps_of_their_own():
    g = resnet()
    net = Network(g, seed=0)
    out = net.forward(feeds(g), training=True, keep={"bn1", "relu2", "in_relu"})
    ran = {s.node_id for s in net.executor._ran if not s.members}
    assert {"bn1", "relu2", "in_relu"} <= ran
    plain = Network(g, seed=0, fuse=False).forward(feeds(g), training=True)
    np.testing.assert_allclose(out["bn1"], plain["bn1"], rtol=1e-5, atol=1e-6)


def test_add_relu_fuses_only_same_shapes_and_a_single_reader():
    g = resnet()
    g.add_node(Node("peek", "ReLU", {}))  # a second reader of the Add: it must stay visible
    g.connect(("add", "y"), ("peek", "x"))
    net = Network(g, seed=0)
    assert fused_types(net) == FUSED - {"Conv2D+BatchNorm2d+Add+ReLU"}  # nor the whole end
    bcast = Graph()
    add_after(bcast, None, "x", "Input", {"shape": [2, 3, 3]})
    add_after(bcast, None, "b", "Input", {"shape": [2, 1, 1]})
    add_after(bcast, "x", "add", "Add", port="a")
    bcast.connect(("b", "y"), ("add", "b"))
    add_after(bcast, "add", "relu", "ReLU")
    assert not fused_types(Network(bcast, seed=0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_kernels_equal_their_twins(dtype, relu, affine):
    rng = np.random.default_rng(0)
    x = (5.0 + rng.standard_normal((4, 3, 10))).astype(dtype)
    x[1, 2, 3] = np.nan if relu else x[1, 2, 3]  # NaN stays NaN through the fused ReLU
    w = rng.standard_normal(3).astype(dtype) if affine else np.zeros(0, dtype)
    b = rng.standard_normal(3).astype(dtype) if affine else np.zeros(0, dtype)
    y, mean, var, inv_std = batch_norm_forward(x, w, b, 1e-5, relu)
    y_ref, mean_ref, var_ref = batch_norm_forward_reference(x, w, b, 1e-5, relu)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    np.testing.assert_allclose(mean, mean_ref, **TOL[dtype])
    np.testing.assert_allclose(var, var_ref, **TOL[dtype])
    x = np.nan_to_num(x)
    y, mean, var, inv_std = batch_norm_forward(x, w, b, 1e-5, relu)
    dy = rng.standard_normal(x.shape).astype(dtype)
    for batch_stats in (True, False):
        got = batch_norm_backward(x, y, dy, mean, inv_std, w, batch_stats, relu, True)
        want = batch_norm_backward_reference(x, y, dy, mean, inv_std, w, batch_stats, relu)
        for a, b_ in zip(got, want):
            np.testing.assert_allclose(a, b_, **TOL[dtype])
    fixed = batch_norm_inference(x, w, b, mean, inv_std, relu)
    np.testing.assert_allclose(fixed, y, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_kernels_equal_their_twins(dtype):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((3, 70001)).astype(dtype) for _ in range(2))  # several chunks
    a[0, 5] = np.nan
    np.testing.assert_array_equal(add_relu(a, b), add_relu_reference(a, b))
    out = add_relu(a, b)
    np.testing.assert_array_equal(relu_mask_grad(b, out), relu_mask_grad_reference(b, out))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size,c", [((9, 8), 6), ((4, 5), 32)])  # 72 outputs (wide), 20
def test_a_1x1_blocks_end_adds_the_shortcut_in_its_products_pass(monkeypatch, dtype, size, c):
    """In inference a 1×1 Conv2D → BatchNorm2d → Add → ReLU on the BLAS's route is one call of
    ``pointwise_forward`` with the shortcut (no Add + ReLU pass): bit for bit the folded
    convolution, then the Add and the ReLU as nodes of their own; the unfused nodes to rounding
    (the folding's); its backward replays the unfolded pair."""
    from layerloom.engine import fusion_residual

    calls, real = [], fusion_residual.pointwise_forward
    monkeypatch.setattr(fusion_residual, "pointwise_forward",
                        lambda *a, **k: calls.append(k["residual"].shape) or real(*a, **k))
    g = resnet(c=c, kernel=1, size=size)
    fused, plain = Network(g, seed=1, dtype=dtype), Network(g, seed=1, dtype=dtype, fuse=False)
    assert "Conv2D+BatchNorm2d+Add+ReLU" in fused_types(fused)
    for net in (fused, plain):
        net.forward(feeds(g), training=True)
    calls.clear()
    a_out, b_out = fused.forward(feeds(g, seed=7)), plain.forward(feeds(g, seed=7))
    assert calls == [(5, c, *size)]
    assert np.array_equal(a_out["relu2"], fused.forward(feeds(g, seed=7), keep={"add"})["relu2"])
    a_out = fused.forward(feeds(g, seed=7))
    for node_id in g.nodes:  # the members (the Add's too) replayed through the unfused layers
        np.testing.assert_allclose(a_out[node_id], b_out[node_id], **TOL[dtype], err_msg=node_id)
    a_grads, b_grads = fused.backward(), plain.backward()
    for key in b_grads:
        np.testing.assert_allclose(a_grads[key], b_grads[key], **TOL[dtype], err_msg=key)


def test_a_kept_node_leaves_the_residual_add_its_own_step():
    """Asking for the block's BatchNorm keeps it visible: the Add → ReLU runs as Add+ReLU, and
    the values are the same (to the folding's rounding: the kept BatchNorm runs on its own)."""
    g = resnet()
    net = Network(g, seed=2)
    schedule = net.executor.plan.schedule({"bn2"})
    types = {s.layer.type_id for s in schedule if s.members}
    assert "Add+ReLU" in types and "Conv2D+BatchNorm2d+Add+ReLU" not in types
    kept = net.forward(feeds(g), keep={"bn2"})["relu2"]
    np.testing.assert_allclose(kept, net.forward(feeds(g))["relu2"], **TOL[np.float32])
