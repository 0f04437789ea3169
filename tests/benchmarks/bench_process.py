"""Fresh-process measurements for bench_train.py: cold start and peak memory.

- ``cold_start``: a new Python process builds LeNet-5 and takes one training step (batch 64,
  Adam); run once to fill numba's cache, then timed in further fresh processes. Target ≤ 1 s for
  the first step with a warm cache.
- ``memory``: a new process trains LeNet-5 on all 60,000 Fashion-MNIST training images (the
  ``idx:`` data spec) for a number of steps through ``engine.training.train``, and reports its
  peak RSS against the target: ≤ 2 × the data set's float32 size + 300 MB.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FASHION = "/usr/share/datasets/fashion-mnist"

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path[:0] = [{root!r}, {here!r}]
import numpy as np
import models
from layerloom.engine.network import Network
from layerloom.engine.optim import Adam
from layerloom.engine.threads import engine_threads, set_threads
set_threads({threads})
t1 = time.perf_counter()
net = Network(models.lenet_graph(), seed=0)
x, y = models.batch("lenet", 64, 0, np.random.default_rng(0))
opt = Adam(1e-3)
with engine_threads():
    t2 = time.perf_counter()
    net.forward({{"image": x, "label": y}}, training=True)
    opt.step(net.params, net.backward())
    t3 = time.perf_counter()
    net.forward({{"image": x, "label": y}}, training=True)
    opt.step(net.params, net.backward())
    t4 = time.perf_counter()
print(json.dumps({{"imports_s": t1 - t0, "build_s": t2 - t1, "first_step_s": t3 - t2,
                  "second_step_s": t4 - t3}}))
"""

MEMORY = r"""
import json, sys
sys.path[:0] = [{root!r}, {here!r}]
import numpy as np
import models
from layerloom.engine.data import load_data
from layerloom.engine.network import Network
from layerloom.engine.threads import set_threads
from layerloom.engine.training import DoneReport, TrainConfig, train
set_threads({threads})
data = load_data("idx:{fashion}")
splits = [data.train, data.val, data.test]
images = sum(len(s.x) for s in splits)
float32_mb = sum(s.x.size for s in splits) * 4 / 2**20
config = TrainConfig(optimizer="adam", lr=1e-3, batch_size=64, max_steps={steps})
done = [r for r in train(Network(models.lenet_graph(), seed=0), data, config)
        if isinstance(r, DoneReport)][0]
# VmHWM, not ru_maxrss: a fork keeps the parent's peak in ru_maxrss across exec
peak_mb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({{"images": images, "train_images": len(data.train), "steps": done.steps,
                  "dataset_float32_mb": float32_mb, "peak_rss_mb": peak_mb,
                  "target_mb": 2 * float32_mb + 300, "met": peak_mb <= 2 * float32_mb + 300,
                  "test_accuracy": done.test_accuracy}}))
"""


def _run(code: str) -> tuple[dict, float]:
    """(the child's JSON line, its wall time from exec to exit)."""
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def cold_start(threads: int, runs: int = 3) -> dict:
    code = COLD.format(root=str(ROOT), here=str(Path(__file__).parent), threads=threads)
    _run(code)  # fills the cache if it is cold
    results = [_run(code) for _ in range(runs)]
    first = [r["first_step_s"] for r, _ in results]
    return {"first_step_s": statistics.median(first), "first_step_max_s": max(first),
            "imports_s": statistics.median(r["imports_s"] for r, _ in results),
            "second_step_s": statistics.median(r["second_step_s"] for r, _ in results),
            "process_wall_s": statistics.median(w for _, w in results),
            "met": statistics.median(first) <= 1.0}


def memory(steps: int, threads: int) -> dict:
    code = MEMORY.format(root=str(ROOT), here=str(Path(__file__).parent), threads=threads,
                         fashion=FASHION, steps=steps)
    result, wall = _run(code)
    result["wall_s"] = wall
    return result


if __name__ == "__main__":
    print(json.dumps({"cold_start": cold_start(2), "memory": memory(300, 2)}, indent=1))
