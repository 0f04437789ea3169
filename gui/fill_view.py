"""The inference view's "Fill in masked characters" section for a masked-LM (BERT-style) model:
type a text with ``[MASK]`` or ``_`` where characters are hidden, and read the model's likeliest
characters there, with the top candidates of each mask (the same ``engine.sampling.fill`` as
``layerloom generate --fill``). One forward pass of one sequence: it runs on the UI thread.
"""
from __future__ import annotations

from html import escape

from PySide6.QtWidgets import (QGridLayout, QGroupBox, QLabel, QLineEdit, QPushButton,
                               QSizePolicy, QTextBrowser, QWidget)

from layerloom.engine.data import Dataset
from layerloom.engine.data.masking import MASK_TOKEN
from layerloom.engine.network import Network
from layerloom.engine.sampling import MASK_MARKS, Filled, fill
from layerloom.engine.spec import LayerloomError
from layerloom.gui.generate_view import one_line
from layerloom.gui.plots.style import SERIES

TOP = 5


def masked_vocab(net: Network | None, dataset: Dataset | None) -> list[str] | None:
    """The vocabulary when ``net`` was trained on masked text (``[MASK]`` is its last class and
    the others are characters), else None."""
    if net is None or dataset is None or not dataset.class_names:
        return None
    vocab = list(dataset.class_names)
    if vocab[-1] != MASK_TOKEN or not all(isinstance(c, str) and len(c) == 1 for c in vocab[:-1]):
        return None
    return vocab


class FillView(QGroupBox):
    """A text with masks in; the filled text (guesses highlighted) and each mask's top
    candidates out."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Fill in masked characters", parent)
        self.net: Network | None = None
        self.vocab: list[str] | None = None
        self.result: Filled | None = None
        self.text = QLineEdit()
        self.text.setPlaceholderText(f"a text with {' or '.join(MASK_MARKS)} for hidden characters")
        self.button = QPushButton("Fill in")
        self.error = QLabel()
        self.error.setStyleSheet("color: #d64541;")
        self.error.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.output = QTextBrowser()
        self.output.setPlaceholderText("The text with its masks filled in, and for each mask the "
                                       "likeliest characters, appear here.")
        grid = QGridLayout(self)
        grid.addWidget(QLabel("Text"), 0, 0)
        grid.addWidget(self.text, 0, 1)
        grid.addWidget(self.button, 0, 2)
        grid.addWidget(self.error, 1, 0, 1, 3)
        grid.addWidget(self.output, 2, 0, 1, 3)
        grid.setRowStretch(2, 1)
        grid.setColumnStretch(1, 1)
        self.button.clicked.connect(self.run)
        self.text.returnPressed.connect(self.run)
        self.set_model(None, None)

    def set_model(self, net: Network | None, dataset: Dataset | None) -> bool:
        """Show the section (True) when ``net`` is a masked-LM of ``dataset``."""
        self.vocab = masked_vocab(net, dataset)
        self.net = net if self.vocab is not None else None
        self.setVisible(self.net is not None)
        self.error.hide()
        self.output.clear()
        self.result = None
        if self.net is not None and not self.text.text():
            self.text.setText(self._default_text(dataset))
        return self.net is not None

    @staticmethod
    def _default_text(dataset: Dataset) -> str:
        """A test window's first words (as written: its targets undo the masking) with the
        second letter of each longer word masked."""
        if not len(dataset.test):
            return ""
        x, y = dataset.test.x[0], dataset.test.y[0]
        row = [dataset.class_names[int(t if t >= 0 else i)] for i, t in zip(x, y)]
        words = "".join(row).split()[:6]
        return " ".join(w[:1] + "_" + w[2:] if len(w) > 3 else w for w in words)

    def run(self) -> bool:
        """Fill in the typed text; False (and a one-line error) when it cannot."""
        if self.net is None:
            return False
        try:
            self.result = fill(self.net, self.vocab, self.text.text(), TOP)
        except LayerloomError as err:
            self.error.setText(one_line(err))
            self.error.setToolTip(self.error.text())
            self.error.show()
            return False
        self.error.hide()
        self._show(self.result)
        return True

    def _show(self, filled: Filled) -> None:
        colour, guessed = SERIES["val"], {pos for pos, _ in filled.guesses}
        # on a tinted background: a guessed space must show, and not as the "_" that was typed
        text = "".join(f'<b style="color:{colour}; background-color: rgba(127, 127, 127, 90)">'
                       f'{escape(ch)}</b>' if i in guessed else escape(ch)
                       for i, ch in enumerate(filled.text))
        rows = "".join(
            f"<tr><td>{pos}&nbsp;</td>" + "".join(
                f"<td>&nbsp;<code>{escape(repr(ch))}</code> {p:.0%}&nbsp;</td>" for ch, p in best)
            + "</tr>" for pos, best in filled.guesses)
        self.output.setHtml(f'<p style="font-family: monospace; font-size: large; white-space: pre">{text}</p>'
                            f"<table><tr><th>at</th><th colspan={TOP}>likeliest characters"
                            f"</th></tr>{rows}</table>")
