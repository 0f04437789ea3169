"""ONNX models come in as graphs with their weights: Layerloom's own exports round-trip, a
PyTorch export computes what PyTorch computes, anything else is refused in one line."""
import warnings

import numpy as np
import pytest

from layerloom.engine.export.onnx import onnx_bytes
from layerloom.engine.export.onnx_import import OnnxImportError, graph_from_onnx, read_onnx
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import load_project

from .graph_cases import SAMPLES, one_node_graph, perturbed, sample_feeds

pytest.importorskip("onnx")

INFERENCE = sorted(t for t, c in LAYERS.items() if not c.is_source and not c.is_loss)
CASES = [(t, i) for t in INFERENCE for i in range(len(LAYERS[t].examples))]
# Exported as operators the reader does not take apart again (recurrences, attention, batch norm
# over the batch's own statistics).
NOT_READ = {"LSTM", "GRU", "SimpleRNN", "MultiHeadSelfAttention", "MultiHeadAttention"}
# Exported as ONNX operators that read back as other layers computing the same: a composition
# (SiLU is Sigmoid then Multiply), a shared operator (Clamp and Hardtanh are both Clip), or nothing
# at all (a Squeeze of a dim that is not 1, Dropout in inference); a Chunk in two is a Split; an
# adaptive pool is a plain pool when its windows are equal, matrix products (Dense) when not.
READ_AS_OTHERS = {"Clamp", "Permute", "Squeeze", "InstanceNorm2d", "Dropout", "Chunk",
                  "PositionalEmbedding",  # the rows its steps use: a Parameter, then Add
                  "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d",
                  "AdaptiveMaxPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool3d"}
TOL = dict(rtol=1e-5, atol=1e-6)


def round_trip(net: Network, feeds: dict) -> tuple[Network, dict, dict]:
    graph, params = graph_from_onnx(onnx_bytes(net))
    back = Network(graph, params=params)
    inputs = {k: v for k, v in feeds.items() if k in graph.nodes}
    return back, net.forward(feeds), back.forward(inputs)


@pytest.mark.parametrize("type_id,case", CASES)
def test_every_layer_layerloom_exports_reads_back_or_is_refused_in_one_line(type_id, case):
    g, feeds = one_node_graph(type_id, case)
    net = perturbed(Network(g, seed=0))
    tracks = LAYERS[type_id].examples[case].attrs.get("track_running_stats", True)
    if type_id in NOT_READ or not tracks:
        with pytest.raises(OnnxImportError) as err:
            graph_from_onnx(onnx_bytes(net))
        assert str(err.value).startswith("cannot read ONNX operator ")
        assert "\n" not in str(err.value)
        return
    result = read_onnx(onnx_bytes(net))
    back = Network(result.graph, params=result.params)
    want = net.forward(feeds)
    got = back.forward({k: v for k, v in feeds.items() if k in result.graph.nodes})
    ports = g.output_ports("node")
    names = ["node"] if len(ports) == 1 else [f"node.{p}" for p in ports]
    assert set(result.outputs) == set(names)
    for name in names:
        node_id, port = result.outputs[name]
        key = node_id if port == back.plan.step(node_id).outputs[0] else f"{node_id}.{port}"
        np.testing.assert_allclose(got[key], want[name], **TOL, err_msg=f"{type_id} {name}")
    types = {n.type for n in result.graph.nodes.values()}
    assert type_id in types or type_id in READ_AS_OTHERS, f"{type_id} came back as {types}"


@pytest.mark.parametrize("sample", ["lenet5.json", "mlp_spirals.json"])
def test_a_sample_round_trips_with_its_ids_and_weights(sample):
    g = load_project(SAMPLES / sample).graph
    net = perturbed(Network(g, seed=0))
    back, want, got = round_trip(net, sample_feeds(g, net))
    trained = {k for k in net.params}
    assert trained == set(back.params)  # the same node ids hold the same parameters
    for key in trained:
        np.testing.assert_array_equal(back.params[key], net.params[key])
    logits = [n for n in g.nodes if g.nodes[n].type == "Dense"][-1]
    np.testing.assert_allclose(got[logits], want[logits], **TOL)


def test_a_pytorch_export_computes_what_pytorch_computes():
    torch = pytest.importorskip("torch")
    import io

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Dropout(0.3),
        torch.nn.Linear(4 * 7 * 7, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5),
        torch.nn.Softmax(dim=1)).eval()
    with torch.no_grad():  # running statistics away from 0 and 1
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, still exact
        torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), buffer, dynamo=False,
                          do_constant_folding=False, input_names=["image"],
                          dynamic_axes={"image": {0: "batch"}})
    graph, params = graph_from_onnx(buffer.getvalue())
    net = Network(graph, params=params)
    x = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    out = net.forward({"image": x})
    last = graph.topological_order()[-1]
    np.testing.assert_allclose(out[last], want, **TOL)
    assert [graph.nodes[n].type for n in graph.topological_order()][:4] == [
        "Input", "Conv2D", "BatchNorm2d", "ReLU"]


def test_a_file_that_is_not_onnx_or_holds_an_unknown_operator_is_refused_in_one_line():
    from onnx import TensorProto, helper

    with pytest.raises(OnnxImportError, match=r"^not a readable ONNX model"):
        graph_from_onnx(b"\x00\x01 certainly not protobuf \xff" * 3)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    model = helper.make_model(helper.make_graph([helper.make_node("Cos", ["x"], ["y"], name="c")],
                                                "g", [x], [y]))
    with pytest.raises(OnnxImportError) as err:
        graph_from_onnx(model.SerializeToString())
    assert str(err.value).startswith("cannot read ONNX operator Cos (node 'c'): no Layerloom "
                                     "layer computes it (Layerloom reads Abs, Add")
    assert "\n" not in str(err.value)


def test_layerloom_import_writes_the_graph_and_its_weights_beside_it(tmp_path, capsys):
    from layerloom.engine.cli import main

    g = load_project(SAMPLES / "lenet5.json").graph
    source = perturbed(Network(g, seed=0))
    (tmp_path / "lenet.onnx").write_bytes(onnx_bytes(source))
    out = tmp_path / "imported.json"
    assert main(["import", str(tmp_path / "lenet.onnx"), str(out)]) == 0
    assert "imported.weights.npz" in capsys.readouterr().err
    back = Network(load_project(out).graph)
    back.load_weights(tmp_path / "imported.weights.npz")
    x = np.random.default_rng(3).random((2, 1, 28, 28)).astype(np.float32)
    want = source.forward({"image": x, "label": np.zeros(2, np.int64)})["fc3"]
    np.testing.assert_allclose(back.forward({"image": x})["fc3"], want, **TOL)
    assert main(["import", str(tmp_path / "missing.onnx"), str(out)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_a_malformed_node_is_refused_in_one_line_not_raised_as_is():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 4, 4])
    conv = helper.make_node("Conv", ["x"], ["y"], name="bare")  # no weight at all
    model = helper.make_model(helper.make_graph([conv], "g", [x], [y]))
    with pytest.raises(OnnxImportError) as err:
        graph_from_onnx(model.SerializeToString())
    text = str(err.value)  # the onnx checker refuses it before any node is read
    assert "\n" not in text and "Conv" in text and "bare" in text and "input size 1" in text
