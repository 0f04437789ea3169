"""What the benchmark scripts (``bench_train.py``, ``bench_family.py``) share: their names'
checks, runs of themselves in fresh processes (PyTorch's speed differs between processes by up
to ~30 % on these VMs: one process's ratio is one draw) and the median of those ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Callable


def check_choices(p: argparse.ArgumentParser, chosen: str, known, noun: str,
                  processes: int) -> None:
    """``p.error`` for a name in the comma-separated ``chosen`` not in ``known``, or fewer than
    one process."""
    unknown = set(chosen.split(",")) - set(known)
    if unknown:
        p.error(f"unknown {noun} {sorted(unknown)[0]!r}: choose from {', '.join(known)}")
    if processes < 1:
        p.error("--processes must be at least 1")


def fresh_processes(argv_for: Callable[[Path], list], n: int, noun: str,
                    quiet: bool = False) -> list[dict]:
    """The JSON results of ``n`` fresh processes run one after the other, process i's command
    ``argv_for(its JSON file)``; ``quiet``: their output not shown. A process that fails ends
    the run with one line."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            out = Path(tmp) / f"process{i}.json"
            print(f"process {i + 1} of {n}", flush=True)
            if quiet:
                code = subprocess.run(argv_for(out), stdout=subprocess.DEVNULL).returncode
            else:
                code = subprocess.run(argv_for(out)).returncode
            if code != 0:
                raise SystemExit(f"error: {noun} process {i + 1} of {n} exited with code {code}"
                                 + ("" if quiet else " (its output is above)"))
            results.append(json.loads(out.read_text()))
    return results


def median_ratio(item: dict, per: list[dict]) -> dict:
    """``item`` (a row or probe of the first process) with every process's ratio ("ratios"),
    their median ("ratio", the issue's measure) and whether that meets its "target"."""
    ratios = [p["ratio"] for p in per]
    merged = {**item, "ratio": statistics.median(ratios), "ratios": ratios}
    merged["met"] = merged["ratio"] >= merged["target"]
    return merged
