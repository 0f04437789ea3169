"""A regression run's test set: each prediction against its true value, with the line of perfect
predictions, where a classifier shows its confusion matrix.

The points, R² and MSE come from the engine's ``DoneReport.regression``; the view only draws.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.style import SERIES, make_view, palette_colors, style_plot

WHEN_ENDED = ("When a regression run ends, each test prediction is plotted here against its "
              "true value: on the diagonal is perfect.")


class RegressionView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.fit = None
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.view = make_view(pg.PlotWidget)
        self.plot = self.view.getPlotItem()
        style_plot(self.plot, left="predicted", bottom="true value")
        self.points = pg.ScatterPlotItem(size=5, pen=None)
        self.diagonal = pg.PlotCurveItem()
        self.plot.addItem(self.diagonal)
        self.plot.addItem(self.points)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)
        self.hint = EmptyHint(self.view, WHEN_ENDED)
        self.reset()

    def reset(self, _info=None) -> None:
        self.fit = None
        self.points.clear()
        self.diagonal.clear()
        self.caption.hide()
        self.hint.show_when(True, WHEN_ENDED)

    def set_fit(self, fit) -> None:
        """Show an ``engine.training.RegressionFit`` (every output column's points together)."""
        self.fit = fit
        true, predicted = np.ravel(fit.true), np.ravel(fit.predicted)
        self.points.setData(true, predicted, brush=pg.mkBrush(SERIES["train"]))
        finite = np.concatenate([true, predicted])
        finite = finite[np.isfinite(finite)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self.diagonal.setData([lo, hi], [lo, hi], pen=pg.mkPen(palette_colors()[1], width=1,
                                                                 style=pg.QtCore.Qt.DashLine))
        self.plot.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0.05)
        r2 = f"R² {fit.r2:.3f}, " if fit.r2 is not None else ""
        self.caption.setText(f"Test set: {len(fit.true):,} samples — {r2}MSE {fit.mse:.4g}. "
                             f"On the dashed line a prediction is exact.")
        self.caption.show()
        self.hint.show_when(False)
