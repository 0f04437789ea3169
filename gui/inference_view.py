"""The inference view: after training, run one sample through the network and look inside.

Pick a test sample, draw one on a pad (single-channel image models) or open an image file of
your own (``gui/file_input.py``, prepared as ``layerloom predict`` prepares it), and see the
prediction, the class probabilities and any node's activation: feature maps as a grid of
images for N×C×H×W outputs, bars for short vectors and a heat map otherwise. A character
language model also gets a "Generate text" section (gui/generate_view.py), and its sample and
prediction read as text: the next character after the sample's last one; a masked-LM gets a "Fill
in masked characters" section instead (gui/fill_view.py), an encoder-decoder of paired sequences
a "Decode a source" section with its cross-attention map (gui/translate_view.py). For paired
sequences (the data's, or before any is loaded the project's ``pairs:`` spec) the classifier's
parts are hidden (class probabilities, drawing pad, image file): a test sample reads as its
source and target, and its prediction is the target decoded from its source.
"""
from __future__ import annotations

from html import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (QButtonGroup, QGridLayout, QLabel, QListWidgetItem, QPushButton,
                               QRadioButton, QSpinBox, QSplitter, QStackedWidget, QVBoxLayout,
                               QWidget)

from layerloom.engine.data import Dataset
from layerloom.engine.data.text import decode
from layerloom.engine.network import Network
from layerloom.engine.spec import LayerloomError
from layerloom.engine.training import bind_for_predictions
from layerloom.engine.data.images import ImagePrep
from layerloom.gui.activation_side import ActivationSide
from layerloom.gui.file_input import FileInput
from layerloom.gui.fill_view import FillView
from layerloom.gui.generate_view import GenerateView
from layerloom.gui.translate_view import TranslateView, is_pairs
from layerloom.gui.plots.images import DrawPad, ImageLabel, displayable, pad_prompt, to_unit
from layerloom.gui.plots.style import SERIES, make_view, style_plot

TOP_CLASSES = 10  # of a language model's next-character probabilities, the likeliest drawn


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of one row of scores (CrossEntropyLoss takes raw scores)."""
    z = np.asarray(logits, dtype=np.float64) - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


class InferenceView(ActivationSide, QWidget):
    def __init__(self, controller=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.net: Network | None = None
        self.dataset: Dataset | None = None
        self.outputs: dict = {}
        self.probabilities: np.ndarray | None = None
        self._spec = lambda: ""  # the project's data spec (attach: the controller's project)
        # opaque: a stale tab bar that QMainWindow leaves under the bottom docks showed through
        self.setAutoFillBackground(True)
        self._build()
        self.set_network(None, None)
        if controller is not None:
            self.attach(controller)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        input_box = self._build_input_side()
        self.prob_view = make_view(pg.PlotWidget)
        self.prob_view.setMinimumWidth(220)
        style_plot(self.prob_view.getPlotItem(), title="class probabilities")
        self.prob_view.getPlotItem().setMouseEnabled(x=False, y=False)
        self.prob_view.getPlotItem().invertY(True)
        self._build_activation_side()
        # two rows, so the view reads well both in a wide bottom dock and a narrow side one
        top, bottom = QSplitter(Qt.Horizontal), QSplitter(Qt.Horizontal)
        top.addWidget(input_box)
        top.addWidget(self.prob_view)
        bottom.addWidget(self.nodes)
        bottom.addWidget(self.activation_box)
        for split, sizes in ((top, [300, 400]), (bottom, [170, 530])):
            split.setSizes(sizes)
            split.setStretchFactor(1, 1)
            split.setChildrenCollapsible(False)
        rows = self.rows = QSplitter(Qt.Vertical)
        rows.addWidget(top)
        rows.addWidget(bottom)
        rows.setSizes([300, 300])
        # a language model's text generation: beside the two rows (stacked) in a wide dock,
        # under them in a narrow one
        # (or a masked-LM's fill-in, or an encoder-decoder's decoding): at most one shows
        self.generator, self.filler, self.translator = GenerateView(), FillView(), TranslateView()
        self.text_side = QWidget()
        side = QVBoxLayout(self.text_side)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.generator)
        side.addWidget(self.filler)
        side.addWidget(self.translator)
        self.outer = QSplitter(Qt.Vertical)
        self.outer.addWidget(rows)
        self.outer.addWidget(self.text_side)
        self.outer.setChildrenCollapsible(False)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.outer, 1)

    def _build_input_side(self) -> QWidget:
        self.use_sample, self.use_pad = QRadioButton("Test sample"), QRadioButton("Draw")
        self.use_sample.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.use_sample)
        group.addButton(self.use_pad)
        self.file_input = FileInput(self)  # a person's own image file
        group.addButton(self.file_input.choice)
        self.index = QSpinBox()
        self.random_button, self.clear_button = QPushButton("Random"), QPushButton("Clear")
        self.pad = DrawPad()
        self.sample_image = ImageLabel()
        self.sample_image.setWordWrap(True)  # a text sample (a language model's) wraps
        self.input_stack = QStackedWidget()
        self.input_stack.addWidget(self.sample_image)
        self.input_stack.addWidget(self.pad)
        self.prediction = QLabel()
        self.prediction.setWordWrap(True)
        controls = QGridLayout()
        controls.addWidget(self.use_sample, 0, 0)
        controls.addWidget(self.index, 0, 1)
        controls.addWidget(self.random_button, 0, 2)
        controls.addWidget(self.use_pad, 1, 0)
        controls.addWidget(self.clear_button, 1, 2)
        controls.addWidget(self.file_input.choice, 2, 0)
        controls.addWidget(self.file_input.open_button, 2, 1, 1, 2)
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addLayout(controls)
        left.addWidget(self.input_stack, 1)
        left.addWidget(self.prediction)
        self.index.valueChanged.connect(lambda _v: self.run())
        self.random_button.clicked.connect(self.random_sample)
        self.clear_button.clicked.connect(self.pad.clear)
        self.pad.changed.connect(self.run)
        self.use_pad.toggled.connect(self._on_mode)
        self.file_input.choice.toggled.connect(self._on_mode)
        self.file_input.changed.connect(self.run)
        input_box = QWidget()
        input_box.setLayout(left)
        return input_box

    def sizeHint(self) -> QSize:
        return QSize(800, 520)

    def resizeEvent(self, event) -> None:
        self._arrange(event.size().width(), event.size().height())
        super().resizeEvent(event)

    def _arrange(self, width: int, height: int, force: bool = False) -> None:
        """Side by side in a wide, low bottom dock; stacked in a narrow one. With the generator
        the two rows stack in a column and the generator takes the wider share beside them. The
        decode section comes first (the top of the dock, seen without scrolling) and the sample
        row above the activations is only as tall as its few lines."""
        wide, generating = width > 2.2 * height, self.text_side.isVisibleTo(self)
        decoding = self.translator.isVisibleTo(self)
        if self.outer.indexOf(self.text_side) != (0 if decoding else 1):
            self.outer.insertWidget(0 if decoding else 1, self.text_side)
            force = True
        rows = Qt.Horizontal if wide and not generating else Qt.Vertical
        outer = Qt.Horizontal if wide else Qt.Vertical
        if force or (self.rows.orientation(), self.outer.orientation()) != (rows, outer):
            self.rows.setOrientation(rows)
            self.outer.setOrientation(outer)
            extent = width if wide else height
            inner = width if rows == Qt.Horizontal else height
            top = inner // 2
            if decoding and rows == Qt.Vertical:
                top = min(top, self.rows.widget(0).minimumSizeHint().height())
            self.rows.setSizes([top, inner - top])
            first = 2 * extent // 5 if wide else 3 * extent // 5
            if decoding:  # the decode section first, with the larger share
                first = extent - first if wide else first
            self.outer.setSizes([first, extent - first] if generating else [extent, 0])

    def shutdown(self) -> None:
        """The window closes: join a running text generation."""
        self.generator.shutdown()

    # ------------------------------------------------------------------ network in
    def attach(self, controller) -> None:
        """Follow a TrainingController: show its trained network when a run ends."""
        def refresh(*_):
            net = controller.trained_network()
            self.set_network(net, controller.dataset if net is not None else None)

        self._spec = lambda: controller.data_access.project().data.get("spec") or ""
        controller.weights_changed.connect(refresh)
        controller.state_changed.connect(self._on_state)

    def _on_state(self, state: str) -> None:
        """A run starts: end a generation first (one engine job, one set of pools at a time)."""
        if state != "idle":
            self.generator.shutdown()
        self.setEnabled(state == "idle")

    def set_network(self, net: Network | None, dataset: Dataset | None) -> None:
        unbound = None
        try:
            self.binding = bind_for_predictions(net) if net is not None else None
        except LayerloomError as err:  # not one Input
            net, self.binding, unbound = None, None, f"No predictions yet: {err}."
        self.net, self.dataset = net, dataset
        ready = net is not None and dataset is not None
        self.vocab = self.generator.vocab if self.generator.set_model(net, dataset) else None
        if self.filler.set_model(net, dataset):
            self.vocab = self.filler.vocab  # its samples read as text too, [MASK]s and all
        decoding = self.translator.set_model(net if ready else None, dataset)
        self.text_side.setVisible(self.vocab is not None or decoding)
        self.refresh_panes()
        self._arrange(self.width(), self.height(), force=True)
        for w in (self.use_sample, self.index, self.random_button, self.nodes):
            w.setEnabled(ready)
        image_model = ready and self._pad_shape() is not None
        self.use_pad.setEnabled(image_model)
        files = self.file_input.set_preprocessing(dataset.preprocessing if ready else None)
        if (not image_model and self.use_pad.isChecked()) or \
                (not files and self.file_input.choice.isChecked()):
            self.use_sample.setChecked(True)
        self.clear_button.setEnabled(image_model and self.use_pad.isChecked())
        self.nodes.clear()
        if not ready:
            self.message.setText(unbound or "Train the network (or load weights) to look "
                                            "inside it.")
            return
        self.message.setText("")
        if self._pad_shape() is not None:
            self.pad.pixels = np.zeros(self._pad_shape(), dtype=np.float32)
            self.pad.prompt = pad_prompt(dataset.class_names)  # the data's words, not "a digit"
            self.use_pad.setToolTip(self.pad.prompt)
        self.index.blockSignals(True)
        self.index.setRange(0, max(0, len(dataset.test) - 1))
        self.index.blockSignals(False)
        for s in net.plan.steps:
            if not s.layer.is_source and not s.layer.is_loss:
                item = QListWidgetItem(f"{s.node_id} · {s.layer.type_id}")
                item.setData(Qt.UserRole, s.node_id)
                self.nodes.addItem(item)
        self.run()
        self.nodes.setCurrentRow(0)

    def refresh_panes(self) -> None:
        """Show the classifier's parts unless the data are paired sequences (see the module)."""
        pairs = self.translator.model is not None or is_pairs(self.dataset, self._spec())
        for w in (self.prob_view, self.use_pad, self.clear_button, self.file_input.choice,
                  self.file_input.open_button, self.input_stack):  # a sample reads as one line
            w.setVisible(not pairs)

    def _pad_shape(self) -> tuple | None:
        """(H, W) when the model takes single-channel images a person can draw."""
        shape = self.dataset.sample_shape if self.dataset is not None else ()
        return tuple(shape[1:]) if len(shape) == 3 and shape[0] == 1 else None

    def _on_mode(self, _checked: bool = True) -> None:
        drawing, sample = self.use_pad.isChecked(), self.use_sample.isChecked()
        self.input_stack.setCurrentWidget(self.pad if drawing else self.sample_image)
        self.clear_button.setEnabled(drawing)
        self.index.setEnabled(sample)
        self.random_button.setEnabled(sample)
        self.run()

    def random_sample(self) -> None:
        if self.dataset is not None and len(self.dataset.test):
            self.index.setValue(int(np.random.default_rng().integers(len(self.dataset.test))))

    # ------------------------------------------------------------------ running
    def current_input(self) -> tuple[np.ndarray, np.ndarray | None]:
        """One sample as a batch of 1, and its true target (None for a drawing)."""
        if self.use_pad.isChecked():
            return self.pad.pixels[None, None].copy(), None
        if self.file_input.choice.isChecked():
            return self.file_input.x, None
        i = self.index.value()
        return self.dataset.test.x[i:i + 1], self.dataset.test.y[i:i + 1]

    def run(self) -> None:
        """Forward the current sample in inference mode and refresh every view."""
        if self.net is None or self.dataset is None or not len(self.dataset.test):
            return
        x, y = self.current_input()
        if x is None:  # an image file that could not be read, or none chosen yet
            self.sample_image.image = None
            self.sample_image.setText(self.file_input.error or "Open an image file.")
            self.prediction.setText("")
            return
        label = y if y is not None else np.zeros((1, *self.dataset.target_shape),
                                                 dtype=self.dataset.test.y.dtype)
        try:
            feeds = {self.binding.input_id: x}
            if self.binding.label_id is not None:  # an imported model may have no Label yet
                feeds[self.binding.label_id] = label
            self.outputs = self.net.forward(feeds, check=False)
        except LayerloomError as err:
            self.message.setText(str(err))
            return
        if self.translator.model is not None:  # paired sequences: source, target, decoded
            self.probabilities = None
            self.prediction.setText(f"{escape(self.translator.sample_text(x[0]), False)} → "
                                    f"{self.translator.decoded_text(x[0], y)}")
        else:
            if not self.use_pad.isChecked():
                self._show_sample(x[0])
            self._show_prediction(y)
        if self.file_input.choice.isChecked() and self.file_input.path is not None:
            self.prediction.setText(f"{escape(self.file_input.path.name)}: {self.prediction.text()}")
        self.show_activation()

    def _show_sample(self, sample: np.ndarray) -> None:
        img = displayable(sample)
        if self.vocab is not None:
            self.sample_image.image = None
            self.sample_image.setText(f"sample: {decode(sample, self.vocab)!r}")
            return
        if img is None:
            values = ", ".join(f"{v:.3g}" for v in np.ravel(sample)[:8])
            self.sample_image.image = None
            self.sample_image.setText(f"sample: ({values}{'…' if sample.size > 8 else ''})")
            return
        prep = self.dataset.preprocessing if self.dataset is not None else {}
        if prep.get("kind") == "image":  # as the file looked, before normalisation
            img = displayable(ImagePrep.from_dict(prep).unnormalise(sample))
            self.sample_image.set_array(np.clip(img, 0, 1))
        else:
            self.sample_image.set_array(to_unit(img))

    def _show_prediction(self, y: np.ndarray | None) -> None:
        plot = self.prob_view.getPlotItem()
        plot.clear()
        ref = self.binding.logits_ref
        if ref is None:
            self.probabilities = None
            self.prediction.setText("Regression model: see the activations for its outputs.")
            return
        logits = self.net.executor.values[ref][0]
        if not np.isfinite(logits).all():  # e.g. the weights a diverged run stopped at
            self.probabilities = None
            self.prediction.setText("The class scores are not finite (NaN/inf): reset the "
                                    "weights and train with a lower learning rate.")
            return
        names = self.dataset.class_names or []
        if len(names) != logits.shape[-1]:  # an imported model may not know the data's classes
            names = [str(i) for i in range(logits.shape[-1])]
        limit = len(names)
        if logits.ndim == 2:  # per-step scores (a language model): the step after the last
            logits, y = logits[-1], (y[:, -1] if y is not None else None)
            names, limit = [repr(n) for n in names], TOP_CLASSES
        ends_in_softmax = self.net.plan.step(ref[0]).layer.type_id == "Softmax"  # imported models
        self.probabilities = (np.asarray(logits, dtype=np.float64) if ends_in_softmax
                              else softmax(logits))
        k = int(np.argmax(self.probabilities))
        truth = (f" — true: {escape(names[int(y[0])], False)}"
                 if y is not None and y.ndim == 1 and y[0] >= 0 else "")  # < 0: not scored
        self.prediction.setText(f"<b>Prediction: {escape(names[k], False)}</b> "
                                f"({100 * self.probabilities[k]:.1f}%){truth}")
        shown = (np.arange(len(names)) if limit >= len(names)  # in class order
                 else np.argsort(-self.probabilities, kind="stable")[:limit])
        colors = [SERIES["val"] if i == k else SERIES["train"] for i in shown]
        plot.addItem(pg.BarGraphItem(x0=0, y=np.arange(len(shown)), height=0.7,
                                     width=self.probabilities[shown], brushes=colors))
        plot.getAxis("left").setTicks([[(r, names[i]) for r, i in enumerate(shown)]])
        plot.setXRange(0, 1, padding=0.02)
        plot.setYRange(-0.5, len(shown) - 0.5, padding=0)
