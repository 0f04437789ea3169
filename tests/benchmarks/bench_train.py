"""Layerloom against PyTorch on the CPU, side by side in one process (issue 6's table).

    python tests/benchmarks/bench_train.py --threads 2 [--json FILE] [--quick]

Each row builds the same model twice (a Layerloom Graph through the public API and a PyTorch
module), warms both up, then alternates timed windows A B B A … so that the machine's drift
(shared VMs swing ±30 %) hits both alike. It prints medians with min–max, the ratio (Layerloom
throughput over PyTorch's; for latency rows PyTorch's latency over Layerloom's, so > 1 is always
better for Layerloom), the target, and the sgemm 2048² peak of the same run. ``--processes N``
runs the rows in N fresh processes one after the other and reports each row's median ratio over
them (PyTorch's own speed differs between processes by up to ~30 %: one process's ratio is one
draw). ``--cold-start`` and ``--memory`` add the fresh-process measurements of
``bench_process.py``. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import conv_models  # noqa: E402  (issue 15's convnet rows)
from bench_processes import check_choices, fresh_processes, median_ratio  # noqa: E402
import models  # noqa: E402  (the benchmark's own module, found through the path above)

from layerloom.engine.network import Network  # noqa: E402
from layerloom.engine.optim import Adam  # noqa: E402
from layerloom.engine.threads import blas_only, engine_threads, set_threads  # noqa: E402

SEQ = 32
PAUSE = 0.05  # seconds between windows
# name: (label, model, batch, items per step, unit, latency row?, target ratio)
ROWS = {
    "lenet_train": ("LeNet-5 train b64", "lenet", 64, 64, "samples/s", False, 2.0),
    "lenet_infer": ("LeNet-5 infer b1", "lenet", 1, 1, "µs", True, 2.0),
    "mlp_train": ("MLP 784-256-256-10 train b64", "mlp", 64, 64, "samples/s", False, 1.2),
    "mlp_infer": ("MLP infer b1", "mlp", 1, 1, "µs", True, 2.0),
    "lstm_train": ("char-LSTM e64 h128 s32 b32 train", "lstm", 32, 32 * SEQ, "tokens/s", False, 0.8),
    "block_train": ("Transformer block d64 h4 s32 b32 train", "block", 32, 32 * SEQ, "tokens/s",
                    False, 0.8),
    "conv1d_train": ("1-D CNN 1×128 (3 Conv1d) train b64", "conv1d", 64, 64, "samples/s", False,
                     1.0),
    "dwsep_train": ("Depthwise-separable 3×32×32 train b32", "dwsep", 32, 32, "samples/s", False,
                    1.0),
}
# ------------------------------------------------ issue 15: CIFAR-size convnets (3×32×32, b64)
# VGG-style: three stages of two 3×3 convs (32, 64, 128 channels) + max pool, Dense 256; 5×5 with
# stride-2 convs instead of pools; a ResNet-style stage (conv without bias → BatchNorm2d → ReLU,
# two residual blocks of 32 channels), trained and in inference (BatchNorm folded into the conv);
# a ResNet with stride-2 stages (16, 32, 64 channels; 1×1 projection shortcuts), trained; and
# one of ResNet-18's widths (64 → 512 channels, one block a stage: maps down to 4×4), trained;
# (2026-12-06) 2×2 average pools instead of max pools, and ResNet-50's bottleneck block.
CONV_ROWS = conv_models.ROWS
ROWS.update(CONV_ROWS)
GRAPHS = {**conv_models.GRAPHS, "lenet": models.lenet_graph, "mlp": models.mlp_graph,
          "conv1d": models.conv1d_graph, "dwsep": models.dwsep_graph,
          "lstm": lambda loss=True: models.lstm_graph(SEQ),
          "block": lambda loss=True: models.block_graph(SEQ)}

# ---------------------------------------------- issue 15: grown sequence models, the whole epoch
# Transformers of 2-6 pre-norm blocks at d 128-256, seq 64-256 and LSTMs at h 256-512 (models.SIZED),
# and one Fashion-MNIST epoch through ``layerloom train`` against a plain PyTorch loop
# (bench_epoch.py; its ratio is PyTorch's epoch time over Layerloom's).
ROWS.update({
    "gpt4_train": ("GPT 4 blocks d128 h4 s64 b16 train", "gpt4_d128", 16, 16 * 64, "tokens/s",
                   False, 1.0),
    "gpt6_train": ("GPT 6 blocks d256 h8 s128 b8 train", "gpt6_d256", 8, 8 * 128, "tokens/s",
                   False, 1.0),
    "gpt2s256_train": ("GPT 2 blocks d128 h4 s256 b8 train", "gpt2_s256", 8, 8 * 256,
                       "tokens/s", False, 1.0),
    "lstm256_train": ("char-LSTM e64 h256 s64 b32 train", "lstm_h256", 32, 32 * 64, "tokens/s",
                      False, 1.0),
    "lstm512_train": ("char-LSTM e64 h512 s64 b32 train", "lstm_h512", 32, 32 * 64, "tokens/s",
                      False, 1.0),
    "lenet_epoch": ("LeNet-5 Fashion-MNIST epoch, `layerloom train` vs a torch loop", "epoch", 64,
                    1, "s/epoch", True, 2.0),
})
GRAPHS.update({name: (lambda loss=True, name=name: models.sized_graph(name))
               for name in models.SIZED})


# ------------------------------------------------------------------------------ step makers
def layerloom_step(model: str, n: int, infer: bool) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    src = conv_models if model in conv_models.GRAPHS else models
    batches = [src.batch(model, n, models.sized_seq(model, SEQ), rng) for _ in range(4)]
    return graph_step(GRAPHS[model](loss=not infer), batches, infer)


def graph_step(graph, batches: list, infer: bool) -> Callable[[], None]:
    """One Adam step (or an inference call) of ``graph`` a call, over ``batches`` in turn."""
    net = Network(graph, seed=0)
    opt, i = Adam(1e-3), [0]

    def step():
        x, y = batches[i[0] % len(batches)]
        i[0] += 1
        if infer:
            net.forward({"image": x})
            return
        net.forward({"image": x, "label": y}, training=True)
        opt.step(net.params, net.backward())
    step.blas = blas_only(s.layer for s in net.plan.steps)  # as engine.training.train
    return step


def torch_step(model: str, n: int, infer: bool) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    src = conv_models if model in conv_models.GRAPHS else models
    seq = models.sized_seq(model, SEQ)
    batches = [src.batch(model, n, seq, rng) for _ in range(4)]
    net = models.sized_torch(model) if model in models.SIZED else src.torch_model(model, SEQ)
    return module_step(net, batches, infer)


def module_step(net, batches: list, infer: bool) -> Callable[[], None]:
    """``graph_step``'s twin: PyTorch's Adam step (or inference call) of the module ``net``."""
    import torch
    import torch.nn.functional as F

    batches = [tuple(torch.from_numpy(a) for a in b) for b in batches]
    opt, i = torch.optim.Adam(net.parameters(), 1e-3), [0]
    if infer:
        net.eval()

    def step():
        x, y = batches[i[0] % len(batches)]
        i[0] += 1
        if infer:
            with torch.inference_mode():
                net(x)
            return
        opt.zero_grad(set_to_none=True)
        out = net(x)
        F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)).backward()
        opt.step()
    return step


# ---------------------------------------------------------------------------------- timing
def _timed(step: Callable[[], None], count: int) -> float:
    t = time.perf_counter()
    for _ in range(count):
        step()
    return time.perf_counter() - t


def calibrate(step: Callable[[], None], seconds: float) -> int:
    """Steps that fill about ``seconds``, sized after a warm-up: the first calls load numba's
    cache (tens of ms), and sizing windows from them gave windows of one or two steps."""
    _timed(step, 3)
    count, spent = 1, _timed(step, 1)
    while spent < 0.05:
        count *= 4
        spent = _timed(step, count)
    return max(1, int(count * seconds / spent))


def compare(ll: Callable, pt: Callable, windows: int, seconds: float) -> tuple[list, list]:
    """Seconds per step of each window, A B B A … interleaved after both are warm."""
    import torch

    torch_threads = torch.get_num_threads()
    with engine_threads(ll.blas):
        n_ll = calibrate(ll, seconds)
    # numba's OpenMP pool starting (the first parallel kernel) sets the process's OpenMP
    # threads to NUMBA_NUM_THREADS, which PyTorch reads: "1 thread" PyTorch ran on 2 until now
    torch.set_num_threads(torch_threads)
    n_pt = calibrate(pt, seconds)
    ll_t, pt_t = [], []
    for w in range(windows):
        for who in ((0, 1) if w % 2 == 0 else (1, 0)):
            time.sleep(PAUSE)  # lets the other side's spinning pool threads go idle first
            if who == 0:
                with engine_threads(ll.blas):
                    ll_t.append(_timed(ll, n_ll) / n_ll)
            else:
                pt_t.append(_timed(pt, n_pt) / n_pt)
    return ll_t, pt_t


def sgemm_peak(threads: int) -> dict:
    """Best GFLOP/s of a float32 2048² product, numpy (its BLAS) and torch, on ``threads``."""
    import torch
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    flops, best = 2 * 2048 ** 3, {}
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ a
        best["numpy"] = flops / min(_timed(lambda: a @ a, 1) for _ in range(5)) / 1e9
    t = torch.from_numpy(a)
    t @ t
    best["torch"] = flops / min(_timed(lambda: t @ t, 1) for _ in range(5)) / 1e9
    best["peak"] = max(best.values())
    return best


def train_flops(model: str) -> float:
    """≈ 3 × the forward FLOPs of the Conv2D and Dense nodes (forward, input and weight grads)."""
    net = Network(GRAPHS[model](), seed=0)
    shapes, total = net.plan.shapes, 0
    for s in net.plan.steps:
        out = shapes.shapes.get((s.node_id, s.outputs[0]))
        if s.layer.type_id == "Conv2D":
            _, c, kh, kw = net.params[f"{s.node_id}.weight"].shape
            total += np.prod(out[1:]) * c * kh * kw
        elif s.layer.type_id == "Dense":
            total += np.prod(out[1:]) * s.in_shapes[0][-1]
    return 3 * 2 * float(total)


# ------------------------------------------------------------------------------------ report
def summarize(key: str, ll_t: list, pt_t: list) -> dict:
    label, _, _, items, unit, latency, target = ROWS[key]
    scale = 1.0 if unit.startswith("s/") else 1e6  # seconds per epoch, else µs per call
    conv = (lambda t: t * scale) if latency else (lambda t: items / t)
    ll, pt = [conv(t) for t in ll_t], [conv(t) for t in pt_t]
    med_ll, med_pt = statistics.median(ll), statistics.median(pt)
    ratio = med_pt / med_ll if latency else med_ll / med_pt
    return {"row": key, "label": label, "unit": unit, "layerloom": stats(ll), "torch": stats(pt),
            "ratio": ratio, "target": target, "met": ratio >= target}


def stats(values: list) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict) -> str:
    digits = 0 if s["median"] >= 100 else 1
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def table(result: dict) -> str:
    lines = [f"threads {result['threads']} · sgemm 2048² peak {result['sgemm']['peak']:.0f} GFLOP/s "
             f"(numpy {result['sgemm']['numpy']:.0f}, torch {result['sgemm']['torch']:.0f})", "",
             "| row | unit | Layerloom median (min–max) | PyTorch median (min–max) | ratio | target |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        mark = "met" if r["met"] else "NOT met"
        each = f" ({', '.join(f'{x:.2f}' for x in r['ratios'])})" if "ratios" in r else ""
        lines.append(f"| {r['label']} | {r['unit']} | {fmt(r['layerloom'])} | {fmt(r['torch'])} | "
                     f"{r['ratio']:.2f}×{each} | ≥ {r['target']:g}× {mark} |")
    if "processes" in result:
        lines.append(f"\nMedians over {result['processes']} processes (each process's ratio in "
                     "brackets; Layerloom and PyTorch columns: the processes' medians)")
    for r in result["rows"]:
        if "peak_share" in r:
            lines.append(f"\n{r['label']} uses {100 * r['peak_share']:.1f} % of the sgemm peak")
    if "conv_memory" in result:
        m = result["conv_memory"]
        lines.append(f"\nPeak RSS training the ResNet-style row: {m['layerloom_mb']:.0f} MB, "
                     f"PyTorch {m['torch_mb']:.0f} MB: {m['ratio']:.2f}× (target ≤ 1.5×)")
    if "peak_share" in result:
        lines.append(f"\nLeNet-5 training uses {100 * result['peak_share']:.1f} % of the sgemm peak "
                     f"(target ≥ 25 %)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, choices=(1, 2), default=2)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="short windows: a smoke run, not a figure")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    p.add_argument("--windows", type=int, default=9, help="timed windows per side")
    p.add_argument("--processes", type=int, default=1,
                   help="run the rows in this many fresh processes; report median ratios")
    p.add_argument("--cold-start", action="store_true", help="first step of a fresh process")
    p.add_argument("--memory", type=int, metavar="STEPS", default=0,
                   help="peak RSS training LeNet-5 on all of Fashion-MNIST for STEPS steps")
    p.add_argument("--conv-memory", type=int, metavar="STEPS", default=0,
                   help="peak RSS training the ResNet-style row for STEPS steps, against PyTorch")
    args = p.parse_args(argv)
    check_choices(p, args.rows, ROWS, "row", args.processes)
    return args


def combine(results: list[dict]) -> dict:
    """One result from several processes' (``run``'s, same rows): each row's ratio is the median
    of the processes' ratios, its Layerloom and PyTorch figures the median (min–max) of theirs."""
    first = results[0]
    out = {"threads": first["threads"], "quick": first["quick"], "processes": len(results),
           "sgemm": {k: statistics.median(r["sgemm"][k] for r in results) for k in first["sgemm"]},
           "rows": []}
    for i, row in enumerate(first["rows"]):
        per = [r["rows"][i] for r in results]
        merged = {**median_ratio(row, per),
                  "layerloom": stats([p["layerloom"]["median"] for p in per]),
                  "torch": stats([p["torch"]["median"] for p in per])}
        if "peak_share" in row:
            merged["peak_share"] = statistics.median(p["peak_share"] for p in per)
        out["rows"].append(merged)
    if all("peak_share" in r for r in results):
        out["peak_share"] = statistics.median(r["peak_share"] for r in results)
    return out


def run_processes(args: argparse.Namespace) -> dict:
    """``run``'s rows in ``args.processes`` fresh processes, one after the other, combined."""
    return combine(fresh_processes(
        lambda out: [sys.executable, str(Path(__file__).resolve()), "--threads",
                     str(args.threads), "--rows", args.rows, "--windows", str(args.windows),
                     "--json", str(out)] + (["--quick"] if args.quick else []),
        args.processes, "benchmark"))


def run_rows(args: argparse.Namespace) -> dict:
    """The asked rows in this process: each Layerloom against PyTorch, interleaved."""
    import torch

    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    windows, seconds = (3, 0.1) if args.quick else (args.windows, 0.5)
    result = {"threads": args.threads, "quick": args.quick, "sgemm": sgemm_peak(args.threads),
              "rows": []}
    for key in args.rows.split(","):
        _, model, n, _, _, latency, _ = ROWS[key]
        if model == "epoch":
            import bench_epoch

            ll_t, pt_t = bench_epoch.compare(max(1, windows // 3))
            result["rows"].append(summarize(key, ll_t, pt_t))
            print(f"  {result['rows'][-1]['label']}: {result['rows'][-1]['ratio']:.2f}×", flush=True)
            continue
        ll_t, pt_t = compare(layerloom_step(model, n, latency), torch_step(model, n, latency),
                             windows, seconds)
        result["rows"].append(summarize(key, ll_t, pt_t))
        if key == "lenet_train":
            rate = result["rows"][-1]["layerloom"]["median"]
            result["peak_share"] = rate * train_flops("lenet") / (result["sgemm"]["peak"] * 1e9)
        if key in CONV_ROWS and not latency:  # the convnet rows' share of the sgemm peak
            rate = result["rows"][-1]["layerloom"]["median"]
            result["rows"][-1]["peak_share"] = (rate * train_flops(model)
                                                / (result["sgemm"]["peak"] * 1e9))
        print(f"  {result['rows'][-1]['label']}: {result['rows'][-1]['ratio']:.2f}×", flush=True)
    return result


def run(args: argparse.Namespace) -> dict:
    result = run_processes(args) if args.processes > 1 else run_rows(args)
    if args.conv_memory:
        result["conv_memory"] = conv_models.peak_memory("resnet", args.conv_memory, args.threads)
    if args.cold_start or args.memory:
        import bench_process

        if args.cold_start:
            result["cold_start"] = bench_process.cold_start(args.threads)
        if args.memory:
            result["memory"] = bench_process.memory(args.memory, args.threads)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(table(result))
    for key in ("cold_start", "memory"):
        if key in result:
            print(f"{key}: {json.dumps(result[key])}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
