"""Gradient norm per parameter tensor over steps: one curve each, log scale, with a legend.

Frozen parameters get no gradient and so no curve. A node's curves share its hue (the bias
lighter); ``highlight(node_id)`` thickens that node's curves and fades the others, which is
what a click on the canvas does. Clicking a legend entry highlights too and emits
``key_selected`` (the histogram follows it).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPen, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QSplitter, QWidget

from layerloom.gui.plots.buffers import Redrawer, RingBuffer
from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.loss_plot import fix_x_range
from layerloom.gui.plots.style import SERIES, make_view, node_color, style_plot

FLOOR = 1e-12  # a zero norm is drawn here: log scale has no zero


class DecadeAxis(pg.AxisItem):
    """A log axis that writes only the decades (1e-3, 0.01, 0.1…): labels on the minor ticks
    (0.002, 0.003…) crowded a short plot into an unreadable column."""

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph override)
        return [f"{10.0 ** v * scale:g}" if abs(v - round(v)) < 1e-6 else "" for v in values]


class GradientPlot(QWidget):
    key_selected = Signal(str)  # a parameter key picked in the legend

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.buffers: dict[str, RingBuffer] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.colors: dict[str, QColor] = {}
        self.highlighted: str | None = None
        self._markers: list = []
        self.view = make_view(pg.PlotWidget, axisItems={"left": DecadeAxis("left")})
        self.plot = self.view.getPlotItem()
        style_plot(self.plot, left="gradient norm", bottom="step")
        self.plot.setLogMode(y=True)
        self.legend = QListWidget()
        self.legend.setMinimumWidth(120)
        self.legend.itemClicked.connect(self._legend_clicked)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.view)
        split.addWidget(self.legend)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self.hint = EmptyHint(self, "The gradient norm of every trainable parameter, per step, "
                                    "appears here while the network trains. One that vanishes "
                                    "or explodes is flagged on its node.")
        self.redrawer = Redrawer(self._redraw, self)

    # ------------------------------------------------------------------ reports in
    def reset(self, info=None) -> None:
        """One curve per trainable parameter of the run (none for frozen nodes)."""
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        for marker in self._markers:
            self.plot.removeItem(marker)
        self.buffers.clear(), self.curves.clear(), self.colors.clear(), self._markers.clear()
        self.legend.clear()
        keys = tuple(info.trainable_keys) if info is not None else ()
        nodes = list(dict.fromkeys(k.split(".")[0] for k in keys))
        for key in keys:
            node = key.split(".")[0]
            self._add_curve(key, node_color(node, nodes.index(node), len(nodes)))
        self.highlight(self.highlighted)
        self.redrawer.mark()

    def _add_curve(self, key: str, color: QColor) -> None:
        self.buffers[key] = RingBuffer()
        self.colors[key] = color.lighter(145) if not key.endswith(".weight") else color
        curve = self.plot.plot(pen=self._pen(key, False), name=key)
        curve.setDownsampling(auto=True, method="peak")
        curve.setClipToView(True)
        self.curves[key] = curve
        swatch = QPixmap(14, 14)
        swatch.fill(self.colors[key])
        item = QListWidgetItem(QIcon(swatch), key)
        item.setData(Qt.UserRole, key)
        self.legend.addItem(item)

    def add_steps(self, reports: list) -> None:
        if reports and not any(len(b) for b in self.buffers.values()):
            fix_x_range(self.plot, reports[0].total_steps)
        for r in reports:
            for key, norm in r.grad_norms.items():
                buf = self.buffers.get(key)
                if buf is not None:
                    buf.append(r.global_step, max(norm, FLOOR) if np.isfinite(norm) else np.nan)
        self.redrawer.mark()

    def mark_diverged(self, report) -> None:
        line = pg.InfiniteLine(pos=report.global_step, angle=90,
                               pen=pg.mkPen(SERIES["alarm"], width=2, style=Qt.DashLine))
        self.plot.addItem(line)
        self._markers.append(line)
        self.highlight(report.node_id)

    # ------------------------------------------------------------------ highlight
    def highlight(self, node_id: str | None) -> None:
        """Emphasise ``node_id``'s curves (None: all equal). A node with no curve clears it."""
        if node_id is not None and not any(k.split(".")[0] == node_id for k in self.curves):
            node_id = None
        self.highlighted = node_id
        for key, curve in self.curves.items():
            on = node_id is not None and key.split(".")[0] == node_id
            curve.setPen(self._pen(key, on))
            curve.setZValue(10 if on else 0)
        for i in range(self.legend.count()):
            item = self.legend.item(i)
            font = item.font()
            font.setBold(node_id is not None and item.data(Qt.UserRole).split(".")[0] == node_id)
            item.setFont(font)

    def highlighted_keys(self) -> list[str]:
        return [k for k in self.curves if self.highlighted and k.split(".")[0] == self.highlighted]

    def _pen(self, key: str, on: bool) -> QPen:
        # Solid one-pixel pens except for the highlighted node: in Qt's raster engine a dashed
        # 1.5 px pen made one frame of six curves cost ~100 ms instead of ~6 ms.
        color = QColor(self.colors[key])
        if self.highlighted is not None and not on:
            color.setAlpha(70)
        return pg.mkPen(color, width=2.5 if on else 1)

    def _legend_clicked(self, item: QListWidgetItem) -> None:
        key = item.data(Qt.UserRole)
        self.highlight(key.split(".")[0])
        self.key_selected.emit(key)

    # ------------------------------------------------------------------ drawing
    def _redraw(self) -> None:
        self.hint.show_when(not any(len(b) for b in self.buffers.values()))
        for key, curve in self.curves.items():
            buf = self.buffers[key]
            curve.setData(buf.x, buf.y, connect="finite")
