"""File > Export PyTorch Code writes the graph and its training settings as a runnable file."""
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_export_pytorch_code_writes_the_open_graph_with_its_settings(window, tmp_path,
                                                                     monkeypatch):
    assert window.open_path(SAMPLES / "lenet5.json", ask=False)
    doc = window.document
    doc.set_section("training", dict(doc.project.training),
                    dict(doc.project.training, lr=0.0125))
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "lenet"), ""))  # no suffix typed
    window.actions_by_name["export_code"].trigger()
    text = (tmp_path / "lenet.py").read_text()
    compile(text, "lenet.py", "exec")
    assert "self.conv1 = nn.Conv2d(1, 6, kernel_size=(5, 5)" in text
    assert "'lr': 0.0125," in text
    assert "python lenet.py --data DATA.npz" in window.statusBar().currentMessage()


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
    from engine.network import Network

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
