"""The training worker: a QObject living on a QThread that iterates ``engine.training.train``.

Reports cross to the UI thread as queued signals. Step reports are sent in small batches (at
most every ``FLUSH_SECONDS``) so a fast model cannot flood the UI's event queue; every other
report is sent at once. Pause, resume, stop and step go through the engine's thread-safe
``Control``; the UI thread calls them directly, never through the worker's (busy) event loop.
"""
from __future__ import annotations

import threading
import time
import traceback

import numba  # noqa: F401 (imported with the window: a first import on the worker thread
import threadpoolctl  # noqa: F401  holds the GIL for ~0.3 s and freezes the UI meanwhile)
from PySide6.QtCore import QObject, Signal, Slot

import numpy as np

from layerloom.engine.boundary import applies, boundary_map, make_grid
from layerloom.engine.data import Dataset
from layerloom.engine.network import Network
from layerloom.engine.spec import LayerloomError
from layerloom.engine.training import Control, StepReport, TrainConfig, bind, train
from layerloom.engine.warmup import expected_kernels, warm_up

FLUSH_SECONDS = 0.03  # ~30 batches of step reports per second at most
STARVED_SECONDS = 0.03  # the UI's heartbeat is this late: it waits for the GIL, let it run
MAX_YIELD_SECONDS = 0.1  # never hold training back longer than this per step
COMPILING = "Compiling kernels… (first run only; cached afterwards)"
MAP_SECONDS = 0.25  # a decision-boundary map at most this often (2-D data only)


class Aborted(Exception):
    """Raised inside the engine's generator when the window closes: no final evaluation."""


class WorkerControl(Control):
    """The engine's Control, plus two things the worker needs between steps.

    ``wait`` runs ``before_block`` before it blocks on a pause, so the UI gets the reports of the
    steps that ran before the pause; ``abort`` ends training at once, skipping the test-set
    evaluation a plain stop does (used on close).
    """

    def __init__(self, before_block=lambda: None) -> None:
        super().__init__()
        self._abort = threading.Event()
        self.before_block = before_block

    def abort(self) -> None:
        self._abort.set()
        self.stop()

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    def wait(self) -> bool:
        if self.paused:
            self.before_block()
        stop = super().wait()
        if self._abort.is_set():
            raise Aborted
        return stop


class TrainingWorker(QObject):
    """Runs one training run; make a new worker for every run."""

    steps = Signal(object)  # list[StepReport], oldest first
    report = Signal(object)  # EpochReport | DoneReport | Diverged
    status = Signal(str)  # "compiling kernels…", "" when training proper starts
    paused = Signal()  # a Step request ran its one mini-batch and paused
    failed = Signal(str)  # one line: an engine error, or an unexpected exception's summary
    finished = Signal()  # always the last signal, whatever happened
    boundary = Signal(object)  # engine.boundary.BoundaryMap, for data with two features

    def __init__(self, net: Network, data: Dataset | None, config: TrainConfig,
                 pause_after_first=False):
        super().__init__()
        self.net, self.data, self.config = net, data, config
        self.control = WorkerControl(self._flush)
        self._pending: list[StepReport] = []
        self._last_flush = 0.0
        self._lock = threading.Lock()
        self._step_once = threading.Event()
        self.ui_beat = time.monotonic()
        self._map = None  # (probe network, binding, grid) when the data has two features
        self._last_map = 0.0
        if pause_after_first:
            self._step_once.set()

    # ------------------------------------------------------------------ called from the UI thread
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self._step_once.clear()
        self.control.resume()

    def step(self) -> None:
        """Run exactly one mini-batch, then pause again."""
        self._step_once.set()
        self.control.resume()

    def stop(self) -> None:
        self._step_once.clear()
        self.control.stop()

    def abort(self) -> None:
        self.control.abort()

    def beat(self) -> None:
        """The UI thread's heartbeat (a ~10 ms timer): proof that it got the GIL recently."""
        self.ui_beat = time.monotonic()

    # ------------------------------------------------------------------ the worker thread
    @Slot()
    def run(self) -> None:
        """The thread's one job; emits ``finished`` last in every case."""
        from layerloom.engine.threads import cap_blas_threads, engine_threads, get_threads

        # one core stays with the UI thread: spinning BLAS threads beside it slowed BLAS-bound
        # models (an LSTM) tenfold in the window (engine.threads.cap_blas_threads)
        cap_blas_threads(get_threads() - 1)
        try:
            with engine_threads():
                self._warm_up()
                self._start_map()
                self._consume(train(self.net, self.data, self.config, self.control))
        except Aborted:
            pass
        except LayerloomError as err:
            self.failed.emit(str(err))
        except Exception as err:  # noqa: BLE001 (a bug must end the run visibly, not hang it)
            traceback.print_exc()
            self.failed.emit(f"training failed: {type(err).__name__}: {err}")
        finally:
            self._flush()
            self.finished.emit()

    def _warm_up(self) -> None:
        """The run's first calls on a throwaway copy, in this thread (``engine.warmup``).

        numba compiles kernels on first use and holds the GIL while it does; doing it here, with
        a notice, keeps the window painting and keeps compile time out of samples/s. After the
        background warm-up (gui.training.compiler) this only loads what is compiled already.
        """
        if self.data is None:  # a data-free graph: numpy element-wise layers, nothing to compile
            return
        self.status.emit(COMPILING)
        n = max(2, min(self.config.batch_size, len(self.data.train)))
        warm_up(self.net, self.data.train.x[:n], self.data.train.y[:n], self.config,
                expected_kernels(self.net, self.config))
        if self.control.aborted:
            raise Aborted
        self.status.emit("")

    def _start_map(self) -> None:
        """For two-feature classification data: a probe network the decision-boundary map is
        computed on (the training network keeps its activations for its backward pass)."""
        if self.data is None:
            return
        binding = bind(self.net)
        if applies(self.data, binding):
            probe = Network(self.net.graph, dtype=self.net.dtype)
            self._map = (probe, binding, make_grid(self.data.train.x))
            self._send_map(force=True)

    def _send_map(self, force: bool = False) -> None:
        """Between steps, so the parameters are whole; at most every ``MAP_SECONDS``."""
        if self._map is None or (not force and
                                 time.perf_counter() - self._last_map < MAP_SECONDS):
            return
        probe, binding, grid = self._map
        for key, value in self.net.params.items():
            np.copyto(probe.params[key], value)
        self.boundary.emit(boundary_map(probe, binding, grid))
        self._last_map = time.perf_counter()

    def _consume(self, reports) -> None:
        for r in reports:
            if not isinstance(r, StepReport):
                self._flush()
                self._send_map(force=True)
                self.report.emit(r)
                continue
            self._send_map()
            with self._lock:
                self._pending.append(r)
            if self._step_once.is_set():
                self._step_once.clear()
                self.control.pause()
                self._flush()
                self.paused.emit()
            elif time.perf_counter() - self._last_flush >= FLUSH_SECONDS:
                self._flush()
            self._share_gil()

    def _share_gil(self) -> None:
        """Step aside while the UI thread is starved of the GIL.

        A small model's steps are mostly Python, holding the GIL; every call Qt makes into
        Python while painting (pyqtgraph's items are Python) then waits a switch interval for
        it, and one frame took 100–200 ms. When the UI's heartbeat is late, sleeping a few
        milliseconds lets it finish its frame at full speed.
        """
        deadline = time.monotonic() + MAX_YIELD_SECONDS
        while time.monotonic() - self.ui_beat > STARVED_SECONDS and time.monotonic() < deadline:
            time.sleep(0.002)

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        self._last_flush = time.perf_counter()
        if batch:
            self.steps.emit(batch)
