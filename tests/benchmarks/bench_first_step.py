"""The first LeNet-5 step after pressing Train in a freshly started window, with a cold numba
cache (a fresh install: nothing compiled yet) and a warm one (every later start).

    python tests/benchmarks/bench_first_step.py [--rounds 2] [--delay 0]

Each measurement is a new process (``--child``) that builds the window as ``layerloom`` does,
opens the LeNet-5 sample, waits ``--delay`` seconds (0: Train at once; a person looking at the
graph first gives the background compile a head start), presses Train with *Stop after* 1 and
times the press to the first step report. "cold" uses an empty NUMBA_CACHE_DIR, "warm" the one
the cold run filled. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child(delay: float) -> None:
    """One window, one press of Train: prints {"first_step": s, "launch": s} as JSON."""
    t0 = time.perf_counter()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from layerloom.engine.parallel_compile import start_early

    start_early(ROOT / "samples" / "lenet5.json")  # as layerloom's run_gui does, before Qt
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from layerloom.gui.main_window import MainWindow

    app = QApplication([])  # noqa: F841 (kept alive)
    settings = QSettings(tempfile.mktemp(suffix=".ini"), QSettings.IniFormat)
    window = MainWindow(settings)
    window.show()
    window.open_path(ROOT / "samples" / "lenet5.json", ask=False)
    launched = time.perf_counter() - t0
    loop = QEventLoop()
    QTimer.singleShot(int(delay * 1000), loop.quit)
    loop.exec()
    panel, c = window.training.training_panel, window.training.controller
    panel.max_steps.setValue(1)
    first: list[float] = []
    c.steps.connect(lambda _batch: first or first.append(time.perf_counter()))
    c.finished.connect(lambda _r: loop.quit())
    c.failed.connect(lambda _t: loop.quit())
    pressed = time.perf_counter()
    panel.train_button.click()
    loop.exec()
    window.training.shutdown()
    print(json.dumps({"first_step": first[0] - pressed if first else None, "launch": launched}))


def measure(cache: str, delay: float) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "QT_QPA_PLATFORM": "offscreen",
           "LAYERLOOM_CACHE_DIR": str(Path(cache) / "layerloom")}
    out = subprocess.run([sys.executable, __file__, "--child", "--delay", str(delay)], env=env,
                         capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.delay)
    cold, warm = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
            cold.append(measure(cache, args.delay)["first_step"])
            warm.append(measure(cache, args.delay)["first_step"])
    print(f"first LeNet-5 step after pressing Train (delay {args.delay:g} s after opening), "
          f"median of {args.rounds}: cold cache {statistics.median(cold):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in cold)}), warm cache {statistics.median(warm):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in warm)})")


if __name__ == "__main__":
    sys.exit(main())
