"""The Explain tab's receptive field: choose one output element of a convolution (filter, row,
column) and see the input pixels it reads, tinted by how much each pushed its value up or down.

Only for layers that declare ``sliding_window`` (Conv2D); the numbers come from the real forward
pass the tab already ran (``engine.receptive_field``), and the sum written under the picture is
checked against the network's own output.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QWidget

from layerloom.engine.receptive_field import conv_field, field_pixels
from layerloom.gui.explain_pictures import to_image

IMAGE = "field/y"


class FieldChooser(QWidget):
    """Three spin boxes: which output element y[filter, row, column] of the first sample."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("output y[filter, row, column]:"))
        self.filter, self.row, self.col = QSpinBox(), QSpinBox(), QSpinBox()
        for box, tip in ((self.filter, "the filter (output channel)"),
                         (self.row, "the output row"), (self.col, "the output column")):
            box.setToolTip(f"Receptive field of one output element: {tip}")
            box.valueChanged.connect(lambda _v: self.changed.emit())
            row.addWidget(box)
        row.addStretch(1)

    def fit(self, y_shape: tuple) -> None:
        """Limits from the output's shape (N×F×H×W), without announcing a change."""
        for box, size in zip((self.filter, self.row, self.col), y_shape[1:4]):
            box.blockSignals(True)
            box.setMaximum(max(int(size) - 1, 0))
            box.blockSignals(False)

    def element(self) -> tuple[int, int, int]:
        return self.filter.value(), self.row.value(), self.col.value()


def applies(layer, numbers) -> bool:
    """A sliding-window layer whose numbers hold a 4-D input, weight and output."""
    t = numbers.tensors if numbers is not None else {}
    return bool(getattr(layer, "sliding_window", False)) and all(
        name in t and np.ndim(t[name]) == 4 for name in ("x", "weight", "y"))


def field_html(chooser: FieldChooser, attrs, numbers, images: dict) -> str:
    """The picture (put into ``images``) and the sum it adds up to, for the chosen element."""
    t = numbers.tensors
    chooser.fit(t["y"].shape)
    f, i, j = chooser.element()
    field = conv_field(t["x"][0], t["weight"], t.get("bias"), attrs, f, i, j)
    images[IMAGE] = to_image(field_pixels(t["x"][0], field))
    (r0, r1), (c0, c1) = field.rows, field.cols
    return (f"<p><b>Receptive field of y[{f}, {i}, {j}]</b> (first sample): input rows "
            f"{r0}…{r1 - 1}, columns {c0}…{c1 - 1} (outside the image: padding zeros)<br>"
            f'<img src="{IMAGE}"><br><small>grey: the input (mean over channels); red pushed '
            f"y up, blue pulled it down, by the size of W·x at each pixel</small><br>"
            f"y[{f}, {i}, {j}] = Σ W·x over the field ({field.contribution.sum():.4g}) + b "
            f"({field.bias:.4g}) = {field.value:.4g}; the network computed "
            f"{float(t['y'][0, f, i, j]):.4g}</p>")
