"""Training from the main window that ``layerloom`` opens: the docks, the panel's widgets, the
canvas overlays, weights files and Save/Open with weights, all through the real window."""
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from layerloom.engine.training import bind
from layerloom.gui.training import controller as ctl
from layerloom.gui.training.session import weights_path
from tests.gui.test_training_harness import TickProbe

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def open_sample(window, name: str, **settings):
    """Open a sample, then set the training settings through the panel's own widgets."""
    assert window.open_path(SAMPLES / name, ask=False)
    panel = window.training.training_panel
    for widget_name, value in settings.items():
        widget = getattr(panel, widget_name)
        if widget_name == "optimizer":
            widget.setCurrentIndex(widget.findData(value))
        else:
            widget.setValue(value)
    return panel


def click_node(window, node_id: str) -> None:
    """A left click on the node's header, as the person does it."""
    view, item = window.view, window.view.graph_scene.items_by_id[node_id]
    view.ensureVisible(item)
    point = view.mapFromScene(item.scenePos() + QPointF(item.width / 2, item.header_h / 2))
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, point)


def press_train(qtbot, window, signal=None, timeout=60_000):
    c = window.training.controller
    with qtbot.waitSignal(signal or c.finished, timeout=timeout) as blocker:
        qtbot.mouseClick(window.training.training_panel.train_button, Qt.LeftButton)
    return blocker.args[0]


def predictions(net, split):
    b = bind(net)
    net.forward({b.input_id: split.x, b.label_id: split.y})
    return net.executor.values[b.logits_ref].copy()


def test_the_training_docks_are_in_the_window_and_listed_under_view_panels(window):
    t = window.training
    docks = {"Data": t.dataset_dock, "Training": t.training_dock, "Plots": t.plots_dock,
             "Inference": t.inference_dock}
    titles = [a.text() for a in window.panels_menu.actions()]
    assert all(title in titles for title in docks)
    assert window.dockWidgetArea(t.plots_dock) == Qt.BottomDockWidgetArea
    assert t.inference_dock in window.tabifiedDockWidgets(t.plots_dock)
    assert t.dataset_dock in window.tabifiedDockWidgets(window.palette_dock)
    assert window.dockWidgetArea(t.training_dock) == Qt.RightDockWidgetArea
    canvas = window.view.size()
    assert canvas.width() > 0.45 * window.width() and canvas.height() > 0.4 * window.height()


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_every_sample_fits_a_1280x720_screen(window, sample):
    """No panel's minimum (the Data tab's options for paired sequences were 700 px tall) may
    push the window past a laptop screen."""
    window.resize(1280, 720)
    assert window.open_path(SAMPLES / sample, ask=False)
    assert window.minimumSizeHint().height() <= 720 and window.minimumSizeHint().width() <= 1280


def test_the_plots_follow_the_theme(window):
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    plots = window.training.plots
    view, legend = plots.gradient_plot.view, plots.loss_plot.legend

    def legend_text_lightness() -> int:  # the legend is a label above the plot: palette text
        QApplication.processEvents()  # the palette reaches widgets through posted events
        return legend.palette().color(QPalette.WindowText).lightness()
    window.set_theme("dark")
    try:
        assert view.backgroundBrush().color().lightness() < 128
        assert legend_text_lightness() > 128  # light text on the dark panel
        plots.confusion_view.set_matrix(np.eye(3, dtype=int) * 4, ["a", "b", "c"], 1.0)
        low = plots.confusion_view.image.lut[0]
        assert QColor(*low[:3]).lightness() < 128  # empty cells in the panel's dark
    finally:
        window.set_theme("light")
    assert view.backgroundBrush().color().lightness() > 128
    assert legend_text_lightness() < 128
    low = plots.confusion_view.image.lut[0]  # drawn in the dark, redrawn in the light
    assert QColor(*low[:3]).lightness() > 128


def test_training_the_spirals_mlp_from_the_window(qtbot, window):
    panel = open_sample(window, "mlp_spirals.json", max_steps=400)
    doc, c, plots = window.document, window.training.controller, window.training.plots
    assert doc.project.training["max_steps"] == 400 and doc.dirty
    doc.undo()
    assert "max_steps" not in doc.project.training and panel.max_steps.value() == 0
    doc.redo()
    assert panel.max_steps.value() == 400
    assert doc.set_frozen("fc1", True)
    click_node(window, "fc2")
    probe = TickProbe(c)
    with qtbot.waitSignal(c.finished, timeout=60_000) as blocker:
        with qtbot.waitSignal(c.steps, timeout=30_000):
            qtbot.mouseClick(panel.train_button, Qt.LeftButton)
        window.actions_by_name["delete"].trigger()  # fc2 is selected: refused while training
        assert "fc2" in doc.graph.nodes and not doc.set_attr("fc3", "out_features", 5)
        assert "locked while training" in window.statusBar().currentMessage()
        assert window.lock_label.isVisibleTo(window)
        assert not window.training.dataset_panel.isEnabled()
    plots.flush()

    assert blocker.args[0].steps == 400 and not doc.locked and c.state == ctl.IDLE
    losses = plots.loss_plot.loss.y
    assert len(losses) == 400 and losses[-20:].mean() < 0.8 * losses[:20].mean()
    assert set(plots.gradient_plot.curves) == {"fc2.weight", "fc2.bias", "fc3.weight",
                                               "fc3.bias"}  # fc1 is frozen: no curve
    assert plots.gradient_plot.highlighted == "fc2"
    click_node(window, "fc3")
    assert plots.gradient_plot.highlighted_keys() == ["fc3.weight", "fc3.bias"]
    assert len(probe.ticks) > 5  # the UI thread kept running while it trained (how smoothly:
    probe.timer.stop()            # tests/benchmarks/bench_window.py measures it)
    assert "Training finished" in window.statusBar().currentMessage()
    assert doc.set_attr("fc2", "out_features", 24)  # a structural edit drops the weights
    assert c.trained_network() is None and "fresh" in panel.weights_label.text()


def test_export_then_import_weights_gives_identical_predictions(qtbot, window, tmp_path,
                                                                 monkeypatch):
    open_sample(window, "mlp_spirals.json", max_steps=60)
    press_train(qtbot, window)
    c, panel = window.training.controller, window.training.training_panel
    test = c.dataset.test
    trained = predictions(c.trained_network(), test)
    target = tmp_path / "spirals"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(target), "Safetensors (*.safetensors)"))
    window.actions_by_name["export_weights"].trigger()
    assert (tmp_path / "spirals.safetensors").exists()
    qtbot.mouseClick(panel.reset_button, Qt.LeftButton)
    assert c.trained_network() is None
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(tmp_path / "spirals.safetensors"), ""))
    window.actions_by_name["import_weights"].trigger()
    assert np.array_equal(predictions(c.trained_network(), test), trained)
    assert window.training.inference.net is c.trained_network()


def test_save_with_weights_then_open_gives_identical_predictions(qtbot, window, tmp_path,
                                                                  monkeypatch):
    open_sample(window, "mlp_spirals.json", max_steps=60, lr=0.02)
    press_train(qtbot, window)
    c = window.training.controller
    trained = predictions(c.trained_network(), c.dataset.test)
    path = tmp_path / "graph.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    assert window.actions_by_name["save_weights"].isChecked()
    window.actions_by_name["save_as"].trigger()
    assert path.exists() and weights_path(path) == tmp_path / "graph.weights.npz"
    assert weights_path(path).exists()

    assert window.new_graph() and c.trained_network() is None
    assert window.open_path(path)
    assert window.document.project.training["lr"] == 0.02 and not window.document.dirty
    assert np.array_equal(predictions(c.trained_network(), c.dataset.test), trained)
    qtbot.mouseClick(window.training.training_panel.reset_button, Qt.LeftButton)
    window.actions_by_name["save"].trigger()  # saved without weights: the old file goes
    assert not weights_path(path).exists()


def test_lenet5_trains_then_an_absurd_learning_rate_is_caught_on_the_canvas(qtbot, window):
    panel = open_sample(window, "lenet5.json", max_steps=12, batch_size=32)
    c, plots, scene = window.training.controller, window.training.plots, window.view.graph_scene
    press_train(qtbot, window, timeout=120_000)
    plots.flush()
    losses = plots.loss_plot.loss.y
    assert len(losses) == 12 and losses[-3:].mean() < losses[:3].mean()
    keys = {f"{n}.{p}" for n in ("conv1", "conv2", "fc1", "fc2", "fc3") for p in ("weight", "bias")}
    assert set(plots.gradient_plot.curves) == keys

    panel.optimizer.setCurrentIndex(panel.optimizer.findData("sgd"))
    panel.lr.setValue(1e6)
    report = press_train(qtbot, window, c.diverged, timeout=120_000)
    item = scene.items_by_id[report.node_id]
    assert item.alert and report.message in item.toolTip()
    status = window.statusBar().currentMessage()
    assert report.message in status and "last good weights" in status
    assert report.node_id in panel.status_label.text()
    net = c.trained_network()
    assert net is not None and all(np.isfinite(v).all() for v in net.params.values())

    plots.node_warning.emit("conv1", "exploding gradient: |grad conv1.weight| = 3e+04")
    assert "exploding" in scene.items_by_id["conv1"].toolTip()
    panel.lr.setValue(0.003)
    panel.max_steps.setValue(1)
    qtbot.mouseClick(panel.reset_button, Qt.LeftButton)  # the last finite weights are huge
    press_train(qtbot, window, timeout=120_000)
    assert not scene.overlays.warnings_of("conv1") and not item.alert  # a new run clears the badges


def test_a_dataset_that_does_not_fit_shows_on_the_input_node(qtbot, window):
    open_sample(window, "lenet5.json")
    data, doc, scene = window.training.dataset_panel, window.document, window.view.graph_scene
    assert not scene.overlays.warnings_of("image") and "takes this data" in data.fit_label.text()
    data.source.setCurrentIndex(data.source.findData("spirals"))
    qtbot.mouseClick(data.load_button, Qt.LeftButton)
    assert doc.project.data["spec"].startswith("spirals")
    assert tuple(doc.graph.nodes["image"].attrs["shape"]) == (2,)  # fitted, undoably
    assert doc.stack.undoText() == "Fit graph to data" and not data.fit_ok
    doc.undo()
    assert tuple(doc.graph.nodes["image"].attrs["shape"]) == (1, 28, 28)
    warning = scene.overlays.warnings_of("image")["data"]
    assert "spirals" in warning and "shape 2" in warning
    assert "⚠" in scene.items_by_id["image"].toolTip()


def test_closing_the_window_mid_run_ends_the_thread(qtbot, window):
    open_sample(window, "mlp_spirals.json", epochs=2000)
    c = window.training.controller
    with qtbot.waitSignal(c.steps, timeout=30_000):
        qtbot.mouseClick(window.training.training_panel.train_button, Qt.LeftButton)
    assert c.thread is not None
    window.close()
    assert c.thread is None and not window.document.locked


def test_closing_after_training_asks_to_save_the_new_weights(qtbot, window, dialogs, tmp_path):
    open_sample(window, "mlp_spirals.json", max_steps=20)
    window.document.save(tmp_path / "g.json")
    press_train(qtbot, window)
    assert not window.document.dirty and window.training.weights_unsaved
    dialogs.answer = QMessageBox.Cancel
    window.close()
    assert window.isVisible() and dialogs.shown[-1][0] == "question"
    dialogs.answer = QMessageBox.Save
    assert window.close() and weights_path(tmp_path / "g.json").exists()


def test_the_schedule_is_a_training_setting_that_undoes_and_shows_its_learning_rate(qtbot, window):
    panel = open_sample(window, "mlp_spirals.json", max_steps=30)
    doc, c = window.document, window.training.controller
    panel.schedule.setCurrentIndex(panel.schedule.findData("cosine"))
    assert doc.project.training["schedule"] == "cosine"
    doc.undo()
    assert "schedule" not in doc.project.training and panel.schedule.currentData() == "constant"
    doc.redo()
    assert panel.schedule.currentData() == "cosine"
    with qtbot.waitSignal(c.finished, timeout=60_000):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    panel.redrawer.flush()
    assert " · lr " in panel.progress_label.text()


def test_weight_decay_and_momentum_are_training_settings(window):
    panel = open_sample(window, "mlp_spirals.json", max_steps=5)
    doc = window.document
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("adam"))
    assert not panel.momentum.isEnabled()  # only SGD + momentum reads it
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("momentum"))
    assert panel.momentum.isEnabled()
    panel.momentum.setValue(0.95)
    assert doc.project.training["momentum"] == 0.95
    assert panel.weight_decay.value() == 0
    panel.weight_decay.stepBy(1)  # from "off" to the first rung, then up the 1-2-5 ladder
    assert doc.project.training["weight_decay"] == pytest.approx(1e-5)
    panel.weight_decay.stepBy(2)
    assert doc.project.training["weight_decay"] == pytest.approx(5e-5)
    assert window.training.controller.config().weight_decay == pytest.approx(5e-5)
    doc.undo()  # consecutive edits of a setting merge into one undo step
    assert panel.weight_decay.value() == 0 and not doc.project.training.get("weight_decay")
    panel.weight_decay.setValue(1e-5)
    panel.weight_decay.stepBy(-1)
    assert panel.weight_decay.value() == 0 and doc.project.training["weight_decay"] == 0


def test_two_feature_data_shows_its_decision_regions_while_it_trains(qtbot, window):
    panel = open_sample(window, "mlp_spirals.json", max_steps=40)
    plots, c = window.training.plots, window.training.controller
    maps = []
    c.boundary.connect(maps.append)
    with qtbot.waitSignal(c.finished, timeout=60_000):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    plots.flush()
    view = plots.boundary_view
    assert len(maps) >= 2  # the fresh weights', and the last step's at the end
    assert maps[-1].probs.shape[:2] == (64, 64) and maps[-1].probs.shape[2] == 3
    assert plots.tabs.currentWidget() is view and not view.hint.isVisible()
    assert view.image.image is not None and view.image.image.shape[:2] == (64, 64)
    assert len(view.points.data) > 0
    # the regions change as the network learns: first and last maps differ
    assert not np.allclose(maps[0].probs, maps[-1].probs)


def test_image_data_gets_no_regions_but_says_where_they_would_appear(qtbot, window):
    from types import SimpleNamespace

    from layerloom.engine.data import Dataset, Split

    view = window.training.plots.boundary_view
    images = Dataset("i", Split(np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, int)),
                     Split(np.zeros((0, 1, 2, 2), np.float32), np.zeros(0, int)),
                     Split(np.zeros((0, 1, 2, 2), np.float32), np.zeros(0, int)))
    window.training.plots.reset(SimpleNamespace(dataset=images, trainable_keys=(),
                                                config=None))
    assert view.hint.isVisibleTo(view) and "two features" in view.hint.text()
    assert window.training.plots.tabs.currentWidget() is not view
