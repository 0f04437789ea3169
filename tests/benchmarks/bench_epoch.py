"""One whole Fashion-MNIST epoch of LeNet-5: ``layerloom train`` in-process against a plain PyTorch
loop on the same data (bench_train.py's ``lenet_epoch`` row; issue 15).

Layerloom's side is the command a user types, run through ``engine.cli.main``: it loads the data
(60,000 images, 10 % held out for validation), builds the net, trains one epoch with Adam at
batch 64 (shuffled, per-step gradient norms, the run recorded in a throw-away run store; no
histograms, which nothing on the command line plots), validates, tests, and prints its summary.
PyTorch's side is the loop people write: the same split already in memory as tensors, a fresh
``randperm`` per epoch, Adam, the loss read back every step, then validation and test passes
under ``inference_mode``. The two alternate (A B B A) so that the shared machine's drift hits
both alike.

    python tests/benchmarks/bench_epoch.py [--threads 1|2] [--runs 3]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import models  # noqa: E402

FASHION = "idx:/usr/share/datasets/fashion-mnist"
GRAPH = ROOT / "samples" / "lenet5.json"


def layerloom_epoch(db: str) -> float:
    """Seconds for ``layerloom train samples/lenet5.json --epochs 1`` on Fashion-MNIST."""
    from layerloom.engine.cli import main

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", str(GRAPH), "--data", FASHION, "--epochs", "1", "--runs-db", db,
                     "--schedule", "constant"])
    if code != 0:
        raise RuntimeError(f"layerloom train exited with {code}")
    return time.perf_counter() - t


def torch_data():
    """The same train / validation / test split as Layerloom's, as float32 tensors."""
    import numpy as np
    import torch

    from layerloom.engine.data import load_data

    data = load_data(FASHION)
    return [(torch.from_numpy(np.asarray(s.x, dtype=np.float32).reshape(-1, 1, 28, 28)),
             torch.from_numpy(s.y.astype("int64"))) for s in (data.train, data.val, data.test)]


def torch_epoch(splits, seed: int) -> float:
    import torch
    import torch.nn.functional as F

    (xt, yt), val, test = splits
    t = time.perf_counter()
    torch.manual_seed(seed)
    net = models.torch_model("lenet")
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    order = torch.randperm(len(xt))
    for i in range(0, len(xt), 64):
        idx = order[i:i + 64]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        loss.item()
    with torch.inference_mode():
        for x, y in (val, test):
            correct = 0
            for i in range(0, len(x), 256):
                correct += int((net(x[i:i + 256]).argmax(1) == y[i:i + 256]).sum())
    return time.perf_counter() - t


def compare(runs: int = 3) -> tuple[list, list]:
    """(Layerloom seconds, PyTorch seconds) per epoch, ``runs`` each, interleaved A B B A."""
    import torch

    splits = torch_data()
    ll, pt = [], []
    # numba's OpenMP pool starting (Layerloom's first epoch) sets the process's OpenMP threads
    # to NUMBA_NUM_THREADS, which PyTorch reads: at "1 thread" its epochs ran on two until each
    # was given its count again (bench_train's compare does the same)
    threads = torch.get_num_threads()

    def theirs(seed: int) -> float:
        torch.set_num_threads(threads)
        return torch_epoch(splits, seed)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "runs.db")
        layerloom_epoch(db)  # warm: numba's cache, the data's first read
        theirs(0)
        for r in range(runs):
            for who in ((0, 1) if r % 2 == 0 else (1, 0)):
                if who == 0:
                    ll.append(layerloom_epoch(db))
                else:
                    pt.append(theirs(r))
                print(f"    epoch {'layerloom' if who == 0 else 'torch'}: "
                      f"{(ll if who == 0 else pt)[-1]:.1f} s", flush=True)
    return ll, pt


def main(argv: list[str] | None = None) -> int:
    import torch

    from layerloom.engine.threads import set_threads

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, choices=(1, 2), default=2)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    ll, pt = compare(args.runs)
    print(f"layerloom {statistics.median(ll):.2f} s ({min(ll):.2f}–{max(ll):.2f}), "
          f"torch {statistics.median(pt):.2f} s ({min(pt):.2f}–{max(pt):.2f}): "
          f"{statistics.median(pt) / statistics.median(ll):.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
