"""Wide 3×3 convolutions over small maps (128 → 128 on 8×8) run Winograd forward but the matrix
products backward (``conv_winograd_plan.winograd_backward_pays``): through a network (the plain
Conv2D+ReLU, the fused Conv2D+ReLU+MaxPool2D) and the padded entry point, the gradients equal
float64's to float32 precision."""
from functools import partial

import numpy as np

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv
from layerloom.engine.kernels import conv_winograd_plan as plan
from layerloom.engine.network import Network

from .graph_cases import add_after


def _graph() -> Graph:
    g = Graph()
    add = partial(add_after, g)
    conv3 = lambda c: {"out_channels": c, "kernel_size": [3, 3], "padding": [1, 1]}  # noqa: E731
    prev = add(None, "image", "Input", {"shape": [3, 8, 8]})
    prev = add(add(prev, "c0", "Conv2D", conv3(64)), "r0", "ReLU")  # 3 channels: no Winograd
    prev = add(add(prev, "c1", "Conv2D", conv3(128)), "r1", "ReLU")  # 64 → 128: Winograd's
    prev = add(add(prev, "c2", "Conv2D", conv3(128)), "r2", "ReLU")  # 128 → 128: the products
    prev = add(add(prev, "c3", "Conv2D", conv3(128)), "r3", "ReLU")
    prev = add(prev, "pool", "MaxPool2D", {"kernel_size": [2, 2]})  # fused, pooled products
    prev = add(add(prev, "flat", "Flatten"), "fc", "Dense", {"out_features": 3})
    add(None, "label", "Label")
    add(prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    return g


def _grads(dtype) -> dict:
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 3, 8, 8)), rng.integers(0, 3, 3)
    net = Network(_graph(), seed=2, dtype=dtype)
    net.forward({"image": x.astype(dtype), "label": y}, training=True)
    return net.backward()


def _rel(got, want) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def test_the_rule_sends_only_wide_small_convolutions_to_the_products():
    assert not plan.winograd_backward_pays((128, 128, 3, 3), 8, 8)
    assert not plan.winograd_backward_pays((128, 128, 3, 3), 16, 16)
    assert plan.winograd_backward_pays((128, 64, 3, 3), 8, 8)  # 8192 pairs: Winograd still
    assert plan.winograd_backward_pays((256, 32, 3, 3), 8, 8)  # few channels
    assert plan.winograd_backward_pays((128, 128, 3, 3), 32, 32)  # a large map


def test_a_network_gets_float64_gradients_through_the_products(monkeypatch):
    calls = []
    for name in ("gemm_backward_flat", "gemm_backward_pooled", "winograd_backward"):
        kernel = getattr(conv, name)
        monkeypatch.setattr(conv, name, lambda *a, _k=kernel, _n=name, **k:
                            calls.append(_n) or _k(*a, **k))
    got = _grads(np.float32)
    assert calls == ["gemm_backward_pooled", "gemm_backward_flat", "winograd_backward",
                     "gemm_backward_flat"]  # c3 (pooled), c2, c1 (64 → 128), c0 (3 channels)
    want = _grads(np.float64)
    for key in want:
        assert _rel(got[key], want[key]) < 1e-4, key


def test_the_padded_entry_point_takes_the_products_too():
    rng = np.random.default_rng(3)
    xp, w = rng.standard_normal((2, 128, 10, 10)), rng.standard_normal((128, 128, 3, 3)) * 0.05
    dy = rng.standard_normal((2, 128, 8, 8))
    dxp, dw, db = conv.conv_backward(xp.astype(np.float32), w.astype(np.float32),
                                     dy.astype(np.float32), (1, 1))
    assert _rel(dxp, conv.conv2d_input_grad_reference(dy, w, 10, 10, 1, 1)) < 1e-5
    assert _rel(dw, conv.conv2d_weight_grad_reference(xp, dy, 3, 3, 1, 1)) < 1e-5
    assert _rel(db, dy.sum(axis=(0, 2, 3))) < 1e-5
