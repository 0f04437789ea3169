"""Generated and mutated graph files, each ending in success or one LayerloomError line, under a
memory limit: the child process (``tests/engine/fuzz_graph_files.py``) limits its own address
space, so a runaway allocation is a MemoryError there and a failure here."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 1500  # the engine, numba and hypothesis imported take about 470 MB of address space
EXAMPLES = 150  # per strategy (three of them): about 30 s on a quiet machine, in CI every time


def test_fuzzed_graph_files_end_in_success_or_one_line():
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-m", "tests.engine.fuzz_graph_files", str(LIMIT_MB),
                           str(EXAMPLES)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "all cases ended in success or one line" in proc.stdout
