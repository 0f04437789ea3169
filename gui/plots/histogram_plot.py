"""Histograms of the selected parameter's current gradient and weight values.

The engine puts histograms (counts, bin edges) into every N-th step report; this view keeps
the latest ones and draws the selected parameter's two side by side.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from layerloom.gui.plots.buffers import Redrawer
from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.style import SERIES, make_view, style_plot


class CompactAxis(pg.AxisItem):
    """Fewer ticks, each in two significant digits ("-2e-03", "0.0015" became "-0.002",
    "0.0015"…): side by side in half a panel, the default labels ran into each other
    ("-0.0020.002")."""

    def __init__(self, orientation: str):
        super().__init__(orientation)
        self.setTickDensity(0.45)

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph override)
        return [f"{v * scale:.2g}" for v in values]


class HistogramPlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.latest: dict = {}  # key -> {"grad": (counts, edges), "weight": (counts, edges)}
        self.latest_step: int | None = None
        self.chooser = QComboBox()
        self.chooser.currentIndexChanged.connect(lambda _i: self.redrawer.mark())
        self.step_label = QLabel()
        self.step_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        top = QHBoxLayout()
        top.addWidget(QLabel("Parameter:"))
        top.addWidget(self.chooser, 1)
        top.addWidget(self.step_label)
        self.view = make_view()
        self.grad_item, self.weight_item = (
            self.view.addPlot(row=0, col=col, axisItems={"bottom": CompactAxis("bottom")})
            for col in (0, 1))
        style_plot(self.grad_item, title="gradient", left="count")
        style_plot(self.weight_item, title="weight")
        for item in (self.grad_item, self.weight_item):
            # step-mode curves carry one more x than y: clipping or downsampling breaks that
            item.setClipToView(False)
            item.setDownsampling(auto=False)
        self.grad_curve = self.grad_item.plot(stepMode="center", fillLevel=0,
                                              brush=_alpha(SERIES["val"], 140),
                                              pen=pg.mkPen(SERIES["val"]))
        self.weight_curve = self.weight_item.plot(stepMode="center", fillLevel=0,
                                                  brush=_alpha(SERIES["train"], 140),
                                                  pen=pg.mkPen(SERIES["train"]))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        self.hint = EmptyHint(self.view, "Histograms of one parameter's gradient and weights "
                                         "appear here while the network trains. Choose it "
                                         "above, or select its node on the canvas.")
        self.redrawer = Redrawer(self._redraw, self)

    def reset(self, info=None) -> None:
        self.latest, self.latest_step = {}, None
        self.chooser.blockSignals(True)
        self.chooser.clear()
        self.chooser.addItems(list(info.trainable_keys) if info is not None else [])
        self.chooser.blockSignals(False)
        self.redrawer.mark()

    @property
    def selected(self) -> str | None:
        return self.chooser.currentText() or None

    def select(self, key: str) -> None:
        i = self.chooser.findText(key)
        if i >= 0:
            self.chooser.setCurrentIndex(i)

    def highlight(self, node_id: str | None) -> None:
        """Show the first parameter (usually ``weight``) of the node selected on the canvas."""
        for i in range(self.chooser.count()):
            if self.chooser.itemText(i).split(".")[0] == node_id:
                self.chooser.setCurrentIndex(i)
                return

    def add_steps(self, reports: list) -> None:
        for r in reversed(reports):
            if r.histograms:
                self.latest, self.latest_step = r.histograms, r.global_step
                self.redrawer.mark()
                return

    def _redraw(self) -> None:
        hist = self.latest.get(self.selected) if self.selected else None
        self.hint.show_when(hist is None)
        if hist is None:
            self.grad_curve.setData([], [])
            self.weight_curve.setData([], [])
            self.step_label.setText("no histogram yet")
            return
        for curve, (counts, edges) in ((self.grad_curve, hist["grad"]),
                                       (self.weight_curve, hist["weight"])):
            curve.setData(np.asarray(edges, dtype=float), np.asarray(counts, dtype=float))
        self.step_label.setText(f"at step {self.latest_step + 1}")


def _alpha(color: str, alpha: int):
    c = pg.mkColor(color)
    c.setAlpha(alpha)
    return c
