"""Convolution, pooling and resampling settings beyond the registry's examples (which every
exporter and the importer round-trip, so they are kept few): each against PyTorch (forward and
every gradient, float64) and through the ONNX export into onnxruntime. Downscaling, fractional
and one-pixel resizes, signals resized to a size, output padding as large as the stride in 1-D.
"""
import numpy as np
import pytest

from layerloom.engine.export.onnx import onnx_bytes
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS
from layerloom.engine.spec import Ctx

from .oracles import ORACLES

torch = pytest.importorskip("torch")

CASES = [("Upsample", {"mode": "bilinear", "size": (2, 3)}, (2, 2, 5, 7)),
         ("Upsample", {"scale_factor": 1.5}, (2, 2, 4, 5)),
         ("Upsample", {"mode": "bilinear", "size": (1, 1), "align_corners": True}, (1, 2, 3, 3)),
         ("Upsample", {"mode": "linear", "size": (1, 9), "align_corners": True}, (2, 3, 4)),
         ("Upsample", {"size": (1, 7)}, (2, 3, 4)),
         ("ConvTranspose1d", {"out_channels": 2, "kernel_size": 2, "dilation": 3,
                              "output_padding": 2, "padding": 1}, (2, 2, 4)),
         ("AdaptiveAvgPool2d", {"output_size": (4, 3)}, (2, 2, 9, 7))]
IDS = [f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)]


@pytest.mark.parametrize("type_id,attrs,shape", CASES, ids=IDS)
def test_forward_and_gradients_match_pytorch(type_id, attrs, shape):
    cls = LAYERS[type_id]
    a = cls.validate_attrs(attrs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    params = {k: v + 0.1 * rng.standard_normal(v.shape)
              for k, v in cls.init(a, ((None, *shape[1:]),), rng).items()}
    ctx = Ctx(True, needs_input_grad=(True,))
    y = cls.forward(a, {k: v.copy() for k, v in params.items()}, ctx, x.copy())
    assert y.shape == tuple(len(x) if d is None else d for d in cls.infer(a, (None, *shape[1:])))
    tx = torch.tensor(x, requires_grad=True)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ty = ORACLES[type_id](a, tp, [tx], True)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-9)
    dy = rng.standard_normal(y.shape)
    (dx,), grads = cls.backward(a, params, ctx, dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-6, atol=1e-9)
    for name, t in tp.items():
        np.testing.assert_allclose(grads[name], t.grad.numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("type_id,attrs,shape", CASES, ids=IDS)
def test_the_onnx_export_computes_the_same_in_onnxruntime(type_id, attrs, shape):
    ort = pytest.importorskip("onnxruntime")
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": list(shape[1:])}))
    g.add_node(Node("node", type_id, attrs))
    g.connect(("x", "y"), ("node", "x"))
    net = Network(g, seed=0)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    session = ort.InferenceSession(onnx_bytes(net), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x})
    np.testing.assert_allclose(got, net.forward({"x": x})["node"], rtol=1e-4, atol=2e-5)


def test_a_mode_that_does_not_fit_the_input_says_which_does():
    from layerloom.engine.spec import ShapeError

    up = LAYERS["Upsample"]
    with pytest.raises(ShapeError, match="bilinear mode does not fit signals .* use linear"):
        up.infer(up.validate_attrs({"mode": "bilinear"}), (None, 3, 8))
    with pytest.raises(ShapeError, match="linear mode does not fit images .* use bilinear"):
        up.infer(up.validate_attrs({"mode": "linear"}), (None, 3, 8, 8))
    assert up.infer(up.validate_attrs({"size": (1, 20)}), (None, 3, 8)) == (None, 3, 20)
