"""Compile on every core: helper processes fill numba's on-disk cache while a warm-up compiles.

numba compiles one kernel at a time and holds the GIL while it does, so a fresh install's first
warm-up (LeNet-5: ~15 s of CPU) used one core of two. When the warm-up's first compilation
starts, ``Helpers`` launches processes (``python -m layerloom.engine.parallel_compile``) that
compile the graph's census kernels (``engine.warmup.Census``: names and argument types) into
the cache from the other end of the list, while this process compiles them from the front.
numba looks in its cache before it compiles, so each side loads what the other finished; they
meet in the middle. On a warm cache nothing compiles and no helper starts.

Argument types travel as numba's own text (``str(tuple(sig))``) and are read back by a small
parser for the forms a call from Python produces (arrays, scalars), never by ``eval``.
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import threading

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


def cost(name: str) -> int:
    """A kernel's compile cost, roughly: the source lines of it and of every engine kernel it
    calls (numba compiles each callee on its own and again inside the caller), doubled for a
    numba-parallel kernel (its parfor passes and outlined loop body). 0 for an unknown name."""
    d = dispatcher(name)
    if d is None:
        return 0
    lines, seen, todo = 0, set(), [d]
    while todo:
        f = todo.pop().py_func
        if f in seen:
            continue
        seen.add(f)
        try:
            lines += len(inspect.getsourcelines(f)[0])
        except (OSError, TypeError):
            lines += 10
        todo.extend(v for v in (f.__globals__.get(n) for n in f.__code__.co_names)
                    if hasattr(v, "py_func") and hasattr(v, "compile")
                    and v.py_func.__module__.startswith(PACKAGE))
    return lines * (2 if d.targetoptions.get("parallel") else 1)


def balanced(kernels: list) -> list:
    """The census in a working order for two ends that meet in the middle: the costliest kernels
    first at both ends, dealt to the end with less work so far (the cheap ones meet, where
    both sides may compile the same kernel)."""
    front, back, ends = [], [], [0, 0]
    for k in sorted(kernels, key=lambda k: (-cost(k[0]), k)):
        side = 0 if ends[0] <= ends[1] else 1
        (front, back)[side].append(k)
        ends[side] += cost(k[0])
    return front + back[::-1]


def compile_all(kernels: list, parent: int | None = None) -> int:
    """Compile (or load from the cache) each (name, argument types) in order; how many. A
    helper stops when its ``parent`` process has gone (a window closed meanwhile)."""
    done = 0
    for name, sig in kernels:
        if parent is not None and os.getppid() != parent:
            break
        d, args = dispatcher(name), parse_signature(sig)
        if d is None or args is None:
            continue
        try:
            d.compile(args)
            done += 1
        except Exception:  # noqa: BLE001 (a census from another version: the warm-up decides)
            pass
    return done


class Helpers(event.Listener):
    """Starts ``count`` helper processes at this process's first compilation (never on a warm
    cache), each working through ``kernels`` from its own place near the back; ``close``
    ends those still running (whatever they finished stays in the cache)."""

    def __init__(self, kernels: list, count: int | None = None):
        from layerloom.engine.threads import get_threads

        self.kernels = list(kernels)  # at most 3 helpers: each holds ~150 MB while it compiles
        self.count = min(3, get_threads() - 1) if count is None else count
        self.procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._started = False

    def on_start(self, ev) -> None:
        with self._lock:
            if self._started or not self.kernels or self.count < 1:
                return
            self._started = True
        n = len(self.kernels)
        for i in range(self.count):  # helper i starts at (i + 1) / (count + 1) from the back
            start = n - 1 - (i * n) // (self.count + 1)
            order = self.kernels[start::-1] + self.kernels[:start:-1]
            self.procs.append(_spawn(order))

    def on_end(self, ev) -> None:
        pass

    def __enter__(self) -> "Helpers":
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc) -> None:
        event.unregister("numba:compile", self)
        self.close()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


def _spawn(kernels: list) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "layerloom.engine.parallel_compile",
                             str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proc.stdin.write(json.dumps(kernels).encode())
    proc.stdin.close()
    return proc


if __name__ == "__main__":
    listed = json.loads(sys.stdin.read() or "[]")
    ok = isinstance(listed, list) and all(
        isinstance(k, list) and len(k) == 2 and all(isinstance(s, str) for s in k) for k in listed)
    parent = int(sys.argv[1]) if sys.argv[1:2] and sys.argv[1].isdigit() else None
    print(compile_all(listed if ok else [], parent))
