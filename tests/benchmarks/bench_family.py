"""Issue 15's families at shapes the rows (bench_train.py) do not time: Layerloom against PyTorch.

Issue 15 checks its targets "on models of this kind that are not in your benchmark". This runs
such models, one each of what a person grows a row into: convnets (3×32×32 at b64 unless a spec
says otherwise) that mix stride-1 and stride-2 3×3 convolutions, 5×5 stride-2 ones of few or
many channels, wider VGG stages, LeNet-like 5×5 stages; MNIST-size inputs and 64×64 ones,
batches of 32 and 128, channel counts of no 2ᵏ, unpadded convolutions, average pools,
BatchNorm without residuals; char-LSTMs and pre-norm GPTs at other widths, lengths and batches. Each
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import bench_train  # noqa: E402
from bench_processes import check_choices, fresh_processes, median_ratio  # noqa: E402
import conv_models  # noqa: E402
import models  # noqa: E402

from layerloom.engine.graph import Graph  # noqa: E402
from layerloom.engine.threads import set_threads  # noqa: E402

# convnets: words "KxK/S:C" (a K×K convolution at stride S onto C channels, padding K // 2, then
# a ReLU; "…:Cbn" without bias, then BatchNorm2d; "…:Cv" without padding), "pool" / "avg" (2×2
# max / average pool), "gap" (global average pool), "in:CxHxW" (the input, 3x32x32 unless
# given), "b:N" (the batch, 64 unless given); Flatten → Dense 10 after them. Target: 1.5×
CONVNETS = {
    "allconv": "3x3/1:32 3x3/2:64 3x3/1:64 3x3/2:128 3x3/1:128",
    "s2_5x5_few": "5x5/2:16 5x5/2:32 5x5/2:64",
    "vgg_wide": "3x3/1:64 pool 3x3/1:128 pool 3x3/1:256 pool",
    "lenet_cifar": "5x5/1:16 pool 5x5/1:32 pool 5x5/1:64 pool",
    "s2_3x3_wide": "3x3/2:64 3x3/2:128 3x3/2:256",
    # (2026-12-07) other inputs, batches, channel counts, padding, pools and BatchNorm
    "mnist_s2": "in:1x28x28 3x3/1:32 3x3/2:64 3x3/2:128",
    "s2_b128": "b:128 3x3/1:32 3x3/2:64 3x3/2:128",
    "vgg_b32": "b:32 3x3/1:32 3x3/1:32 pool 3x3/1:64 3x3/1:64 pool",
    "odd_channels": "3x3/1:24 pool 3x3/1:48 pool 3x3/1:96 pool",
    "unpadded": "3x3/1:32v 3x3/1:32v pool 3x3/1:64v 3x3/1:64v pool",
    "avg_5x5": "5x5/1:32 avg 5x5/1:64 avg 5x5/1:128 avg",
    "s2_5x5_wide": "5x5/2:64 5x5/2:128 5x5/2:256",
    "s2_16": "3x3/2:16 3x3/2:32 3x3/2:64 3x3/2:128",
    "bn_plain": "3x3/1:32bn 3x3/1:32bn pool 3x3/1:64bn 3x3/1:64bn pool 3x3/1:128bn gap",
    "bn_s2": "3x3/1:32bn 3x3/2:64bn 3x3/1:64bn 3x3/2:128bn 3x3/1:128bn gap",
    "img64_b32": "in:3x64x64 b:32 3x3/2:32 3x3/1:64 pool 3x3/2:128 3x3/1:128 gap",
    # (2026-12-07, thirty-third session) the corners: 5×5 up to 256 channels, 16-channel stages,
    # two 256-channel layers, four 32-channel layers at full size, a 5×5 stem before 3×3 stages
    "wide_5x5": "5x5/1:64 pool 5x5/1:128 pool 5x5/1:256 pool",
    "thin_16": "3x3/1:16 3x3/1:16 pool 3x3/1:32 3x3/1:32 pool",
    "vgg_256": "3x3/1:64 pool 3x3/1:128 pool 3x3/1:256 3x3/1:256 pool 3x3/1:256 pool",
    "flat_32": "3x3/1:32 3x3/1:32 3x3/1:32 3x3/1:32 pool",
    "mixed_gap": "5x5/1:32 pool 3x3/1:64 3x3/1:64 pool 3x3/1:128 gap",
}
# sequence models: (kind, blocks, d or h, heads, seq), batch (models.SIZED's form). Target 1.0×
SEQUENCES = {
    "lstm_h384_s128_b16": (("lstm", None, 384, 0, 128), 16),
    "lstm_h256_s32_b64": (("lstm", None, 256, 0, 32), 64),
    "lstm_h512_s128_b8": (("lstm", None, 512, 0, 128), 8),
    "gpt3_d192_s192_b8": (("gpt", 3, 192, 6, 192), 8),
    "gpt5_d256_s64_b16": (("gpt", 5, 256, 8, 64), 16),
    "gpt2_d128_s128_b32": (("gpt", 2, 128, 8, 128), 32),
    "gpt2_d192_s100_b16": (("gpt", 2, 192, 6, 100), 16),  # (2026-12-07) a length of no 2ᵏ
    "gpt3_d256_s64_b32": (("gpt", 3, 256, 4, 64), 32),
    "lstm_h300_s50_b32": (("lstm", None, 300, 0, 50), 32),
    # (2026-12-07, thirty-third session) the corners: 6 blocks at d256 and s256, 2 blocks at
    # d256 s256, 6 small blocks, an LSTM of h512 at b64
    "gpt6_d256_s256_b8": (("gpt", 6, 256, 8, 256), 8),
    "gpt2_d256_s256_b16": (("gpt", 2, 256, 4, 256), 16),
    "gpt6_d128_s64_b16": (("gpt", 6, 128, 4, 64), 16),
    "lstm_h512_s32_b64": (("lstm", None, 512, 0, 32), 64),
}
PROBES = [*CONVNETS, *SEQUENCES]


@dataclass(frozen=True)
class Convnet:
    """A parsed CONVNETS spec: the input's shape, the batch, and the layers in order: ("conv",
    k, stride, channels, batchnorm, padded), ("pool",), ("avg",) or ("gap",)."""
    shape: tuple
    batch: int
    layers: tuple


def parse(spec: str) -> Convnet:
    """The words of a CONVNETS spec as a ``Convnet`` (the grammar above CONVNETS)."""
    shape, batch, layers = conv_models.SHAPE, 64, []
    for word in spec.split():
        if word in ("pool", "avg", "gap"):
            layers.append((word,))
        elif word.startswith("in:"):
            shape = tuple(int(v) for v in word[3:].split("x"))
        elif word.startswith("b:"):
            batch = int(word[2:])
        else:
            kernel, rest = word.split("/")
            stride, channels = rest.split(":")
            bn, padded = channels.endswith("bn"), not channels.endswith("v")
            layers.append(("conv", int(kernel.split("x")[0]), int(stride),
                           int(channels.removesuffix("bn").removesuffix("v")), bn, padded))
    return Convnet(shape, batch, tuple(layers))


def _flat_size(net: Convnet) -> int:
    c, side = net.shape[0], net.shape[1]
    for layer in net.layers:
        if layer[0] == "gap":
            side = 1
        elif layer[0] in ("pool", "avg"):
            side //= 2
        else:
            _, k, s, c, _, padded = layer
            side = (side + (2 * (k // 2) if padded else 0) - k) // s + 1
    return c * side * side


def convnet_graph(spec: str) -> Graph:
    add, net = conv_models._add, parse(spec)
    g = Graph()
    prev = add(g, None, "image", "Input", {"shape": list(net.shape)})
    for i, layer in enumerate(net.layers):
        if layer[0] != "conv":
            kind, attrs = {"pool": ("MaxPool2D", {"kernel_size": [2, 2]}),
                           "avg": ("AvgPool2D", {"kernel_size": [2, 2]}),
                           "gap": ("AdaptiveAvgPool2d", {})}[layer[0]]
            prev = add(g, prev, f"{layer[0]}{i}", kind, attrs)
            continue
        _, k, s, c, bn, padded = layer
        attrs = conv_models._conv(c, k, s, bias=not bn)
        if not padded:
            attrs["padding"] = [0, 0]
        prev = add(g, prev, f"conv{i}", "Conv2D", attrs)
        if bn:
            prev = add(g, prev, f"bn{i}", "BatchNorm2d")
        prev = add(g, prev, f"relu{i}", "ReLU")
    add(g, add(g, prev, "flatten", "Flatten"), "fc", "Dense", {"out_features": 10})
    return models._with_loss(g, "fc", [])


def convnet_torch(spec: str):
    from torch import nn

    net = parse(spec)
    layers, c_in = [], net.shape[0]
    for layer in net.layers:
        if layer[0] != "conv":
            layers.append({"pool": lambda: nn.MaxPool2d(2), "avg": lambda: nn.AvgPool2d(2),
                           "gap": lambda: nn.AdaptiveAvgPool2d(1)}[layer[0]]())
            continue
        _, k, s, c, bn, padded = layer
        layers.append(nn.Conv2d(c_in, c, k, stride=s, padding=k // 2 if padded else 0,
                                bias=not bn))
        layers += [nn.BatchNorm2d(c), nn.ReLU()] if bn else [nn.ReLU()]
        c_in = c
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(_flat_size(net), 10))


def steps(name: str) -> tuple:
    """(Layerloom step, PyTorch step, target) of a probe, on the same four batches."""
    rng = np.random.default_rng(0)
    if name in CONVNETS:
        spec, net = CONVNETS[name], parse(CONVNETS[name])
        batches = [(rng.standard_normal((net.batch, *net.shape), dtype=np.float32),
                    rng.integers(0, 10, net.batch)) for _ in range(4)]
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
        out["probes"].append({**median_ratio(first, per),
                              "layerloom": statistics.median(p["layerloom"] for p in per),
                              "torch": statistics.median(p["torch"] for p in per)})
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
