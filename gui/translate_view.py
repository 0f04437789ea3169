"""The inference view's "Decode a source" section, for encoder-decoder models of paired sequences.

Type a source, choose greedy or a beam width, and read the decoded target beside the
cross-attention map: which source position each target token looked at while it was chosen
(rows: target tokens, columns: source tokens), from the attention layer's own weights output.
Decoding is ``engine.decode``, the same as ``layerloom generate --source``. A target is at most a
few dozen forward passes of a small model, so it runs on the UI thread (on one core).
"""
from __future__ import annotations

from html import escape

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QComboBox, QGridLayout, QGroupBox, QLabel, QLineEdit, QPushButton,
                               QSizePolicy, QSpinBox, QWidget)

from layerloom.engine.data import Dataset
from layerloom.engine.data.pairs import PairFormat
from layerloom.engine.decode import (Decoded, Seq2SeqModel, attention_map, cross_attention_nodes,
                                     decode_text, greedy)
from layerloom.engine.network import Network
from layerloom.engine.spec import LayerloomError
from layerloom.gui.generate_view import one_core, one_line
from layerloom.gui.plots.style import heatmap_colors, heatmap_view

MAX_BEAM = 16
NO_MAP = "No cross-attention map: the model has no attention layer between decoder and source."


def is_pairs(dataset: Dataset | None, spec: str) -> bool:
    """Paired sequences: the loaded data's kind, else (none loaded yet) the data spec's."""
    if dataset is not None:
        return (dataset.preprocessing or {}).get("kind") == "pairs"
    return spec.strip().startswith("pairs:")


def seq2seq_model(net: Network | None, dataset: Dataset | None) -> Seq2SeqModel | None:
    """The decodable model when ``net`` was made for the paired sequences of ``dataset``."""
    if net is None or dataset is None:
        return None
    try:
        return Seq2SeqModel.of(net, PairFormat.of(dataset))
    except LayerloomError:
        return None


class TranslateView(QGroupBox):
    """Source and beam width in; the decoded target and its cross-attention map out."""

    decoded = Signal(str)  # the decoded target's text
    failed = Signal(str)  # the one-line error shown

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Decode a source", parent)
        self.model: Seq2SeqModel | None = None
        self.result: Decoded | None = None
        self.weights: np.ndarray | None = None  # the map shown: target × source
        self._source: np.ndarray | None = None  # the ids ``result`` was decoded from
        self._build()
        self.set_model(None, None)

    def _build(self) -> None:
        self.source = QLineEdit()
        self.source.setPlaceholderText("a source, as in the training pairs")
        self.beam = QSpinBox(minimum=1, maximum=MAX_BEAM, value=1)
        self.beam.setSpecialValueText("1 (greedy)")
        self.beam.setToolTip("how many partial targets beam search keeps; 1 takes the likeliest "
                             "token at every step")
        self.button = QPushButton("Decode")
        self.layer = QComboBox()
        self.layer.setToolTip("the cross-attention layer whose weights the map shows")
        self.target = QLabel()
        font = QFont(self.target.font())
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.target.setFont(font)
        self.target.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error = QLabel()
        self.error.setStyleSheet("color: #d64541;")
        self.error.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long: clipped
        self.map_caption = QLabel()
        self.map_caption.setWordWrap(True)
        self.view, self.plot, self.image = heatmap_view("target token", "source token")
        self.view.setMinimumHeight(160)
        grid = QGridLayout(self)
        grid.addWidget(QLabel("Source"), 0, 0)
        grid.addWidget(self.source, 0, 1, 1, 3)
        grid.addWidget(QLabel("Beam"), 1, 0)
        grid.addWidget(self.beam, 1, 1)
        grid.addWidget(self.button, 1, 2, 1, 2)
        grid.addWidget(QLabel("Target"), 2, 0)
        grid.addWidget(self.target, 2, 1, 1, 3)
        grid.addWidget(self.error, 3, 0, 1, 4)
        grid.addWidget(QLabel("Map of"), 4, 0)
        grid.addWidget(self.layer, 4, 1, 1, 3)
        grid.addWidget(self.map_caption, 5, 0, 1, 4)
        grid.addWidget(self.view, 6, 0, 1, 4)
        grid.setRowStretch(6, 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.button.clicked.connect(self.decode)
        self.source.returnPressed.connect(self.decode)
        self.layer.currentIndexChanged.connect(lambda _i: self._show_map())

    # ------------------------------------------------------------------ model in
    def set_model(self, net: Network | None, dataset: Dataset | None) -> bool:
        """Show the section (True) when ``net`` decodes the paired sequences of ``dataset``."""
        self.model = seq2seq_model(net, dataset)
        self.setVisible(self.model is not None)
        self.result, self.weights = None, None
        self.target.clear()
        self.error.hide()
        self.image.clear()
        self.layer.blockSignals(True)
        self.layer.clear()
        if self.model is not None:
            self.layer.addItems(cross_attention_nodes(self.model.net))
            self.layer.setCurrentIndex(self.layer.count() - 1)  # the last decoder layer
            if not self.source.text():
                self.source.setText(self._default_source(dataset))
        self.layer.blockSignals(False)
        self.layer.setEnabled(self.layer.count() > 1)
        self.map_caption.setText("" if self.layer.count() or self.model is None else NO_MAP)
        self.view.setVisible(self.layer.count() > 0)
        return self.model is not None

    def _default_source(self, dataset: Dataset) -> str:
        """A test sample's source: one the vocabulary surely holds."""
        split = dataset.test if len(dataset.test) else dataset.train
        return self.model.fmt.decode(split.x[0, :self.model.fmt.source_len]) if len(split) else ""

    # ------------------------------------------------------------------ test samples
    def sample_text(self, x: np.ndarray) -> str:
        """A packed test sample's source, as the Inference tab shows it."""
        return f"Source: {self.model.fmt.decode(x[:self.model.fmt.source_len])!r}"

    def decoded_text(self, x: np.ndarray, y: np.ndarray | None) -> str:
        """The target decoded greedily from a packed sample's source, and the true one."""
        fmt = self.model.fmt
        with one_core():
            got = greedy(self.model, x[:fmt.steps])
        truth = ("" if y is None else
                 f" — true: {escape(repr(fmt.decode(y[0][y[0] >= 0])), False)}")
        return f"<b>Decoded: {escape(repr(got.text), False)}</b>{truth}"

    # ------------------------------------------------------------------ decoding
    def decode(self) -> Decoded | None:
        """Decode the typed source and draw its map; None (and a one-line error) on bad input."""
        if self.model is None:
            return None
        try:
            with one_core():
                self.result = decode_text(self.model, self.source.text(), self.beam.value())
            self._source = self.model.fmt.encode_source(self.source.text())
        except LayerloomError as err:
            self.result = None
            self.error.setText(one_line(err))
            self.error.setToolTip(str(err))
            self.error.show()
            self.failed.emit(one_line(err))
            return None
        self.error.hide()
        shown = self.result.text if self.result.text else "(empty)"
        ending = "" if self.result.ended else "  (no end token: ran out of positions)"
        self.target.setText(shown + ending)
        self.target.setToolTip(f"log-probability {self.result.log_prob:.3f}")
        self._show_map()
        self.decoded.emit(self.result.text)
        return self.result

    def _show_map(self) -> None:
        node_id = self.layer.currentText()
        if self.result is None or not node_id:
            return
        fmt, source = self.model.fmt, self._source  # as decoded, whatever was typed since
        with one_core():
            self.weights = attention_map(self.model, source, self.result, node_id)
        rows, cols = self.weights.shape
        heatmap_colors(self.image)
        top = max(float(self.weights.max()), 1e-6)  # the darkest cell is the largest weight
        self.image.setImage(self.weights.T.astype(float), levels=(0.0, top))  # x first
        self.image.setRect(QRectF(0, 0, cols, rows))
        sources = [fmt.vocab[int(i)] for i in source[:cols]]
        targets = [fmt.vocab[int(i)] for i in self.result.ids] + ["</s>"]
        self.plot.getAxis("bottom").setTicks([[(j + 0.5, _tick(k)) for j, k in enumerate(sources)]])
        self.plot.getAxis("left").setTicks([[(i + 0.5, _tick(k))
                                             for i, k in enumerate(targets[:rows])]])
        self.plot.setRange(xRange=(0, cols), yRange=(0, rows), padding=0.02)
        self.map_caption.setText(f"Where {node_id} looked (heads averaged): a row per target "
                                 f"token, a column per source token; the darkest cell is the largest weight, "
                                 f"{top:.2f}.")


def _tick(token: str) -> str:
    return "␣" if token == " " else token
