"""New and Open give every panel a clean slate, and the Data tab shows (and offers) whatever data
the graph names: images, files, text for language models, sequence tasks."""
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.test_window_training import open_sample, press_train

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def assert_clean(window) -> None:
    t = window.training
    plots, panel = t.plots, t.training_panel
    plots.flush()
    assert len(plots.loss_plot.loss) == 0 and plots.loss_plot.hint.isVisibleTo(plots.loss_plot)
    assert not plots.gradient_plot.curves and plots.gradient_plot.legend.topLevelItemCount() == 0
    assert not plots.histogram_plot.latest and plots.histogram_plot.chooser.count() == 0
    assert plots.confusion_view.matrix is None and not plots.confusion_view.caption.isVisibleTo(
        plots.confusion_view)
    assert plots.boundary_view.latest is None and plots.boundary_view.image.image is None
    assert not panel.result_label.isVisibleTo(panel) and panel.progress.format() == "idle"
    assert "epoch" not in panel.progress_label.text()
    assert t.inference.net is None and t.controller.last_done is None
    assert all(not item.warnings.get("gradient") and not item.alert
               for item in window.view.graph_scene.items_by_id.values())


@pytest.fixture
def trained(qtbot, window):
    """The window right after a finished spirals run: every plot drawn, a result on show."""
    open_sample(window, "mlp_spirals.json", max_steps=30)
    press_train(qtbot, window)
    plots = window.training.plots
    plots.flush()
    assert len(plots.loss_plot.loss) == 30 and plots.confusion_view.matrix is not None
    assert plots.boundary_view.latest is not None
    assert "Test accuracy" in window.training.training_panel.result_label.text()
    return window


def test_open_clears_every_panel_and_the_data_tab_shows_the_files_own_data(qtbot, trained):
    assert trained.open_path(SAMPLES / "char_lstm.json")
    assert_clean(trained)
    data = trained.training.dataset_panel
    assert data.kind == "text" and data.source.currentText() == "Text: bundled corpus"
    assert data.dataset is not None and "spirals" not in data.info.text()
    assert data.options["seq_len"].value() == 64


def test_new_clears_every_panel(qtbot, trained):
    assert trained.new_graph()
    assert_clean(trained)
    data = trained.training.dataset_panel
    assert data.dataset is None and "Press Load" in data.info.text()
    assert data.fit_label.text() == "" and "Test accuracy" not in trained.statusBar().currentMessage()


def test_the_data_tab_offers_sequence_tasks_and_text_files(qtbot, window, tmp_path):
    open_sample(window, "seq_classifier.json")
    data, doc = window.training.dataset_panel, window.document
    assert data.kind == "seq" and data.task.currentText() == "sorted" and data.task.isVisible()
    assert not data.path_box.isVisible()
    kinds = [data.source.itemData(i) for i in range(data.source.count())]
    for kind in ("bundled", "idx", "npz", "csv", "text", "text:", "seq", "spirals", "xor"):
        assert kind in kinds
    data.task.setCurrentText("parity")
    data.options["length"].setValue(8)
    data.options["n"].setValue(500)
    qtbot.mouseClick(data.load_button, Qt.LeftButton)
    assert doc.project.data["spec"] == "seq:parity?n=500"  # defaults are left out
    assert data.dataset.class_names == ["even", "odd"] and data.fit_ok
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    data.source.setCurrentIndex(data.source.findData("text:"))
    assert data.path_box.isVisible() and not data.task.isVisible()
    data.path.setText(str(corpus))
    data.options["seq_len"].setValue(16)
    assert data.load() is not None
    assert doc.project.data["spec"] == f"text:{corpus}?seq_len=16"
    assert data.dataset.name == "text:corpus.txt" and data.dataset.num_classes == len(set(corpus.read_text()))
