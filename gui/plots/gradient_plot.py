"""Gradient norm per parameter tensor over steps: one curve each, log scale, and beside it a
legend grouped by node.

Frozen parameters get no gradient and so no curve. Each node gets a distinct colour from a
qualitative palette (tiny_gpt's thirty parameters in thirty pastel hues could not be told apart)
and its parameters shades of it; the legend is a tree, node above its parameters, so long
names ("b1_attn.in_proj_weight") are never cut to "b1_attn.in_pro". ``highlight(node_id)``
thickens that node's curves and fades the others, which is what a click on the canvas does.
Clicking a legend entry highlights too and emits ``key_selected`` (the histogram follows it).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPen, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QSplitter, QTreeWidget, QTreeWidgetItem, QWidget

from layerloom.gui.plots.buffers import Redrawer, RingBuffer
from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.loss_plot import few_points, fix_x_range
from layerloom.gui.plots.style import SERIES, make_view, style_plot

# Tableau 20's strong half then its light half: twenty hues a person can tell apart
NODE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
                "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")


def node_of(key: str) -> str:
    """The node a parameter key belongs to: ``"enc.0.attn.weight"`` -> ``"enc.0.attn"``."""
    return key.rsplit(".", 1)[0]


def belongs(key: str, node_id: str | None) -> bool:
    """The key is a parameter of ``node_id`` (or of a node inside it, for a block instance)."""
    return node_id is not None and key.startswith(node_id + ".")


def shades(colour: QColor, n: int) -> list[QColor]:
    """``n`` shades of one hue, the first the colour itself: a node's parameters."""
    return [QColor(colour) if i == 0 else QColor(colour).lighter(100 + 35 * i) if i % 2
            else QColor(colour).darker(100 + 25 * i) for i in range(n)]

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
        self.legend = QTreeWidget()
        self.legend.setHeaderHidden(True)
        self.legend.setIndentation(12)
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
        groups: dict[str, list[str]] = {}
        for key in keys:
            groups.setdefault(node_of(key), []).append(key)
        for i, (node, members) in enumerate(groups.items()):
            base = QColor(NODE_COLOURS[i % len(NODE_COLOURS)])
            top = QTreeWidgetItem([node])
            top.setIcon(0, _swatch(base))
            top.setData(0, Qt.UserRole, members[0])
            self.legend.addTopLevelItem(top)
            for key, colour in zip(members, shades(base, len(members))):
                self._add_curve(key, colour, top)
            top.setExpanded(True)
        self.highlight(self.highlighted)
        self.redrawer.mark()

    def _add_curve(self, key: str, color: QColor, group: QTreeWidgetItem) -> None:
        self.buffers[key] = RingBuffer()
        self.colors[key] = color
        curve = self.plot.plot(pen=self._pen(key, False), name=key)
        curve.setDownsampling(auto=True, method="peak")
        curve.setClipToView(True)
        self.curves[key] = curve
        item = QTreeWidgetItem([key.rsplit(".", 1)[-1]])
        item.setIcon(0, _swatch(color))
        item.setData(0, Qt.UserRole, key)
        item.setToolTip(0, key)
        group.addChild(item)

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
        if node_id is not None and not any(belongs(k, node_id) for k in self.curves):
            node_id = None
        self.highlighted = node_id
        for key, curve in self.curves.items():
            on = belongs(key, node_id)
            curve.setPen(self._pen(key, on))
            curve.setZValue(10 if on else 0)
        for i in range(self.legend.topLevelItemCount()):
            top = self.legend.topLevelItem(i)
            for item in (top, *(top.child(j) for j in range(top.childCount()))):
                font = item.font(0)
                font.setBold(belongs(item.data(0, Qt.UserRole), node_id))
                item.setFont(0, font)

    def highlighted_keys(self) -> list[str]:
        return [k for k in self.curves if belongs(k, self.highlighted)]

    def _pen(self, key: str, on: bool) -> QPen:
        # Solid one-pixel pens except for the highlighted node: in Qt's raster engine a dashed
        # 1.5 px pen made one frame of six curves cost ~100 ms instead of ~6 ms.
        color = QColor(self.colors[key])
        if self.highlighted is not None and not on:
            color.setAlpha(70)
        return pg.mkPen(color, width=2.5 if on else 1)

    def _legend_clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        key = item.data(0, Qt.UserRole)
        self.highlight(node_of(key))
        self.key_selected.emit(key)

    # ------------------------------------------------------------------ drawing
    def _redraw(self) -> None:
        self.hint.show_when(not any(len(b) for b in self.buffers.values()))
        for key, curve in self.curves.items():
            buf = self.buffers[key]
            curve.setData(buf.x, buf.y, connect="finite", **few_points(len(buf), self.colors[key]))


def _swatch(colour: QColor) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(colour)
    return QIcon(pixmap)
