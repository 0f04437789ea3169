"""The inference view's "Generate text" section: continue a prompt with a trained character
language model (the same ``engine.sampling.generate`` as ``layerloom generate``).

A few hundred characters take a few hundred milliseconds, so generation runs on its own thread
(on one core, see ``one_core``), on a private copy of the network (the inference view forwards the shared one on the UI thread),
with a progress bar and a Stop button. ``generate`` has no progress callback, so the copy's
``forward`` is wrapped: it is called once per generated character, which gives the progress and
a point to stop at.
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QDoubleSpinBox, QGridLayout, QGroupBox, QLabel, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QSizePolicy, QSpinBox,
                               QWidget)

from layerloom.engine.data import Dataset
from layerloom.engine.data.text import encode
from layerloom.engine.network import Network
from layerloom.engine.sampling import generate
from layerloom.engine.spec import LayerloomError
from layerloom.engine.training import bind
from layerloom.gui import gc_guard
from layerloom.gui.plots.style import SERIES

MAX_LENGTH = 10_000
PROGRESS_EVERY = 0.05  # seconds between progress signals


def language_vocab(net: Network | None, dataset: Dataset | None) -> list[str] | None:
    """The vocabulary (id -> character) when ``net`` is a character language model of
    ``dataset``, else None. The rule ``engine.sampling`` relies on: an int64 Input of T token
    ids, and a CrossEntropyLoss against the Label whose scores are (T, V) with V the data's
    characters."""
    if net is None or dataset is None or not dataset.class_names:
        return None
    vocab = list(dataset.class_names)
    if not all(isinstance(c, str) and len(c) == 1 for c in vocab):
        return None
    try:
        binding = bind(net)
    except LayerloomError:
        return None
    if binding.logits_ref is None:
        return None
    shapes = net.plan.shapes.shapes
    tokens = shapes.get((binding.input_id, "y"))
    scores = shapes.get(binding.logits_ref)
    if net.plan.step(binding.input_id).attrs.get("dtype") != "int64":
        return None
    if tokens is None or scores is None or len(tokens) != 2 or len(scores) != 3:
        return None
    return vocab if scores[1:] == (tokens[1], len(vocab)) else None


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """numba (for this thread) and the BLAS on one core. A batch of one sequence is too little
    work to share: on two busy cores, 100 characters of tiny_gpt took 0.17 s on one core and
    0.4-2 s with two threads (numba's or the BLAS's), and one core leaves the other to the UI."""
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(1)  # thread-local: the training worker's setting is its own
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Stopped(Exception):
    """Raised inside the generation thread when Stop was pressed."""


class GenerationThread(QThread):
    """Runs one ``generate`` call on a copy of the network. Once ``finished`` has arrived,
    ``result`` holds the continuation (prompt not included) or ``error`` a one-line message;
    neither after a stop."""

    progress = Signal(int)  # characters generated so far

    def __init__(self, net: Network, vocab: list[str], prompt: str, length: int,
                 temperature: float, seed: int, parent=None):
        super().__init__(parent)
        self.net = Network(net.graph, dtype=net.dtype, params=net.params)
        self.args = (vocab, prompt, length, temperature, seed)
        self.stop_requested = False
        self.result: str | None = None
        self.error: str | None = None
        self.gc_hold: gc_guard.GcHold | None = None  # set by whoever starts the thread
        self._observe_steps()

    def _observe_steps(self) -> None:
        forward, state = self.net.forward, {"n": -1, "t": 0.0}

        def observed(*args, **kwargs):
            if self.stop_requested:
                raise _Stopped
            state["n"] += 1  # the first call makes the first character
            now = time.monotonic()
            if now - state["t"] >= PROGRESS_EVERY:
                state["t"] = now
                self.progress.emit(state["n"])
            return forward(*args, **kwargs)

        self.net.forward = observed

    def run(self) -> None:
        try:
            with one_core():
                text = generate(self.net, *self.args)
        except _Stopped:
            return
        except LayerloomError as err:
            self.error = one_line(err)
        except Exception as err:  # noqa: BLE001 (shown as one line, never a traceback)
            self.error = one_line(f"generation failed: {type(err).__name__}: {err}")
        else:
            self.result = text


class GenerateView(QGroupBox):
    """Prompt, length, temperature and seed in; prompt + continuation out."""

    finished = Signal(str)  # the shown text (prompt + continuation) once a generation ends
    failed = Signal(str)  # the one-line error shown

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Generate text", parent)
        self.net: Network | None = None
        self.vocab: list[str] | None = None
        self.thread: GenerationThread | None = None
        self._prompt = ""
        self._build()
        self.set_model(None, None)

    def _build(self) -> None:
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("text to continue")
        self.length = QSpinBox(suffix=" chars", minimum=1, maximum=MAX_LENGTH, value=200)
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=5.0, singleStep=0.1, value=0.6)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.temperature.setToolTip("below 1 safer, above 1 wilder, 0 always the likeliest")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("the same seed gives the same text")
        self.button = QPushButton("Generate")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(self.fontMetrics().height() // 2 + 2)
        self.error = QLabel()
        self.error.setStyleSheet("color: #d64541;")
        self.error.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long: clipped
        self.output = QPlainTextEdit(readOnly=True)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.output.setPlaceholderText("The prompt and its continuation appear here.")
        # three short rows rather than one long one: the section shares a bottom dock with the
        # sample and activation panes, and must not widen the window
        grid = QGridLayout(self)
        grid.addWidget(QLabel("Prompt"), 0, 0)
        grid.addWidget(self.prompt, 0, 1, 1, 3)
        grid.addWidget(QLabel("Length"), 1, 0)
        grid.addWidget(self.length, 1, 1)
        grid.addWidget(QLabel("Seed"), 1, 2)
        grid.addWidget(self.seed, 1, 3)
        grid.addWidget(QLabel("Temperature"), 2, 0)
        grid.addWidget(self.temperature, 2, 1)
        grid.addWidget(self.button, 2, 2, 1, 2)
        grid.addWidget(self.progress, 3, 0, 1, 4)
        grid.addWidget(self.error, 4, 0, 1, 4)
        grid.addWidget(self.output, 5, 0, 1, 4)
        grid.setRowStretch(5, 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.button.clicked.connect(self._on_button)
        self.prompt.returnPressed.connect(self.generate)

    # ------------------------------------------------------------------ model in
    def set_model(self, net: Network | None, dataset: Dataset | None) -> bool:
        """Show the section (True) when ``net`` is a character language model of ``dataset``."""
        self.shutdown()  # a text from other weights would mislead
        self.vocab = language_vocab(net, dataset)
        self.net = net if self.vocab is not None else None
        self.setVisible(self.net is not None)
        self._set_running(False)
        self.error.clear()
        self.error.hide()
        if self.net is not None and not self.prompt.text():
            self.prompt.setText(self._default_prompt(dataset))
        return self.net is not None

    @staticmethod
    def _default_prompt(dataset: Dataset) -> str:
        """The first word of a test sample: a prompt the vocabulary surely holds."""
        if not len(dataset.test):
            return ""
        text = "".join(dataset.class_names[int(i)] for i in dataset.test.x[0])
        words = text.split()
        return (words[0] + " ") if words else text[:8]

    # ------------------------------------------------------------------ running
    def _on_button(self) -> None:
        if self.thread is not None:
            self.stop()
        else:
            self.generate()

    def generate(self) -> bool:
        """Start generating; False (and a one-line error) when the settings cannot work."""
        if self.net is None or self.thread is not None:
            return False
        prompt = self.prompt.text()
        try:
            if not prompt:
                raise LayerloomError("the prompt is empty: type at least one character")
            encode(prompt, self.vocab)
        except LayerloomError as err:
            self._show_error(f"Prompt: {one_line(err)}")
            return False
        self.error.hide()
        self._prompt = prompt
        temperature = round(self.temperature.value(), self.temperature.decimals())
        thread = GenerationThread(self.net, self.vocab, prompt, self.length.value(),
                                  temperature, self.seed.value(), parent=self)
        thread.progress.connect(self.progress.setValue)
        thread.finished.connect(lambda t=thread: self._on_thread_end(t))
        self.thread = thread
        thread.gc_hold = gc_guard.hold()
        self.progress.setRange(0, self.length.value())
        self.progress.setValue(0)
        self._show_text(prompt, "")
        self._set_running(True)
        thread.start()
        return True

    def stop(self) -> None:
        """Ask a running generation to stop after the character it is on."""
        if self.thread is not None:
            self.thread.stop_requested = True

    def shutdown(self) -> None:
        """Stop and join the thread now (within one character): before the window closes (a
        running QThread must not be freed) or a training run sets its own thread pools."""
        thread = self.thread
        if thread is not None:
            thread.stop_requested = True
            thread.wait()
            self._on_thread_end(thread)

    def _on_thread_end(self, thread: GenerationThread) -> None:
        """Show what the thread made, unless it was stopped or replaced meanwhile."""
        if thread.gc_hold is not None:
            thread.gc_hold.release()
        thread.deleteLater()
        if self.thread is not thread:
            return
        self.thread = None
        self._set_running(False)
        if thread.stop_requested:
            return
        if thread.error is not None:
            self._show_error(thread.error)
        elif thread.result is not None:
            self._show_text(self._prompt, thread.result)
            self.finished.emit(self._prompt + thread.result)

    def _show_error(self, text: str) -> None:
        self.error.setText(one_line(text))
        self.error.setToolTip(self.error.text())
        self.error.show()
        self.failed.emit(self.error.text())

    def _set_running(self, running: bool) -> None:
        self.button.setText("Stop" if running else "Generate")
        self.progress.setVisible(running)
        for w in (self.prompt, self.length, self.temperature, self.seed):
            w.setEnabled(not running)

    def _show_text(self, prompt: str, continuation: str) -> None:
        """The prompt in bold and the accent colour, the model's characters plain."""
        self.output.clear()
        cursor = self.output.textCursor()
        bold = QTextCharFormat()
        bold.setFontWeight(QFont.Bold)
        bold.setForeground(QColor(SERIES["val"]))
        cursor.insertText(prompt, bold)
        cursor.insertText(continuation, QTextCharFormat())
        cursor.movePosition(QTextCursor.Start)  # the prompt in view, not the last line
        self.output.setTextCursor(cursor)

    def text(self) -> str:
        """What the output area shows (prompt + continuation)."""
        return self.output.toPlainText()
