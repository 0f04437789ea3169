"""Compile ahead: the numba kernels a graph's training and predictions call, compiled (or loaded
from numba's on-disk cache) before the person presses Train, with progress a window can show.

numba compiles a kernel on its first call with new argument types: for LeNet-5 that was ~15 s of
a quiet 2-core machine before the first step (minutes under load), with nothing on screen. Here
``warm_up`` makes those first calls on a throwaway network: a training step at the run's batch
size, the optimizer's update, and inference on two samples and on one. ``Census`` remembers which
kernels (``module.function`` and argument types, called from Python) a graph's warm-up needed,
keyed by the compiled plan's structure, so the next time "n of m" is known before compiling: it
ships with the samples' censuses (``resources/kernel_census.json``) and learns the person's own
graphs in the user's cache folder. ``Progress`` counts, by asking each kernel what it holds, how
many of them are ready, whichever thread compiled them.
"""
from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba.core import event

from layerloom.engine.network import Network
from layerloom.engine.optim import make_optimizer, update_kept
from layerloom.engine.paths import RESOURCES
from layerloom.engine.spec import LayerloomError
from layerloom.engine.threads import ROW_THREADS
from layerloom.engine.training import TrainConfig, bind

PACKAGE = "layerloom.engine"
SHIPPED = RESOURCES / "kernel_census.json"


def kernels() -> dict[str, object]:
    """Every numba dispatcher defined in an imported module of the engine, by qualified name."""
    from numba.core.registry import CPUDispatcher

    found = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith(PACKAGE) or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == name:
                found[f"{name}.{value.py_func.__qualname__}"] = value
    return found


def _signatures(dispatcher) -> set[str]:
    return {str(tuple(sig)) for sig in list(dispatcher.overloads)}


def loaded() -> set[tuple[str, str]]:
    """(kernel, argument types) of every compiled or cache-loaded kernel in this process."""
    return {(name, sig) for name, d in kernels().items() for sig in _signatures(d)}


def structure_key(net: Network, optimizer: str) -> str:
    """What decides which kernels a run calls: the plan's steps (type, attributes, shapes,
    which inputs get gradients), the fused chains, the dtype and the optimizer."""
    def attrs(a) -> str:  # a node's AttrValues, or a fused step's tuple of them
        if isinstance(a, Mapping):
            return repr(sorted((k, attrs(v)) for k, v in a.items()))
        return repr(tuple(attrs(v) for v in a)) if isinstance(a, (tuple, list)) else repr(a)

    steps = [(getattr(s.layer, "type_id", s.layer.__name__), attrs(s.attrs), repr(s.in_shapes),
              s.needs_input_grad, s.trainable) for s in net.plan.schedule()]
    text = json.dumps([steps, str(net.dtype), optimizer in ("adam", "adamw")], default=repr)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def warm_up(net: Network, x: np.ndarray, y: np.ndarray, config: TrainConfig,
            expected: list | None = None) -> None:
    """The first calls of a run and of the inference view, on a throwaway copy of ``net``:
    forward and backward on ``x``/``y`` (a training batch), the optimizer's update, inference on
    two samples and on one (batch 1 takes serial kernels). Engine errors are left to the real
    run, which names the node. With the graph's census (``expected``), the kernels compile on
    every core first (``engine.parallel_compile``), if anything compiles at all: this thread
    and helper processes (those started at launch, or new ones) each claim the costliest kernel
    left, and this thread then waits for the helpers' and loads them."""
    if expected:
        from layerloom.engine.parallel_compile import Helpers, balanced, claims_dir, compile_all

        order, claims = balanced(expected), claims_dir()
        with Helpers(order, claims=claims):
            compile_all(order, claims=claims, wait=True)
    _first_calls(net, x, y, config)


def expected_kernels(net: Network, config: TrainConfig) -> list | None:
    """The census of ``net``'s warm-up (shipped, or learned in the user's cache folder)."""
    return Census(learned=learned_path()).get(structure_key(net, config.optimizer))


def learned_path() -> Path | None:
    """Where the censuses of the person's own graphs are kept (None: no cache folder)."""
    from layerloom.engine.data.cache import cache_dir

    try:
        return cache_dir() / "kernel_census.json"
    except LayerloomError:
        return None


def _first_calls(net: Network, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> None:
    probe = Network(net.graph, seed=config.seed, dtype=net.dtype)
    binding = bind(probe)
    feeds = {binding.input_id: x, binding.label_id: y}
    try:
        probe.forward(feeds, training=True)  # checked, as a run's are: the finiteness kernel
        grads = probe.backward()
        opt = make_optimizer(config.optimizer, config.lr, config.momentum, config.weight_decay)
        update_kept(opt, probe.params, grads, {k: v.copy() for k, v in probe.params.items()},
                    probe.trainable_keys)  # as a training step makes it
        for n in (2, 1):
            probe.forward({binding.input_id: x[:n], binding.label_id: y[:n]}, check=False)
    except (LayerloomError, FloatingPointError):
        pass


class _Nesting(event.Listener):
    """Which kernels this thread (or the engine's row threads it hands parts to, which may
    compile a split kernel first: ``engine.threads.run_row_parts``) compiled inside another
    kernel's compilation (callees: they are compiled with their caller, never called from Python)."""

    def __init__(self) -> None:
        self._local, self.inner = threading.local(), set()
        self._thread = threading.get_ident()

    def on_start(self, ev) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        d = ev.data["dispatcher"]
        mine = (threading.get_ident() == self._thread
                or threading.current_thread().name.startswith(ROW_THREADS))
        if self._local.depth > 1 and mine:
            f = d.py_func
            self.inner.add((f"{f.__module__}.{f.__qualname__}", str(tuple(ev.data["args"]))))

    def on_end(self, ev) -> None:
        self._local.depth = getattr(self._local, "depth", 1) - 1

    def __enter__(self) -> "_Nesting":
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc) -> None:
        event.unregister("numba:compile", self)


def record(net: Network, x: np.ndarray, y: np.ndarray, config: TrainConfig,
           expected: list | None = None) -> list | None:
    """``warm_up``, returning the kernels it called from Python: known only in a process that
    had loaded none before (a kernel already in memory is called without a trace), else None."""
    before = loaded()
    with _Nesting() as nesting:
        warm_up(net, x, y, config, expected)
    if before:
        return None
    return sorted(k for k in loaded() - nesting.inner if k[0].startswith(PACKAGE))


class Census:
    """Kernel lists by ``structure_key``: shipped for the samples, learned for the rest."""

    def __init__(self, learned: Path | None = None, shipped: Path = SHIPPED):
        self.learned = learned
        self.entries: dict[str, list] = {}
        for path in (shipped, learned):
            self.entries.update(_read(path))

    def get(self, key: str) -> list | None:
        return self.entries.get(key)

    def add(self, key: str, found: list) -> None:
        """Remember ``found`` with what was known (a census never shrinks: see ``record``)."""
        merged = sorted({tuple(k) for k in self.entries.get(key, [])} | {tuple(k) for k in found})
        if merged == sorted(tuple(k) for k in self.entries.get(key, [])):
            return
        self.entries[key] = [list(k) for k in merged]
        if self.learned is not None:
            from layerloom.engine.serialize import atomic_write_bytes

            mine = {**_read(self.learned), key: self.entries[key]}
            try:
                self.learned.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(self.learned, json.dumps(mine, indent=0).encode())
            except OSError:
                pass  # a read-only cache folder: the count is only unknown next time


def _read(path: Path | None) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    except (OSError, ValueError):
        return {}
    from layerloom.engine.parallel_compile import is_kernel_list

    return {k: v for k, v in data.items() if isinstance(k, str) and is_kernel_list(v)} \
        if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Progress:
    """How far a warm-up is: ``ready`` of ``total`` known kernels (``total`` None when the graph
    has no census yet), ``compiled`` kernels compiled since it started, seconds spent."""

    ready: int
    total: int | None
    compiled: int
    elapsed: float

    def text(self) -> str:
        done = (f"{self.ready} of {self.total}" if self.total is not None
                else f"{self.compiled} done")
        return f"Compiling kernels: {done} · {self.elapsed:.0f} s"


class Tracker(event.Listener):
    """Counts, for one warm-up, kernels ready (asked of the dispatchers: any thread may have
    compiled them) against the census, and top-level compilations as they end."""

    def __init__(self, expected: list | None):
        self.expected, self.started, self.compiled = expected, time.perf_counter(), 0
        self._depth = threading.local()
        event.register("numba:compile", self)

    def on_start(self, ev) -> None:
        self._depth.n = getattr(self._depth, "n", 0) + 1

    def on_end(self, ev) -> None:
        self._depth.n = getattr(self._depth, "n", 1) - 1
        if self._depth.n == 0 and ev.data["dispatcher"].py_func.__module__.startswith(PACKAGE):
            self.compiled += 1

    def progress(self) -> Progress:
        ready, total = 0, None
        if self.expected is not None:
            table, total = kernels(), len(self.expected)
            ready = sum(1 for name, sig in self.expected
                        if name in table and sig in _signatures(table[name]))
        return Progress(ready, total, self.compiled, time.perf_counter() - self.started)

    def close(self) -> None:
        event.unregister("numba:compile", self)


# ------------------------------------------------------------------- helpers from launch
def census_in_order(path: str) -> list:
    """The kernels of a graph file's warm-up with its own data and settings, in working order
    (``parallel_compile.balanced``; none without a census): what the helpers of
    ``parallel_compile.start_early`` compile (``python -m layerloom.engine.warmup --early``)."""
    from layerloom.engine.data.section import load_data_section
    from layerloom.engine.parallel_compile import balanced
    from layerloom.engine.project import fit_graph_to_data, load_project

    try:
        project = load_project(path)
        _spec, data = load_data_section(project.data, str(path))
        fit_graph_to_data(project.graph, data)
        config = TrainConfig.from_dict(project.training)
        net = Network(project.graph, seed=config.seed)
    except Exception:  # noqa: BLE001 (a graph that cannot run yet: nothing to compile ahead)
        return []
    return balanced(expected_kernels(net, config) or [])


# ------------------------------------------------------------------- the shipped census
def census_of(path: str) -> tuple[str, list]:
    """(structure key, kernels) of a graph file's warm-up with its own data and settings: run
    in a fresh process (``python -m layerloom.engine.warmup GRAPH``) so nothing was loaded before."""
    from layerloom.engine.data.section import load_data_section
    from layerloom.engine.project import fit_graph_to_data, load_project
    from layerloom.engine.threads import engine_threads

    project = load_project(path)
    _spec, data = load_data_section(project.data, str(path))
    fit_graph_to_data(project.graph, data)
    config = TrainConfig.from_dict(project.training)
    net = Network(project.graph, seed=config.seed)
    n = max(2, min(config.batch_size, len(data.train)))
    with engine_threads():
        found = record(net, data.train.x[:n], data.train.y[:n], config)
    return structure_key(net, config.optimizer), found


def write_shipped(graphs: list[str], out: Path = SHIPPED) -> dict:
    """Rebuild ``resources/kernel_census.json`` from graph files, one fresh process each."""
    import subprocess

    from layerloom.engine.serialize import atomic_write_bytes

    entries = {}
    for graph in graphs:
        done = subprocess.run([sys.executable, "-m", "layerloom.engine.warmup", str(graph)],
                              capture_output=True, text=True)
        if done.returncode != 0:  # a graph without a data section (a founding example): no run
            print(f"{graph}: skipped ({done.stderr.strip().splitlines()[-1]})", file=sys.stderr)
            continue
        key, found = json.loads(done.stdout.strip().splitlines()[-1])
        if found is not None:  # None: its data loading ran kernels first (not a clean census)
            entries[key] = found
    atomic_write_bytes(out, (json.dumps(entries, indent=0) + "\n").encode())
    return entries


if __name__ == "__main__":
    if sys.argv[1:2] == ["--ship"]:
        print(f"{len(write_shipped(sys.argv[2:]))} graphs -> {SHIPPED}")
    elif sys.argv[1:2] == ["--early"] and len(sys.argv) == 5:  # PARENT CLAIMS GRAPH
        from layerloom.engine.parallel_compile import compile_all

        parent = int(sys.argv[2]) if sys.argv[2].isdigit() else None
        print(compile_all(census_in_order(sys.argv[4]), parent, sys.argv[3]))
    else:
        print(json.dumps(census_of(sys.argv[1])))
