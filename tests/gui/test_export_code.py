"""File > Export PyTorch Code writes the graph and its training settings as a runnable file."""
from layerloom.engine.serialize import load_project
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_export_pytorch_code_writes_the_open_graph_with_its_settings(window, tmp_path,
                                                                     monkeypatch):
    assert window.open_path(SAMPLES / "lenet5.json", ask=False)
    doc = window.document
    assert doc.edit_section("training", {"lr": 0.0125})
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "lenet"), ""))  # no suffix typed
    window.actions_by_name["export_code"].trigger()
    text = (tmp_path / "lenet.py").read_text()
    compile(text, "lenet.py", "exec")
    assert "self.conv1 = nn.Conv2d(1, 6, kernel_size=(5, 5)" in text
    assert "'lr': 0.0125," in text
    assert "python lenet.py --data DATA.npz" in window.statusBar().currentMessage()
    assert not (tmp_path / "lenet.weights.npz").exists()  # nothing trained yet
    from layerloom.engine.network import Network

    trained = Network(window.document.graph, seed=4)
    window.training.adopt_weights(trained.params)
    window.actions_by_name["export_code"].trigger()
    assert "--weights lenet.weights.npz" in window.statusBar().currentMessage()
    from layerloom.engine.export.weights import load_weights

    saved = load_weights(tmp_path / "lenet.weights.npz")
    assert set(saved) == set(trained.params)


def test_a_graph_torch_cannot_hold_is_refused_in_one_line_and_nothing_is_written(
        window, tmp_path, monkeypatch, dialogs):
    doc = window.document
    first = doc.add_node("Input", (0, 0), {"shape": [4]})
    dense = doc.add_node("Dense", (200, 0), {"out_features": 2})
    assert doc.connect((first, "y"), (dense, "x")) and doc.rename(dense, "train")
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "model.py"), ""))
    window.actions_by_name["export_code"].trigger()
    assert not (tmp_path / "model.py").exists()
    kind, title, text = dialogs.shown[-1]
    assert kind == "critical" and title == "Export PyTorch code"
    assert text.startswith("Cannot export: node 'train'") and "\n" not in text


def test_export_onnx_carries_the_trained_weights_or_says_they_are_fresh(window, tmp_path,
                                                                        monkeypatch):
    import numpy as np
    import pytest

    ort = pytest.importorskip("onnxruntime")
    from layerloom.engine.network import Network

    assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "spirals.onnx"), ""))
    window.actions_by_name["export_onnx"].trigger()
    assert "freshly initialised" in window.statusBar().currentMessage()
    trained = Network(window.document.graph, seed=7)
    monkeypatch.setattr(window.training.controller, "trained_network", lambda: trained)
    window.actions_by_name["export_onnx"].trigger()
    assert "the trained weights" in window.statusBar().currentMessage()
    session = ort.InferenceSession(str(tmp_path / "spirals.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((5, 2)).astype(np.float32)
    (got,) = session.run(None, {"points": x})
    want = trained.forward({"points": x, "label": np.zeros(5, np.int64)})
    np.testing.assert_allclose(got, want[session.get_outputs()[0].name], rtol=1e-4, atol=1e-5)


def test_import_onnx_opens_the_model_with_its_weights_as_an_unsaved_graph(window, tmp_path,
                                                                          monkeypatch, dialogs):
    import numpy as np
    import pytest

    pytest.importorskip("onnx")
    from layerloom.engine.export.onnx import onnx_bytes
    from layerloom.engine.graph import Graph
    from layerloom.engine.network import Network

    source = Network(load_project(SAMPLES / "lenet5.json").graph, seed=11)
    (tmp_path / "lenet.onnx").write_bytes(onnx_bytes(source))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(tmp_path / "lenet.onnx"), ""))
    assert window.actions_by_name["import_onnx"].trigger() is None
    doc = window.document
    assert doc.path is None and doc.dirty
    assert {"conv1", "fc3"} <= set(doc.graph.nodes) and "loss" not in doc.graph.nodes
    net = window.training.controller.trained_network()
    for key, value in source.params.items():
        np.testing.assert_array_equal(net.params[key], value)
    assert "Imported lenet.onnx" in window.statusBar().currentMessage()
    view = window.training.inference  # predictions without a Label: the first output's scores
    assert view.binding.label_id is None and view.binding.logits_ref == ("fc3", "y")
    assert view.prediction.text().startswith("<b>Prediction: ")
    assert view.probabilities is not None and abs(view.probabilities.sum() - 1) < 1e-9
    (tmp_path / "bad.onnx").write_bytes(b"not a model at all")
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(tmp_path / "bad.onnx"), ""))
    before = set(doc.graph.nodes)
    dialogs.answer = QMessageBox.Discard  # the unsaved import may go
    window.actions_by_name["import_onnx"].trigger()
    assert set(window.document.graph.nodes) == before  # nothing replaced
    kind, title, text = dialogs.shown[-1]
    assert (kind, title) == ("critical", "Import ONNX model")
    assert text.startswith("Cannot import bad.onnx: not a readable ONNX model")


def test_a_model_that_ends_in_softmax_shows_its_own_probabilities(window):
    import numpy as np

    from layerloom.engine.graph import Graph, Node
    from layerloom.engine.network import Network
    from layerloom.engine.serialize import Project

    graph = Graph()
    for node_id, type_id, attrs in [("image", "Input", {"shape": [1, 28, 28]}),
                                    ("flat", "Flatten", {}), ("fc", "Dense", {"out_features": 10}),
                                    ("probs", "Softmax", {})]:
        graph.add_node(Node(node_id, type_id, attrs))
    for a, b in [("image", "flat"), ("flat", "fc"), ("fc", "probs")]:
        graph.connect((a, "y"), (b, "x"))
    window.document.new_from(Project(graph))
    params = Network(graph, seed=2).params
    params["fc.weight"] *= 40  # confident scores: a second softmax would flatten them visibly
    window.training.adopt_weights(params)
    view = window.training.inference
    assert view.binding.logits_ref == ("probs", "y")
    np.testing.assert_allclose(view.probabilities, view.outputs["probs"][0], rtol=1e-6)
