"""The Data panel's augmentation settings, with a live grid of augmented training examples.

The form is built from the engine's table of settings (``engine.data.augment.SETTINGS``: name,
type, range, what it does), so a new setting appears here with no other change. Every edit
announces the new settings (the window stores them in the graph file's data section as one
undoable edit) and redraws the grid: a few training images, each first as it is and then as
several random augmentations would show it to the network.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFormLayout, QLabel, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from layerloom.engine.data.augment import SETTINGS, Augmentation, preview
from layerloom.engine.spec import LayerloomError
from layerloom.gui.plots.images import displayable, qimage_from_array, tile

LABELS = {"crop_padding": "Random crop (pad px)", "flip": "Horizontal flip",
          "rotation": "Rotation (± degrees)", "shift": "Shift (± share)",
          "brightness": "Brightness (±)", "contrast": "Contrast (±)", "cutout": "Cutout (px)"}
EXAMPLES, VARIANTS = 4, 5


class AugmentPanel(QWidget):
    changed = Signal(dict)  # the new settings, as Augmentation.to_dict() (only those that are on)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.split = None
        self.seed = 0
        self.editors: dict[str, QWidget] = {}
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        for name, (kind, low, high, doc) in SETTINGS.items():
            editor = self._editor(kind, low, high)
            editor.setToolTip(doc)
            form.addRow(LABELS.get(name, name), editor)
            self.editors[name] = editor
        self.note = QLabel("Applied to training batches only, afresh each epoch; validation, "
                           "test and predictions see the images as they are.")
        self.note.setWordWrap(True)
        self.grid = QLabel()
        self.grid.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.grid.setToolTip("Each row: a training image, then random augmentations of it")
        self.again = QPushButton("Other examples")
        self.again.clicked.connect(self.reshuffle)
        caption = QLabel(f"Each row: a training image as stored, then {VARIANTS} random "
                         f"augmentations of it.")
        caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(caption)
        layout.addWidget(self.grid)
        layout.addWidget(self.again, 0, Qt.AlignRight)
        layout.addStretch(1)
        self._redraw = QTimer(self)  # a spin box's arrows fire per step: draw once they rest
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(120)
        self._redraw.timeout.connect(self.refresh_preview)

    def _editor(self, kind, low, high) -> QWidget:
        if kind is bool:
            editor = QCheckBox()
            editor.toggled.connect(self._on_edit)
            return editor
        editor = QSpinBox() if kind is int else QDoubleSpinBox()
        editor.setRange(low, high)
        if kind is float:
            editor.setDecimals(2 if high <= 1 else 0)
            editor.setSingleStep(0.05 if high <= 1 else 5)
        editor.setSpecialValueText("off")  # 0 shows as "off"
        editor.valueChanged.connect(self._on_edit)
        return editor

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict:
        values = {name: (w.isChecked() if isinstance(w, QCheckBox) else w.value())
                  for name, w in self.editors.items()}
        return Augmentation.from_dict({k: v for k, v in values.items() if v}).to_dict()

    def set_settings(self, settings: dict | None) -> None:
        """Show stored settings without announcing them (a damaged record shows as off)."""
        try:
            aug = Augmentation.from_dict(settings or {})
        except LayerloomError:
            aug = Augmentation()
        for name, w in self.editors.items():
            w.blockSignals(True)
            if isinstance(w, QCheckBox):
                w.setChecked(getattr(aug, name))
            else:
                w.setValue(getattr(aug, name))
            w.blockSignals(False)
        self._redraw.start()

    def _on_edit(self, *_args) -> None:
        self.changed.emit(self.settings())
        self._redraw.start()

    # ------------------------------------------------------------------ the preview grid
    def set_split(self, split) -> bool:
        """The training split to draw examples from; False when its samples are not images."""
        ok = split is not None and len(split) > 0 and displayable(split.x[0]) is not None \
            and np.ndim(split.x[0]) == 3
        self.split = split if ok else None
        self.refresh_preview()
        return ok

    def reshuffle(self) -> None:
        self.seed += 1
        self.refresh_preview()

    def refresh_preview(self) -> None:
        if self.split is None:
            self.grid.clear()
            self.grid.setText("Augmentation applies to image data.")
            return
        batch = preview(self.split, Augmentation.from_dict(self.settings()), EXAMPLES, VARIANTS,
                        self.seed)
        images = [np.clip(displayable(img), 0, 1) for row in batch for img in row]
        picture = tile(images, cols=batch.shape[1], pad=2, fill=1.0)
        pixmap = QPixmap.fromImage(qimage_from_array(picture))
        width = min(max(self.width() - 24, 120), 4 * pixmap.width())  # up to 4× the pixels
        self.grid.setPixmap(pixmap.scaledToWidth(width, Qt.FastTransformation))
        self.images = batch

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override): the grid follows the width
        super().resizeEvent(event)
        if self.split is not None:
            self._redraw.start()
