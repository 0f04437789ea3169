"""The training controller: compiles the project into a Network, runs it on a worker thread,
locks structural edits while it runs, and keeps the trained weights while the graph's
structure is unchanged.

It owns the data set, the Network, the QThread and the worker. The window gives it two
callables: ``project()`` returning the current ``engine.serialize.Project`` and
``set_locked(locked, reason)`` (``Document.set_locked``). Everything else it announces through
signals; the terminal ones (``finished``, ``diverged``, ``failed``) are emitted only once the
thread has ended, so a slot may start the next run at once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, Qt, QTimer, Signal

from layerloom.engine.analyze import analyze
from layerloom.engine.data import Dataset
from layerloom.engine.graph import Graph
from layerloom.engine.network import Network
from layerloom.engine.objective import graph_needs_no_data
from layerloom.engine.data.section import augmentation
from layerloom.engine.project import check_fit, planned_fit
from layerloom.engine.serialize import Project, graph_to_dict
from layerloom.engine.spec import LayerloomError
from layerloom.engine.training import DoneReport, TrainConfig, bind, check_data
from layerloom.gui import gc_guard
from layerloom.gui.training.data_access import DataAccess
from layerloom.gui.training.worker import TrainingWorker

IDLE, PREPARING, RUNNING, PAUSED, STOPPING = "idle", "preparing", "running", "paused", "stopping"
LOCK_REASON = "training runs (stop it to edit the graph)"
WAITING = "Compiling kernels… the run starts as soon as the last one is ready"


def structure_signature(graph: Graph) -> str:
    """Nodes (id, type, attributes) and edges, the block definitions' too; positions and frozen
    flags are left out, so moving a node or freezing a layer for fine-tuning keeps the trained
    weights."""
    d = graph_to_dict(graph)
    levels = [d, *[d["blocks"][name] for name in sorted(d.get("blocks", {}))]]
    return json.dumps([[sorted((n["id"], n["type"], json.dumps(n["attrs"], sort_keys=True))
                               for n in level["nodes"]),
                        sorted((tuple(e["from"]), tuple(e["to"])) for e in level["edges"])]
                       for level in levels] + sorted(d.get("blocks", {})))


@dataclass(frozen=True)
class RunInfo:
    """What the views need to set up for a run, sent with ``started``."""

    config: TrainConfig
    dataset: Dataset | None  # None: a graph that trains without data (engine.objective)
    trainable_keys: tuple  # the parameters that get gradients (and gradient curves)
    frozen_keys: tuple  # parameters of frozen nodes: no curves
    node_types: dict = field(default_factory=dict)  # node id -> layer type
    continued: bool = False  # started from the weights of an earlier run


class Refused(LayerloomError):
    """Analyze found errors: training would fail or learn nothing, so it does not start."""


def _apply_directly(graph: Graph, edits: list) -> None:
    for node_id, name, _old, new in edits:
        graph.set_attr(node_id, name, new)


class TrainingController(QObject):
    state_changed = Signal(str)  # one of IDLE, PREPARING, RUNNING, PAUSED, STOPPING
    started = Signal(object)  # RunInfo
    status = Signal(str)  # a passing notice ("compiling kernels…"); "" clears it
    steps = Signal(object)  # list[StepReport]
    epoch = Signal(object)  # EpochReport
    boundary = Signal(object)  # engine.boundary.BoundaryMap: 2-D data's decision regions
    finished = Signal(object)  # DoneReport (also after Stop: report.stopped is True)
    diverged = Signal(object)  # Diverged: node id, phase, message; weights rolled back
    warning = Signal(object)  # Exploding: the loss runs away but stays finite; training goes on
    failed = Signal(str)  # the run could not start or crashed: one line
    refused = Signal(str)  # Analyze found errors: the run did not start (after ``failed``)
    weights_changed = Signal(bool)  # trained weights available (True) or dropped (False)

    def __init__(self, project: Callable[[], Project],
                 set_locked: Callable[[bool, str], None] = lambda locked, reason: None,
                 apply_edits: Callable[[list], None] | None = None, parent: QObject | None = None,
                 graph_path: Callable[[], Path | None] = lambda: None):
        """``apply_edits(edits)`` makes the (node_id, attr, old, new) edits that fit the Input and
        Label nodes to the data; give the Document's undoable ``set_attr`` there. By default
        the graph is edited directly. ``graph_path()`` is the graph's file: its data paths are
        read relative to its folder, and not at all outside it unless the person agrees."""
        super().__init__(parent)
        self._project, self._set_locked = project, set_locked
        self.data_access = DataAccess(project, graph_path)  # the window installs its question
        self._apply_edits = apply_edits
        self.state = IDLE
        self.dataset: Dataset | None = None
        self._dataset_key: str | None = None
        self.network: Network | None = None  # the trained (or training) network
        self._signature: str | None = None
        self.thread: QThread | None = None
        self._gc: gc_guard.GcHold | None = None  # collection stays on this thread meanwhile
        self.worker: TrainingWorker | None = None
        self._ending: tuple | None = None  # (signal, payload) emitted once the thread has ended
        self.last_done: DoneReport | None = None
        # asked before a worker starts: gate(launch) is True to start now, else it calls launch
        # later (gui.training.compiler: the background warm-up is still compiling)
        self.gate: Callable[[Callable[[], None]], bool] | None = None
        self._heartbeat = QTimer(self)  # tells the worker the UI thread gets the GIL
        self._heartbeat.setInterval(10)
        self._heartbeat.timeout.connect(lambda: self.worker is not None and self.worker.beat())

    # ------------------------------------------------------------------ data and weights
    def set_dataset(self, dataset: Dataset | None) -> None:
        """Use this data set (from the dataset panel) instead of loading the project's spec."""
        self.dataset = dataset
        self._dataset_key = self._data_key() if dataset is not None else None

    def _data_key(self) -> str:
        """The data section but its augmentation, which needs no reload (see load_dataset)."""
        section = {k: v for k, v in self._project().data.items() if k != "augment"}
        return json.dumps(section, sort_keys=True, default=str)

    def load_dataset(self, ask: bool = True) -> Dataset:
        """The data set of the project's "data" section, loaded once and reused while unchanged;
        its augmentation is always the section's as it is now. Data outside the graph's folder
        is read once approved (``data_access`` asks when ``ask``); otherwise ``OutsideDataError``
        says why nothing was read."""
        if self.dataset is None or self._data_key() != self._dataset_key:
            self.dataset = self.data_access.read(ask)
            self._dataset_key = self._data_key()
        self.dataset.augment = augmentation(self._project().data)
        return self.dataset

    def trained_network(self) -> Network | None:
        """The network with the trained weights, or None once the graph's structure changed."""
        if self.network is None or self.state != IDLE:
            return None
        if structure_signature(self._project().graph) != self._signature:
            self.drop_weights()
            return None
        return self.network

    def has_weights(self) -> bool:
        return self.trained_network() is not None

    def drop_weights(self) -> None:
        """Forget the trained weights: the next run starts from a fresh initialisation."""
        if self.state != IDLE:
            return
        had = self.network is not None
        self.network, self._signature = None, None
        if had:
            self.weights_changed.emit(False)

    def load_weights(self, params: dict) -> Network:
        """Adopt a state dict (a loaded weights file) for the current graph; raises WeightsError."""
        graph = self._project().graph
        config = self.config()
        self.network = Network(graph.copy(), seed=config.seed, params=params,
                               batch_size=config.batch_size)
        self._signature = structure_signature(graph)
        self.weights_changed.emit(True)
        return self.network

    def config(self) -> TrainConfig:
        """The project's "training" section, checked (one-line SettingsError when a value is bad)."""
        return TrainConfig.from_settings(self._project().training)

    # ------------------------------------------------------------------ run control
    @property
    def busy(self) -> bool:
        return self.state != IDLE

    def start(self, paused_after_first_step: bool = False) -> bool:
        """Compile and start a run; False (and ``failed``) when it cannot start."""
        if self.busy:
            return False
        try:
            net, config, info = self._prepare()
        except Refused as err:
            self.failed.emit(str(err))
            self.refused.emit(str(err))
            return False
        except LayerloomError as err:
            self.failed.emit(str(err))
            return False
        self.network, self._ending = net, None
        self.worker = TrainingWorker(net, info.dataset, config, paused_after_first_step)
        self.thread = QThread(self)
        self.worker.moveToThread(self.thread)
        self._wire(self.worker, self.thread)
        self._set_state(PREPARING)
        self._set_locked(True, LOCK_REASON)
        self.started.emit(info)
        self._heartbeat.start()
        self._gc = gc_guard.hold()
        thread = self.thread
        launch = lambda: thread is self.thread and not thread.isRunning() and thread.start()  # noqa: E731
        if self.gate is None or self.gate(launch):
            launch()
        else:  # the kernels are being compiled in the background: the run starts when they are
            self.status.emit(WAITING)
        return True

    def _prepare(self) -> tuple[Network, TrainConfig, RunInfo]:
        config = self.config()
        graph = self._project().graph
        data = None
        if not graph_needs_no_data(graph):  # Parameters and an Objective train without data
            data = self.load_dataset()
            check_data(data)  # an empty data set: one line here, before a thread starts
            edits = planned_fit(graph, data)
            if edits:
                (self._apply_edits or (lambda e: _apply_directly(graph, e)))(edits)
        errors = analyze(graph, dataset=data, training=self._project().training).errors
        if errors:
            raise Refused(errors[0].message + (f" (and {len(errors) - 1} more: see Problems)"
                                               if len(errors) > 1 else ""))
        if data is not None:
            check_fit(graph, data)
        kept = self.trained_network()
        signature = structure_signature(graph)
        net = Network(graph.copy(), seed=config.seed,
                      batch_size=config.batch_size if data is not None else 1,
                      params=kept.params if kept is not None else None)
        if data is not None:
            bind(net)  # no loss node, or not one Input and one Label: say so before a thread
        self._signature = signature
        frozen = tuple(k for s in net.plan.steps if not s.trainable for k in s.grad_keys)
        types = {s.node_id: s.layer.type_id for s in net.plan.steps}
        info = RunInfo(config, data, net.trainable_keys, frozen, types, kept is not None)
        return net, config, info

    def _wire(self, worker: TrainingWorker, thread: QThread) -> None:
        thread.started.connect(worker.run)
        # quit from the worker's own thread: a queued quit could wait on a busy UI thread
        worker.finished.connect(thread.quit, Qt.DirectConnection)
        worker.steps.connect(self._on_steps)
        worker.report.connect(self._on_report)
        worker.status.connect(self._on_status)
        worker.boundary.connect(self.boundary)
        worker.paused.connect(lambda: self._set_state(PAUSED))
        worker.failed.connect(lambda text: self._end(self.failed, text))
        thread.finished.connect(self._on_thread_finished)

    def pause(self) -> None:
        if self.state == RUNNING:
            self.worker.pause()
            self._set_state(PAUSED)

    def resume(self) -> None:
        if self.state == PAUSED:
            self.worker.resume()
            self._set_state(RUNNING)

    def step(self) -> None:
        """One mini-batch, then paused; from idle it starts a run that pauses after its first step."""
        if self.state == IDLE:
            self.start(paused_after_first_step=True)
        elif self.state in (PAUSED, RUNNING, PREPARING):
            self.worker.step()
            if self.state == PAUSED:
                self._set_state(RUNNING)

    def stop(self) -> None:
        """Finish the current step, evaluate on the test set, keep the weights."""
        if self.state in (PREPARING, RUNNING, PAUSED):
            self.worker.stop()
            self._set_state(STOPPING)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """For the window's close: end a run at once (no evaluation) and join the thread."""
        if self.thread is None:
            return
        self.worker.abort()
        self.thread.quit()
        if not self.thread.wait(timeout_ms):
            self.thread.terminate()
            self.thread.wait()
        self._on_thread_finished(emit=False)

    # ------------------------------------------------------------------ worker reports
    def _on_status(self, text: str) -> None:
        if not text and self.state == PREPARING:
            self._set_state(RUNNING)
        self.status.emit(text)

    def _on_steps(self, batch: list) -> None:
        if self.state == PREPARING:
            self._set_state(RUNNING)
        self.steps.emit(batch)

    def _on_report(self, report) -> None:
        from layerloom.engine.training import Diverged, EpochReport, Exploding

        if isinstance(report, EpochReport):
            self.epoch.emit(report)
        elif isinstance(report, Exploding):
            self.warning.emit(report)
        elif isinstance(report, Diverged):
            self._end(self.diverged, report)
        elif isinstance(report, DoneReport):
            self.last_done = report
            self._end(self.finished, report)

    def _end(self, signal, payload) -> None:
        if self._ending is None:
            self._ending = (signal, payload)

    def _on_thread_finished(self, emit: bool = True) -> None:
        if self.thread is None:
            return
        failed = self._ending is not None and self._ending[0] is self.failed
        self._heartbeat.stop()
        # The worker lives in the ended thread, where a deleteLater would never run: Python
        # owns it, so dropping the reference deletes it. The thread is the controller's child.
        self.thread.deleteLater()
        self.worker = self.thread = None
        if self._gc is not None:
            self._gc.release()
            self._gc = None
        if failed or self.network is None or not _finite(self.network.params):
            self.network, self._signature = None, None
        self._set_locked(False, "")
        self._set_state(IDLE)
        ending, self._ending = self._ending, None
        if not emit:
            return
        self.weights_changed.emit(self.network is not None)
        if ending is not None:
            ending[0].emit(ending[1])

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)


def _finite(params: dict) -> bool:
    return all(np.isfinite(v).all() for v in params.values())
