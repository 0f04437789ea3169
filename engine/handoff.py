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

# A worker spins this long after a part before it sleeps. Waking one that sleeps took 50-570 µs
# on these VMs (the host halts an idle vCPU), as long as a LeNet convolution's half: a LeNet-5
# step's kernels come 50-700 µs apart (the optimizer, the next batch between steps), and at 400
# µs a third of its calls found the worker asleep.
IDLE_US = 2000.0
# The caller spins for a worker about as long as its own part took (parts are equal), at least
# MIN_WAIT_US; a worker later than that has lost its core (a loaded machine), and the caller
# then polls with sleeps, so that it does not hold the core the worker waits for.
MIN_WAIT_US = 50.0
# The worker's wait after its flag moves: the caller's way into its kernel. A worker that asks
# for the GIL before the caller has let it go sleeps on it, and waking took ~50 µs here: at 3.5
# µs LeNet-5's parts started 55-66 µs after they were posted; at 10 its steps at two threads ran
# 3-5 % faster (in-process A/B: 21 of 30 and 25 of 40 windows), a Transformer block's, a
# char-LSTM's and a ResNet stage's as before.
DELAY_US = 10.0
# A worker that took more than LATE_US to start its part, or spent more than that and over a
# quarter of its part off its core (the part's wall time less its thread's CPU time: descheduled,
# or waiting for the GIL; a ResNet's 20-40 ms parts spent 0.3-4 ms so), had no core: when most
# calls are late, every part runs on the caller for a while before the workers are tried again.
# Beside three busy processes on two cores, two threads waiting for each other at every kernel
# trained a 4-block GPT at 98-149 ms a step, one thread at 68-82. A worker part that merely ends
# after the caller's is not late: Adam's and the finite check's parts are runs of whole arrays,
# as unequal as the arrays. Judged by when the parts ended (until 2026-12-06), a conv layer's
# 590 k-element weight on the worker beside a BatchNorm's 512 on the caller came out late twice
# a step, and the back-off ran every kernel of that training loop on one core (23 ms a step, 14.5
# now). A worker asleep when its part came is allowed WAKE_US more for its start (its wake-up,
# IDLE_US above): judged without it, a LeNet-5 at two threads spent 18 % of its calls in back-off
# on a quiet VM, every back-off leaving the workers asleep for the next calls to find; on a
# loaded machine waking takes milliseconds.
LATE_US, WAKE_US = 200.0, 600.0
# The while: BACKOFF_MIN_S, twice the last one when the workers come late again within
# PERSIST_S of its end (the load goes on), up to BACKOFF_MAX_S. A fixed quarter of a second
# (until 2026-12-07) made a quiet machine's hiccup, three late calls in a row a few times a
# minute, cost a LeNet-5 at two threads ~60 steps on one core each time.
BACKOFF_MIN_S, BACKOFF_MAX_S, PERSIST_S = 0.02, 0.5, 1.0


class _Worker:
    def __init__(self, name: str, units: tuple[int, int, float], mine: threading.local) -> None:
        self.flags, self.seq, self._mine = np.zeros(3, np.int64), 0, mine
        self.job: tuple | None = None
        self.outcome: tuple = (None, None)  # (result, exception)
        # when the last part came; how long after that it started, and its time off its core
        # where that was over a quarter of it (µs)
        self.posted, self.start_us, self.off_us = 0.0, 0.0, 0.0
        self.asleep = self.woken = False  # sleeping now; sleeping when the last part came
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
            self.start_us = (start - self.posted) * 1e6
            self.off_us = off_core * 1e6 if off_core > wall / 4 else 0.0
            done = seen  # stored inside the next wait, without the GIL

    def lag_us(self) -> float:
        """How late the last part ran: its start after it was posted, less WAKE_US when the
        worker was asleep then, or its time off its core, whichever is more."""
        return max(self.start_us - (WAKE_US if self.woken else 0.0), self.off_us)

    def post(self, fn: Callable, lo: int, hi: int) -> None:
        self.job, self.seq, self.posted = (fn, lo, hi), self.seq + 1, time.perf_counter()
        self.flags[POSTED] = self.seq
        self.woken = self.asleep
        if self.woken:
            with self.wake:
                self.wake.notify()

    def join(self, wait_us: float) -> object:
        """The part's result: run here if the worker has not claimed it yet (``start_us`` then the
        time it had), else waited for."""
        if try_claim(self.flags, self.seq):
            self.start_us, self.off_us = (time.perf_counter() - self.posted) * 1e6, 0.0
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
        self._backoff = BACKOFF_MIN_S  # the last back-off's length (s)

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
            self._note_lateness(max(w.lag_us() for w in self._workers[:len(parts) - 1]))
            if error is not None:
                raise error
            return results
        finally:
            self._busy.release()

    def _note_lateness(self, lag_us: float) -> None:
        """``lag_us``: the latest of the workers' (``_Worker.lag_us``); late over ``LATE_US``."""
        late = lag_us > LATE_US
        self._late = 0.75 * self._late + (0.25 if late else 0.0)
        if self._late > 0.5:  # about three late calls in a row
            now = time.perf_counter()
            again = now - self._alone_until < PERSIST_S
            self._backoff = min(2 * self._backoff, BACKOFF_MAX_S) if again else BACKOFF_MIN_S
            self._late, self._alone_until = 0.0, now + self._backoff


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
