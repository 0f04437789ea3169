"""``layerloom bench``: Layerloom against PyTorch on this machine (tests/benchmarks/bench_train.py).

PyTorch is only the yardstick: the engine never imports it. Without it the command says how to
install it and exits 1. The benchmark lives beside the tests, so it runs from a source checkout.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "tests" / "benchmarks" / "bench_train.py"
TORCH = "torch==2.13.0"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds ``bench`` to ``layerloom``'s subcommands; the options go through to bench_train.py."""
    parser = subparsers.add_parser("bench", help="time training and inference against PyTorch")
    parser.add_argument("--threads", type=int, choices=(1, 2), default=2)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="short windows: a smoke run")
    parser.add_argument("--rows", help="comma-separated subset of the rows")
    parser.add_argument("--windows", type=int, help="timed windows per side")
    parser.add_argument("--processes", type=int, help="fresh processes to take median ratios over")
    parser.add_argument("--cold-start", action="store_true", help="first step of a fresh process")
    parser.add_argument("--memory", type=int, metavar="STEPS",
                        help="peak RSS training LeNet-5 on all of Fashion-MNIST")
    parser.set_defaults(run=cmd_bench)
    return parser


def bench_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--threads", str(args.threads)]
    for name in ("json", "rows", "windows", "processes", "memory"):
        if getattr(args, name):
            argv += [f"--{name}", str(getattr(args, name))]
    return argv + ["--quick"] * args.quick + ["--cold-start"] * args.cold_start


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def cmd_bench(args: argparse.Namespace) -> int:
    if not torch_available():
        print(f"error: the benchmark compares against PyTorch, which is not installed: "
              f"pip install {TORCH}", file=sys.stderr)
        return 1
    if not BENCH.is_file():
        print(f"error: {BENCH} is missing: run the benchmark from a source checkout",
              file=sys.stderr)
        return 1
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(bench_argv(args))
