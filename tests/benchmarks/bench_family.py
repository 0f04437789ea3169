"""Issue 15's families at shapes the rows (bench_train.py) do not time: Layerloom against PyTorch.

Issue 15 checks its targets "on models of this kind that are not in your benchmark". This runs
such models, one each of what a person grows a row into: convnets (3×32×32, b64) that mix
stride-1 and stride-2 3×3 convolutions, 5×5 stride-2 ones of few channels, wider VGG stages,
LeNet-like 5×5 stages; char-LSTMs and pre-norm GPTs at other widths, lengths and batches. Each
model is written once as a spec and built twice (a Layerloom Graph through the public API, the
same PyTorch module), then timed by bench_train's interleaved windows.

    python tests/benchmarks/bench_family.py --threads 1|2 [--probes allconv,lstm_h384] [--quick]
        [--processes 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import bench_train  # noqa: E402
from bench_processes import check_choices, fresh_processes  # noqa: E402
import conv_models  # noqa: E402
import models  # noqa: E402

from layerloom.engine.graph import Graph  # noqa: E402
from layerloom.engine.threads import set_threads  # noqa: E402

# convnets: layers "KxK/S:C" (a K×K convolution at stride S onto C channels, padding K // 2,
# then a ReLU) or "pool" (2×2 max pool); Flatten → Dense 10 after them. Target: 1.5×
CONVNETS = {
    "allconv": "3x3/1:32 3x3/2:64 3x3/1:64 3x3/2:128 3x3/1:128",
    "s2_5x5_few": "5x5/2:16 5x5/2:32 5x5/2:64",
    "vgg_wide": "3x3/1:64 pool 3x3/1:128 pool 3x3/1:256 pool",
    "lenet_cifar": "5x5/1:16 pool 5x5/1:32 pool 5x5/1:64 pool",
    "s2_3x3_wide": "3x3/2:64 3x3/2:128 3x3/2:256",
}
# sequence models: (kind, blocks, d or h, heads, seq), batch (models.SIZED's form). Target 1.0×
SEQUENCES = {
    "lstm_h384_s128_b16": (("lstm", None, 384, 0, 128), 16),
    "lstm_h256_s32_b64": (("lstm", None, 256, 0, 32), 64),
    "lstm_h512_s128_b8": (("lstm", None, 512, 0, 128), 8),
    "gpt3_d192_s192_b8": (("gpt", 3, 192, 6, 192), 8),
    "gpt5_d256_s64_b16": (("gpt", 5, 256, 8, 64), 16),
    "gpt2_d128_s128_b32": (("gpt", 2, 128, 8, 128), 32),
}
PROBES = [*CONVNETS, *SEQUENCES]


def _layers(spec: str) -> list[tuple]:
    """("conv", k, stride, channels) or ("pool",) for each word of a CONVNETS spec."""
    out = []
    for word in spec.split():
        if word == "pool":
            out.append(("pool",))
            continue
        kernel, rest = word.split("/")
        stride, channels = rest.split(":")
        out.append(("conv", int(kernel.split("x")[0]), int(stride), int(channels)))
    return out


def _flat_size(spec: str) -> int:
    c, side = conv_models.SHAPE[0], conv_models.SHAPE[1]
    for layer in _layers(spec):
        if layer[0] == "pool":
            side //= 2
        else:
            _, k, s, c = layer
            side = (side + 2 * (k // 2) - k) // s + 1
    return c * side * side


def convnet_graph(spec: str) -> Graph:
    add = conv_models._add
    g = Graph()
    prev = add(g, None, "image", "Input", {"shape": list(conv_models.SHAPE)})
    for i, layer in enumerate(_layers(spec)):
        if layer[0] == "pool":
            prev = add(g, prev, f"pool{i}", "MaxPool2D", {"kernel_size": [2, 2]})
            continue
        _, k, s, c = layer
        prev = add(g, prev, f"conv{i}", "Conv2D", conv_models._conv(c, k, s))
        prev = add(g, prev, f"relu{i}", "ReLU")
    add(g, add(g, prev, "flatten", "Flatten"), "fc", "Dense", {"out_features": 10})
    return models._with_loss(g, "fc", [])


def convnet_torch(spec: str):
    from torch import nn

    layers, c_in = [], conv_models.SHAPE[0]
    for layer in _layers(spec):
        if layer[0] == "pool":
            layers.append(nn.MaxPool2d(2))
            continue
        _, k, s, c = layer
        layers += [nn.Conv2d(c_in, c, k, stride=s, padding=k // 2), nn.ReLU()]
        c_in = c
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(_flat_size(spec), 10))


def steps(name: str) -> tuple:
    """(Layerloom step, PyTorch step, target) of a probe, on the same four batches."""
    rng = np.random.default_rng(0)
    if name in CONVNETS:
        batches = [conv_models.batch(name, 64, 0, rng) for _ in range(4)]
        spec = CONVNETS[name]
        return (bench_train.graph_step(convnet_graph(spec), batches, False),
                bench_train.module_step(convnet_torch(spec), batches, False), 1.5)
    sized, n = SEQUENCES[name]
    batches = [models.batch(name, n, sized[4], rng) for _ in range(4)]
    return (bench_train.graph_step(models.sized_graph(name, sized), batches, False),
            bench_train.module_step(models.sized_torch(name, sized), batches, False), 1.0)


def run(args: argparse.Namespace) -> dict:
    """Each probe's median step on both sides, in this process."""
    import torch

    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    windows, seconds = (2, 0.05) if args.quick else (6, 0.5)
    probes = []
    for name in args.probes.split(","):
        ll, pt, target = steps(name)
        ll_t, pt_t = bench_train.compare(ll, pt, windows, seconds)
        a, b = statistics.median(ll_t) * 1e3, statistics.median(pt_t) * 1e3
        probes.append({"probe": name, "layerloom": a, "torch": b, "ratio": b / a,
                       "target": target, "met": b / a >= target})
        if args.processes == 1:
            print(_line(probes[-1]), flush=True)
    return {"threads": args.threads, "quick": args.quick, "probes": probes}


def _line(p: dict) -> str:
    ratios = f" ({', '.join(f'{r:.2f}' for r in p['ratios'])})" if "ratios" in p else ""
    return (f"| {p['probe']} | {p['layerloom']:.1f} | {p['torch']:.1f} | {p['ratio']:.2f}×"
            f"{ratios} | ≥ {p['target']:g}× {'met' if p['met'] else 'NOT met'} |")


def combine(results: list[dict]) -> dict:
    """One result from several processes' (same probes): each probe's ratio is the median of the
    processes' ratios (the issue's measure), its step times the medians of theirs."""
    out = {**results[0], "processes": len(results), "probes": []}
    for i, first in enumerate(results[0]["probes"]):
        per = [r["probes"][i] for r in results]
        ratios = [p["ratio"] for p in per]
        merged = {**first, "ratio": statistics.median(ratios), "ratios": ratios,
                  "layerloom": statistics.median(p["layerloom"] for p in per),
                  "torch": statistics.median(p["torch"] for p in per)}
        merged["met"] = merged["ratio"] >= merged["target"]
        out["probes"].append(merged)
    return out


def run_processes(args: argparse.Namespace) -> dict:
    """``run``'s probes in ``args.processes`` fresh processes, one after the other, combined:
    PyTorch's speed differs between processes by up to ~30 % here (one process is one draw)."""
    return combine(fresh_processes(
        lambda out: [sys.executable, str(Path(__file__).resolve()), "--threads",
                     str(args.threads), "--probes", args.probes, "--json", str(out)]
        + (["--quick"] if args.quick else []), args.processes, "probe", quiet=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, choices=(1, 2), default=2)
    p.add_argument("--probes", default=",".join(PROBES), help=f"subset of {', '.join(PROBES)}")
    p.add_argument("--quick", action="store_true", help="short windows: a smoke run, not a figure")
    p.add_argument("--processes", type=int, default=1,
                   help="run the probes in this many fresh processes; report median ratios")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    check_choices(p, args.probes, PROBES, "probe", args.processes)
    print(f"threads {args.threads}\n\n| probe | Layerloom ms | PyTorch ms | ratio | target |\n"
          "|---|---|---|---|---|", flush=True)
    if args.processes > 1:
        result = run_processes(args)
        print("\n".join(_line(probe) for probe in result["probes"]))
        print(f"\nMedians over {args.processes} processes (each process's ratio in brackets)")
    else:
        result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
