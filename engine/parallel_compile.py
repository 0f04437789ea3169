"""Compile on every core: helper processes fill numba's on-disk cache while a warm-up compiles.

numba compiles one kernel at a time and holds the GIL while it does, so a fresh install's first
warm-up (LeNet-5: ~15 s of CPU) used one core of two. Helper processes (``python -m
layerloom.engine.parallel_compile``) compile the graph's census kernels (``engine.warmup.Census``:
names and argument types) into the cache while this process compiles them too; numba looks in
its cache before it compiles, so each side loads what another finished. ``start_early`` starts
helpers at launch, before the window is built (they load the graph to be opened and look up its
census themselves: compiling starts ~2 s before the window could); ``Helpers`` starts them at a
warm-up's first compilation when none are at work (never on a warm cache).

Every side walks the same list, costliest kernel first (``balanced``), and *claims* a kernel
before compiling it, by creating a file in the window process's claims folder (``claims_dir``):
a side skips what another claimed, so whoever is free takes the largest work left and nothing
compiles twice. The window's warm-up then waits for the kernels others claimed and loads each
from the cache as its ``.done`` mark appears (or compiles it itself if its claimer has gone).

Argument types travel as numba's own text (``str(tuple(sig))``) and are read back by a small
parser for the forms a call from Python produces (arrays, scalars), never by ``eval``.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from numba.core import event, types

PACKAGE = "layerloom.engine"
_ARRAY = re.compile(r"Array\((\w+), (\d+), '([CFA])', (True|False), aligned=(True|False)\)")
_UNITUPLE = re.compile(r"UniTuple\((\w+), (\d+)\)")
_NAME = re.compile(r"\w+")
_SCALARS = {"bool", "boolean", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
            "uint64", "float32", "float64", "complex64", "complex128"}


def parse_signature(text: str) -> tuple | None:
    """numba argument types from ``str(tuple(sig))``; None for any form not known here."""
    try:
        items, rest = _items(text.strip(), "(", ")")
    except ValueError:
        return None
    return tuple(items) if not rest else None


def _items(text: str, open_: str, close: str) -> tuple[list, str]:
    """The comma-separated types between ``open_`` and ``close`` and the text after them."""
    if not text.startswith(open_):
        raise ValueError(text)
    out, rest = [], text[len(open_):].strip()
    while not rest.startswith(close):
        item, rest = _one(rest)
        out.append(item)
        rest = rest.strip()
        if rest.startswith(","):
            rest = rest[1:].strip()
        elif not rest.startswith(close):
            raise ValueError(rest)
    return out, rest[len(close):]


def _one(text: str) -> tuple:
    """One type at the start of ``text`` (array, scalar or tuple of these) and the rest."""
    m = _ARRAY.match(text)
    if m:
        dtype, ndim, layout, readonly, aligned = m.groups()
        if dtype not in _SCALARS:
            raise ValueError(dtype)
        return types.Array(getattr(types, dtype), int(ndim), layout,
                           readonly=readonly == "True", aligned=aligned == "True"), text[m.end():]
    if text.startswith("Tuple(("):  # a heterogeneous tuple: Tuple((int64, Array(...)))
        inner, rest = _items(text[len("Tuple("):], "(", ")")
        if not rest.startswith(")"):
            raise ValueError(rest)
        return types.Tuple(inner), rest[1:]
    m = _UNITUPLE.match(text)
    if m:  # UniTuple(int64, 3)
        if m.group(1) not in _SCALARS:
            raise ValueError(m.group(1))
        return types.UniTuple(getattr(types, m.group(1)), int(m.group(2))), text[m.end():]
    m = _NAME.match(text)
    if m is None or m.group(0) not in _SCALARS:
        raise ValueError(text)
    return getattr(types, m.group(0)), text[m.end():]


def is_kernel_list(value) -> bool:
    """True for a census as files and pipes carry it: [[kernel, argument types], ...] of str."""
    return isinstance(value, list) and all(
        isinstance(k, list) and len(k) == 2 and all(isinstance(s, str) for s in k) for k in value)


def dispatcher(name: str):
    """The numba dispatcher ``module.function`` of the engine, or None."""
    module, _, func = name.rpartition(".")
    if not module.startswith(PACKAGE + "."):
        return None
    try:
        found = getattr(importlib.import_module(module), func, None)
    except ImportError:
        return None
    return found if hasattr(found, "compile") and hasattr(found, "py_func") else None


@functools.lru_cache(maxsize=None)
def _tree(name: str) -> dict:
    """{function: source lines} of an engine kernel and every engine kernel it calls."""
    d = dispatcher(name)
    found, todo = {}, [d] if d is not None else []
    while todo:
        f = todo.pop().py_func
        if f in found:
            continue
        try:
            found[f] = len(inspect.getsourcelines(f)[0])
        except (OSError, TypeError):
            found[f] = 10
        todo.extend(v for v in (f.__globals__.get(n) for n in f.__code__.co_names)
                    if hasattr(v, "py_func") and hasattr(v, "compile")
                    and v.py_func.__module__.startswith(PACKAGE))
    return found


def _parallel(name: str) -> bool:
    d = dispatcher(name)
    return d is not None and bool(d.targetoptions.get("parallel"))


def cost(name: str, known: set = frozenset()) -> int:
    """A kernel's compile cost, roughly: the source lines of it and of every engine kernel it
    calls but those in ``known`` (numba compiles each callee on its own, or loads it from the
    cache, and again inside the caller), doubled for a numba-parallel kernel (its parfor passes
    and outlined loop body). 0 for an unknown name."""
    lines = sum(n for f, n in _tree(name).items() if f not in known)
    return lines * (2 if _parallel(name) else 1)


def balanced(kernels: list) -> list:
    """The census in working order for every side (this process and its helpers take the next
    kernel nobody has claimed): the costliest first, cost counted without the callees of the
    kernels before it, so that whoever is free takes the largest remaining work and a kernel
    whose callees another compiles comes late, when they are in the cache."""
    trees = {k[0]: _tree(k[0]) for k in kernels}
    order, known, rest = [], set(), sorted(kernels)
    while rest:
        best = max(rest, key=lambda k: cost(k[0], known))
        rest.remove(best)
        order.append(best)
        known |= set(trees[best[0]])
    return order


# ------------------------------------------------------------------------------ claims
_CLAIMS: list[str] = []  # this process's claims folder, made on first use
EARLY: list[subprocess.Popen] = []  # helpers started at launch (``start_early``)
WAIT = 600.0  # seconds the warm-up waits at most for another process's kernel


def claims_dir() -> str:
    """The claims folder of this window's session (removed when the process ends)."""
    if not _CLAIMS:
        folder = tempfile.mkdtemp(prefix="layerloom-compile-")
        atexit.register(shutil.rmtree, folder, True)
        _CLAIMS.append(folder)
    return _CLAIMS[0]


def _mark(claims: str, name: str, sig: str) -> str:
    return os.path.join(claims, hashlib.sha1(f"{name} {sig}".encode()).hexdigest()[:24])


def _claim(mark: str) -> bool:
    """True when this process may compile the kernel: the claim was free (it is ours now), or
    there is no folder to claim it in."""
    try:
        fd = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError:
        return True
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
    return True


def _finish(mark: str) -> None:
    try:
        open(mark + ".done", "wb").close()
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # a zombie (ended, not reaped) has ended
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _settled(mark: str) -> bool:
    """The kernel claimed at ``mark`` is in the cache, or this process should compile it: its
    claimer has gone, or is this process (another thread: numba's lock orders the two)."""
    if os.path.exists(mark + ".done"):
        return True
    try:
        with open(mark, "rb") as f:
            pid = int(f.read() or 0)
    except (OSError, ValueError):
        return True
    return pid in (0, os.getpid()) or not _alive(pid)


def _compile(d, args) -> int:
    try:
        d.compile(args)
        return 1
    except Exception:  # noqa: BLE001 (a census from another version: the warm-up decides)
        return 0


def compile_all(kernels: list, parent: int | None = None, claims: str | None = None,
                wait: bool = False) -> int:
    """Compile (or load from the cache) each (name, argument types) in order; how many. A
    helper stops when its ``parent`` process has gone (a window closed meanwhile). With a
    ``claims`` folder a kernel another process claimed is skipped; with ``wait`` too (the
    window's warm-up) each of those is loaded once that process has it in the cache."""
    done, pending = 0, []
    for name, sig in kernels:
        if parent is not None and os.getppid() != parent:
            break
        d, args = dispatcher(name), parse_signature(sig)
        if d is None or args is None:
            continue
        if args in d.overloads:  # in memory already
            done += 1
            continue
        mark = _mark(claims, name, sig) if claims else None
        if mark is not None and not _claim(mark):
            pending.append((d, args, mark))
            continue
        done += _compile(d, args)
        if mark is not None:
            _finish(mark)
    deadline = time.monotonic() + WAIT
    while wait and pending:
        ready = [p for p in pending if _settled(p[2])] if time.monotonic() < deadline else pending
        for item in ready:
            pending.remove(item)
            done += _compile(item[0], item[1])
        if pending and not ready:
            time.sleep(0.02)
    return done


def start_early(graph, count: int | None = None) -> list[subprocess.Popen]:
    """At launch, before the window is built: ``count`` helpers (one core fewer than the engine
    uses, at most 3) that load ``graph``, look up its census (``warmup.census_in_order``: run as
    ``python -m layerloom.engine.warmup --early``) and compile it into numba's cache, each taking
    the next kernel nobody has claimed in this process's ``claims_dir``. On a warm cache they
    only load and end; a graph without a census (or data) ends them at once."""
    from layerloom.engine.threads import get_threads

    count = min(3, get_threads() - 1) if count is None else count
    if count > 0 and not EARLY:
        atexit.register(end_all, EARLY)  # the window closed: what they finished stays cached
    for _ in range(count):
        try:
            EARLY.append(subprocess.Popen(
                [sys.executable, "-m", "layerloom.engine.warmup", "--early", str(os.getpid()),
                 claims_dir(), str(graph)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        except OSError:
            break
    return EARLY


def end_all(procs: list) -> None:
    """End helper processes still running (what they finished stays in the cache)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Helpers(event.Listener):
    """Starts ``count`` helper processes at this process's first compilation (never on a warm
    cache; fewer while those of ``start_early`` work), each taking from ``kernels`` the next one
    nobody claimed in the ``claims`` folder. ``close`` ends those still running (whatever they
    finished stays in the cache)."""

    def __init__(self, kernels: list, claims: str, count: int | None = None):
        from layerloom.engine.threads import get_threads

        self.kernels = list(kernels)  # at most 3 helpers: each holds ~150 MB while it compiles
        self.count = min(3, get_threads() - 1) if count is None else count
        self.claims = claims
        self.procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._started = False

    def on_start(self, ev) -> None:
        with self._lock:
            if self._started or not self.kernels or self.count < 1:
                return
            self._started = True
        # those started at launch and still working count (they claim in the same folder)
        early = sum(proc.poll() is None for proc in EARLY)
        self.procs += [_spawn(self.kernels, self.claims) for _ in range(early, self.count)]

    def on_end(self, ev) -> None:
        pass

    def __enter__(self) -> "Helpers":
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc) -> None:
        event.unregister("numba:compile", self)
        self.close()

    def close(self) -> None:
        end_all(self.procs)
        self.procs = []


def _spawn(kernels: list, claims: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "layerloom.engine.parallel_compile",
                             str(os.getpid()), "--claims", claims],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proc.stdin.write(json.dumps(kernels).encode())
    proc.stdin.close()
    return proc


def _main(argv: list[str]) -> int:
    """``python -m layerloom.engine.parallel_compile PARENT [--claims DIR]``: the kernels from
    stdin (a JSON list) compiled (``start_early``'s helpers run ``engine.warmup --early``)."""
    opts = dict(zip(argv[1::2], argv[2::2]))
    parent = int(argv[0]) if argv[:1] and argv[0].isdigit() else None
    listed = json.loads(sys.stdin.read() or "[]")
    return compile_all(listed if is_kernel_list(listed) else [], parent, opts.get("--claims"))


if __name__ == "__main__":
    print(_main(sys.argv[1:]))
