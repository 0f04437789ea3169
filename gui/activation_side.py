"""The inference view's activation side: the node list and the picture of the chosen node's
output for the sample that ran (feature maps as a grid of images for N×C×H×W outputs, bars for
short vectors, a heat map otherwise). A mixin of ``InferenceView``, which sets ``outputs``."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QListWidget, QStackedWidget, QVBoxLayout, QWidget

from layerloom.engine.spec import fmt_shape
from layerloom.gui.plots.images import ImageLabel, feature_map_grid, to_unit
from layerloom.gui.plots.style import SERIES, make_view, style_plot

MAX_BARS = 64  # longer vectors are drawn as a heat map


class ActivationSide:
    """Builds ``nodes`` (a list of node ids) and ``activation_box`` (caption and picture)."""

    def _build_activation_side(self) -> None:
        self.nodes = QListWidget()
        self.nodes.setMinimumWidth(140)
        self.nodes.currentItemChanged.connect(lambda *_: self.show_activation())
        self.maps = ImageLabel()
        self.bars = make_view(pg.PlotWidget)
        style_plot(self.bars.getPlotItem())
        self.activation_stack = QStackedWidget()
        self.activation_stack.addWidget(self.maps)
        self.activation_stack.addWidget(self.bars)
        self.activation_caption = QLabel()
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.activation_caption)
        right.addWidget(self.activation_stack, 1)
        self.activation_box = QWidget()
        self.activation_box.setLayout(right)

    def show_activation(self) -> None:
        item = self.nodes.currentItem()
        if item is None or not self.outputs:
            return
        node_id = item.data(Qt.UserRole)
        a = np.asarray(self.outputs[node_id])[0]
        self.activation_caption.setText(f"{node_id}: output {fmt_shape(a.shape)}")
        if a.ndim == 3:
            grid, shown = feature_map_grid(a)
            more = f" (first {shown} of {len(a)} maps)" if shown < len(a) else ""
            self.activation_caption.setText(f"{node_id}: {len(a)} feature maps of "
                                            f"{a.shape[1]}×{a.shape[2]}{more}")
            self._show_image(grid)
        elif a.ndim <= 1 and a.size <= MAX_BARS:
            self._show_bars(np.ravel(a))
        else:
            flat = np.ravel(a)
            side = int(np.ceil(np.sqrt(flat.size)))
            padded = np.full(side * side, np.nan, dtype=np.float32)
            padded[:flat.size] = flat
            self._show_image(to_unit(padded.reshape(side, side)))

    def _show_image(self, img: np.ndarray) -> None:
        self.maps.set_array(img)
        self.activation_stack.setCurrentWidget(self.maps)

    def _show_bars(self, values: np.ndarray) -> None:
        plot = self.bars.getPlotItem()
        plot.clear()
        plot.addItem(pg.BarGraphItem(x=np.arange(len(values)), height=values, width=0.8,
                                     brush=SERIES["train"]))
        plot.autoRange()
        self.activation_stack.setCurrentWidget(self.bars)
