"""Handing a part of one kernel call to another core in a few microseconds, not ~85.

``engine.threads.run_row_parts`` splits a batch over the cores once per kernel call: a LeNet
step makes about ten such calls, a 4-block GPT step about seventy. A thread pool's hand-over
(submit, futex wake, GIL, result, futex wake back) cost ~85 µs on these VMs, so two cores
gained little over one. Here each extra core has a worker that, after a part, spins for a while
without the GIL (``kernels.spin``) on a flag the caller sets for the next part; the caller spins
the same way until the worker's done flag moves. Both sides take the GIL only when the other
has let it go (the worker waits a few microseconds after seeing its flag so that the caller has
entered its own part's kernel), so no one sleeps on it. A worker that has waited ``IDLE_US``
sleeps on a condition until the next part; nothing spins between training steps for long. A part
the worker has not claimed by the time the caller's own part is done runs on the caller: on a
loaded machine the worker often has no core, and two threads waiting for each other at every
kernel ran a step ~1.7× slower than one thread alone.
Measured on two cores, parts of ~55 µs: the whole call took 143 µs with the thread pool,
65 µs here (ideal 58).
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from layerloom.engine.kernels.spin import DONE, POSTED, pause_loop, try_claim, wait_done, worker_wait

IDLE_US = 400.0  # a worker spins this long after a part before it sleeps
# The caller spins for a worker about as long as its own part took (parts are equal), at least
# MIN_WAIT_US; a worker later than that has lost its core (a loaded machine), and the caller
# then polls with sleeps, so that it does not hold the core the worker waits for.
MIN_WAIT_US = 50.0
DELAY_US = 3.5  # the worker's wait after its flag moves: the caller's way into its kernel
# A worker that took more than LATE_US to start its part, or spent more than that and over a
# quarter of its part off its core (the part's wall time less its thread's CPU time: descheduled,
# or waiting for the GIL; a ResNet's 20-40 ms parts spent 0.3-4 ms so), had no core: when most
# calls are late, every part runs on the caller for BACKOFF_S before the workers are tried again.
# Beside three busy processes on two cores, two threads waiting for each other at every kernel
# trained a 4-block GPT at 98-149 ms a step, one thread at 68-82. A worker part that merely ends
# after the caller's is not late: Adam's and the finite check's parts are runs of whole arrays,
# as unequal as the arrays. Judged by when the parts ended (until 2026-12-06), a conv layer's
# 590 k-element weight on the worker beside a BatchNorm's 512 on the caller came out late twice
# a step, and the back-off ran every kernel of that training loop on one core (23 ms a step, 14.5
# now).
LATE_US = 200.0
BACKOFF_S = 0.25


class _Worker:
    def __init__(self, name: str, units: tuple[int, int, float], mine: threading.local) -> None:
        self.flags, self.seq, self._mine = np.zeros(3, np.int64), 0, mine
        self.job: tuple | None = None
        self.outcome: tuple = (None, None)  # (result, exception)
        self.posted, self.lag_us = 0.0, 0.0  # when the last part came; how late it ran (µs)
        self.asleep = False
        self.wake = threading.Condition()
        self.idle, self.delay, self.per_us = units
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        self._mine.worker = True  # a split inside a part runs the caller's other way
        seen, done = 0, -1
        while True:
            now, mine = worker_wait(self.flags, done, seen, self.idle, self.delay)
            done = -1
            if now == seen:
                with self.wake:
                    self.asleep = True
                    while int(self.flags[POSTED]) == seen:
                        self.wake.wait(1.0)
                    self.asleep = False
                now = int(self.flags[POSTED])
                mine = try_claim(self.flags, now)
            seen = now
            if not mine:  # the caller ran it: it came while this thread had no core
                continue
            fn, lo, hi = self.job
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                self.outcome = (fn(lo, hi), None)
            except BaseException as e:  # noqa: BLE001 - raised again on the caller's thread
                self.outcome = (None, e)
            wall = time.perf_counter() - start  # a part shorter than LATE_US cannot be late
            # off its core: no second read of the thread's clock then (a system call, ~1 µs)
            off_core = wall - (time.thread_time() - cpu) if wall * 1e6 > LATE_US else 0.0
            self.lag_us = max(start - self.posted, off_core if off_core > wall / 4 else 0) * 1e6
            done = seen  # stored inside the next wait, without the GIL

    def post(self, fn: Callable, lo: int, hi: int) -> None:
        self.job, self.seq, self.posted = (fn, lo, hi), self.seq + 1, time.perf_counter()
        self.flags[POSTED] = self.seq
        if self.asleep:
            with self.wake:
                self.wake.notify()

    def join(self, wait_us: float) -> object:
        """The part's result: run here if the worker has not claimed it yet (``lag_us`` then the
        time it had), else waited for."""
        if try_claim(self.flags, self.seq):
            self.lag_us = (time.perf_counter() - self.posted) * 1e6
            fn, lo, hi = self.job
            self.flags[DONE] = self.seq
            return fn(lo, hi)
        spins = int(max(wait_us, MIN_WAIT_US) * self.per_us)
        while not wait_done(self.flags, self.seq, spins):
            time.sleep(5e-5)  # a worker this late lost its core: let it have ours
            spins = int(MIN_WAIT_US * self.per_us)
        result, error = self.outcome
        self.outcome = (None, None)
        if error is not None:
            raise error
        return result


class SpinPool:
    """Runs ``fn(lo, hi)`` for each part, the first on the calling thread, the others on
    spinning workers; one caller at a time (``try_run`` returns None when busy)."""

    def __init__(self, name: str) -> None:
        self._name, self._workers = name, []
        self._busy = threading.Lock()
        self._units: tuple[int, int, float] | None = None
        self._mine = threading.local()
        self._late, self._alone_until = 0.0, 0.0  # a moving share of late calls; back-off end

    def _pause_units(self) -> tuple[int, int, float]:
        pause_loop(10)  # compiled (or loaded) before it is timed
        n, t = 20_000, time.perf_counter()
        pause_loop(n)
        per_us = n / max((time.perf_counter() - t) * 1e6, 1.0)
        return max(1, int(IDLE_US * per_us)), max(0, int(DELAY_US * per_us)), per_us

    def try_run(self, fn: Callable[[int, int], object], parts: list) -> list | None:
        if getattr(self._mine, "worker", False) or not self._busy.acquire(blocking=False):
            return None  # a part's own split, or another thread's: the caller's other way
        try:
            if time.perf_counter() < self._alone_until:
                return in_turn(fn, parts)
            if self._units is None:
                self._units = self._pause_units()
            while len(self._workers) < len(parts) - 1:
                self._workers.append(_Worker(f"{self._name}-{len(self._workers)}", self._units,
                                             self._mine))
            for worker, (lo, hi) in zip(self._workers, parts[1:]):
                worker.post(fn, lo, hi)
            first, error, t = None, None, time.perf_counter()
            try:
                first = fn(*parts[0])
            except BaseException as e:  # noqa: BLE001 - after every part has ended
                error = e
            mine_us, results = (time.perf_counter() - t) * 1e6, [first]
            for worker in self._workers[:len(parts) - 1]:
                try:
                    results.append(worker.join(mine_us))
                except BaseException as e:  # noqa: BLE001
                    error = error or e
            self._note_lateness(max(w.lag_us for w in self._workers[:len(parts) - 1]))
            if error is not None:
                raise error
            return results
        finally:
            self._busy.release()

    def _note_lateness(self, lag_us: float) -> None:
        """``lag_us``: the latest of the workers' starts after their parts were posted, or of
        their times off their cores during the parts where that was over a quarter of a part,
        whichever is more (``LATE_US``)."""
        late = lag_us > LATE_US
        self._late = 0.75 * self._late + (0.25 if late else 0.0)
        if self._late > 0.5:  # about three late calls in a row
            self._late, self._alone_until = 0.0, time.perf_counter() + BACKOFF_S


def in_turn(fn: Callable[[int, int], object], parts: list) -> list:
    """Every part on the calling thread, one after another (a failing part raises after every
    part has run, as on the workers)."""
    results, error = [], None
    for lo, hi in parts:
        try:
            results.append(fn(lo, hi))
        except BaseException as e:  # noqa: BLE001
            error, _ = error or e, results.append(None)
    if error is not None:
        raise error
    return results
