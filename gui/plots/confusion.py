"""The test set's confusion matrix as a picture: counts coloured, true classes down, predictions across.

The matrix comes from the engine's ``DoneReport``; the view only colours it and writes the
counts into the cells (up to ``MAX_TEXT_CLASSES`` classes, beyond that the colour alone).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.style import heatmap_colors, heatmap_view, is_dark, palette_colors

MAX_TEXT_CLASSES = 20
WHEN_ENDED = ("The test set's confusion matrix appears here when a classification run ends: "
              "which classes the network mistakes for which.")
NOT_CLASSIFYING = "No confusion matrix: the model does not classify."


class ConfusionMatrixView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.matrix: np.ndarray | None = None
        self.class_names: list = []
        self._texts: list = []
        self.caption = QLabel(WHEN_ENDED)
        self.caption.setWordWrap(True)  # else its one long line widens the whole panel
        self.view, self.plot, self.image = heatmap_view("true class", "predicted class")
        self.plot.getViewBox().sigResized.connect(self._fit_texts)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)
        self.hint = EmptyHint(self.view, WHEN_ENDED)
        self.caption.hide()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        """View > Theme: the colours run from the panel's background, so draw them again (the
        dark theme left a white matrix)."""
        if event.type() == QEvent.PaletteChange and self.matrix is not None:
            self.set_matrix(self.matrix, self.class_names, self._accuracy)
        super().changeEvent(event)

    def reset(self, _info=None) -> None:
        self.matrix, self.class_names = None, []
        self.image.clear()
        self._clear_texts()
        self.caption.setText(WHEN_ENDED)
        self.caption.hide()
        self.hint.show_when(True, WHEN_ENDED)

    def set_matrix(self, matrix: np.ndarray | None, class_names: list,
                   accuracy: float | None = None) -> None:
        """Show ``matrix[true, predicted]``; ``None`` (regression) explains why there is none."""
        self._clear_texts()
        if matrix is None:
            self.reset()
            self.caption.setText(NOT_CLASSIFYING)
            self.hint.show_when(True, NOT_CLASSIFYING)
            return
        self.matrix, self.class_names = np.asarray(matrix), list(class_names)
        self._accuracy = accuracy
        k = len(self.matrix)
        heatmap_colors(self.image)
        # ImageItem's first axis is x: transpose so rows (true classes) run down the picture
        self.image.setImage(self.matrix.T.astype(float), levels=(0, max(1, self.matrix.max())))
        self.image.setRect(QRectF(0, 0, k, k))
        # names down the side; across, the class numbers (ten names side by side overlap)
        self.plot.getAxis("left").setTicks(
            [[(i + 0.5, f"{_short(n)} {i}") for i, n in enumerate(self.class_names)]])
        self.plot.getAxis("left").setWidth(None)
        self.plot.getAxis("bottom").setTicks([[(i + 0.5, str(i)) for i in range(k)]])
        self.plot.setRange(xRange=(0, k), yRange=(0, k), padding=0.02)
        if k <= MAX_TEXT_CLASSES:
            self._write_counts()
            self._fit_texts()
        acc = f" — test accuracy {100 * accuracy:.1f}%" if accuracy is not None else ""
        self.caption.setText(f"Test set: {int(self.matrix.sum()):,} samples{acc}. "
                             f"Rows: true class, columns: predicted.")
        self.caption.show()
        self.hint.show_when(False)

    def _write_counts(self) -> None:
        top = max(1, self.matrix.max())
        for (i, j), count in np.ndenumerate(self.matrix):
            if count == 0:
                continue
            strong = count / top > 0.5  # the deep end of the colour map: contrasting text
            color = ("k" if is_dark() else "w") if strong else palette_colors()[1]
            text = pg.TextItem(str(int(count)), color=color, anchor=(0.5, 0.5))
            text.setPos(j + 0.5, i + 0.5)
            self.plot.addItem(text)
            self._texts.append(text)

    def _fit_texts(self, *_args) -> None:
        """Counts only where a cell is wide enough to hold them; the colour tells the rest."""
        if self.matrix is None or not self._texts:
            return
        box = self.plot.getViewBox().sceneBoundingRect()
        wide, tall = box.width() / len(self.matrix), box.height() / len(self.matrix)
        digits = len(str(int(self.matrix.max())))
        for t in self._texts:
            t.setVisible(wide >= 8 * digits + 4 and tall >= 14)

    def _clear_texts(self) -> None:
        for t in self._texts:
            self.plot.removeItem(t)
        self._texts.clear()


def _short(name: str, width: int = 10) -> str:
    name = str(name)
    return name if len(name) <= width else name[:width - 1] + "…"
