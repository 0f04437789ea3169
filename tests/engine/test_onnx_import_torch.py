"""PyTorch's own ONNX exports, at opset 17 and at opset 9, import and compute what PyTorch does,
train, and go back out through Layerloom's ONNX export to the same numbers in onnxruntime.

Every case in ``torch_modules`` is exported here by ``torch.onnx.export`` (the TorchScript
exporter, which writes the old opsets; an opset it cannot write a module in is skipped, saying
so). Old exports are upgraded on import by onnx's version converter, so opset 9 tests that path.
"""
import io
import warnings

import numpy as np
import pytest

from layerloom.engine.export.onnx import onnx_bytes
from layerloom.engine.export.onnx_import import read_onnx
from layerloom.engine.graph import Node
from layerloom.engine.network import Network

from .torch_modules import CASES

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
TOL = dict(rtol=2e-5, atol=2e-5)


def export(module, shape: tuple, opset: int) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, still exact
        try:
            torch.onnx.export(module, (torch.zeros(shape),), buffer, dynamo=False,
                              opset_version=opset, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        except Exception as err:  # noqa: BLE001 (the exporter's refusals have many types)
            pytest.skip(f"PyTorch cannot export this at opset {opset}: {type(err).__name__}")
    return buffer.getvalue()


def imported(name: str, opset: int):
    """(module, input, imported network, the node output the model's output became)."""
    factory, shape = next((f, s) for n, f, s in CASES if n == name)
    torch.manual_seed(0)
    module = factory()
    data = export(module, shape, opset)
    result = read_onnx(data)
    net = Network(result.graph, params=result.params)
    x = np.random.default_rng(1).standard_normal((3, *shape[1:])).astype(np.float32)
    return module, x, net, result


def output_key(net: Network, ref: tuple) -> str:
    node_id, port = ref
    return node_id if port == net.plan.step(node_id).outputs[0] else f"{node_id}.{port}"


@pytest.mark.parametrize("opset", [17, 9])
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_a_pytorch_export_imports_and_computes_what_pytorch_computes(name, opset):
    module, x, net, result = imported(name, opset)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = net.forward({"x": x})[output_key(net, result.outputs["y"])]
    np.testing.assert_allclose(got, want, **TOL, err_msg=f"{name} at opset {opset}")
    if result.graph.nodes[result.outputs["y"][0]].type == "Input":
        return  # the model computes nothing (Identity, Dropout in inference): nothing to export
    session = ort.InferenceSession(onnx_bytes(net), providers=["CPUExecutionProvider"])
    (again,) = session.run([output_key(net, result.outputs["y"])], {"x": x})
    np.testing.assert_allclose(again, want, **TOL, err_msg=f"{name} through Layerloom's export")


TRAINABLE = [c[0] for c in CASES if any(True for _ in c[1]().parameters())]


@pytest.mark.parametrize("name", TRAINABLE)
def test_an_imported_pytorch_model_trains(name):
    """With a target and an MSE loss added, one small gradient step lowers the loss: every
    imported parameter gets a finite gradient in PyTorch's layout."""
    module, x, net, result = imported(name, 17)
    g = result.graph
    out = result.outputs["y"]
    shape = list(net.plan.shapes.shapes[out][1:])
    g.add_node(Node("target", "Label", {"kind": "values", "shape": shape}))
    g.add_node(Node("loss", "MSELoss", {}))
    g.connect(out, ("loss", "input"))
    g.connect(("target", "y"), ("loss", "target"))
    net = Network(g, params=result.params, dtype=np.float64)
    feeds = {"x": x, "target": np.random.default_rng(2).standard_normal((len(x), *shape))}
    net.forward(feeds, training=True)
    before = net.loss()
    grads = net.backward()
    assert set(grads) == set(net.trainable_keys) and grads
    for key, grad in grads.items():
        assert grad.shape == net.params[key].shape and np.isfinite(grad).all(), key
        net.params[key] -= 1e-3 * grad
    net.forward(feeds, training=True)
    assert net.loss() < before
