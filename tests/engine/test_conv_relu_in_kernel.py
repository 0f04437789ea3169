"""A ReLU after a convolution runs inside the convolution's kernel (Winograd clips each chunk of
its output while it is in cache, the matrix-product path each sample as it copies it into the
image): the same bits as the convolution's output through ``np.maximum``, NaN and −0 kept, for
Conv2D+ReLU and the folded Conv2D+BatchNorm2d+ReLU of inference, on the Winograd path
(16 channels in, float32) and on the matrix products (3 in: a float64 stem; a float32 one runs
the packed direct kernel, the ReLU after it)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv, conv_winograd_batch
from layerloom.engine.network import Network

from .graph_cases import add_after


def _graph(c_in: int, bn: bool, relu: bool) -> Graph:
    g = Graph()
    add = partial(add_after, g)
    prev = add(None, "image", "Input", {"shape": [c_in, 13, 11]})
    prev = add(prev, "c", "Conv2D", {"out_channels": 32, "kernel_size": [3, 3],
                                     "padding": [1, 1], "bias": not bn})
    if bn:
        prev = add(prev, "bn", "BatchNorm2d")
    if relu:
        add(prev, "r", "ReLU")
    return g


@pytest.mark.parametrize("c_in,dtype", [(3, np.float32), (3, np.float64), (16, np.float32)])
@pytest.mark.parametrize("bn", [False, True])
def test_relu_in_the_convolution_kernel_equals_maximum_of_its_output(monkeypatch, c_in, dtype,
                                                                     bn):
    calls, stem = [], []
    forward, image = conv.winograd_forward_flat, conv.gemm_forward_image
    monkeypatch.setattr(conv_winograd_batch, "winograd_forward_flat",  # every unpooled route's
                        lambda *a: calls.append(a) or forward(*a))
    monkeypatch.setattr(conv, "gemm_forward_image", lambda *a: stem.append(a[3]) or image(*a))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, c_in, 13, 11)).astype(dtype)
    x[1, 0, 4, 5] = np.nan  # spreads over the tiles it touches; those outputs stay NaN
    fused, plain = (Network(_graph(c_in, bn, relu), seed=1, dtype=dtype) for relu in (True, False))
    if bn:  # running statistics away from (0, 1), so the folding has something to fold
        stats = {"bn.running_mean": rng.standard_normal(32),
                 "bn.running_var": rng.uniform(0.5, 2.0, 32), "bn.weight": rng.standard_normal(32)}
        for net in (fused, plain):
            for key, value in stats.items():
                net.params[key][:] = value
    assert len(fused.executor.schedule) == 2  # the input and one fused step
    y = fused.forward({"image": x}, check=False)["r"]
    z = plain.forward({"image": x}, check=False)["bn" if bn else "c"]
    assert np.isnan(y).any() and (z < 0).any()
    np.testing.assert_array_equal(y, np.maximum(z, 0))
    assert np.array_equal(np.signbit(y), np.signbit(np.maximum(z, 0)))
    assert [a[6] for a in calls] == ([True, False] if c_in == 16 else [])  # in the kernel
    assert stem == ([True, False] if dtype == np.float64 else [])  # float32: conv.packed_direct
