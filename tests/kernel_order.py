"""The suite's kernels compiled ahead on the spare core, so a cold run waits less for numba.

On a fresh numba cache (every CI run) the suite compiled its kernels one at a time as tests first
called them, on one core of two (numba holds the GIL while it compiles), and took ~6 minutes
longer than on a warm cache. ``start`` hands the kernels the suite calls from Python, in the
order it first calls them (``kernel_order.json``), to one helper process (``python -m
layerloom.engine.parallel_compile``, at a lower priority) that compiles them into numba's on-disk
cache. Both sides claim a kernel before compiling it (``parallel_compile``'s claims, as the
window's warm-up and its helpers do; ``Claims`` is the tests' side), so each compiles once: a test
that reaches a kernel the helper claimed waits for it and loads it from the cache, and the helper
skips what a test claimed. On a warm cache the helper only loads each kernel once. Nothing
depends on it: a kernel missing from the list (new, renamed, new argument types) compiles in the
test that calls it, as before; ``tests/test_kernel_order.py`` fails when a listed kernel has
left the engine.

``LAYERLOOM_KERNEL_ORDER=record`` writes the list anew from a whole run in one process (``-n
0``; any cache: it notes the calls from Python that found no compiled version in memory, top
level only, since a kernel's callees compile with it); ``LAYERLOOM_KERNEL_ORDER=off`` starts no
helper and claims nothing. On two xdist workers the controller starts the helper and both
workers claim in its folder, so a kernel compiles once in the three processes.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

ORDER = Path(__file__).with_name("kernel_order.json")
PACKAGE = "layerloom.engine."


def read(path: Path = ORDER) -> list:
    """[[kernel, argument types], ...] from ``path``; [] when missing or not of that form."""
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    from layerloom.engine.parallel_compile import is_kernel_list

    return listed if is_kernel_list(listed) else []


def start(kernels: list, claims: str, nice: int = 10) -> list[subprocess.Popen]:
    """One helper compiling ``kernels`` in order, each claimed in ``claims`` first (``Claims``),
    on time no test wants (Linux's SCHED_IDLE: a test's thread that wakes takes the core at
    once; at ``nice`` 10 a thread-timing test's worker found it there and backed off, on two
    xdist workers with the helper still compiling), else at a lower priority; it ends when
    done or when this process has (``parallel_compile.end_all`` ends it sooner)."""
    from layerloom.engine.parallel_compile import _spawn

    if not kernels:
        return []
    try:
        proc = _spawn(kernels, claims)
    except OSError:
        return []
    try:
        os.sched_setscheduler(proc.pid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
        except OSError:
            pass
    return [proc]


class _TopLevel:
    """A wrapper of numba's ``Dispatcher.compile`` for the calls from Python (a kernel with no
    compiled version in memory for its argument types: compiled, or loaded from the cache) that
    hands those of engine kernels to ``around`` (a kernel's callees, compiled inside it, are not
    calls from Python)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._original = None

    def install(self) -> None:
        from numba.core.dispatcher import Dispatcher

        original, hook = Dispatcher.compile, self
        self._original = original

        def compile(d, sig):  # noqa: ANN001 (numba's own signature)
            depth = getattr(hook._local, "depth", 0)
            name = None if depth else _name(d)
            hook._local.depth = depth + 1
            try:
                if name is None:
                    return original(d, sig)
                return hook.around(d, name, sig, original)
            finally:
                hook._local.depth = depth

        Dispatcher.compile = compile

    def uninstall(self) -> None:
        if self._original is not None:
            from numba.core.dispatcher import Dispatcher

            Dispatcher.compile, self._original = self._original, None

    def around(self, d, name: str, sig, original):  # noqa: ANN001
        return original(d, sig)


def _name(d) -> str | None:  # noqa: ANN001
    f = d.py_func
    name = f"{f.__module__}.{f.__qualname__}"
    return name if name.startswith(PACKAGE) and "<locals>" not in name else None


class Recorder(_TopLevel):
    """The engine kernels this process called from Python, first call first."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[tuple[str, str], None] = {}

    def around(self, d, name: str, sig, original):  # noqa: ANN001
        try:
            return original(d, sig)
        finally:
            for done in list(d.overloads):
                self.found.setdefault((name, str(tuple(done))), None)

    def write(self, path: Path = ORDER) -> None:
        path.write_text(json.dumps([list(k) for k in self.found], indent=0) + "\n",
                        encoding="utf-8")


class Claims(_TopLevel):
    """The tests' side of the helper's claims: a listed kernel the helper claimed is waited for
    (at most ``wait`` seconds) and then loaded from the cache; one it has not reached yet is
    claimed here, so that the helper skips it. Either way each kernel compiles once."""

    def __init__(self, kernels: list, claims: str, wait: float = 300.0) -> None:
        super().__init__()
        self.listed = {tuple(k) for k in kernels}
        self.claims, self.wait = claims, wait

    def around(self, d, name: str, sig, original):  # noqa: ANN001
        from numba.core import sigutils

        from layerloom.engine import parallel_compile as pc

        text = str(tuple(sigutils.normalize_signature(sig)[0]))
        if (name, text) not in self.listed:
            return original(d, sig)
        mark = pc._mark(self.claims, name, text)
        if pc._claim(mark):
            try:
                return original(d, sig)
            finally:
                pc._finish(mark)
        deadline = time.monotonic() + self.wait
        while not pc._settled(mark) and time.monotonic() < deadline:
            time.sleep(0.01)
        return original(d, sig)
