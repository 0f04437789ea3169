"""One Conv2D layer at a time against PyTorch's, over the family issue 15 names: 3×3 and 5×5
kernels, stride 1 and 2, 3-256 channels, maps of 4×4 to 32×32, float32, forward + backward with
the input gradient, in one process (each side's best of two timed runs, alternating).

The model rows (bench_train.py) time a few shapes each; this finds the shapes between them that
a person's model could hit and the rows do not (the 5×5 layers on 4×4 maps ran at 0.51× here
before ``conv_winograd5`` took maps of 4-7 outputs). Run by hand:

    python tests/benchmarks/bench_conv_layers.py --threads 1 [--batch 64] [--kernels 5] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from layerloom.engine import registry, threads
from layerloom.engine.spec import AttrValues, Ctx

SHAPES = ((3, 32, 32), (16, 32, 32), (32, 32, 32), (32, 64, 32), (64, 64, 16), (64, 128, 16),
          (128, 128, 16), (128, 128, 8), (128, 256, 8), (256, 256, 8), (256, 256, 4),
          (32, 32, 28), (64, 64, 14), (64, 128, 4), (128, 128, 4), (64, 64, 6))
QUICK = ((32, 32, 16), (128, 128, 4))


def _attrs(layer, f: int, k: int, s: int) -> AttrValues:
    a = {name: attr.default for name, attr in layer.attrs.items()}
    a.update(out_channels=f, kernel_size=[k, k], stride=[s, s], padding=[k // 2, k // 2])
    return AttrValues(a)


def _best_ms(fn, seconds: float) -> float:
    """Milliseconds a call, over as many calls as fill ``seconds`` after two warm ones."""
    fn()
    fn()
    t, count = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        fn()
        count += 1
    return (time.perf_counter() - t) / count * 1e3


def compare(k: int, s: int, c: int, f: int, hw: int, n: int, seconds: float,
            threads: int = 0) -> tuple:
    """(Layerloom ms, PyTorch ms) for one layer's forward + backward, PyTorch on ``threads``
    (0: as it is)."""
    import torch

    conv = registry.get("Conv2D")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    a = _attrs(conv, f, k, s)
    p = {name: v.astype(np.float32) for name, v in conv.init(a, [x.shape], rng).items()}

    def ours():
        ctx = Ctx(True, None, (True,))
        y = conv.forward(a, p, ctx, x)
        conv.backward(a, p, ctx, np.ones_like(y))
    xt, wt, bt = (torch.from_numpy(v).requires_grad_() for v in (x, p["weight"], p["bias"]))

    def theirs():
        y = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=k // 2)
        y.backward(torch.ones_like(y))
        xt.grad = wt.grad = bt.grad = None
    runs = []
    for _ in range(2):
        mine = _best_ms(ours, seconds)
        # numba's OpenMP pool starting sets the process's OpenMP threads to NUMBA_NUM_THREADS,
        # which PyTorch reads: at "1 thread" its forward of a 3×3 stride-2 32 → 64 ran on two
        # (3.8 ms, 7.6 on one) until this was set after our first call (bench_train does too)
        if threads:
            torch.set_num_threads(threads)
        runs.append((mine, _best_ms(theirs, seconds)))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--kernels", default="3,5", help="kernel sides, e.g. 5")
    ap.add_argument("--quick", action="store_true", help="two shapes, short windows")
    args = ap.parse_args()
    threads.set_threads(args.threads)
    torch.set_num_threads(args.threads)
    seconds = 0.05 if args.quick else 0.4
    print("| kernel | stride | channels | map | Layerloom ms | PyTorch ms | ratio |\n"
          "|---|---|---|---|---|---|---|")
    with threads.engine_threads():
        for k in (int(v) for v in args.kernels.split(",")):
            for s in (1, 2):
                for c, f, hw in QUICK if args.quick else SHAPES:
                    ll, pt = compare(k, s, c, f, hw, args.batch, seconds, args.threads)
                    print(f"| {k}×{k} | {s} | {c} → {f} | {hw}×{hw} | {ll:.2f} | {pt:.2f} | "
                          f"{pt / ll:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
