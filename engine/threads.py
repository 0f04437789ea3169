"""One thread pool at a time: numba's parallel kernels spread over the batch, the BLAS stays at one.

Two pools side by side (OpenBLAS's 2 threads beside numba's 2) made a training step 10–30×
slower on these machines (PLATFORM-NOTES), so the engine holds the BLAS to one thread while it
runs. ``LAYERLOOM_THREADS`` (or ``set_threads``) sets how many cores the engine uses. A graph
with no layer that runs numba-parallel kernels (an MLP, an LSTM) gives the cores to the BLAS
instead, and numba stays on one thread: still one pool at a time.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator


def default_threads() -> int:
    env = os.environ.get("LAYERLOOM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


_threads = default_threads()


def set_threads(n: int) -> None:
    """Cores for numba's parallel kernels (applied on the next ``engine_threads`` block)."""
    global _threads
    _threads = max(1, int(n))


def get_threads() -> int:
    return _threads


_blas_cap = threading.local()  # per thread: the window's training thread sets one


def cap_blas_threads(n: int | None) -> None:
    """At most ``n`` BLAS threads for engine work on *this* thread, even for a BLAS-only graph
    (None: no cap).

    The window's training thread caps them at one core fewer than the engine's: OpenBLAS's
    threads spin while they wait for each other, and beside a UI thread that paints they lost
    whole time slices on every small product; the char-LSTM sample trained at ~25-75 samples/s
    with two BLAS threads on two cores and at ~240-360 with one, measured on this kind of
    machine under load (tests/benchmarks/bench_window.py)."""
    _blas_cap.n = None if n is None else max(1, int(n))


def blas_only(layers) -> bool:
    """True when none of these layer classes runs numba-parallel kernels (their
    ``parallel_kernels`` trait, declared on the class)."""
    return not any(layer.parallel_kernels for layer in layers)


@contextlib.contextmanager
def engine_threads(blas: bool = False) -> Iterator[None]:
    """Run a block of engine work with numba on ``get_threads()`` cores and the BLAS on one;
    ``blas=True`` (see ``blas_only``) the other way round."""
    import numba
    from threadpoolctl import threadpool_limits

    n = min(_threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(1 if blas else n)
    blas_threads = min(_threads, getattr(_blas_cap, "n", None) or _threads) if blas else 1
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        yield
