"""Under two xdist workers a ``solo`` test runs alone (``tests/solo.py``): ordinary tests share
the lock; a solo test waits for the one running and holds back the next."""
import fcntl
import os
import threading
import time

import pytest

from tests import solo


def _held(path: str) -> bool:
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def _until(check, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_ordinary_tests_run_together(tmp_path):
    entered = threading.Event()

    def other() -> None:
        with solo.turn(str(tmp_path), False):
            entered.set()

    with solo.turn(str(tmp_path), False):
        thread = threading.Thread(target=other)
        thread.start()
        assert entered.wait(30)  # while this one still holds its turn
    thread.join(30)


def test_a_solo_test_waits_for_the_running_one_and_holds_back_the_next(tmp_path):
    folder, order, release = str(tmp_path), [], threading.Event()

    def run(name: str, alone: bool, wait: threading.Event | None = None) -> None:
        with solo.turn(folder, alone):
            order.append(name)
            if wait is not None:
                assert wait.wait(30)

    first = threading.Thread(target=run, args=("first", False, release))
    first.start()
    _until(lambda: order == ["first"])
    alone = threading.Thread(target=run, args=("solo", True))
    alone.start()
    _until(lambda: _held(os.path.join(folder, "gate")))  # the solo test waits at the gate
    later = threading.Thread(target=run, args=("later", False))
    later.start()
    time.sleep(0.2)
    assert order == ["first"]  # neither starts while the first runs
    release.set()
    for t in (first, alone, later):
        t.join(30)
    assert order == ["first", "solo", "later"]


def test_under_xdist_each_test_holds_its_turn(request):
    if not hasattr(request.config, "workerinput"):
        pytest.skip("one process: no other worker to keep out")
    assert _held(os.path.join(os.environ[solo.FOLDER], "tests"))
