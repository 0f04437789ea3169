"""The Inference tab's third input: an image file of a person's own, prepared as the training
images were (``engine.predict.prepare_file`` with the data's stored preprocessing), exactly as
``layerloom predict`` prepares it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QPushButton, QRadioButton, QWidget

from layerloom.engine.predict import prepare_file
from layerloom.engine.spec import LayerloomError

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff *.gif);;All files (*)"


class FileInput(QObject):
    changed = Signal()  # a new file is ready (``x``), or it failed (``error``)

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self._parent = parent
        self.choice = QRadioButton("Image file")
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Predict the class of an image file of your own")
        self.open_button.clicked.connect(self.choose)
        self.path: Path | None = None
        self.x: np.ndarray | None = None  # 1×C×H×W, prepared
        self.error = ""
        self.preprocessing: dict = {}

    def set_preprocessing(self, preprocessing: dict | None) -> bool:
        """The data's image preprocessing; False (and nothing to open) for other data."""
        usable = bool(preprocessing) and preprocessing.get("kind") == "image"
        self.preprocessing = dict(preprocessing) if usable else {}
        self.choice.setEnabled(usable)
        self.open_button.setEnabled(usable)
        if not usable:
            self.path, self.x = None, None
        return usable

    def choose(self) -> None:
        start = str(self.path.parent) if self.path is not None else ""
        path, _ = QFileDialog.getOpenFileName(self._parent, "Image to predict", start, IMAGE_FILTER)
        if path:
            self.load(path)

    def load(self, path: str | Path) -> bool:
        """Prepare the file; the Inference tab switches to it and predicts."""
        self.path = Path(path)
        try:
            self.x = prepare_file(self.preprocessing, self.path).x
            self.error = ""
        except LayerloomError as err:
            self.x, self.error = None, str(err)
        self.choice.setChecked(True)
        self.changed.emit()
        return self.x is not None
