"""The spinning hand-over behind ``engine.threads.run_row_parts`` (engine.handoff): every part
runs once on its own thread, results come back in part order, a failing part raises after every
part has ended, a split inside a part or from a second thread runs the pooled way, and a worker
that fell asleep wakes for the next part."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from layerloom.engine import handoff
from layerloom.engine.kernels.spin import pause_loop, try_claim, wait_done, worker_wait
from layerloom.engine.threads import ROW_THREADS, engine_threads, run_row_parts, set_threads

pytestmark = pytest.mark.solo  # a worker thread's timing on a core of its own (tests/solo.py)


@pytest.fixture(autouse=True, scope="module")
def _spin_kernels_loaded():
    """A worker thread's first wait loads its kernels, on a fresh numba cache after the compile
    helper has compiled them (tests/kernel_order.py; seconds on a busy machine): until then every
    part runs on the caller, and a test counting the workers' parts failed. The caller's part
    here waits for a worker to have run one."""
    pool = handoff.SpinPool("warm-spin")
    ran, caller = threading.Event(), threading.current_thread()

    def part(lo, hi):
        if lo == 0:
            ran.wait(120.0)
        elif threading.current_thread() is not caller:  # (else the caller ran it after 120 s)
            ran.set()

    pool.try_run(part, [(0, 1), (1, 2)])
    assert ran.is_set(), "a spinning worker did not start in two minutes"


@pytest.fixture
def two_cores():
    set_threads(2)
    with engine_threads():
        yield


def test_parts_run_once_each_in_order_mostly_on_the_workers(monkeypatch):
    monkeypatch.setattr(handoff, "LATE_US", 1e9)  # no back-off to the caller on a busy machine
    pool = handoff.SpinPool("test-spin")
    seen, on_workers = [], 0

    def part(lo, hi):
        seen.append((lo, threading.current_thread().name))
        if lo == 0:
            time.sleep(0.001)  # the caller's part leaves a worker time to claim its own
        return list(range(lo, hi))

    for _ in range(50):
        seen.clear()
        out = pool.try_run(part, [(0, 3), (3, 5), (5, 9)])
        assert out == [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
        names = dict(seen)
        assert len(seen) == 3 and names[0] == threading.current_thread().name
        on_workers += sum(names[k].startswith("test-spin") for k in (3, 5))
    assert on_workers > 0  # a part a worker is late for runs on the caller, but not every one


def test_a_failing_worker_part_raises_after_every_part_ended():
    pool = handoff.SpinPool("test-spin")
    ended = []

    def part(lo, hi):
        if lo == 4:
            raise ValueError("bad part 4")
        time.sleep(0.01)
        ended.append(lo)
        return lo

    with pytest.raises(ValueError, match="bad part 4"):
        pool.try_run(part, [(0, 4), (4, 8), (8, 9)])
    assert sorted(ended) == [0, 8]
    assert pool.try_run(lambda lo, hi: hi - lo, [(0, 4), (4, 9)]) == [4, 5]


def _asleep(worker) -> None:
    for _ in range(400):  # it spins IDLE_US, then sleeps on its condition
        if worker.asleep:
            return
        time.sleep(0.005)
    raise AssertionError("the worker did not fall asleep")


def test_a_worker_asleep_after_its_idle_spin_wakes_for_the_next_part(monkeypatch):
    monkeypatch.setattr(handoff, "IDLE_US", 1.0)
    pool = handoff.SpinPool("test-spin")
    assert pool.try_run(lambda lo, hi: lo, [(0, 1), (1, 2)]) == [0, 1]
    worker = pool._workers[0]
    _asleep(worker)
    assert worker.asleep
    assert pool.try_run(lambda lo, hi: hi, [(0, 1), (1, 2)]) == [1, 2]


def test_splits_inside_a_part_and_from_a_second_thread_take_the_pooled_way(two_cores):
    inner = []

    def part(lo, hi):
        inner.append(run_row_parts(lambda a, b: (a, b, threading.current_thread().name),
                                   [(lo, lo + 1), (lo + 1, hi)]))
        return lo

    assert run_row_parts(part, [(0, 4), (4, 8)]) == [0, 4]
    assert sorted(r[0][:2] for r in inner) == [(0, 1), (4, 5)]
    nested = [r for r in inner if r[0][2].startswith(ROW_THREADS)]
    assert all(r[1][2].startswith(ROW_THREADS) for r in nested)  # a worker's split: the pool

    results, errors = [], []

    def caller(k):
        try:
            for _ in range(100):
                results.append(run_row_parts(lambda lo, hi: hi - lo + k, [(0, 2), (2, 5)]))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(k,)) for k in (0, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(map(tuple, results)) == [(2, 3)] * 100 + [(12, 13)] * 100


def test_a_part_is_claimed_once_and_the_wait_times_out_without_one():
    flags = np.zeros(3, np.int64)
    assert worker_wait(flags, 7, 0, 1000, 0) == (0, False)  # stored DONE, then timed out
    assert flags[1] == 7
    flags[0] = 1  # part 1 posted
    assert try_claim(flags, 1)
    assert worker_wait(flags, -1, 0, 10, 5) == (1, False)  # seen, but the caller has it
    flags[0] = 2
    assert worker_wait(flags, -1, 1, 10, 5) == (2, True) and not try_claim(flags, 2)
    assert wait_done(flags, 7, 10) and not wait_done(flags, 8, 10)


def test_a_part_the_worker_cannot_take_runs_on_the_caller(monkeypatch):
    monkeypatch.setattr(handoff, "IDLE_US", 1.0)
    pool = handoff.SpinPool("test-spin")
    pool.try_run(lambda lo, hi: lo, [(0, 1), (1, 2)])
    worker = pool._workers[0]
    _asleep(worker)
    names = []

    def part(lo, hi):
        names.append(threading.current_thread().name)
        return hi

    with worker.wake:  # the worker cannot leave its wait while this thread holds the lock
        assert pool.try_run(part, [(0, 1), (1, 2)]) == [1, 2]
    assert names == [threading.current_thread().name] * 2
    for _ in range(20):  # the worker, awake, finds the part taken and goes on with the next
        assert pool.try_run(part, [(0, 3), (3, 5)]) == [3, 5]


def test_a_forked_child_starts_its_own_workers(two_cores):
    import os

    run_row_parts(lambda lo, hi: lo, [(0, 1), (1, 2)])  # the parent's workers exist now
    pid = os.fork()
    if pid == 0:  # the child: its split must not wait for the parent's threads
        import signal

        signal.alarm(10)  # a hang ends the child with SIGALRM, not the test run
        try:
            ok = run_row_parts(lambda lo, hi: hi, [(0, 1), (1, 2)]) == [1, 2]
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_when_the_workers_keep_coming_late_the_parts_run_on_the_caller_for_a_while(monkeypatch):
    monkeypatch.setattr(handoff, "LATE_US", 100.0)
    monkeypatch.setattr(handoff, "BACKOFF_MIN_S", 1.0)
    pool = handoff.SpinPool("test-spin")
    me, names, slow = threading.current_thread().name, [], {"workers": True}

    def part(lo, hi):
        names.append(threading.current_thread().name)
        if (lo > 0) == slow["workers"]:  # the slow side: the workers' parts, later the caller's
            time.sleep(0.003)  # a worker asleep in its part: 3 ms off its core
        elif lo == 0:
            time.sleep(0.001)  # time for the worker to claim its part
        return lo

    for _ in range(3):  # each worker spends ~3 ms of its part off its core: late
        pool.try_run(part, [(0, 1), (1, 2)])
    names.clear()
    for _ in range(10):
        assert pool.try_run(part, [(0, 1), (1, 2), (2, 3)]) == [0, 1, 2]
    assert names == [me] * 30
    time.sleep(1.05)
    names.clear()
    slow["workers"] = False  # the caller's part is long enough for a worker to claim its own
    for _ in range(20):
        pool.try_run(part, [(0, 1), (1, 2)])
    assert any(n != me for n in names)  # the workers are tried again


def test_a_worker_busy_on_its_core_past_the_callers_part_is_not_late(monkeypatch):
    """Adam's and the finite check's parts are runs of whole arrays, as unequal as the arrays: a
    worker's part that runs on its core but ends long after the caller's is not a worker without
    a core (judged by the parts' ends, a conv layer's weight beside a BatchNorm's put every
    kernel of a training loop on one core). A worker that truly lost its core for a while (CI's
    shared VM: once in a whole run) is late, so the test allows three fresh pools; judged by the
    ends, every call of every pool is ~11 ms late."""
    monkeypatch.setattr(handoff, "LATE_US", 5000.0)  # under the ends' ~11 ms
    monkeypatch.setattr(handoff, "BACKOFF_MIN_S", 5.0)
    me, names = threading.current_thread().name, []

    def part(lo, hi):
        names.append(threading.current_thread().name)
        if lo == 0:
            time.sleep(0.001)  # time for the worker to claim its part
        else:
            end = time.thread_time() + 0.012  # 12 ms of work on the worker's own core,
            while time.thread_time() < end:  # mostly without the GIL (as a kernel's)
                pause_loop(2000)
        return lo

    def worker_still_takes_parts() -> bool:
        pool = handoff.SpinPool("test-spin")
        for _ in range(4):  # each ends ~11 ms after the caller's part
            assert pool.try_run(part, [(0, 1), (1, 2)]) == [0, 1]
        names.clear()
        for _ in range(5):
            pool.try_run(part, [(0, 1), (1, 2)])
        return any(n != me for n in names)  # no back-off: the worker still takes parts

    assert any(worker_still_takes_parts() for _ in range(3))


def test_a_worker_asleep_when_its_part_came_is_allowed_its_wake_up(monkeypatch):
    """Waking a sleeping worker took up to ~0.6 ms on a quiet VM: judged like a spinning
    worker's start, that made LeNet-5's calls after each step's gap late, and back-offs ran its
    kernels on one core on a machine that had both free."""
    monkeypatch.setattr(handoff, "IDLE_US", 1.0)  # asleep right after every part
    monkeypatch.setattr(handoff, "BACKOFF_MIN_S", 5.0)
    monkeypatch.setattr(handoff, "WAKE_US", 5000.0)
    pool = handoff.SpinPool("test-spin")

    def part(lo, hi):
        if lo == 0:
            time.sleep(0.002)
        return lo

    pool.try_run(part, [(0, 1), (1, 2)])
    worker = pool._workers[0]

    def late_calls() -> None:
        for _ in range(5):
            _asleep(worker)
            with worker.wake:  # it cannot wake before the caller ran both parts: 2 ms late
                assert pool.try_run(part, [(0, 1), (1, 2)]) == [0, 1]

    late_calls()
    assert time.perf_counter() >= pool._alone_until  # no back-off
    monkeypatch.setattr(handoff, "WAKE_US", 0.0)
    late_calls()
    assert time.perf_counter() < pool._alone_until  # the same lateness without the allowance


def test_a_back_off_doubles_while_the_workers_stay_late_and_starts_short_again(monkeypatch):
    """A hiccup of a quiet machine (three late calls in a row) costs a short back-off; a load
    that goes on, longer and longer ones up to BACKOFF_MAX_S."""
    monkeypatch.setattr(handoff, "LATE_US", 100.0)
    monkeypatch.setattr(handoff, "BACKOFF_MIN_S", 0.05)
    monkeypatch.setattr(handoff, "BACKOFF_MAX_S", 0.15)
    monkeypatch.setattr(handoff, "PERSIST_S", 30.0)
    pool = handoff.SpinPool("test-spin")

    def part(lo, hi):
        time.sleep(0.003 if lo else 0.001)  # a worker asleep in its part: 3 ms off its core
        return lo

    def back_off() -> float:
        while time.perf_counter() < pool._alone_until:  # the last one ends first
            time.sleep(0.01)
        for _ in range(10):
            pool.try_run(part, [(0, 1), (1, 2)])
            if time.perf_counter() < pool._alone_until:
                return pool._backoff
        raise AssertionError("no back-off after ten late calls")

    assert [back_off() for _ in range(4)] == [0.05, 0.1, 0.15, 0.15]
    monkeypatch.setattr(handoff, "PERSIST_S", 0.0)  # the load went away meanwhile
    assert back_off() == 0.05


def test_in_turn_runs_every_part_before_it_raises():
    ran = []

    def part(lo, hi):
        ran.append(lo)
        if lo == 1:
            raise ValueError("part 1")
        return lo

    with pytest.raises(ValueError, match="part 1"):
        handoff.in_turn(part, [(0, 1), (1, 2), (2, 3)])
    assert ran == [0, 1, 2]
