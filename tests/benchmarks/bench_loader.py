"""Does the image loader keep up with the engine? (issue 16)

    python tests/benchmarks/bench_loader.py [--per-class 600] [--steps 150] [--big-gb 5] [--json F]

1. decode: a folder of 128×128 JPEG photos (coloured shapes) decoded to 3×32×32 into the cache,
   images/s; then the cached reload.
2. loader alone: images/s of batches of 64 with every augmentation on (crop ±4, flip, rotation
   ±10°, shift ±10 %, brightness and contrast ±20 %, Cutout 8), read from the cache.
3. training: a LeNet-size convnet on those images, batch 64, augmentation on; the share of step
   time spent waiting for data (target < 5 %), with the background loader and, for comparison,
   with the same batches made on the training thread.
4. ``--big-gb G``: a fresh process caps its address space 512 MB above its start (``ulimit -v``)
   and trains on G GB of decoded images (rows written straight into a cache file), random
   batches over the whole file; it prints the peak RSS.
Not collected by pytest.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))

import models  # noqa: E402

from layerloom.engine import training  # noqa: E402
from layerloom.engine.data.augment import Augmentation  # noqa: E402
from layerloom.engine.data.folder import load_folder  # noqa: E402
from layerloom.engine.data.loader import BatchLoader  # noqa: E402
from layerloom.engine.network import Network  # noqa: E402
from layerloom.engine.project import fit_graph_to_data  # noqa: E402

FULL = Augmentation(crop_padding=4, flip=True, rotation=10, shift=0.1, brightness=0.2,
                    contrast=0.2, cutout=8)


def make_photos(root: Path, per_class: int) -> Path:
    from layerloom.engine.data.shapes import CLASSES, draw

    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(kind, i).resize((128, 128)).save(root / kind / f"{i:05d}.jpg", quality=90)
    return root


def bench_decode(folder: Path) -> tuple[dict, object]:
    t0 = time.perf_counter()
    data = load_folder(folder, 0.1, 0, size=32)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = load_folder(folder, 0.1, 0, size=32)
    again = time.perf_counter() - t0
    n = len(data.train) + len(data.val) + len(data.test)
    return {"images": n, "decode_images_per_s": n / first, "cached_reload_s": again}, data


def bench_loader_alone(data, rounds: int = 3) -> dict:
    out = {}
    for name, background in (("background", True), ("same_thread", False)):
        rates = []
        for r in range(rounds):
            order = np.random.default_rng(r).permutation(len(data.train))
            t0 = time.perf_counter()
            with BatchLoader(data.train, order, 64, FULL, seed=r, background=background) as ld:
                n = sum(len(b.index) for b in ld)
            rates.append(n / (time.perf_counter() - t0))
        out[f"loader_{name}_images_per_s"] = float(np.median(rates))
    return out


def bench_training(data, steps: int, background: bool) -> dict:
    graph = models.lenet_graph()
    fit_graph_to_data(graph, data)
    data.augment = FULL
    net = Network(graph, seed=0)
    config = training.TrainConfig(batch_size=64, epochs=100, max_steps=steps, histogram_every=0)
    original = training.BatchLoader
    training.BatchLoader = functools.partial(original, background=background)
    try:
        reports = [r for r in training.train(net, data, config)
                   if isinstance(r, training.StepReport)]
    finally:
        training.BatchLoader = original
    reports = reports[10:]  # past the warm-up (first compiles, the queue filling)
    span = reports[-1].elapsed - reports[0].elapsed
    waited = sum(r.data_wait for r in reports[1:])
    return {"steps": len(reports), "samples_per_s": 64 * (len(reports) - 1) / span,
            "wait_share": waited / span}


BIG_CHILD = r"""
import json, resource, sys, time
import numpy as np
from pathlib import Path
from layerloom.engine.data import Dataset, Split
from layerloom.engine.data.augment import Augmentation
from layerloom.engine.data.cache import RowStore, RowWriter
from layerloom.engine.data.images import ImageArray, ImagePrep
sys.path.insert(0, sys.argv[3])
import models
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.engine.training import StepReport, TrainConfig, train
path, gb = Path(sys.argv[1]), float(sys.argv[2])
side, n = 64, int(float(sys.argv[2]) * 2**30 // (3 * 64 * 64))
labels = np.arange(n) % 10
if not path.exists():
    w = RowWriter(path, (n, 3, side, side))
    rng = np.random.default_rng(0)
    for start in range(0, n, 4096):
        k = min(4096, n - start)
        rows = rng.integers(0, 256, (k, 3, side, side), dtype=np.uint8)
        rows[np.arange(k), labels[start:start + k] % 3] //= 2  # a class signal
        for i in range(k):
            w.write(start + i, rows[i])
    w.commit()
def status(f):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(f)) / 1024
store = RowStore(path)
prep = ImagePrep((side, side), 3, "stretch", (0.5,) * 3, (0.29,) * 3)
rows = np.arange(n)
split = lambda r: Split(ImageArray(store, r, prep), labels[r])
data = Dataset("big", split(rows[:-2000]), split(rows[-2000:-1000]), split(rows[-1000:]),
               class_names=[str(i) for i in range(10)])
data.augment = Augmentation(crop_padding=4, flip=True, brightness=0.2)
g = models.lenet_graph()
fit_graph_to_data(g, data)
net = Network(g, seed=0)
base = status("VmSize")
limit = int((base + 512) * 2**20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
t0, steps = time.perf_counter(), 0
for r in train(net, data, TrainConfig(batch_size=64, max_steps=int(sys.argv[4]), histogram_every=0)):
    steps += isinstance(r, StepReport)
print(json.dumps({"data_gb": store.shape[0] * store.row_bytes / 2**30, "steps": steps,
                  "address_limit_mb": limit / 2**20, "seconds": time.perf_counter() - t0,
                  "peak_rss_mb": status("VmHWM")}))  # not ru_maxrss: it survives exec from the parent
"""


def bench_big(gb: float, steps: int, where: Path) -> dict:
    path = where / "big-cache.npy"
    try:
        out = subprocess.run([sys.executable, "-c", BIG_CHILD, str(path), str(gb),
                              str(Path(__file__).resolve().parent), str(steps)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        path.unlink(missing_ok=True)
    if out.returncode:
        return {"big_error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--big-gb", type=float, default=0.0)
    parser.add_argument("--big-steps", type=int, default=1000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        os.environ.setdefault("LAYERLOOM_CACHE_DIR", str(Path(tmp) / "cache"))
        result, data = bench_decode(make_photos(Path(tmp) / "photos", args.per_class))
        print(f"decode: {result['images']} JPEGs 128×128 -> 3×32×32 at "
              f"{result['decode_images_per_s']:,.0f} images/s; cached reload "
              f"{result['cached_reload_s']:.2f} s", flush=True)
        result.update(bench_loader_alone(data))
        print(f"loader alone, all augmentations, batch 64: "
              f"{result['loader_background_images_per_s']:,.0f} images/s (background thread), "
              f"{result['loader_same_thread_images_per_s']:,.0f} images/s (same thread)", flush=True)
        for name, background in (("background", True), ("same_thread", False)):
            t = bench_training(data, args.steps, background)
            result[f"train_{name}"] = t
            print(f"LeNet-size 3×32×32, batch 64, augmentation on, loader {name}: "
                  f"{t['samples_per_s']:,.0f} samples/s, waiting for data "
                  f"{100 * t['wait_share']:.1f} % of step time (target < 5 %)", flush=True)
        if args.big_gb:
            big = bench_big(args.big_gb, args.big_steps, Path(tmp))
            result["big"] = big
            print(f"larger than memory: {big}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
