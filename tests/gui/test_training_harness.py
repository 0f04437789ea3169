"""A small window holding the training parts the way the main window will, plus the helpers the
training tests share (projects from the samples, a responsiveness probe, train-and-wait)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QSplitter, QTabWidget, QVBoxLayout, QWidget

from layerloom.engine.project import load_project
from layerloom.engine.registry import LAYERS
from layerloom.engine.block_types import STRUCTURAL
from layerloom.gui.dataset_panel import DatasetPanel
from layerloom.gui.document import Document
from layerloom.gui.inference_view import InferenceView
from layerloom.gui.plots.panel import PlotsPanel
from layerloom.gui.training import controller as ctl
from layerloom.gui.training.controller import TrainingController
from layerloom.gui.training.panel import TrainingPanel

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def sample_project(name: str, **training):
    """A sample project with some training settings overridden; skips if its layers are missing."""
    project = load_project(SAMPLES / name)
    missing = sorted({n.type for n in project.graph.nodes.values()} - set(LAYERS) - set(STRUCTURAL))
    if missing:
        pytest.skip(f"layer types not registered yet: {', '.join(missing)}")
    project.training.update(training)
    return project


class Harness(QWidget):
    """Training panel, dataset panel and inference view on the left, the plots on the right."""

    def __init__(self, project):
        super().__init__()
        self.document = Document(project, parent=self)  # settings edits go through it
        self.project = project
        self.locks: list[tuple[bool, str]] = []
        self.controller = TrainingController(lambda: self.project, self._set_locked, parent=self)
        self.training_panel = TrainingPanel(self.controller, self.document)
        self.dataset_panel = DatasetPanel(lambda: self.project)
        self.plots = PlotsPanel(self.controller)
        self.inference = InferenceView(self.controller)
        self.dataset_panel.dataset_changed.connect(self.controller.set_dataset)
        self.warnings: list[tuple[str, str]] = []
        self.plots.node_warning.connect(lambda node, reason: self.warnings.append((node, reason)))
        tabs = QTabWidget()
        tabs.addTab(self.training_panel, "Training")
        tabs.addTab(self.dataset_panel, "Data")
        tabs.addTab(self.inference, "Inference")
        self.tabs = tabs
        split = QSplitter()
        split.addWidget(tabs)
        split.addWidget(self.plots)
        split.setSizes([430, 1070])
        QVBoxLayout(self).addWidget(split)

    def _set_locked(self, locked: bool, reason: str) -> None:
        self.locks.append((locked, reason))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.controller.shutdown()
        super().closeEvent(event)


@pytest.fixture
def make_harness(qtbot):
    made = []

    def make(project) -> Harness:
        h = Harness(project)
        qtbot.addWidget(h)
        h.resize(1500, 850)
        h.show()
        qtbot.waitExposed(h)
        made.append(h)
        return h

    yield make
    for h in made:
        h.controller.shutdown()


class TickProbe:
    """A 10 ms timer on the UI thread; records when it fires while the run is training
    (after kernels compiled: compilation holds the GIL and is announced, not measured)."""

    def __init__(self, controller):
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(
            lambda: controller.state == ctl.RUNNING and self.ticks.append(time.perf_counter()))
        self.timer.start()

    def max_gap(self) -> float:
        self.timer.stop()
        return float(np.diff(self.ticks).max()) if len(self.ticks) > 1 else 0.0


def train_and_wait(qtbot, h: Harness, signal=None, timeout: int = 60_000):
    """Press Train and wait for the run's end signal (armed before the click)."""
    signal = signal or h.controller.finished
    with qtbot.waitSignal(signal, timeout=timeout) as blocker:
        qtbot.mouseClick(h.training_panel.train_button, _left())
    return blocker.args[0] if blocker.args else None


def _left():
    from PySide6.QtCore import Qt

    return Qt.LeftButton


def test_the_harness_shows_every_part_idle_before_training(make_harness):
    h = make_harness(sample_project("mlp_spirals.json"))
    panel = h.training_panel
    assert panel.train_button.isEnabled() and panel.step_button.isEnabled()
    assert not (panel.pause_button.isEnabled() or panel.resume_button.isEnabled()
                or panel.stop_button.isEnabled() or panel.reset_button.isEnabled())
    assert panel.lr.text() == "0.01" and panel.optimizer.currentData() == "adam"
    assert "Train the network" in h.inference.message.text()
    assert h.controller.state == ctl.IDLE and not h.locks
