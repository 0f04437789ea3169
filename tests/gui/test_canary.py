"""PySide6 6.12.0 on Python 3.11 drops a reference to True on every signal emit and later aborts
the interpreter (bool_dealloc) — often after every test passed. This canary fails first."""
import sys

from PySide6.QtCore import QObject, Signal


class Emitter(QObject):
    fired = Signal(bool)


def test_emitting_a_signal_200_times_keeps_the_reference_count_of_true(qtbot):
    emitter, seen = Emitter(), []
    emitter.fired.connect(seen.append)
    before = sys.getrefcount(True)
    for _ in range(200):
        emitter.fired.emit(True)
    seen.clear()
    assert sys.getrefcount(True) >= before
