"""The founding example in the window: f = 2x² + y³ + z from Parameter nodes. The Data tab says no
data is needed, the Explain tab shows ∇f = (4x, 3y², 1) with the numbers (and with z frozen the
gradient with respect to (x, y)), and the Train button walks the variables downhill, plotted step
by step under the update rule with its γ."""
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.test_window_training import click_node

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "gradient_wrt_subset.json"


def values(window):
    return tuple(float(window.document.graph.nodes[n].attrs["init"]) for n in "xyz")


def test_the_data_tab_says_the_founding_example_needs_no_data(window):
    assert window.open_path(SAMPLE, ask=False)
    panel = window.training.dataset_panel
    assert "No data is needed" in panel.fit_label.text() and panel.fit_ok
    assert not window.document.project.data and window.training.controller.dataset is None


def test_the_explain_tab_shows_the_gradient_4x_3y2_1_at_the_files_values(window):
    assert window.open_path(SAMPLE, ask=False)
    x, y, z = values(window)
    click_node(window, "minimise_f")
    view = window.explain
    assert view.compute_button.text() == "Numbers and ∇f"
    view.compute_button.click()
    g = view.gradient
    assert g.value == pytest.approx(2 * x ** 2 + y ** 3 + z)
    assert {k: float(v[0]) for k, v in g.gradient.items()} == pytest.approx(
        {"x.value": 4 * x, "y.value": 3 * y ** 2, "z.value": 1.0})
    text = view.text.toPlainText()
    assert "f = 2x² + y³ + z" in text and "= (4x, 3y², 1)" in text
    assert "∇f with respect to (x, y, z) = (∂f/∂x, ∂f/∂y, ∂f/∂z)" in text
    assert f"= ({4 * x:.4g}, {3 * y ** 2:.4g}, 1)" in text
    assert f"at x = {x:.4g}, y = {y:.4g}, z = {z:.4g}" in text
    # the Objective's own numbers: its input is f, its gradient 1
    assert view.numbers.tensors["x"][0, 0] == pytest.approx(2 * x ** 2 + y ** 3 + z)


def test_freezing_z_in_the_inspector_shows_the_gradient_with_respect_to_x_and_y(window):
    assert window.open_path(SAMPLE, ask=False)
    x, y, _ = values(window)
    click_node(window, "z")
    window.inspector_dock.raise_()
    window.inspector.frozen_box.click()
    assert window.document.graph.nodes["z"].frozen
    click_node(window, "f")
    window.explain.compute_button.click()
    g = window.explain.gradient
    assert set(g.gradient) == {"x.value", "y.value"} and g.frozen == ("z.value",)
    text = window.explain.text.toPlainText()
    assert "∇f with respect to (x, y) = (∂f/∂x, ∂f/∂y)" in text and "= (4x, 3y²)" in text
    assert f"= ({4 * x:.4g}, {3 * y ** 2:.4g})" in text and "z frozen: held constant" in text


def test_the_train_button_walks_the_variables_downhill_and_plots_them(qtbot, window):
    assert window.open_path(SAMPLE, ask=False)
    x0, y0, z0 = values(window)
    c, plots = window.training.controller, window.training.plots
    with qtbot.waitSignal(c.finished, timeout=60_000) as blocker:
        qtbot.mouseClick(window.training.training_panel.train_button, Qt.LeftButton)
    assert not blocker.args[0].stopped and blocker.args[0].steps == 40
    plots.flush()
    vp = plots.variables_plot
    assert plots.tabs.currentWidget() is vp and vp.active
    assert {k: len(b) for k, b in vp.buffers.items()} == {"x.value": 40, "y.value": 40,
                                                          "z.value": 40}
    assert vp.buffers["x.value"].y[0] == x0 and vp.buffers["z.value"].y[0] == z0
    assert vp.buffers["y.value"].y[-1] < y0 and abs(vp.buffers["x.value"].y[-1]) < abs(x0)
    rule = vp.rule.text()
    assert "θ ← θ − γ·∇<sub>θ</sub>f(θ)" in rule and "γ = 0.05 (SGD)" in rule
    assert "step 40: x ← " in rule
    net = c.trained_network()
    assert float(net.params["z.value"][0]) < z0  # trained weights kept: Explain sees them
    assert "step 40/40" in window.training.training_panel.progress_label.text()
    assert "finished after 40 steps" in window.statusBar().currentMessage()
    log = window.runs.log  # the Runs dock records it as a run on no data
    assert log.open_store().run(log.last_run_id).data_spec.startswith("none")
