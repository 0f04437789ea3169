"""The learning-rate finder in the window: the range test (``engine.lr_finder``) on the open graph
from its current weights, off the UI thread, drawing loss against rate as it goes; "Use" puts the
suggested rate into the training settings as one undoable edit.

The test runs on its own copy of the network, so the trained weights the window keeps are not
touched even while the test moves its copy; the engine restores that copy anyway.
"""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLabel,
                               QSpinBox, QVBoxLayout, QWidget)

from layerloom.engine.lr_finder import LRPoint, LRRange, lr_range_test
from layerloom.engine.spec import LayerloomError
from layerloom.gui import gc_guard
from layerloom.gui.plots.style import SERIES, make_view, style_plot


class FinderWorker(QObject):
    point = Signal(object)  # LRPoint
    done = Signal(object)  # LRRange
    failed = Signal(str)
    finished = Signal()

    def __init__(self, net, data, config, start: float, end: float, steps: int):
        super().__init__()
        self.args = (net, data, config, start, end, steps)
        self.cancelled = False

    def run(self) -> None:
        net, data, config, start, end, steps = self.args
        try:
            for report in lr_range_test(net, data, config.optimizer, config.batch_size, start,
                                        end, steps, config.seed, config.momentum,
                                        config.weight_decay):
                if self.cancelled:
                    break
                (self.done if isinstance(report, LRRange) else self.point).emit(report)
        except LayerloomError as err:
            self.failed.emit(str(err))
        except Exception as err:  # noqa: BLE001 (a worker must always end; the text is shown)
            self.failed.emit(f"{type(err).__name__}: {err}")
        self.finished.emit()


class LRFinderDialog(QDialog):
    apply_rate = Signal(float)

    def __init__(self, make_job, parent: QWidget | None = None):
        """``make_job()`` -> (network copy, dataset, TrainConfig), or raises LayerloomError."""
        super().__init__(parent)
        self.setWindowTitle("Find a learning rate")
        self._make_job = make_job
        self.thread: QThread | None = None
        self.worker: FinderWorker | None = None
        self.result: LRRange | None = None
        self.start_box, self.end_box = QDoubleSpinBox(decimals=8), QDoubleSpinBox(decimals=3)
        self.start_box.setRange(1e-8, 1.0)
        self.start_box.setValue(1e-6)
        self.end_box.setRange(1e-4, 100.0)
        self.end_box.setValue(1.0)
        self.steps_box = QSpinBox(minimum=10, maximum=2000, value=100)
        form = QFormLayout()
        form.addRow("From rate", self.start_box)
        form.addRow("To rate", self.end_box)
        form.addRow("Steps", self.steps_box)
        self.view = make_view()
        self.plot = self.view.addPlot()
        style_plot(self.plot, left="loss", bottom="log10 learning rate")
        self.raw = self.plot.plot(pen=pg.mkPen(SERIES["train"], width=1))
        self.curve = self.plot.plot(pen=pg.mkPen(SERIES["smooth"], width=2))
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen(SERIES["val"], width=2))
        self.marker.hide()
        self.plot.addItem(self.marker)
        self.status = QLabel("Trains from the current weights while the rate grows, then puts "
                             "every weight back.")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ActionRole)
        self.use_button = self.buttons.addButton("Use this rate", QDialogButtonBox.ApplyRole)
        self.use_button.setEnabled(False)
        self.buttons.addButton(QDialogButtonBox.Close).clicked.connect(self.close)
        self.run_button.clicked.connect(self.run)
        self.use_button.clicked.connect(self._use)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.resize(620, 480)
        self._xs: list[float] = []
        self._ys: list[float] = []
        self._ss: list[float] = []
        self._gc = None

    def run(self) -> None:
        if self.thread is not None:
            return
        try:
            net, data, config = self._make_job()
        except LayerloomError as err:
            self.status.setText(str(err))
            return
        self._xs, self._ys, self._ss, self.result = [], [], [], None
        self.marker.hide()
        self.use_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.worker = FinderWorker(net, data, config, self.start_box.value(),
                                   self.end_box.value(), self.steps_box.value())
        self.thread = QThread(self)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.point.connect(self._on_point)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self.status.setText)
        # quit from the worker's own thread: a queued quit could wait on a busy UI thread
        self.worker.finished.connect(self.thread.quit, Qt.DirectConnection)
        self.thread.finished.connect(self._on_thread_finished)
        self.status.setText("Running the range test…")
        self._gc = gc_guard.hold()
        self.thread.start()

    def _on_point(self, p: LRPoint) -> None:
        self._xs.append(math.log10(p.lr))
        self._ys.append(p.loss)
        self._ss.append(p.smoothed)
        if p.step % 5 == 0 or p.step == p.steps - 1:
            self.raw.setData(self._xs, self._ys)
            self.curve.setData(self._xs, self._ss)
        self.status.setText(f"step {p.step + 1} of {p.steps}: rate {p.lr:.3g}, loss {p.loss:.4g}")

    def _on_done(self, r: LRRange) -> None:
        self.result = r
        self.raw.setData(self._xs, self._ys)
        self.curve.setData(self._xs, self._ss)
        end = " (stopped where the loss exploded)" if r.stopped_early else ""
        if r.suggestion is None:
            self.status.setText(f"The loss did not fall over this range{end}: try other bounds.")
            return
        self.marker.setValue(math.log10(r.suggestion))
        self.marker.show()
        self.use_button.setEnabled(True)
        self.status.setText(f"Suggested rate {r.suggestion:.3g}: where the loss falls fastest"
                            f"{end}. The weights are as they were.")

    def _on_thread_finished(self) -> None:
        self.thread.deleteLater()
        self.thread = self.worker = None
        if self._gc is not None:
            self._gc.release()
            self._gc = None
        self.run_button.setEnabled(True)

    def _use(self) -> None:
        if self.result is not None and self.result.suggestion is not None:
            self.apply_rate.emit(float(f"{self.result.suggestion:.3g}"))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.thread is not None:
            self.worker.cancelled = True
            self.thread.quit()
            self.thread.wait(30_000)
        super().closeEvent(event)
