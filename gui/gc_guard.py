"""Keep Python's cyclic garbage collector on the UI thread while worker threads run Python.

Automatic collection runs in whichever thread happens to allocate when a threshold is crossed.
When that is a worker thread and the garbage holds Qt objects (a closed window, an old menu),
their C++ destructors run off the UI thread and can deadlock against it. Seen here: a training
worker collected an earlier window's objects and waited for the GIL inside ``~QObject`` while
holding Qt's signal-slot mutex; the UI thread held the GIL and waited for that mutex. Both
stopped for good.

So while any worker thread of ours runs, automatic collection is off and a UI-thread timer
collects the way the collector itself would (the oldest generation whose count crossed its
threshold). pyqtgraph's ``GarbageCollector`` does the same for the whole process lifetime; this
one is scoped to holds, so a script that imports the GUI keeps its normal collector. The
``layerloom`` app holds one for its whole life (``gui.main``): the engine's own threads (the
hand-over's workers, a loader) run Python at any time, not only while a worker thread runs.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QTimer

INTERVAL_MS = 100

_holds: set = set()
_timer: QTimer | None = None
_was_enabled = True


def collect_due() -> int:
    """Collect the generation automatic collection would collect now; returns it, or -1."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for gen in (2, 1, 0):
        if thresholds[gen] and counts[gen] > thresholds[gen]:
            gc.collect(gen)
            return gen
    return -1


class GcHold:
    """One running worker thread's claim; ``release()`` once the thread has ended (idempotent)."""

    def release(self) -> None:
        global _was_enabled
        if self not in _holds:
            return
        _holds.discard(self)
        if not _holds:
            if _timer is not None:
                _timer.stop()
            if _was_enabled:
                gc.enable()
            gc.collect()  # here, on the UI thread, what piled up meanwhile

    def __enter__(self) -> GcHold:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def hold() -> GcHold:
    """Call on the UI thread before starting a thread that runs Python."""
    global _timer, _was_enabled
    if not _holds:
        _was_enabled = gc.isenabled()
        gc.disable()
        if _timer is None:
            _timer = QTimer(QCoreApplication.instance())
            _timer.setInterval(INTERVAL_MS)
            _timer.timeout.connect(collect_due)
        _timer.start()
    token = GcHold()
    _holds.add(token)
    return token


def holding() -> bool:
    """True while some worker thread keeps collection on the UI thread."""
    return bool(_holds)


def release_when_ended(thread, token: GcHold) -> None:
    """Release ``token`` on the UI thread once ``thread`` has ended: for a daemon thread left
    running when its window closed (a kernel compile cannot be interrupted). Until then it may
    still collect, so collection stays here."""
    if not thread.is_alive():
        token.release()
        return
    timer = QTimer(QCoreApplication.instance())
    timer.setInterval(INTERVAL_MS)

    def check() -> None:
        if not thread.is_alive():
            timer.stop()
            timer.deleteLater()
            token.release()
    timer.timeout.connect(check)
    timer.start()
