"""A stride-1 convolution that runs as matrix products (a float64 3×3 stem over RGB into 32
filters) writes its image directly, each sample copied out of its flat rows on its own core: the
same bits as the flat rows cut by ``flat_to_image``, C-contiguous, so the next layer copies
nothing. In float32 the same stem runs the direct kernel on the packed tile kernel instead
(``conv.packed_direct``)."""
from __future__ import annotations

import numpy as np
import pytest

from layerloom.engine.graph import Graph
from layerloom.engine.kernels import conv
from layerloom.engine.kernels.conv_gemm import flat_to_image, gemm_forward_flat
from layerloom.engine.network import Network

from .graph_cases import add_after


@pytest.mark.parametrize("h,w", [(32, 32), (13, 9)])
def test_a_stem_convolution_writes_its_image_as_the_flat_rows_cut(monkeypatch, h, w):
    calls = []
    image = conv.gemm_forward_image
    monkeypatch.setattr(conv, "gemm_forward_image", lambda *a: calls.append(1) or image(*a))
    g = Graph()
    prev = add_after(g, None, "image", "Input", {"shape": [3, h, w]})
    add_after(g, prev, "c", "Conv2D", {"out_channels": 32, "kernel_size": [3, 3],
                                       "padding": [1, 1]})
    net = Network(g, seed=4, dtype=np.float64)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, h, w))
    net.params["c.bias"][:] = rng.standard_normal(32)
    y = net.forward({"image": x})["c"]
    assert calls == [1] and y.flags.c_contiguous and y.shape == (6, 32, h, w)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    flat = gemm_forward_flat(xp, net.params["c.weight"], net.params["c.bias"])
    np.testing.assert_array_equal(y, flat_to_image(flat, h, w, w + 2))
    want = conv.conv2d_forward_reference(xp.astype(np.float64), net.params["c.weight"].astype(
        np.float64), net.params["c.bias"].astype(np.float64), 1, 1)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    calls.clear()  # float32: the direct kernel, to float32 rounding
    net32 = Network(g, seed=4)
    net32.params["c.weight"][:], net32.params["c.bias"][:] = (net.params["c.weight"],
                                                               net.params["c.bias"])
    y32 = net32.forward({"image": x.astype(np.float32)})["c"]
    assert calls == [] and y32.dtype == np.float32 and y32.shape == (6, 32, h, w)
    np.testing.assert_allclose(y32, want, rtol=1e-5, atol=1e-5)
