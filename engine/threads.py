"""One thread pool at a time: the engine's own workers split a kernel's batch, the BLAS stays at one.

Two pools side by side (OpenBLAS's 2 threads beside numba's 2) made a training step 10–30×
slower on these machines (PLATFORM-NOTES), so the engine holds the BLAS to one thread while it
runs. ``LAYERLOOM_THREADS`` (or ``set_threads``) sets how many cores the engine uses. Kernels
split their batch with ``split_rows`` over the engine's spinning workers (``engine.handoff``);
none uses numba's ``prange`` any more (tests/test_architecture.py): its OpenMP workers spin for
milliseconds after each kernel and took the core from ours (a 4-block GPT at two cores trained
at 10k tokens/s with both pools, 19k with one). numba's per-thread thread count
(``numba.set_num_threads``) is still the knob that says how many parts a split makes on this
thread. A graph with no layer that splits its kernels (an MLP, an LSTM) gives the cores to the
BLAS instead, and the splits make one part: still one pool at a time.

Work made of many small sequential products (a recurrent layer's time steps) uses the cores
differently (``run_row_parts``): the batch's rows are split into one part per core and each part
runs its whole loop on its own thread with a one-thread BLAS. One hand-over per layer call
instead of one per time step: OpenBLAS's threads synchronise on every small product, and on a
loaded machine a step waited for the other core each time (the char-LSTM at h 512 trained 10×
slower with two BLAS threads than with one, measured beside six other busy processes).
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterator


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
    outer = getattr(_active, "cores", 1), getattr(_active, "blas", 1)
    _active.cores, _active.blas = (blas_threads if blas else n), blas_threads
    try:
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            yield
    finally:
        _active.cores, _active.blas = outer


# ------------------------------------------------------------------- row parts on own threads
_active = threading.local()  # the cores and BLAS threads of this thread's engine_threads block
_pool: list = []  # [ThreadPoolExecutor] for splits while the spinning pool is busy
_spin: list = []  # [handoff.SpinPool] once a row split first runs
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's worker threads
    os.register_at_fork(after_in_child=lambda: (_spin.clear(), _pool.clear()))
_blas_libs: list = []  # threadpoolctl's BLAS controllers: set_num_threads is a cheap call on them
ROW_THREADS = "layerloom-rows"  # the pool's thread names
MIN_ROWS = 4  # rows per part: fewer and the hand-over costs more than the part saves
# A product of fewer multiply-adds per part runs on one core: the hand-over would cost more than
# the second core saves. Measured on a quiet 2-core machine (hand-over ~8 µs): 4.2 M (1024×64×64)
# took 73 µs on one core and 50 in two parts, 2.1 M 42 and 34; at 1 << 22 the 4.2 M products of
# a d64 Transformer block stayed whole (its step 6.15 -> 5.93 ms median at 2 M a part). At 1 M
# a part LeNet-5's 3.1 M Dense products split too: its step 4 % faster on two cores (A/B in one
# process, 40 rounds, twice); the d64 block, a 4-block GPT, a char-LSTM and the MLP unchanged.
MIN_GEMM_MACS = 1 << 20
# Elements of a list of arrays (Adam's parameters, the gradients' finite check) below which a
# pass over them stays on one core: a hand-over costs more than half of it (~1.5 ns an element).
MIN_SIZES = 1 << 16


def even_parts(n: int, k: int) -> list[tuple[int, int]]:
    """[(start, stop)] cutting [0, n) into ``k`` contiguous parts of near-equal length."""
    bounds = [n * i // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def row_parts(rows: int, min_rows: int = MIN_ROWS) -> list[tuple[int, int]]:
    """[(start, stop)] splitting ``rows`` over the cores of the current ``engine_threads`` block
    (one part outside such a block, or when the batch is small: parts of ``min_rows`` or more)."""
    return even_parts(rows, max(1, min(getattr(_active, "cores", 1), rows // min_rows)))


def gemm_parts(rows: int, macs: int) -> list[tuple[int, int]]:
    """Row parts for one large matrix product while the BLAS runs on one thread in a block that
    has more cores (a graph with numba-parallel layers): the cores then take a part each,
    without a second spinning thread pool beside numba's. One part otherwise."""
    cores = getattr(_active, "cores", 1)
    if cores < 2 or getattr(_active, "blas", 1) > 1:
        return [(0, rows)]
    return even_parts(rows, max(1, min(cores, rows // 16, macs // MIN_GEMM_MACS)))


def size_parts(sizes: list[int]) -> list[tuple[int, int]]:
    """[(start, stop)] cutting a list of arrays of these sizes into one run per core numba uses
    here (as ``engine.threads.split_rows``), the runs' total sizes about equal; one run when
    they hold fewer than ``MIN_SIZES`` elements."""
    import numba

    total = sum(sizes)
    k = min(numba.get_num_threads(), len(sizes)) if total >= MIN_SIZES else 1
    bounds, seen = [0], 0
    for i, size in enumerate(sizes):
        target = total * len(bounds) / k
        if len(bounds) < k and seen + size >= target:  # cut before or after i, the nearer
            cut = i if target - seen < seen + size - target and i > bounds[-1] else i + 1
            if cut < len(sizes):
                bounds.append(cut)
        seen += size
    bounds.append(len(sizes))
    return list(zip(bounds[:-1], bounds[1:]))


def _set_blas(n: int) -> None:
    if not _blas_libs:
        from threadpoolctl import ThreadpoolController

        _blas_libs.extend(ThreadpoolController().select(user_api="blas").lib_controllers)
    for lib in _blas_libs:
        lib.set_num_threads(n)


def split_rows(fn: Callable[[int, int], object], n: int) -> list:
    """``[fn(lo, hi)]`` over [0, n), one contiguous part per thread numba would use here (1 in a
    BLAS-only block of ``engine_threads``; prange split the same way), each on its own thread."""
    import numba

    return run_row_parts(fn, even_parts(n, max(1, min(numba.get_num_threads(), n))))


def run_row_parts(fn: Callable[[int, int], object], parts: list) -> list:
    """``[fn(start, stop) for each part]``, the parts on threads of their own (the first on the
    caller's) with the BLAS on one thread meanwhile; ``fn`` must release the GIL for its heavy
    work (numpy's products and ufuncs and the engine's nogil kernels do). Inside the parts, the
    caller's thread splits nothing further (``row_parts``, ``gemm_parts``): the other cores are
    busy with the other parts (a char-LSTM's first part split its input projection over a third
    thread)."""
    if len(parts) == 1:
        return [fn(*parts[0])]
    if not _spin:
        from layerloom.engine.handoff import SpinPool

        _spin.append(SpinPool(ROW_THREADS))
    blas, cores = getattr(_active, "blas", 1), getattr(_active, "cores", 1)
    if blas > 1:
        _set_blas(1)
    _active.cores = 1
    try:
        done = _spin[0].try_run(fn, parts)  # every part has ended (or failed) when it returns
        if done is not None:
            return done
        return _pooled(fn, parts)  # nested in a part, or a second thread's split meanwhile
    finally:
        _active.cores = cores
        if blas > 1:
            _set_blas(blas)


def _pooled(fn: Callable[[int, int], object], parts: list) -> list:
    if not _pool:
        _pool.append(ThreadPoolExecutor(max_workers=15, thread_name_prefix=ROW_THREADS))
    futures = [_pool[0].submit(fn, *part) for part in parts[1:]]
    try:
        first = fn(*parts[0])
    finally:
        wait(futures)
    return [first] + [f.result() for f in futures]
