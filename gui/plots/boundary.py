"""The decision regions of a classifier on two-feature data, redrawn while it trains.

The engine computes the class probabilities over a grid (``engine.boundary``). Here each cell
takes its class's colour, paler where the network is unsure, under the training points in
their true classes' colours. This is the picture TensorFlow Playground is known for, for any
graph drawn on the canvas.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF
from PySide6.QtWidgets import QVBoxLayout, QWidget

from layerloom.engine.boundary import two_features
from layerloom.gui.plots.buffers import Redrawer
from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.style import (legend_label, legend_label_html, make_view, palette_colors,
                                       style_plot)

# Class colours (Tableau 10), as RGB rows: strong for points, blended towards the background
# for regions.
CLASS_COLOURS = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                          (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
                          (188, 189, 34), (23, 190, 207)], dtype=np.float64)
MAX_POINTS = 1500  # drawn training points: enough to see the classes, cheap to redraw
REGION_STRENGTH = 0.55  # how far a fully confident cell moves from the background to its colour
NOT_2D = ("The decision regions appear here for data with two features (spirals, moons, "
          "circles, xor, a two-column CSV): which class the network gives every point.")


def colours(k: int) -> np.ndarray:
    return CLASS_COLOURS[np.arange(k) % len(CLASS_COLOURS)]


def region_image(probs: np.ndarray, background) -> np.ndarray:
    """(n, n, 3) uint8: each cell mixed from the class colours by probability, then blended
    with the background by how sure the network is (max probability, rescaled from 1/k to 1)."""
    k = probs.shape[-1]
    mixed = probs @ colours(k)
    sure = (probs.max(axis=-1, keepdims=True) - 1.0 / k) / max(1.0 - 1.0 / k, 1e-9)
    bg = np.array([background.red(), background.green(), background.blue()], dtype=np.float64)
    rgb = bg + (mixed - bg) * REGION_STRENGTH * np.clip(sure, 0.0, 1.0)
    return np.clip(rgb, 0, 255).astype(np.uint8)


class DecisionBoundaryView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.latest = None  # the newest engine.boundary.BoundaryMap
        self.active = False  # the run's data has two features: regions will come
        self.view = make_view(pg.PlotWidget)
        self.plot = self.view.getPlotItem()
        style_plot(self.plot, left="feature 2", bottom="feature 1")
        self.plot.setAspectLocked(False)
        self.image = pg.ImageItem()
        self.points = pg.ScatterPlotItem(size=5, pen=pg.mkPen(255, 255, 255, 160))
        self.plot.addItem(self.image)
        self.plot.addItem(self.points)
        self.legend = legend_label([])  # colour -> class, above the plot: never on the points
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(0)
        layout.addWidget(self.legend)
        layout.addWidget(self.view, 1)
        self.hint = EmptyHint(self.view, NOT_2D)
        self.redrawer = Redrawer(self._redraw, self)

    def reset(self, info=None) -> None:
        """A new run: its training points, and no regions until the first map arrives."""
        self.latest = None
        self.image.clear()
        self.points.clear()
        self.legend.setText("")
        data = info.dataset if info is not None else None
        self.active = two_features(data) and len(data.train) > 0
        self.hint.show_when(not self.active, NOT_2D)
        if self.active:
            pick = np.random.default_rng(0).permutation(len(data.train))[:MAX_POINTS]
            x, y = data.train.x[pick], data.train.y[pick].astype(int)
            k = max(int(data.train.y.max()) + 1, len(data.class_names or []))
            brushes = [pg.mkBrush(*c) for c in colours(k)[y]]
            self.points.setData(x[:, 0], x[:, 1], brush=brushes)
            names = list(data.class_names or []) or [str(i) for i in range(k)]
            self.legend.setText(legend_label_html(
                [(_hex(colour), "square", str(name)) for name, colour in zip(names, colours(k))]))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        """View > Theme: the regions are blended with the background, so draw them again."""
        if event.type() == QEvent.PaletteChange and self.latest is not None:
            self.redrawer.mark()
        super().changeEvent(event)

    def set_map(self, boundary) -> None:
        self.latest = boundary
        self.redrawer.mark()

    def _redraw(self) -> None:
        if self.latest is None:
            return
        x0, x1, y0, y1 = self.latest.extent
        rgb = region_image(self.latest.probs, palette_colors()[0])
        self.image.setImage(rgb.transpose(1, 0, 2), autoLevels=False)  # ImageItem: x first
        self.image.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.hint.show_when(False)


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(v) for v in rgb)
