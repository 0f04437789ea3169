"""Where LeNet-5's time to a first step goes, kernel by kernel, with a cold and a warm numba cache.

    python tests/benchmarks/bench_compile_breakdown.py [--graph samples/lenet5.json] [--top 25]
        [--helpers]

Each half is a new process (``--child``) running the engine's warm-up (``engine.warmup.warm_up``:
the run's first calls) headless on the graph's own data and settings, then one training step.
Every ``Dispatcher.compile`` call is timed in CPU seconds of the compiling thread (the machine may
be shared; compiling is one thread's work): a cold cache shows what each kernel costs to compile
(its own time, callees compiled inside it subtracted), a warm one what loading it from numba's
cache costs. Also timed: importing the engine, loading the graph and its data, and the first
step after the warm-up. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _patch_compile(log: list) -> None:
    """Time every Dispatcher.compile (a compile, a cache load, or a lookup of a loaded one)."""
    import threading

    from numba.core.dispatcher import Dispatcher

    original, local, seen = Dispatcher.compile, threading.local(), set()

    def compile(self, sig):  # a kernel split over threads: each has its own stack
        stack = local.__dict__.setdefault("stack", [])
        known = len(self.overloads)
        hits = sum(self._cache_hits.values())
        stack.append(0.0)
        t = time.thread_time()
        try:
            return original(self, sig)
        finally:
            total = time.thread_time() - t
            inner = stack.pop()
            if stack:
                stack[-1] += total
            new = (id(self), str(sig)) not in seen  # not once more by a thread that waited
            if len(self.overloads) > known and new:  # new: compiled or loaded
                seen.add((id(self), str(sig)))
                f = self.py_func
                how = "load" if sum(self._cache_hits.values()) > hits else "compile"
                log.append({"kernel": f"{f.__module__.rsplit('.', 1)[-1]}.{f.__qualname__}",
                            "how": how, "depth": len(stack), "total": total,
                            "self": total - inner, "sig": str(sig)[:90]})

    Dispatcher.compile = compile


def child(graph: str, helpers: bool) -> None:
    t0 = time.perf_counter()
    from layerloom.engine.network import Network
    from layerloom.engine.training import TrainConfig, train
    from layerloom.engine import warmup
    from layerloom.engine.data.section import load_data_section
    from layerloom.engine.project import fit_graph_to_data, load_project
    from layerloom.engine.threads import engine_threads

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    project = load_project(graph)
    _spec, data = load_data_section(project.data, graph)
    fit_graph_to_data(project.graph, data)
    config = TrainConfig.from_dict({**project.training, "epochs": 1})
    net = Network(project.graph, seed=config.seed)
    t_load = time.perf_counter() - t1
    log: list = []
    _patch_compile(log)
    n = max(2, min(config.batch_size, len(data.train)))
    with engine_threads():
        t2, c2, p2 = time.perf_counter(), time.thread_time(), time.process_time()
        expected = warmup.expected_kernels(net, config) if helpers else None
        warmup.warm_up(net, data.train.x[:n], data.train.y[:n], config, expected)
        t_warm, c_warm = time.perf_counter() - t2, time.thread_time() - c2
        p_warm = time.process_time() - p2
        t3 = time.perf_counter()
        next(iter(train(net, data, config)))
        t_step = time.perf_counter() - t3
    print(json.dumps({"import": t_import, "load": t_load, "warm_up": t_warm, "warm_up_cpu": c_warm,
                      "warm_up_process_cpu": p_warm, "first_step": t_step,
                      "torch_imported": "torch" in sys.modules, "kernels": log}))


def run(cache: str, graph: str, helpers: bool) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "LAYERLOOM_CACHE_DIR": str(Path(cache) / "ll")}
    more = ["--helpers"] if helpers else []
    out = subprocess.run([sys.executable, __file__, "--child", "--graph", graph, *more], env=env,
                         capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(name: str, r: dict, top: int) -> None:
    ks = r["kernels"]
    outer = [k for k in ks if k["depth"] == 0]
    print(f"\n{name}: import {r['import']:.2f} s, graph+data {r['load']:.2f} s, warm-up "
          f"{r['warm_up']:.2f} s ({r['warm_up_cpu']:.2f} s CPU in this thread, "
          f"{r.get('warm_up_process_cpu', 0):.2f} s in the process, "
          f"{sum(k['self'] for k in ks if k['how'] == 'compile'):.2f} s compiling; {len(outer)} kernels called, {len(ks)} incl. callees, "
          f"{sum(k['how'] == 'compile' for k in ks)} compiled, "
          f"{sum(k['how'] == 'load' for k in ks)} loaded), then first step "
          f"{r['first_step']:.3f} s; torch imported: {r['torch_imported']}")
    for k in sorted(ks, key=lambda k: -k["self"])[:top]:
        print(f"  {k['self']:7.3f} s self {k['total']:7.3f} s total CPU  {k['how']:7s} "
              f"{'  ' * k['depth']}{k['kernel']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default=str(ROOT / "samples" / "lenet5.json"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--helpers", action="store_true",
                        help="compile on every core (engine.parallel_compile), as the window does; "
                             "the kernel table then lists this process's share only")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.graph, args.helpers)
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
        show("cold cache", run(cache, args.graph, args.helpers), args.top)
        show("warm cache", run(cache, args.graph, args.helpers), args.top)


if __name__ == "__main__":
    sys.exit(main())
