"""The training panel: settings bound to the project's "training" section, run buttons, progress.

Each setting a person changes is one ``Document.edit_section`` edit (undoable, marks the file
dirty, checked by the engine's rules); the panel only shows the section, after any edit, undo,
redo or Open, and never writes it itself. Its limits come from ``engine.training_config``.

Train / Pause / Resume / Step / Stop drive the TrainingController; the progress bar shows epoch,
step, samples per second and time left; a diverged run's message names the node; the final
test accuracy stays on show until the next run.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QGridLayout, QLabel, QProgressBar,
                               QPushButton, QSizePolicy, QSpinBox, QStyle, QVBoxLayout, QWidget)

from layerloom.engine.optim import OPTIMIZERS, SCHEDULES
from layerloom.engine.training_config import SETTINGS, TrainConfig
from layerloom.gui.plots.buffers import Redrawer
from layerloom.gui.training import controller as ctl
from layerloom.gui.training.widgets import ScientificSpinBox

OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD + momentum", "adam": "Adam", "adamw": "AdamW"}
SCHEDULE_NAMES = {"constant": "constant", "cosine": "cosine decay", "step": "÷10 at ½ and ¾"}
ERROR_STYLE = "color: #c62828;"
WARNING_STYLE = "color: #b26a00;"


def _show(label: QLabel, text: str) -> None:
    """An empty message takes no room: the panel stays compact in a short dock."""
    label.setText(text)
    label.setVisible(bool(text))


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class TrainingPanel(QWidget):
    def __init__(self, controller, document: QObject, parent: QWidget | None = None):
        """``document``: the Document whose project's training section the panel shows and
        edits."""
        super().__init__(parent)
        self.controller, self.document = controller, document
        self._build_settings()
        self._build_buttons()
        self._build_progress()
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addLayout(self.button_row)
        layout.addWidget(self.progress)
        for label in (self.progress_label, self.status_label, self.result_label, self.weights_label):
            layout.addWidget(label)
        layout.addStretch(1)
        self._latest, self._warned = None, False
        self.redrawer = Redrawer(self._show_progress, self)
        self._connect(controller)
        self.load_settings()
        document.section_changed.connect(lambda name: name == "training" and self.load_settings())
        document.project_replaced.connect(lambda _graph: self.load_settings())
        self._on_state(controller.state)
        self._on_weights(controller.network is not None)

    # ------------------------------------------------------------------ building
    def _build_settings(self) -> None:
        self.optimizer = QComboBox()
        for key in OPTIMIZERS:
            self.optimizer.addItem(OPTIMIZER_NAMES.get(key, key), key)
        self.lr = ScientificSpinBox()
        self.schedule = QComboBox()
        for key in SCHEDULES:
            self.schedule.addItem(SCHEDULE_NAMES.get(key, key), key)
        self.schedule.setToolTip("How the learning rate moves over a run: kept, lowered to 0 "
                                 "along a cosine, or divided by 10 at half and three quarters")
        self.weight_decay = ScientificSpinBox(first_rung=1e-5)
        self.weight_decay.setToolTip("L2 penalty on the weights (0: none); AdamW decays them "
                                     "directly instead")
        self.momentum = QDoubleSpinBox()
        self.momentum.setRange(0.0, 0.999)
        self.momentum.setDecimals(3)
        self.momentum.setSingleStep(0.05)
        self.momentum.setToolTip("Share of the previous step kept in each update (SGD + momentum)")
        self.batch_size, self.epochs, self.seed = QSpinBox(), QSpinBox(), QSpinBox()
        self.max_steps = QSpinBox()
        for name in ("batch_size", "epochs", "seed"):
            getattr(self, name).setRange(SETTINGS[name].low, SETTINGS[name].high)
        self.max_steps.setRange(0, SETTINGS["max_steps"].high)
        self.max_steps.setSpecialValueText("all")  # 0: no early stop ("all epochs" was cut off)
        self.max_steps.setToolTip("Stop after this many mini-batches (a quick look at a model); "
                                  "\"all\" trains every epoch")
        em = self.fontMetrics().horizontalAdvance("M")
        for w in (self.lr, self.batch_size, self.epochs, self.seed, self.max_steps,
                  self.weight_decay, self.momentum):
            w.setMinimumWidth(6 * em)
            w.setMaximumWidth(11 * em)
        self.lr.setMinimumWidth(7 * em)  # room for "1e+06"
        self.optimizer.setMaximumWidth(14 * em)
        self.schedule.setMaximumWidth(14 * em)
        self.form = QGridLayout()
        self.form.setHorizontalSpacing(em)
        cells = (("Optimizer", self.optimizer), ("Learning rate", self.lr),
                 ("Batch size", self.batch_size), ("Epochs", self.epochs), ("Seed", self.seed),
                 ("Stop after", self.max_steps), ("Schedule", self.schedule),
                 ("Weight decay", self.weight_decay), ("Momentum", self.momentum))
        for i, (text, widget) in enumerate(cells):  # two label/field pairs per row
            row, col = divmod(i, 2)
            self.form.addWidget(QLabel(text), row, 2 * col, Qt.AlignRight)
            self.form.addWidget(widget, row, 2 * col + 1)
        self.form.setColumnStretch(4, 1)
        self.optimizer.currentIndexChanged.connect(
            lambda _i: self._store("optimizer", self.optimizer.currentData()))
        self.optimizer.currentIndexChanged.connect(lambda _i: self._enable_momentum())
        self.weight_decay.valueChanged.connect(lambda v: self._store("weight_decay", float(v)))
        self.momentum.valueChanged.connect(lambda v: self._store("momentum", round(float(v), 3)))
        self.lr.valueChanged.connect(lambda v: self._store("lr", float(v)))
        self.schedule.currentIndexChanged.connect(  # the default is left out of the file
            lambda _i: self._store("schedule", self.schedule.currentData()
                                   if self.schedule.currentData() != "constant" else None))
        for name in ("batch_size", "epochs", "seed"):
            getattr(self, name).valueChanged.connect(lambda v, n=name: self._store(n, int(v)))
        self.max_steps.valueChanged.connect(lambda v: self._store("max_steps", int(v) or None))

    def _build_buttons(self) -> None:
        icon = lambda name: self.style().standardIcon(getattr(QStyle, name))  # noqa: E731
        self.train_button = QPushButton(icon("SP_MediaPlay"), "Train")
        self.pause_button = QPushButton(icon("SP_MediaPause"), "Pause")
        self.resume_button = QPushButton(icon("SP_MediaPlay"), "Resume")
        self.step_button = QPushButton(icon("SP_MediaSkipForward"), "Step")
        self.stop_button = QPushButton(icon("SP_MediaStop"), "Stop")
        self.reset_button = QPushButton(icon("SP_BrowserReload"), "Reset weights")
        self.step_button.setToolTip("Run exactly one mini-batch, update every view, then pause")
        self.reset_button.setToolTip("Forget the trained weights: the next run starts fresh")
        c = self.controller
        self.train_button.clicked.connect(lambda: c.start())
        self.pause_button.clicked.connect(c.pause)
        self.resume_button.clicked.connect(c.resume)
        self.step_button.clicked.connect(c.step)
        self.stop_button.clicked.connect(c.stop)
        self.reset_button.clicked.connect(c.drop_weights)
        self.button_row = QGridLayout()  # 3 × 2: fits a narrow side dock as well as a wide one
        for i, b in enumerate((self.train_button, self.pause_button, self.resume_button,
                               self.step_button, self.stop_button, self.reset_button)):
            b.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
            self.button_row.addWidget(b, *divmod(i, 3))
        self.button_row.setColumnStretch(3, 1)

    def _build_progress(self) -> None:
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.progress_label = QLabel(" ")
        self.status_label, self.result_label, self.weights_label = QLabel(), QLabel(), QLabel()
        for label in (self.progress_label, self.status_label, self.result_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.weights_label.setStyleSheet("color: palette(placeholder-text);")
        self.status_label.hide()
        self.result_label.hide()

    def _connect(self, c) -> None:
        c.state_changed.connect(self._on_state)
        c.started.connect(self._on_started)
        c.status.connect(self._on_status)
        c.steps.connect(self._on_steps)
        c.epoch.connect(self._on_epoch)
        c.finished.connect(self._on_finished)
        c.diverged.connect(self._on_diverged)
        c.warning.connect(self._on_warning)
        c.failed.connect(self._on_failed)
        c.weights_changed.connect(self._on_weights)

    # ------------------------------------------------------------------ settings
    def load_settings(self) -> None:
        """Show the project's training section. A widget already showing its value is left
        alone, so the one a person is typing into keeps its text."""
        config = TrainConfig.from_settings(self.document.project.training)
        shown = {"optimizer": config.optimizer, "schedule": config.schedule,
                 "lr": float(config.lr), "weight_decay": float(config.weight_decay),
                 "momentum": float(config.momentum), "batch_size": config.batch_size,
                 "epochs": config.epochs, "seed": config.seed, "max_steps": config.max_steps or 0}
        for name, value in shown.items():
            widget = getattr(self, name)
            widget.blockSignals(True)
            if isinstance(widget, QComboBox):
                if widget.currentData() != value:
                    widget.setCurrentIndex(max(widget.findData(value), 0))
            elif widget.value() != value:
                widget.setValue(value)
            widget.blockSignals(False)
        self._enable_momentum()

    @property
    def settings_widgets(self) -> tuple:
        return (self.optimizer, self.lr, self.schedule, self.batch_size, self.epochs, self.seed,
                self.max_steps, self.weight_decay, self.momentum)

    def _enable_momentum(self) -> None:
        """Only SGD + momentum reads the momentum (Adam's moments are its own)."""
        idle = self.controller.state == ctl.IDLE
        self.momentum.setEnabled(idle and self.optimizer.currentData() == "momentum")

    def _store(self, name: str, value) -> None:
        """One setting changed in its widget: an edit through the document (None removes the
        setting, so its default applies); a refused value goes back to what the file holds."""
        if not self.document.edit_section("training", {name: value}):
            self.load_settings()

    # ------------------------------------------------------------------ controller reports
    def _on_state(self, state: str) -> None:
        idle = state == ctl.IDLE
        self.train_button.setEnabled(idle)
        self.pause_button.setEnabled(state in (ctl.RUNNING, ctl.PREPARING))
        self.resume_button.setEnabled(state == ctl.PAUSED)
        self.step_button.setEnabled(state in (ctl.IDLE, ctl.PAUSED))
        self.stop_button.setEnabled(state in (ctl.RUNNING, ctl.PAUSED, ctl.PREPARING))
        self.reset_button.setEnabled(idle and self.controller.network is not None)
        for w in self.settings_widgets:
            w.setEnabled(idle)
        self._enable_momentum()
        if state == ctl.PAUSED:
            self.redrawer.flush()
            self.progress.setFormat("paused — %p%")
        elif state == ctl.STOPPING:
            self.progress.setFormat("stopping: evaluating on the test set…")

    def clear(self) -> None:
        """New or Open: nothing of the last graph's run stays on show."""
        self._latest = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress_label.setText(" ")
        self.status_label.setStyleSheet("")
        _show(self.status_label, "")
        _show(self.result_label, "")

    def _on_started(self, info) -> None:
        self._info, self._latest, self._warned = info, None, False
        self.progress.setRange(0, 0)  # busy until the first step: kernels may be compiling
        self.progress.setFormat("preparing…")
        self.status_label.setStyleSheet("")
        _show(self.status_label, "")
        _show(self.result_label, "")
        start = "continuing from the trained weights" if info.continued else "fresh weights"
        what = (f"{info.dataset.name}: {len(info.dataset.train):,} training samples"
                if info.dataset is not None else "no data: the objective of its Parameters")
        self.progress_label.setText(f"{what}, {len(info.trainable_keys)} trainable tensors; "
                                    f"{start}")

    def _on_status(self, text: str) -> None:
        self.status_label.setStyleSheet("")
        _show(self.status_label, text)

    def _on_steps(self, reports: list) -> None:
        self._latest = reports[-1]
        self.redrawer.mark()

    def _show_progress(self) -> None:
        """On the plots' shared clock: one repaint per frame, however fast steps arrive."""
        r = self._latest
        if r is None:
            return
        if self.progress.maximum() != r.total_steps:
            self.progress.setRange(0, max(1, r.total_steps))
        self.progress.setValue(r.global_step + 1)
        if self.controller.state != ctl.PAUSED:
            self.progress.setFormat("%p%")
        if self._info.dataset is None:  # a data-free run: a step is one update, no samples
            self.progress_label.setText(f"step {r.global_step + 1}/{r.total_steps} · "
                                        f"f = {r.loss:.6g} · γ = {r.lr:g}")
            return
        left = (r.total_steps - r.global_step - 1) * self._info.config.batch_size
        eta = format_duration(left / r.samples_per_sec) if r.samples_per_sec > 0 else "?"
        acc = f" · accuracy {100 * r.accuracy:.0f}%" if r.accuracy is not None else ""
        scheduled = r.lr is not None and self._info.config.schedule != "constant"
        lr = f" · lr {r.lr:.2g}" if scheduled else ""
        self.progress_label.setText(
            f"epoch {r.epoch + 1}/{self._info.config.epochs} · step {r.step + 1}/"
            f"{r.steps_per_epoch} · {r.samples_per_sec:,.0f} samples/s · {eta} left · "
            f"loss {r.loss:.4g}{acc}{lr}")

    def _on_epoch(self, r) -> None:
        if self._info is not None and self._info.dataset is None:
            return  # a data-free epoch is its one step: the progress line says it all
        parts = [f"epoch {r.epoch + 1}: train loss {r.train_loss:.4g}"]
        if r.val_loss is not None:
            parts.append(f"val loss {r.val_loss:.4g}")
        if r.val_accuracy is not None:
            parts.append(f"val accuracy {100 * r.val_accuracy:.1f}%")
        if not self._warned:  # a warning stays in view until the run ends
            self.status_label.setStyleSheet("")
            _show(self.status_label, ", ".join(parts))

    def _on_finished(self, r) -> None:
        self.redrawer.flush()
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("stopped" if r.stopped else "done")
        parts = [f"{'Stopped' if r.stopped else 'Finished'} after {r.steps:,} steps."]
        if r.test_accuracy is not None:
            parts.append(f"Test accuracy {100 * r.test_accuracy:.2f}%")
        if r.test_loss is not None:
            parts.append(f"(test loss {r.test_loss:.4g})")
        _show(self.result_label, " ".join(parts))
        font = self.result_label.font()
        font.setBold(True)
        self.result_label.setFont(font)

    def _on_warning(self, r) -> None:
        """The loss runs away but stays finite: say so, in view, while training goes on."""
        self._warned = True
        self.status_label.setStyleSheet(WARNING_STYLE)
        _show(self.status_label, f"Warning at step {r.global_step + 1}: {r.message}.")

    def _on_diverged(self, r) -> None:
        self.redrawer.flush()
        self.progress.setFormat("diverged")
        self.status_label.setStyleSheet(ERROR_STYLE)
        _show(self.status_label, f"Training stopped at step {r.global_step + 1}: {r.message}. "
                                  f"The last good weights are kept.")

    def _on_failed(self, text: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started" if self.controller.network is None else "failed")
        self.status_label.setStyleSheet(ERROR_STYLE)
        _show(self.status_label, text)

    def _on_weights(self, trained: bool) -> None:
        self.weights_label.setText("Weights: trained — Train continues from them"
                                   if trained else "Weights: fresh initialisation")
        self.reset_button.setEnabled(trained and self.controller.state == ctl.IDLE)
