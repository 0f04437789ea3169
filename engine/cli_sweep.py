"""``layerloom sweep GRAPH --grid lr=1e-3,3e-3 --grid batch_size=32,64`` (or ``--random N
--range lr=1e-4:1e-1:log``): train every combination, one after another, each recorded as a run
under one sweep id, then list them best first.

Each combination is an ordinary ``layerloom train`` (the same code path, so the same checks and
records). The sweep's definition is stored with its runs, so ``--resume ID`` after a crash or a
Ctrl-C runs only the combinations that have not ended yet.
"""
from __future__ import annotations

import argparse
import itertools
import math
import secrets
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Callable

import numpy as np

from layerloom.engine.spec import LayerloomError

ENDED = ("finished", "diverged")  # a stopped, failed or interrupted combination runs again


class SweepError(LayerloomError):
    """A sweep specification that cannot run."""


def _kinds() -> dict[str, type]:
    from layerloom.engine.training import TrainConfig

    kinds = {"lr": float, "momentum": float, "weight_decay": float, "batch_size": int,
             "epochs": int, "seed": int, "max_steps": int, "optimizer": str, "schedule": str}
    known = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in kinds.items() if k in known}


def _value(key: str, text: str):
    kind = _kinds().get(key)
    if kind is None:
        raise SweepError(f"sweep: unknown setting {key!r} (one of {', '.join(sorted(_kinds()))})")
    try:
        value = kind(text) if kind is not int else int(float(text))
    except ValueError:
        raise SweepError(f"sweep: {key}: {text!r} is not a {kind.__name__}") from None
    if kind is float and not math.isfinite(value):
        raise SweepError(f"sweep: {key}: {text!r} is not finite")
    from layerloom.engine.training_config import SETTINGS  # the settings' one set of rules

    problem = SETTINGS[key].problem(value)
    if problem is not None:
        raise SweepError(f"sweep: {key}: {problem}")
    return value


def parse_grid(items: list[str]) -> dict[str, list]:
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise SweepError(f"sweep: --grid {item!r}: expected NAME=V1,V2,…")
        grid[key.strip()] = [_value(key.strip(), v.strip()) for v in values.split(",")]
    return grid


def parse_ranges(items: list[str]) -> dict[str, tuple]:
    ranges = {}
    for item in items:
        key, sep, rest = item.partition("=")
        parts = rest.split(":")
        if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise SweepError(f"sweep: --range {item!r}: expected NAME=LOW:HIGH or NAME=LOW:HIGH:log")
        low, high = _value(key, parts[0]), _value(key, parts[1])
        if isinstance(low, str) or not low < high or (len(parts) == 3 and low <= 0):
            raise SweepError(f"sweep: --range {item!r}: need numbers with LOW < HIGH (> 0 for log)")
        ranges[key] = (low, high, len(parts) == 3)
    return ranges


def combinations(spec: dict) -> list[dict]:
    """Every grid point, or ``random`` seeded draws from the ranges (grid keys fixed per draw)."""
    grid = spec.get("grid", {})
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    if not spec.get("random"):
        return points
    rng = np.random.default_rng(spec.get("seed", 0))
    draws = []
    for i in range(spec["random"]):
        combo = dict(points[i % len(points)])
        for key, (low, high, log) in spec.get("ranges", {}).items():
            u = rng.random()
            v = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if log \
                else low + u * (high - low)
            combo[key] = int(round(v)) if isinstance(low, int) else float(f"{v:.4g}")
        draws.append(combo)
    return draws


def _flag(key: str, value) -> list[str]:
    return [f"--{key.replace('_', '-')}", str(value)]


def add_parser(subparsers, run_command: Callable[[list[str]], int]) -> None:
    """``run_command(argv)`` runs one ``layerloom`` command line in this process (``cli.main``,
    given by ``cli`` itself so this module need not import it): each combination is a
    ``layerloom train`` run."""
    p = subparsers.add_parser("sweep", help="train every combination of settings, each recorded "
                              "as a run of one sweep")
    p.add_argument("graph", nargs="?", help="a layerloom-graph JSON file (not with --resume)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                   help="values to try for one setting (repeat for more settings)")
    p.add_argument("--random", type=int, metavar="N", help="N random draws from --range")
    p.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH[:log]")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    p.add_argument("--data", metavar="SPEC")
    p.add_argument("--allow-outside-data", action="store_true",
                   help="read the data the graph file names even outside its folder")
    p.add_argument("--runs-db", metavar="FILE")
    p.add_argument("--resume", metavar="SWEEP_ID", help="run what a stopped sweep has not ended")
    p.set_defaults(run=cmd_sweep, run_command=run_command)


def cmd_sweep(args: argparse.Namespace) -> int:
    from layerloom.engine.cli_runs import run_line
    from layerloom.engine.runs import RunStore

    store = RunStore(args.runs_db)
    if args.resume:
        graph, spec = store.sweep(args.resume)
        sweep_id = args.resume
    else:
        if not args.graph:
            raise SweepError("sweep: name a graph file (or --resume SWEEP_ID)")
        if args.random is not None and args.random < 1:
            raise SweepError("sweep: --random needs at least 1 draw")
        spec = {"grid": parse_grid(args.grid), "ranges": parse_ranges(args.range),
                "random": args.random, "seed": args.seed, "data": args.data,
                "allow_outside_data": args.allow_outside_data}
        if not spec["grid"] and not spec["random"]:
            raise SweepError("sweep: give at least one --grid NAME=V1,V2 or --random N --range …")
        if spec["ranges"] and not spec["random"]:
            raise SweepError("sweep: --range needs --random N")
        graph = str(Path(args.graph).resolve())
        if not Path(graph).is_file():
            raise SweepError(f"sweep: {args.graph}: no such file")
        sweep_id = time.strftime("sw%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        store.create_sweep(sweep_id, graph, spec)
    combos = combinations(spec)
    ended = {r.tags for r in store.runs(sweep_id=sweep_id) if r.status in ENDED}
    print(f"sweep {sweep_id}: {len(combos)} combinations of {Path(graph).name}", file=sys.stderr)
    db = str(store.path)
    store.close()
    for i, combo in enumerate(combos):
        tag = f"combo={i}"
        if tag in ended:
            continue
        label = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in combo.items())
        print(f"[{i + 1}/{len(combos)}] {label}", file=sys.stderr, flush=True)
        argv = ["train", graph, "--runs-db", db, "--sweep-id", sweep_id, "--run-tags", tag,
                "--run-name", f"{Path(graph).stem} [{label}]"]
        argv += sum((_flag(k, v) for k, v in combo.items()), [])
        if spec.get("data"):
            argv += ["--data", spec["data"]]
        argv += ["--allow-outside-data"] if spec.get("allow_outside_data") else []
        code = args.run_command(argv)
        if code == 130:
            print(f"sweep stopped: resume with layerloom sweep --resume {sweep_id}",
                  file=sys.stderr)
            return 130
    store = RunStore(db)
    runs = store.runs(sweep_id=sweep_id)
    print(f"sweep {sweep_id}, best first:")
    for r in sorted(runs, key=_rank):
        print(run_line(r))
    return 0


def _rank(run) -> tuple:
    """Best validation accuracy first; runs without one (regression) by validation loss."""
    if run.best_val_accuracy is not None:
        return (0, -run.best_val_accuracy)
    return (1, run.best_val_loss if run.best_val_loss is not None else math.inf)
