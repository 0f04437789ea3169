"""Kernels compile in the background from launch: the open graph's numba kernels are compiled (or
loaded from numba's cache) on a thread while the person looks at the graph, with a small progress
item in the status bar ("Compiling kernels: 7 of 12 · 14 s"). Train waits, visibly, only for what
is still missing.

The work and the counting are the engine's (``engine.warmup``); this module starts it after an
Open, a data change or a structural edit (debounced), polls its progress four times a second,
and tells the training controller when a run may start (``gate``).
"""
from __future__ import annotations

import threading
from typing import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from layerloom.engine import warmup
from layerloom.engine.network import Network
from layerloom.engine.spec import LayerloomError
from layerloom.gui import gc_guard

DEBOUNCE_MS, POLL_MS = 600, 250


class _Mailbox:
    """The compile thread's way back to the UI thread, closed when the window closes (or the
    compiler is deleted without that). A result delivered after ``shutdown`` ran ``_finished``
    on a closed window's compiler (whose idle signal could schedule more work there; on a cold
    cache GUI tests then met a garbage-collection hold that outlived its window), and an emit
    racing the compiler's deletion on the UI thread is undefined. The lock makes "closed"
    final: once ``close`` returns, no emit is under way and none follows."""

    def __init__(self, deliver: Callable[[object], None]):
        self._deliver, self._lock = deliver, threading.Lock()

    def post(self, found) -> None:
        with self._lock:
            if self._deliver is not None:
                self._deliver(found)

    def close(self) -> None:
        with self._lock:
            self._deliver = None


def _record(args: tuple, mailbox: _Mailbox) -> None:
    """The compile thread: ``engine.warmup.record``, then its result to the UI thread."""
    from layerloom.engine.threads import engine_threads

    try:
        with engine_threads():
            found = warmup.record(*args)
    except Exception:  # noqa: BLE001 (a warm-up is an optimisation: the run reports errors)
        found = None
    mailbox.post(found)


class CompileStatus(QWidget):
    """The status bar's item: a short bar and "Compiling kernels: 7 of 12 · 14 s"."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label, self.bar = QLabel(), QProgressBar()
        self.bar.setMaximumWidth(90)
        self.bar.setMaximumHeight(12)
        self.bar.setTextVisible(False)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 0, 6, 0)
        row.addWidget(self.bar)
        row.addWidget(self.label)
        self.hide()

    def show_progress(self, p: warmup.Progress | None) -> None:
        self.setVisible(p is not None)
        if p is None:
            return
        self.label.setText(p.text())
        self.bar.setRange(0, p.total or 0)  # no total yet: a busy bar
        self.bar.setValue(p.ready)
        self.setToolTip("numba compiles each kernel once and caches it on disk: later starts "
                        "load them in about a second")


THREAD_NAME = "layerloom-compile"


class KernelCompiler(QObject):
    """``context()`` gives (graph, dataset or None, TrainConfig) of the open project."""


    progress = Signal(object)  # engine.warmup.Progress, or None when nothing compiles
    idle = Signal()  # the background warm-up ended
    _done = Signal(object)  # from the compile thread: what it found (queued to this thread)

    def __init__(self, context: Callable[[], tuple], training: Callable[[], bool] = lambda: False,
                 parent: QObject | None = None):
        """``training()`` is True while a run goes: no background warm-up beside it."""
        super().__init__(parent)
        self._context, self._training = context, training
        self.census = warmup.Census(learned=warmup.learned_path())
        # a daemon thread, not a QThread: a compile cannot be interrupted, and a window closed
        # (or a test torn down) in the middle must neither wait a minute nor abort the process
        self.thread: threading.Thread | None = None
        self._gc: gc_guard.GcHold | None = None  # collection stays on the UI thread meanwhile
        # one mailbox for the compiler's life: shutdown closes it and nothing starts after that
        self._mailbox = _Mailbox(self._done.emit)
        self.destroyed.connect(self._mailbox.close)  # deleted unclosed: no emit on it either
        self.tracker: warmup.Tracker | None = None
        self._key: str | None = None
        self._waiting: list[Callable[[], None]] = []
        self._closed = False  # after shutdown: a late edit signal must not start a compile
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.start)
        self._poll = QTimer(self, interval=POLL_MS)
        self._poll.timeout.connect(self._report)
        self._done.connect(self._finished, Qt.QueuedConnection)

    @property
    def busy(self) -> bool:
        return self.thread is not None

    def schedule(self) -> None:
        """Compile for the project as it will stand in a moment (edits come in bursts)."""
        if not self._closed:
            self._debounce.start()

    def start(self) -> bool:
        """Start the background warm-up now; False when there is nothing (new) to compile, or
        the window has closed (a compile started then held collection for a window whose
        compiler no longer delivers its end: seen as a GUI test's hold that never went)."""
        if self._closed:
            return False
        if self.busy:
            self.schedule()  # the graph changed meanwhile: look again when this one ends
            return False
        if self._training():
            return False
        try:
            graph, dataset, config = self._context()
            if dataset is None or not len(dataset.train):
                return False
            net = Network(graph.copy(), seed=config.seed)
        except (LayerloomError, ValueError, KeyError):
            return False  # a graph that cannot run yet: Analyze says why
        key = warmup.structure_key(net, config.optimizer)
        if key == self._key:
            return False
        n = max(2, min(config.batch_size, len(dataset.train)))
        x, y = dataset.train.x[:n], dataset.train.y[:n]
        self._key = key
        expected = self.census.get(key)
        self.tracker = warmup.Tracker(expected)
        self.thread = threading.Thread(target=_record,
                                       args=((net, x, y, config, expected), self._mailbox),
                                       name=THREAD_NAME, daemon=True)
        self._gc = gc_guard.hold()  # it collected an old window's Qt objects once: a deadlock
        self.thread.start()
        # the hold ends with the thread, whatever becomes of this compiler: one deleted without
        # a shutdown (its window destroyed unclosed) never runs _finished, and a hold left
        # behind then stopped automatic collection for good (GUI tests after it timed out)
        gc_guard.release_when_ended(self.thread, self._gc)
        self._poll.start()
        self._report()
        return True

    def gate(self, resume: Callable[[], None]) -> bool:
        """The training controller asks before its worker starts: True to go now; else
        ``resume`` is called once the background warm-up ends (its kernels are then loaded)."""
        if not self.busy:
            return True
        self._waiting.append(resume)
        return False

    def _report(self) -> None:
        if self.tracker is not None:
            self.progress.emit(self.tracker.progress())

    def _finished(self, found) -> None:
        if found is not None and self._key is not None:
            self.census.add(self._key, found)
        self.thread = None
        if self._gc is not None:
            self._gc.release()
            self._gc = None
        self._poll.stop()
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
        self.progress.emit(None)
        self.idle.emit()
        waiting, self._waiting = self._waiting, []
        for resume in waiting:
            resume()

    def shutdown(self, timeout: float = 2.0) -> None:
        """The window closes: give the kernel being compiled a moment, then leave it (the
        thread is a daemon; its result goes nowhere). Nothing starts after this."""
        self._closed = True
        self._debounce.stop()
        self._poll.stop()
        self._waiting.clear()
        self._mailbox.close()
        if self.thread is not None:
            self.thread.join(timeout)  # its hold on collection goes when it ends (see start)
        if self.tracker is not None:
            self.tracker.close()
        self.thread = self.tracker = self._gc = None
