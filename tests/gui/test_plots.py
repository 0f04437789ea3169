"""The live plots: ring buffers, one redraw per clock tick, curves per parameter, the alarm."""
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import Qt

from layerloom.engine.training import Diverged, EpochReport, StepReport
from layerloom.gui.plots.alarm import GradientAlarm, GradientWatch
from layerloom.gui.plots.buffers import RingBuffer, SmoothedBuffer
from layerloom.gui.plots.confusion import ConfusionMatrixView
from layerloom.gui.plots.gradient_plot import FLOOR, GradientPlot
from layerloom.gui.plots.histogram_plot import HistogramPlot
from layerloom.gui.plots.loss_plot import LossPlot
from layerloom.gui.training.widgets import ScientificSpinBox, ladder_step

KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def run_info(keys=KEYS, task="classification"):
    dataset = SimpleNamespace(task=task, class_names=["a", "b", "c"])
    return SimpleNamespace(trainable_keys=keys, dataset=dataset)


def step(i, loss=1.0, norms=None, hist=False, total=100):
    norms = norms if norms is not None else {k: 0.5 for k in KEYS}
    histograms = ({k: {"grad": (np.arange(30.0), np.linspace(-1, 1, 31)),
                       "weight": (np.ones(30), np.linspace(-2, 2, 31))} for k in norms}
                  if hist else None)
    return StepReport(0, i, i, 10, total, loss, 0.5, norms, 1000.0, 0.1, histograms)


def test_a_ring_buffer_keeps_the_newest_points_in_order():
    buf = RingBuffer(capacity=5)
    for i in range(23):
        buf.append(i, 10 * i)
    assert len(buf) == 5
    assert buf.x.tolist() == [18, 19, 20, 21, 22] and buf.y.tolist() == [180, 190, 200, 210, 220]
    assert buf.last() == (22, 220)
    buf.clear()
    assert len(buf) == 0 and buf.last() is None


def test_the_smoothed_loss_is_a_bias_corrected_moving_average_that_skips_nan():
    buf = SmoothedBuffer(weight=0.5)
    for i, v in enumerate([4.0, 2.0, math.nan, 1.0]):
        buf.append(i, v)
    assert buf.y[0] == pytest.approx(4.0)  # bias correction: the first value is itself
    assert buf.y[1] == pytest.approx((0.25 * 4 + 0.5 * 2) / 0.75)
    assert math.isnan(buf.y[2])
    assert buf.y[3] == pytest.approx((0.125 * 4 + 0.25 * 2 + 0.5 * 1) / 0.875)


def test_plots_redraw_once_per_clock_tick_however_many_steps_arrive(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.reset(run_info())
    plot.redrawer.flush()
    draws = plot.redrawer.draws
    for i in range(200):
        plot.add_steps([step(i, loss=2.0 - i / 100)])
    assert plot.redrawer.draws == draws  # nothing drawn per step
    qtbot.waitUntil(lambda: plot.redrawer.draws == draws + 1, timeout=1000)
    qtbot.wait(80)
    assert plot.redrawer.draws == draws + 1  # and nothing more while nothing changed
    x, y = plot.loss_curve.xData, plot.loss_curve.yData  # all of it, not just the clipped view
    assert len(x) == 200 and y[-1] == pytest.approx(0.01)


def test_the_loss_plot_puts_validation_at_epoch_ends_and_marks_divergence(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.reset(run_info())
    plot.add_steps([step(i) for i in range(10)])
    plot.add_epoch(EpochReport(0, 1.0, 0.5, 0.9, 0.6))
    plot.add_steps([step(i) for i in range(10, 20)])
    plot.add_epoch(EpochReport(1, 0.8, 0.6, 0.7, 0.7))
    assert plot.val_loss.x.tolist() == [10, 20] and plot.val_accuracy.y.tolist() == [0.6, 0.7]
    plot.mark_diverged(Diverged(20, "fc2", "backward", "boom"))
    assert "fc2" in plot._markers[0].label.toPlainText()
    plot.reset(run_info(task="regression"))
    assert not plot._markers and len(plot.loss) == 0 and not plot.acc_item.isVisible()


def test_gradient_curves_exist_for_the_run_s_trainable_keys_only(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    plot.reset(run_info(keys=("fc2.weight", "fc2.bias")))
    plot.add_steps([step(0, norms={"fc2.weight": 0.0, "fc2.bias": math.nan})])
    assert set(plot.curves) == {"fc2.weight", "fc2.bias"}
    group = plot.legend.topLevelItem(0)  # the legend groups parameters under their node
    assert plot.legend.topLevelItemCount() == 1 and group.text(0) == "fc2"
    assert [group.child(i).text(0) for i in range(group.childCount())] == ["weight", "bias"]
    assert plot.buffers["fc2.weight"].y[0] == FLOOR  # log scale: zero drawn at the floor
    assert math.isnan(plot.buffers["fc2.bias"].y[0])


def test_highlight_emphasises_one_node_s_curves(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    plot.reset(run_info())
    plot.highlight("fc2")
    assert plot.highlighted_keys() == ["fc2.weight", "fc2.bias"]
    widths = {k: c.opts["pen"].widthF() for k, c in plot.curves.items()}
    assert widths["fc2.weight"] > widths["fc1.weight"]
    assert plot.curves["fc1.weight"].opts["pen"].color().alpha() < 255
    plot.highlight("relu1")  # a node without parameters: nothing highlighted
    assert plot.highlighted is None and plot.curves["fc1.weight"].opts["pen"].color().alpha() == 255
    with qtbot.waitSignal(plot.key_selected) as blocker:
        plot._legend_clicked(plot.legend.topLevelItem(0).child(1))
    assert blocker.args == ["fc1.bias"] and plot.highlighted == "fc1"


def test_the_histogram_shows_the_latest_histograms_of_the_selected_parameter(qtbot):
    view = HistogramPlot()
    qtbot.addWidget(view)
    view.reset(run_info())
    view.redrawer.flush()
    assert view.step_label.text() == "no histogram yet"
    view.add_steps([step(0, hist=True), step(1), step(2)])
    view.highlight("fc2")
    view.redrawer.flush()
    assert view.selected == "fc2.weight" and view.step_label.text() == "at step 1"
    x, y = view.weight_curve.getData()
    assert len(x) == 31 and len(y) == 30


def test_the_confusion_matrix_is_drawn_with_its_counts(qtbot):
    view = ConfusionMatrixView()
    qtbot.addWidget(view)
    matrix = np.array([[5, 1, 0], [0, 7, 2], [1, 0, 9]])
    view.set_matrix(matrix, ["cat", "dog", "bird"], accuracy=0.84)
    assert sorted(t.toPlainText() for t in view._texts) == sorted(["5", "1", "7", "2", "1", "9"])
    assert "25 samples" in view.caption.text() and "84.0%" in view.caption.text()
    assert np.array_equal(view.image.image, matrix.T)
    view.set_matrix(None, [])
    assert view.matrix is None and not view._texts and "does not classify" in view.caption.text()


def test_the_gradient_watch_warns_each_node_once_per_kind():
    watch = GradientWatch(vanish_steps=3)
    tiny = {k: 1e-9 for k in KEYS}
    assert watch.check(step(0, norms=tiny)) == [] and watch.check(step(1, norms=tiny)) == []
    warned = watch.check(step(2, norms=tiny))
    assert [n for n, _ in warned] == ["fc1", "fc2"] and "vanishing" in warned[0][1]
    assert watch.check(step(3, norms=tiny)) == []
    big = watch.check(step(4, norms={"fc1.weight": 5e3, "fc2.weight": math.inf}))
    assert big[0][0] == "fc1" and "exploding" in big[0][1] and "5e+03" in big[0][1]
    assert big[1][0] == "fc2" and "NaN/inf" in big[1][1]
    watch.reset()
    assert not watch.warnings


def test_the_vanishing_count_restarts_when_a_gradient_recovers():
    watch = GradientWatch(vanish_steps=3)
    for i, norm in enumerate([1e-9, 1e-9, 0.1, 1e-9, 1e-9]):
        assert watch.check(step(i, norms={"fc1.weight": norm})) == []


def test_the_alarm_emits_node_warnings_for_the_canvas(qtbot):
    alarm = GradientAlarm(vanish_steps=2)
    seen = []
    alarm.node_warning.connect(lambda node, reason: seen.append((node, reason)))
    with qtbot.waitSignal(alarm.warnings_cleared):
        alarm.reset()
    alarm.add_steps([step(0, norms={"conv1.weight": 1e-12}),
                     step(1, norms={"conv1.weight": 1e-12})])
    assert [n for n, _ in seen] == ["conv1"] and alarm.warnings


@pytest.mark.parametrize("value, steps, expected", [
    (0.001, 1, 0.002), (0.002, 1, 0.005), (0.005, 1, 0.01), (0.01, -1, 0.005),
    (0.003, 1, 0.005), (0.003, -1, 0.002), (1e6, 1, 2e6)])
def test_the_learning_rate_arrows_walk_the_1_2_5_ladder(value, steps, expected):
    assert ladder_step(value, steps) == pytest.approx(expected)


def test_the_learning_rate_box_reads_and_writes_scientific_notation(qtbot):
    box = ScientificSpinBox()
    qtbot.addWidget(box)
    box.setValue(1e6)
    assert box.text() == "1e+06"
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "3e-4")
    qtbot.keyClick(box, Qt.Key_Enter)
    assert box.value() == pytest.approx(3e-4)
    box.stepBy(1)
    assert box.value() == pytest.approx(5e-4)


def test_steps_beyond_the_buffer_capacity_keep_plots_bounded(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    plot.reset(run_info(keys=("fc1.weight",)))
    for key, buf in plot.buffers.items():
        plot.buffers[key] = RingBuffer(capacity=50)
    plot.add_steps([replace(step(i), grad_norms={"fc1.weight": 1.0}) for i in range(120)])
    assert len(plot.buffers["fc1.weight"]) == 50


def test_every_plot_says_what_will_appear_until_it_has_data(qtbot):
    """Bare 0–1 axes before the first run told a newcomer nothing: each plot carries a note
    until its data arrives, and again after a new run clears it."""
    loss, grads, hist, confusion = LossPlot(), GradientPlot(), HistogramPlot(), ConfusionMatrixView()
    for w in (loss, grads, hist, confusion):
        qtbot.addWidget(w)
        w.show()
        w.reset(run_info())
    for w in (loss, grads, hist):
        w.redrawer.flush()
    assert "Press Train" in loss.hint.text()
    assert all(w.hint.isVisible() for w in (loss, grads, hist, confusion))
    assert loss.hint.geometry() == loss.view.rect()  # covers the empty axes
    reports = [step(i, hist=True) for i in range(3)]
    for w in (loss, grads, hist):
        w.add_steps(reports)
        w.redrawer.flush()
    confusion.set_matrix(np.eye(3, dtype=int) * 5, ["a", "b", "c"], 1.0)
    assert not any(w.hint.isVisible() for w in (loss, grads, hist, confusion))
    loss.resize(500, 400)
    loss.reset(run_info())
    loss.redrawer.flush()
    assert loss.hint.isVisible() and loss.hint.geometry() == loss.view.rect()
    confusion.set_matrix(None, [])
    assert confusion.hint.isVisible() and "does not classify" in confusion.hint.text()


def test_the_decision_regions_blend_with_the_current_background(qtbot):
    from types import SimpleNamespace

    from PySide6.QtGui import QColor

    from layerloom.engine.boundary import BoundaryMap
    from layerloom.engine.data import Dataset, Split
    from layerloom.gui.plots.boundary import DecisionBoundaryView, _hex, colours, region_image

    x = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    y = np.arange(30) % 3
    data = Dataset("d", Split(x, y), Split(x[:3], y[:3]), Split(x[:3], y[:3]),
                   class_names=list("abc"))
    view = DecisionBoundaryView()
    qtbot.addWidget(view)
    view.show()
    view.reset(SimpleNamespace(dataset=data))
    assert not view.hint.isVisible() and len(view.points.data) == 30
    legend = view.legend.text()  # colour -> class, in the class colours, above the plot
    assert [legend.index(f"&nbsp;{c}") for c in "abc"] == sorted(legend.index(f"&nbsp;{c}")
                                                                 for c in "abc")
    assert all(f"color:{_hex(colour)}" in legend for colour in colours(3))
    unsure = np.full((4, 4, 3), 1 / 3)
    sure = np.zeros((4, 4, 3))
    sure[..., 1] = 1.0
    view.set_map(BoundaryMap((0.0, 1.0, 0.0, 1.0), sure))
    view.redrawer.flush()
    assert view.image.image.shape == (4, 4, 3)
    white, black = QColor("white"), QColor("black")
    assert (region_image(unsure, white) == 255).all()  # no opinion: the plain background
    assert (region_image(unsure, black) == 0).all()
    assert not (region_image(sure, white) == 255).all()  # a sure class shows its colour


def test_a_theme_change_redraws_the_regions_on_the_new_background(qtbot):
    from PySide6.QtWidgets import QApplication

    from layerloom.engine.boundary import BoundaryMap
    from layerloom.gui import theme as th
    from layerloom.gui.plots.boundary import DecisionBoundaryView

    view = DecisionBoundaryView()
    qtbot.addWidget(view)
    view.show()
    view.set_map(BoundaryMap((0.0, 1.0, 0.0, 1.0), np.full((4, 4, 3), 1 / 3)))
    th.apply_theme("light")
    QApplication.processEvents()
    view.redrawer.flush()
    light = int(view.image.image[0, 0].mean())
    try:
        th.apply_theme("dark")
        QApplication.processEvents()
        view.redrawer.flush()
        assert int(view.image.image[0, 0].mean()) < light - 100  # drawn again, dark
    finally:
        th.apply_theme("system")
        QApplication.processEvents()
