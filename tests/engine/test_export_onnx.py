"""The ONNX export runs in onnxruntime and computes what Layerloom computes.

Every registered layer that has an inference graph (each example as a one-node graph) and every
sample graph is exported with its current parameters, checked by onnx, run in onnxruntime and
compared with ``Network.forward`` in float32.
"""
import numpy as np
import pytest

from layerloom.engine.export.onnx import onnx_bytes
from layerloom.engine.export.outputs import model_outputs
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import load_project

from .graph_cases import SAMPLES, one_node_graph, perturbed, sample_feeds

ort = pytest.importorskip("onnxruntime")

INFERENCE = sorted(t for t, c in LAYERS.items() if not c.is_source and not c.is_loss)
CASES = [(t, i) for t in INFERENCE for i in range(len(LAYERS[t].examples))]
TOL = dict(rtol=1e-4, atol=2e-5)


def run_onnx(net: Network, feeds: dict) -> dict:
    session = ort.InferenceSession(onnx_bytes(net), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {n: np.asarray(feeds[n], dtype=np.int64 if feeds[n].dtype.kind == "i"
                                           else np.float32) for n in names})
    return dict(zip([o.name for o in session.get_outputs()], got))


@pytest.mark.parametrize("type_id,case", CASES)
def test_every_layer_exports_to_onnx_that_computes_the_same(type_id, case):
    g, feeds = one_node_graph(type_id, case)
    net = perturbed(Network(g, seed=0))
    want = net.forward(feeds)
    got = run_onnx(net, feeds)
    ports = g.output_ports("node")
    expected = {"node": "node"} if len(ports) == 1 else {f"node.{p}": f"node.{p}" for p in ports}
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], want[name], **TOL, err_msg=f"{type_id} {name}")


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_every_sample_exports_to_onnx_and_gives_its_logits(sample):
    project = load_project(SAMPLES / sample)
    g = project.graph
    net = perturbed(Network(g, seed=0))
    feeds = sample_feeds(g, net, spec=project.data.get("spec"))
    want = net.forward(feeds)
    got = run_onnx(net, feeds)
    refs = model_outputs(net.plan)
    assert list(got) == [node for node, _ in refs]
    for node, _ in refs:
        np.testing.assert_allclose(got[node], want[node], **TOL, err_msg=f"{sample} {node}")


@pytest.mark.parametrize("sample", ["lenet5.json", "tiny_gpt.json"])
def test_parameters_are_initializers_under_their_weights_file_keys(sample):
    import onnx

    g = load_project(SAMPLES / sample).graph
    net = Network(g, seed=0)
    model = onnx.load_from_string(onnx_bytes(net))
    stored = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert set(net.params) <= set(stored)
    for key, value in net.params.items():
        np.testing.assert_array_equal(stored[key], value)
    inputs = [n.id for n in g.nodes.values() if n.type == "Input"]
    assert [i.name for i in model.graph.input] == inputs
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_batch_norm_keeps_its_parameters_and_statistics_under_their_keys():
    import onnx

    from layerloom.engine.graph import Graph, Node

    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [3, 4, 4]}))
    g.add_node(Node("bn", "BatchNorm2d", {}))
    g.connect(("x", "y"), ("bn", "x"))
    model = onnx.load_from_string(onnx_bytes(Network(g)))
    names = {i.name for i in model.graph.initializer}
    assert {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"} <= names


def test_layerloom_export_writes_an_onnx_model_with_the_given_weights(tmp_path, capsys):
    from layerloom.engine.cli import main

    g = load_project(SAMPLES / "mlp_spirals.json").graph
    trained = perturbed(Network(g, seed=0))
    trained.save_weights(tmp_path / "w.npz")
    out = tmp_path / "spirals.onnx"
    assert main(["export", str(SAMPLES / "mlp_spirals.json"), str(out),
                 "--weights", str(tmp_path / "w.npz")]) == 0
    assert "weights from" in capsys.readouterr().err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((4, 2)).astype(np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    want = trained.forward({session.get_inputs()[0].name: x, "label": np.zeros(4, np.int64)})
    np.testing.assert_allclose(got, want[session.get_outputs()[0].name], **TOL)
    assert main(["export", str(SAMPLES / "mlp_spirals.json"), str(out)]) == 0
    assert "freshly initialised" in capsys.readouterr().err
    assert main(["export", str(SAMPLES / "lenet5.json"), str(out),
                 "--weights", str(tmp_path / "w.npz")]) == 1  # another graph's weights
    assert capsys.readouterr().err.count("\n") == 1


def test_a_graph_that_computes_nothing_is_refused_in_one_line():
    from layerloom.engine.export.outputs import ExportError
    from layerloom.engine.graph import Graph, Node

    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [3]}))
    with pytest.raises(ExportError, match=r"^the graph computes nothing to export"):
        onnx_bytes(Network(g))
