"""Winograd reads a convolution's zero padding in place (no padded copy of the input, and the
input gradient written unpadded): the same numbers, bit for bit, as padding a copy first, through
the layers that use it (Conv2D, Conv2D+ReLU, Conv2D+BatchNorm2d, Conv2D+ReLU+MaxPool2D), forward
in training and inference and every gradient, on sizes whose last tile row reaches past the image."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from layerloom.engine import fusion
from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv, conv_winograd_batch
from layerloom.engine.layers import conv as conv_layers
from layerloom.engine.network import Network

from .graph_cases import add_after


def _graph(h: int, w: int) -> Graph:
    g = Graph()
    add = partial(add_after, g)
    conv3 = lambda c, p=1: {"out_channels": c, "kernel_size": [3, 3], "padding": [p, p]}  # noqa: E731
    prev = add(None, "image", "Input", {"shape": [3, h, w]})
    prev = add(add(prev, "c0", "Conv2D", conv3(16)), "r0", "ReLU")  # 3 channels: no Winograd
    prev = add(add(prev, "c1", "Conv2D", conv3(16)), "r1", "ReLU")  # Conv2D+ReLU
    prev = add(prev, "c2", "Conv2D", conv3(24, 2))  # a plain Conv2D, padding 2
    prev = add(add(add(prev, "c3", "Conv2D", conv3(16)), "bn", "BatchNorm2d"), "r3", "ReLU")
    prev = add(add(prev, "c4", "Conv2D", conv3(16)), "r4", "ReLU")
    prev = add(prev, "pool", "MaxPool2D", {"kernel_size": [2, 2]})  # Conv2D+ReLU+MaxPool2D
    prev = add(add(prev, "flat", "Flatten"), "fc", "Dense", {"out_features": 3})
    add(None, "label", "Label")
    add(prev, "loss", "CrossEntropyLoss", port="input")
    g.connect(("label", "y"), ("loss", "target"))
    return g


def _run(h: int, w: int) -> list:
    """[training loss, every gradient by key, the inference output after two steps]."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3, h, w)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    net = Network(_graph(h, w), seed=3, dtype=np.float32)
    out = []
    for _ in range(2):
        net.forward({"image": x, "label": y}, training=True)
        grads = net.backward()
        out += [net.loss()] + [grads[k] for k in sorted(grads)]
        for k in grads:
            net.params[k] -= 0.01 * grads[k]
    return out + [net.forward({"image": x, "label": y}, training=False)["fc"]]


@pytest.mark.parametrize("h,w", [(12, 12), (13, 11), (9, 16)])
def test_reading_the_padding_in_place_equals_padding_a_copy_bit_for_bit(monkeypatch, h, w):
    used = []
    unpadded = conv_layers.conv_forward_unpadded
    monkeypatch.setattr(conv_layers, "conv_forward_unpadded",
                        lambda *a: used.append(1) or unpadded(*a))
    pooled = conv.winograd_forward_flat
    for module in (conv, conv_winograd_batch):  # the fused pool's call, and every other route's
        monkeypatch.setattr(module, "winograd_forward_flat",
                            lambda x, u, b, pitch, ph=0, pw=0, relu=False:
                            used.append(2 if ph else 0) or pooled(x, u, b, pitch, ph, pw, relu))
    in_place = _run(h, w)
    assert used.count(1) == 2 * 3 + 3  # c1, c2, c3 per training step, then in inference
    assert used.count(2) == 2 * 4 + 4  # those and the pooled c4
    used.clear()
    monkeypatch.setattr(conv_layers, "pad_free_route", lambda *a: "")
    monkeypatch.setattr(fusion, "pad_free_route", lambda *a, **k: "")
    copied = _run(h, w)
    assert used.count(0) == 2 * 4 + 4 and not used.count(2)  # Winograd still, on padded copies
    for a, b in zip(in_place, copied, strict=True):
        np.testing.assert_array_equal(a, b)
