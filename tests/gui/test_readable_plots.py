"""Plots a person can read: one Step draws a point, a divergence turns the loss axis
logarithmic, legends sit outside the data, many parameters are grouped by node in distinct
colours, and class colours are the same in the Data tab and the Regions map."""
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from layerloom.gui.plots.boundary import colours
from layerloom.gui.training import controller as ctl
from tests.gui.test_window_training import open_sample, press_train

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_one_step_draws_one_point(qtbot, window):
    open_sample(window, "mlp_spirals.json")
    t = window.training
    with qtbot.waitSignal(t.controller.state_changed, timeout=60_000,
                          check_params_cb=lambda s: s == ctl.PAUSED):
        qtbot.mouseClick(t.training_panel.step_button, Qt.LeftButton)
    t.plots.flush()
    x, y = t.plots.loss_plot.loss_curve.getData()
    assert len(x) == 1 and np.isfinite(y).all()
    assert t.plots.loss_plot.loss_curve.opts["symbol"] == "o"  # a lone point is drawn
    grad = next(iter(t.plots.gradient_plot.curves.values()))
    assert len(grad.getData()[0]) == 1 and grad.opts["symbol"] == "o"
    t.controller.stop()
    qtbot.waitUntil(lambda: t.controller.state == ctl.IDLE, timeout=60_000)


def test_after_a_divergence_the_loss_axis_is_logarithmic(qtbot, window):
    panel = open_sample(window, "lenet5.json", max_steps=12, batch_size=32)
    press_train(qtbot, window, timeout=300_000)
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("sgd"))
    panel.lr.setValue(1e6)  # trained ReLUs pass the gradient on: the next steps overflow
    press_train(qtbot, window, window.training.controller.diverged, timeout=300_000)
    loss = window.training.plots.loss_plot
    loss.redrawer.flush()
    assert loss.log_loss and loss.loss_item.getAxis("left").logMode
    panel.lr.setValue(0.003)
    panel.max_steps.setValue(1)
    qtbot.mouseClick(panel.reset_button, Qt.LeftButton)
    press_train(qtbot, window, timeout=300_000)
    assert not loss.log_loss  # a new run starts linear again


def test_legends_sit_outside_the_data(qtbot, window):
    open_sample(window, "mlp_spirals.json", max_steps=20)
    press_train(qtbot, window)
    plots = window.training.plots
    assert plots.loss_plot.loss_item.legend is None and plots.loss_plot.acc_item.legend is None
    assert "validation" in plots.loss_plot.legend.text()
    assert plots.loss_plot.legend.geometry().bottom() <= plots.loss_plot.view.geometry().top()
    regions = plots.boundary_view
    assert regions.plot.legend is None and "class 2" in regions.legend.text()


def test_many_parameters_are_grouped_by_node_in_distinct_colours(qtbot, window):
    from types import SimpleNamespace

    keys = tuple(f"b{b}_{n}.{p}" for b in (1, 2) for n in ("ln1", "attn", "ln2", "ff1", "ff2")
                 for p in ("weight", "bias"))
    plot = window.training.plots.gradient_plot
    plot.reset(SimpleNamespace(trainable_keys=keys))
    tree = plot.legend
    assert tree.topLevelItemCount() == 10
    assert tree.topLevelItem(1).text(0) == "b1_attn" and tree.topLevelItem(1).child(0).text(0) == "weight"
    weights = [plot.colors[k].name() for k in keys if k.endswith(".weight")]
    assert len(set(weights)) == 10  # one hue per node
    assert plot.colors["b1_attn.weight"] != plot.colors["b1_attn.bias"]  # shades within a node


def test_class_colours_are_the_same_in_the_data_tab_and_the_regions_map(qtbot, window):
    open_sample(window, "mlp_spirals.json", max_steps=5)
    press_train(qtbot, window)
    data = window.training.dataset_panel
    scatter = [i for i in data.scatter_view.getPlotItem().listDataItems()]
    brushes = [s.opts["brush"].color().getRgb()[:3] for s in scatter]
    assert brushes == [tuple(int(v) for v in c) for c in colours(3)]
    points = window.training.plots.boundary_view.points
    first = points.data[0]
    assert first["brush"].color().getRgb()[:3] in brushes
