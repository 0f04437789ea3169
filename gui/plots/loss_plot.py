"""Loss per step (raw and smoothed) with validation loss per epoch, and accuracy below it.

Fed by the controller's reports; redrawn by a ~10 Hz timer, never per step. The legend sits
above the plots, never on the curves. A diverged run is marked with a red line at the step where
the first non-finite value appeared, and the loss axis turns logarithmic: the last finite losses
before a divergence reach 1e30 and would flatten the rest of the curve into the axis. The first
few steps are drawn as points (one Step is one point: a line needs two).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from layerloom.gui.plots.buffers import Redrawer, RingBuffer, SmoothedBuffer
from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.style import SERIES, legend_label, make_view, style_plot


class LossPlot(QWidget):
    """Two x-linked plots: loss on top, accuracy (classification only) below."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.loss, self.loss_smooth = RingBuffer(), SmoothedBuffer()
        self.val_loss = RingBuffer(capacity=10_000)
        self.accuracy, self.val_accuracy = SmoothedBuffer(), RingBuffer(capacity=10_000)
        self._next_step = 0
        self._markers: list = []
        self.log_loss = False  # after a divergence: a logarithmic loss axis
        self.view = make_view()
        self.legend = legend_label([
            (SERIES["train"], "line", "loss per step"), (SERIES["smooth"], "line", "smoothed"),
            (SERIES["val"], "dot", "validation"), (SERIES["acc"], "line", "accuracy (smoothed)"),
            (SERIES["val_acc"], "dot", "validation accuracy")])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.legend)
        layout.addWidget(self.view, 1)
        self.loss_item = self.view.addPlot(row=0, col=0)
        self.acc_item = self.view.addPlot(row=1, col=0)
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 2)
        style_plot(self.loss_item, left="loss")
        style_plot(self.acc_item, left="accuracy", bottom="step")
        self.acc_item.setXLink(self.loss_item)
        self.acc_item.setYRange(0, 1, padding=0.02)
        self.acc_item.enableAutoRange(axis="y", enable=False)
        self._build_curves()
        self.hint = EmptyHint(self.view, "The loss and the accuracy appear here while the network "
                                         "trains.\n\nPress Train, or Step for one batch.")
        self.redrawer = Redrawer(self._redraw, self)

    def _build_curves(self) -> None:
        raw = pg.mkColor(SERIES["train"])
        raw.setAlpha(90)
        self.loss_curve = self.loss_item.plot(pen=pg.mkPen(raw, width=1), name="train (per step)")
        self.smooth_curve = self.loss_item.plot(pen=pg.mkPen(SERIES["smooth"], width=2),
                                                name="train (smoothed)")
        self.val_curve = self.loss_item.plot(pen=pg.mkPen(SERIES["val"], width=2), symbol="o",
                                             symbolSize=6, symbolBrush=SERIES["val"],
                                             name="validation (per epoch)")
        self.acc_curve = self.acc_item.plot(pen=pg.mkPen(SERIES["acc"], width=2),
                                            name="train (smoothed)")
        self.val_acc_curve = self.acc_item.plot(pen=pg.mkPen(SERIES["val_acc"], width=2),
                                                symbol="o", symbolSize=6,
                                                symbolBrush=SERIES["val_acc"],
                                                name="validation (per epoch)")
        for curve in (self.loss_curve, self.smooth_curve, self.acc_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)

    # ------------------------------------------------------------------ reports in
    def reset(self, info=None) -> None:
        """Clear for a new run; hide accuracy for regression."""
        for buf in (self.loss, self.loss_smooth, self.val_loss, self.accuracy, self.val_accuracy):
            buf.clear()
        for marker in self._markers:
            self.loss_item.removeItem(marker)
        self._markers.clear()
        self._next_step = 0
        # no accuracy for regression, nor for a data-free run (no dataset: nothing to classify)
        regression = info is not None and (info.dataset is None
                                           or info.dataset.task != "classification")
        self.acc_item.setVisible(not regression)
        self.log_loss = False
        self.loss_item.setLogMode(y=False)
        self.redrawer.mark()

    def add_steps(self, reports: list) -> None:
        if reports and not len(self.loss):
            fix_x_range(self.loss_item, reports[0].total_steps)
        for r in reports:
            self.loss.append(r.global_step, r.loss)
            self.loss_smooth.append(r.global_step, r.loss)
            if r.accuracy is not None:
                self.accuracy.append(r.global_step, r.accuracy)
            self._next_step = r.global_step + 1
        self.redrawer.mark()

    def add_epoch(self, report) -> None:
        """Validation points sit at the step where their epoch ended."""
        if report.val_loss is not None:
            self.val_loss.append(self._next_step, report.val_loss)
        if report.val_accuracy is not None:
            self.val_accuracy.append(self._next_step, report.val_accuracy)
        self.redrawer.mark()

    def mark_diverged(self, report) -> None:
        """A red line where training hit NaN/inf, labelled with the node."""
        line = pg.InfiniteLine(pos=report.global_step, angle=90,
                               pen=pg.mkPen(SERIES["alarm"], width=2, style=pg.QtCore.Qt.DashLine),
                               label=f"NaN/inf at {report.node_id} ({report.phase})",
                               labelOpts={"position": 0.6, "color": SERIES["alarm"],
                                          "anchors": [(0, 0), (0, 0)]})  # right of the line
        self.loss_item.addItem(line)
        self._markers.append(line)
        self.log_loss = True
        self.loss_item.setLogMode(y=True)
        self.redrawer.mark()

    # ------------------------------------------------------------------ drawing
    def _redraw(self) -> None:
        for curve, buf, colour in ((self.loss_curve, self.loss, SERIES["train"]),
                                   (self.smooth_curve, self.loss_smooth, SERIES["smooth"])):
            curve.setData(buf.x, _finite_or_nan(buf.y, self.log_loss),
                          **few_points(len(buf), colour))
        self.val_curve.setData(self.val_loss.x, self.val_loss.y)
        self.acc_curve.setData(self.accuracy.x, self.accuracy.y,
                               **few_points(len(self.accuracy), SERIES["acc"]))
        self.val_acc_curve.setData(self.val_accuracy.x, self.val_accuracy.y)
        self.hint.show_when(not len(self.loss))


def fix_x_range(plot: pg.PlotItem, total_steps: int) -> None:
    """The whole run's steps from the start: a still x axis is not repainted every frame."""
    plot.enableAutoRange(axis="x", enable=False)
    plot.setXRange(0, max(1, total_steps - 1), padding=0.01)


def few_points(n: int, colour, below: int = 3) -> dict:
    """Curve keywords: while a curve has fewer than ``below`` points they are drawn as dots."""
    return {"symbol": "o" if n < below else None, "symbolSize": 6, "symbolPen": None,
            "symbolBrush": colour}


def _finite_or_nan(y: np.ndarray, positive: bool = False) -> np.ndarray:
    """inf (and, for a log axis, zero or less) becomes NaN so the curve breaks there instead of
    stretching the axis to infinity."""
    ok = np.isfinite(y) & (y > 0) if positive else np.isfinite(y)
    return y if ok.all() else np.where(ok, y, np.nan)
