"""All live training plots in one dockable panel, wired to a TrainingController.

Loss/accuracy, gradient norms, the selected parameter's histograms, the test set's confusion
matrix (or, for regression, predictions against true values), for
data with two features the decision regions as they form, and for a graph without data its
variables step by step.
``highlight(node_id)`` is what a canvas selection calls; ``node_warning`` relays the gradient
alarm for canvas badges.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QSplitter, QStackedWidget, QTabWidget, QVBoxLayout, QWidget

from layerloom.gui.plots.alarm import GradientAlarm
from layerloom.gui.plots.boundary import DecisionBoundaryView
from layerloom.gui.plots.confusion import ConfusionMatrixView
from layerloom.gui.plots.gradient_plot import GradientPlot
from layerloom.gui.plots.histogram_plot import HistogramPlot
from layerloom.gui.plots.loss_plot import LossPlot
from layerloom.gui.plots.regression import RegressionView
from layerloom.gui.plots.variables_plot import VariablesPlot


class PlotsPanel(QWidget):
    node_warning = Signal(str, str)  # node_id, reason: a vanishing/exploding/NaN gradient
    warnings_cleared = Signal()

    def __init__(self, controller=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.loss_plot, self.gradient_plot = LossPlot(), GradientPlot()
        self.histogram_plot, self.confusion_view = HistogramPlot(), ConfusionMatrixView()
        self.boundary_view, self.regression_view = DecisionBoundaryView(), RegressionView()
        self.variables_plot = VariablesPlot()  # a data-free run's variables, step by step
        # the test set's results: a confusion matrix for a classifier, predicted against true
        # values for a regression model, in one tab
        self.test_view = QStackedWidget()
        self.test_view.addWidget(self.confusion_view)
        self.test_view.addWidget(self.regression_view)
        self.alarm = GradientAlarm(self)
        self.alarm.node_warning.connect(self.node_warning)
        self.alarm.warnings_cleared.connect(self.warnings_cleared)
        self.gradient_plot.key_selected.connect(self.histogram_plot.select)
        self.tabs = QTabWidget()
        # short names: three tabs share a third of the panel
        for i, (view, name, full) in enumerate((
                (self.histogram_plot, "Histogram", "Gradient and weight histograms"),
                (self.test_view, "Test", "The test set: a confusion matrix, or predicted "
                                         "against true values for regression"),
                (self.boundary_view, "Regions", "Decision regions (data with two features)"),
                (self.variables_plot, "Variables", "A graph without data: each variable's "
                                                   "value per step, and the update rule"))):
            self.tabs.addTab(view, name)
            self.tabs.setTabToolTip(i, full)
        split = QSplitter(Qt.Horizontal)
        for w in (self.loss_plot, self.gradient_plot, self.tabs):
            split.addWidget(w)
        split.setSizes([380, 470, 380])
        for i, stretch in enumerate((4, 5, 4)):
            split.setStretchFactor(i, stretch)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        if controller is not None:
            self.attach(controller)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override): a bottom dock, not 2000 px wide
        return QSize(1200, 380)

    @property
    def views(self) -> tuple:
        return (self.loss_plot, self.gradient_plot, self.histogram_plot, self.confusion_view,
                self.regression_view, self.boundary_view, self.variables_plot, self.alarm)

    def attach(self, controller) -> None:
        controller.started.connect(self.reset)
        controller.steps.connect(self.add_steps)
        controller.epoch.connect(self.loss_plot.add_epoch)
        controller.finished.connect(self.show_done)
        controller.diverged.connect(self.mark_diverged)
        controller.boundary.connect(self.boundary_view.set_map)
        self._controller = controller

    def reset(self, info) -> None:
        self._info = info
        for view in self.views:
            view.reset(info)
        # info None: New or Open, a clean slate
        regression = getattr(getattr(info, "dataset", None), "task", "") == "regression"
        self.test_view.setCurrentWidget(self.regression_view if regression else self.confusion_view)
        data_free = info is not None and info.dataset is None
        self.tabs.setCurrentWidget(self.variables_plot if data_free else self.boundary_view
                                   if self.boundary_view.active else self.histogram_plot)

    def add_steps(self, reports: list) -> None:
        for view in (self.loss_plot, self.gradient_plot, self.histogram_plot,
                     self.variables_plot, self.alarm):
            view.add_steps(reports)

    def show_done(self, report) -> None:
        if report.regression is not None:
            self.regression_view.set_fit(report.regression)
            self.test_view.setCurrentWidget(self.regression_view)
        elif report.confusion is not None:
            self.confusion_view.set_matrix(report.confusion, self._info.dataset.class_names,
                                           report.test_accuracy)
            self.test_view.setCurrentWidget(self.confusion_view)
        else:
            return
        if self.tabs.currentWidget() is not self.boundary_view:  # 2-D data: keep its regions
            self.tabs.setCurrentWidget(self.test_view)

    def mark_diverged(self, report) -> None:
        self.loss_plot.mark_diverged(report)
        self.gradient_plot.mark_diverged(report)
        self.histogram_plot.highlight(report.node_id)

    def highlight(self, node_id: str | None) -> None:
        """Emphasise a node's gradient curves and show its histograms (canvas selection)."""
        self.gradient_plot.highlight(node_id)
        if node_id is not None:
            self.histogram_plot.highlight(node_id)

    def flush(self) -> None:
        """Draw everything pending now (screenshots, tests)."""
        for view in (self.loss_plot, self.gradient_plot, self.histogram_plot, self.boundary_view,
                     self.variables_plot):
            view.redrawer.flush()
