"""While a worker thread runs Python, garbage cycles are collected on the UI thread only: a
worker that collects an old window's Qt objects can deadlock against the UI thread (gui.gc_guard
says how; it hung this suite once)."""
import gc
import threading

import pytest
from PySide6.QtCore import Qt

from layerloom.gui import gc_guard
from tests.gui.test_window_training import open_sample

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


class Cycle:
    """A reference cycle that records, when freed, whether the UI (main) thread freed it."""

    freed_on_ui: list = []

    def __init__(self):
        self.me = self

    def __del__(self):
        Cycle.freed_on_ui.append(threading.current_thread() is threading.main_thread())


def churn(into: list) -> None:
    """Allocate container objects well past generation 0's threshold and keep them alive (the
    collector counts allocations net of frees)."""
    into.extend([i] for i in range(20 * gc.get_threshold()[0]))


@pytest.fixture(autouse=True)
def fresh(qtbot):
    # an earlier test's window may have closed in the middle of a kernel compile (a cold numba
    # cache: CI); conftest waits for it to end, its hold goes on the next timer tick
    qtbot.waitUntil(lambda: not gc_guard.holding(), timeout=10_000)
    gc.collect()
    Cycle.freed_on_ui = []
    yield
    assert not gc_guard.holding()
    assert gc.isenabled()


def test_a_worker_that_allocates_never_collects_while_held(qtbot):
    with gc_guard.hold():
        assert not gc.isenabled()
        Cycle()
        alive: list = []
        worker = threading.Thread(target=churn, args=(alive,))
        worker.start()
        worker.join()
        assert Cycle.freed_on_ui == []  # the worker crossed the threshold and did not collect
        churn(alive)  # nor do the UI thread's own allocations: its timer does
        qtbot.waitUntil(lambda: bool(Cycle.freed_on_ui), timeout=5_000)
    assert Cycle.freed_on_ui == [True]


def test_holds_nest_and_release_is_idempotent():
    first, second = gc_guard.hold(), gc_guard.hold()
    first.release()
    first.release()
    assert gc_guard.holding() and not gc.isenabled()
    second.release()
    assert not gc_guard.holding() and gc.isenabled()


def test_a_collector_switched_off_by_the_user_stays_off():
    gc.disable()
    try:
        gc_guard.hold().release()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_training_from_the_window_collects_on_the_ui_thread(qtbot, window):
    # the Open's background compile first: one started as the run ends (its debounce timer due
    # in the same pass of the event loop as the run's end, as CI saw) holds collection too
    with qtbot.waitSignal(window.training.compiler.idle, timeout=600_000):
        open_sample(window, "mlp_spirals.json", epochs=2)
    c = window.training.controller
    with qtbot.waitSignal(c.finished, timeout=60_000):
        qtbot.mouseClick(window.training.training_panel.train_button, Qt.LeftButton)
        assert gc_guard.holding() and not gc.isenabled()
        for _ in range(50):
            Cycle()
    assert not gc_guard.holding() and gc.isenabled()
    assert len(Cycle.freed_on_ui) == 50 and all(Cycle.freed_on_ui)


def _slow_record(monkeypatch) -> threading.Event:
    """The background compile's work replaced by a wait: it runs until the returned event is set
    and reports, from its own thread, whether automatic collection was on."""
    from layerloom.gui.training import compiler

    go, seen = threading.Event(), []
    monkeypatch.setattr(compiler.warmup, "record",
                        lambda *args: seen.append(gc.isenabled()) or go.wait(30) and None)
    go.seen = seen
    return go


def test_the_background_compile_collects_on_the_ui_thread(qtbot, window, monkeypatch):
    go = _slow_record(monkeypatch)
    compiler = window.training.compiler
    open_sample(window, "mlp_spirals.json", epochs=1)
    qtbot.waitUntil(lambda: compiler.busy, timeout=10_000)
    assert gc_guard.holding()
    with qtbot.waitSignal(compiler.idle, timeout=30_000):
        go.set()
    assert go.seen == [False] and not gc_guard.holding() and gc.isenabled()


def test_a_compile_left_running_by_a_closed_window_keeps_collection_here_until_it_ends(
        qtbot, window, monkeypatch):
    go = _slow_record(monkeypatch)
    compiler = window.training.compiler
    open_sample(window, "mlp_spirals.json", epochs=1)
    qtbot.waitUntil(lambda: compiler.busy, timeout=10_000)
    thread = compiler.thread
    compiler.shutdown(timeout=0.01)
    assert thread.is_alive() and gc_guard.holding() and not gc.isenabled()
    go.set()
    qtbot.waitUntil(lambda: not gc_guard.holding(), timeout=10_000)
    assert gc.isenabled()


def test_a_compile_that_ends_after_its_window_closed_delivers_nothing(qtbot, window,
                                                                     monkeypatch):
    go = _slow_record(monkeypatch)
    compiler = window.training.compiler
    open_sample(window, "mlp_spirals.json", epochs=1)
    qtbot.waitUntil(lambda: compiler.busy, timeout=10_000)
    thread, ended = compiler.thread, []
    compiler.idle.connect(lambda: ended.append(True))
    compiler.shutdown(timeout=0.01)
    go.set()
    thread.join(10)
    qtbot.waitUntil(lambda: not gc_guard.holding(), timeout=10_000)
    qtbot.wait(100)  # a queued result would be handled by now
    assert not ended and not compiler.busy


def test_a_closed_windows_compiler_starts_nothing(qtbot, window, monkeypatch):
    """An edit signal that arrives after the window closed (a late analysis report, a data set
    panel torn down) must not start a compile: no thread, no hold on collection."""
    go = _slow_record(monkeypatch)
    go.set()  # compiles end at once
    compiler = window.training.compiler
    open_sample(window, "mlp_spirals.json", epochs=1)
    qtbot.waitUntil(lambda: bool(go.seen) and not compiler.busy and not gc_guard.holding(),
                    timeout=10_000)
    go.seen.clear()
    compiler.shutdown()
    compiler._key = None  # as if the project had changed since the last compile
    compiler.schedule()
    qtbot.wait(3 * compiler._debounce.interval())
    assert compiler.start() is False
    assert go.seen == [] and not compiler.busy and not gc_guard.holding()


def test_a_compiler_deleted_unclosed_mid_compile_leaves_no_hold(qtbot, window, monkeypatch):
    """A window destroyed without its close (so without the compiler's shutdown) in the middle
    of a compile: the result is posted to nobody, and collection comes back once the thread
    ends; before, the hold stayed for good and every later GUI test timed out on it."""
    import shiboken6

    from layerloom.gui.training.compiler import KernelCompiler

    go, failures = _slow_record(monkeypatch), []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    open_sample(window, "mlp_spirals.json", epochs=1)
    window.training.compiler.shutdown()  # the window's own compiler stays out of it
    orphan = KernelCompiler(window.training.compiler._context)
    assert orphan.start() and gc_guard.holding()
    thread = orphan.thread
    shiboken6.delete(orphan)
    go.set()
    thread.join(10)
    qtbot.waitUntil(lambda: not gc_guard.holding(), timeout=5_000)
    assert gc.isenabled() and go.seen == [False] and failures == []
