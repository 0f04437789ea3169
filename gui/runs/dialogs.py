"""Compare two runs, and start a sweep from the window.

The comparison lists what differs (settings, data, graph structure) and can open the second
run's graph with the changed nodes marked on the canvas. A sweep runs as its own process
(``layerloom sweep``, the command-line code path): the window stays responsive, each combination
lands in the run store where the Runs table picks it up, and a stop (SIGINT, as Ctrl-C) leaves a
sweep that ``Resume`` continues.
"""
from __future__ import annotations

import os
import re
import signal
import sys

from PySide6.QtCore import QProcess, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from layerloom.engine.cli_runs import settings_diff
from layerloom.engine.graph_diff import GraphDiff, diff_graph_json
from layerloom.engine.runs import RunStore


def comparison_lines(store: RunStore, a: int, b: int) -> tuple[list[str], GraphDiff]:
    ra, rb = store.run(a), store.run(b)
    lines = [f"#{a} {ra.name}  →  #{b} {rb.name}", ""]
    rows = settings_diff(ra, rb)
    lines += [f"{what}: {x!r} → {y!r}" for what, x, y in rows] or ["same settings and data"]
    diff = diff_graph_json(store.graph_json(a), store.graph_json(b))
    lines += ["", *[f"graph: {line}" for line in diff.lines()], ""]
    pct = lambda v: "–" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lines.append(f"best validation accuracy: {pct(ra.best_val_accuracy)} → "
                 f"{pct(rb.best_val_accuracy)}")
    lines.append(f"test accuracy: {pct(ra.test_accuracy)} → {pct(rb.test_accuracy)}")
    return lines, diff


class CompareDialog(QDialog):
    show_on_canvas = Signal(int, object)  # run id to open, GraphDiff to mark

    def __init__(self, store: RunStore, a: int, b: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Compare runs #{a} and #{b}")
        lines, self.diff = comparison_lines(store, a, b)
        self.text = QPlainTextEdit("\n".join(lines), readOnly=True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.open_button = buttons.addButton(f"Open #{b} and mark the changes",
                                             QDialogButtonBox.ActionRole)
        self.open_button.setEnabled(bool(self.diff.touched_nodes))
        self.open_button.clicked.connect(lambda: (self.show_on_canvas.emit(b, self.diff),
                                                  self.accept()))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(560, 380)


class SweepDialog(QDialog):
    """A grid over learning rate and batch size (and epochs), run by ``layerloom sweep``."""

    sweep_progress = Signal(str)

    def __init__(self, graph_file: str, db_path: str, current: dict,
                 parent: QWidget | None = None, data: str | None = None):
        """``data``: the spec the window reads (path absolute), passed as ``--data``: the copy
        of a graph the sweep runs may sit in another folder than the graph's data."""
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        self.graph_file, self.db_path, self.data = graph_file, db_path, data
        self.sweep_id: str | None = None
        lr = current.get("lr", 1e-3)
        self.fields = {"lr": QLineEdit(", ".join(f"{lr * f:g}" for f in (0.3, 1, 3))),
                       "batch_size": QLineEdit(str(current.get("batch_size", 64))),
                       "epochs": QLineEdit(str(current.get("epochs", 1)))}
        form = QFormLayout()
        for name, label in (("lr", "Learning rates"), ("batch_size", "Batch sizes"),
                            ("epochs", "Epochs")):
            self.fields[name].setToolTip("Values separated by commas; every combination runs")
            form.addRow(label, self.fields[name])
        self.progress = QProgressBar()
        self.status = QLabel("Each combination is recorded as a run of one sweep.")
        self.status.setWordWrap(True)
        self.start_button, self.stop_button = QPushButton("Run sweep"), QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        for b in (self.stop_button, self.resume_button):
            b.setEnabled(False)
        row = QDialogButtonBox()
        for b in (self.start_button, self.stop_button, self.resume_button):
            row.addButton(b, QDialogButtonBox.ActionRole)
        row.addButton(QDialogButtonBox.Close).clicked.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(row)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)

    def arguments(self) -> list[str]:
        args = ["-m", "layerloom", "sweep", self.graph_file, "--runs-db", self.db_path]
        args += ["--data", self.data] if self.data else []
        for name, edit in self.fields.items():
            values = [v.strip() for v in edit.text().split(",") if v.strip()]
            if values:
                args += ["--grid", f"{name}={','.join(values)}"]
        return args

    def _launch(self, args: list[str]) -> None:
        self.progress.setRange(0, 0)
        self.start_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.process.start(sys.executable, args)

    def start(self) -> None:
        self._launch(self.arguments())

    def resume(self) -> None:
        if self.sweep_id:
            self._launch(["-m", "layerloom", "sweep", "--resume", self.sweep_id,
                          "--runs-db", self.db_path])

    def stop(self) -> None:
        """As Ctrl-C: the current combination ends with its test metrics, the sweep stops."""
        if self.process.state() != QProcess.NotRunning:
            os.kill(int(self.process.processId()), signal.SIGINT)
            self.status.setText("Stopping after the current step…")

    def _read(self) -> None:
        for line in bytes(self.process.readAllStandardOutput()).decode(errors="replace").splitlines():
            found = re.match(r"sweep (\S+): (\d+) combinations", line)
            if found:
                self.sweep_id = found.group(1)
                self.progress.setRange(0, int(found.group(2)))
            step = re.match(r"\[(\d+)/(\d+)\] (.*)", line)
            if step:
                self.progress.setRange(0, int(step.group(2)))
                self.progress.setValue(int(step.group(1)) - 1)
                self.status.setText(f"Running {step.group(3)}")
                self.sweep_progress.emit(step.group(3))
            if line.startswith("error:"):
                self.status.setText(line)

    def _finished(self, code: int, _status) -> None:
        self.stop_button.setEnabled(False)
        self.start_button.setEnabled(True)
        if code == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            self.status.setText(f"Sweep {self.sweep_id} finished: see the Runs table and its "
                                f"Sweep tab.")
        elif code == 130:
            self.resume_button.setEnabled(self.sweep_id is not None)
            self.status.setText(f"Sweep {self.sweep_id} stopped: Resume runs what is left.")
        elif not self.status.text().startswith("error:"):
            self.status.setText(f"The sweep ended with exit code {code}.")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.process.state() != QProcess.NotRunning:
            self.stop()
            self.process.waitForFinished(30_000)
        super().closeEvent(event)
