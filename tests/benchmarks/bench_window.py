"""The window against the engine alone: does training in the window cost throughput, and how
long does the UI thread go without running while it trains?

    python tests/benchmarks/bench_window.py [--steps 60] [--samples char_lstm mlp_spirals lenet5]

For each sample it trains ``--steps`` mini-batches headless (``engine.training.train``, as the CLI
does) and in a real ``MainWindow`` (Train pressed through the controller), alternating A B B A so
the machine's drift hits both, and prints the steady samples/s of each (steps after the tenth)
and the longest gap between two firings of a 10 ms timer on the UI thread while the window
trained. These numbers depend on the machine's load, which is why they live here and not in a
test. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))


def steady_rate(stamps: list[float], batch: int) -> float:
    """Samples/s over the steps after the tenth (compilation and warm-up left out)."""
    t = stamps[10:]
    return (len(t) - 1) * batch / (t[-1] - t[0]) if len(t) > 1 else float("nan")


def headless(sample: str, steps: int) -> float:
    """As ``layerloom train`` runs it: without the window's cap on BLAS threads."""
    from layerloom.engine import threads
    from layerloom.engine.data import load_data
    from layerloom.engine.network import Network
    from layerloom.engine.serialize import load_project
    from layerloom.engine.training import StepReport, TrainConfig, train

    project = load_project(ROOT / "samples" / f"{sample}.json")
    config = TrainConfig.from_dict(project.training)
    config.max_steps = steps
    data = load_data(project.data.get("spec", "bundled"))
    threads.cap_blas_threads(None)  # this (the main) thread: as the CLI runs
    stamps = [time.perf_counter() for r in train(Network(project.graph, seed=0), data, config)
              if isinstance(r, StepReport)]
    return steady_rate(stamps, config.batch_size)


def in_window(window, sample: str, steps: int) -> tuple[float, float]:
    """(steady samples/s, longest UI gap in seconds) of one run in the window."""
    from PySide6.QtCore import QEventLoop, QTimer

    assert window.open_path(ROOT / "samples" / f"{sample}.json", ask=False)
    panel, c = window.training.training_panel, window.training.controller
    panel.max_steps.setValue(steps)
    stamps, ticks, loop = [], [], QEventLoop()
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: c.state == "running" and ticks.append(time.perf_counter()))
    slots = ((c.steps, lambda batch: stamps.extend(time.perf_counter() for _ in batch)),
             (c.finished, lambda _r: loop.quit()), (c.failed, lambda text: loop.quit()))
    for signal, slot in slots:
        signal.connect(slot)
    timer.start()
    if c.start():
        loop.exec()
    timer.stop()
    for signal, slot in slots:
        signal.disconnect(slot)
    gap = float(np.diff(ticks).max()) if len(ticks) > 1 else float("nan")
    return steady_rate(stamps, panel.batch_size.value()), gap


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", nargs="+", default=["char_lstm", "mlp_spirals", "lenet5"])
    args = parser.parse_args(argv)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from layerloom.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive)
    settings = QSettings(tempfile.mktemp(suffix=".ini"), QSettings.IniFormat)
    window = MainWindow(settings)
    window.resize(1400, 900)
    window.show()
    print(f"{'sample':<14} {'headless':>14} {'window':>14} {'ratio':>7} {'UI gap':>9}")
    for sample in args.samples:
        heads, wins, gaps = [], [], []
        for i in range(args.rounds):  # A B B A …
            order = (headless, in_window) if i % 2 == 0 else (in_window, headless)
            for run in order:
                if run is headless:
                    heads.append(headless(sample, args.steps))
                else:
                    rate, gap = in_window(window, sample, args.steps)
                    wins.append(rate)
                    gaps.append(gap)
        h, w = statistics.median(heads), statistics.median(wins)
        print(f"{sample:<14} {h:>9,.0f} s/s {w:>9,.0f} s/s {w / h:>7.2f} {max(gaps) * 1e3:>6.0f} ms")
    window.close()


if __name__ == "__main__":
    sys.exit(main())
