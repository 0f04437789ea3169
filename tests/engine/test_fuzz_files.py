"""Property-based: generated and mutated npz, CSV, IDX and text data files, .npz and .safetensors
weights and ONNX models each load or end in a one-line LayerloomError, in a child process whose
address space is limited to 1 GiB (``ulimit -v``), so a runaway allocation fails the test.

~150 examples a format in CI; ``LAYERLOOM_FUZZ_EXAMPLES=5000 LAYERLOOM_FUZZ_RANDOM=1`` explores
further (fresh random examples instead of the derandomized ones)."""
import json
import os
import subprocess
import sys

from .fuzz_files import FORMATS
from .limited_child import ROOT

EXAMPLES = int(os.environ.get("LAYERLOOM_FUZZ_EXAMPLES", "150"))


def test_generated_and_mutated_files_load_or_fail_in_one_line_under_a_memory_limit():
    run = subprocess.run([sys.executable, "-m", "tests.engine.limited_child", "1024", "fuzz",
                          "all", str(EXAMPLES)], capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [r["name"] for r in results] == list(FORMATS), run.stderr[-3000:]
    crashes = [r for r in results if r["outcome"] != "clean"]
    assert not crashes, crashes
    assert run.returncode == 0, run.stderr[-3000:]
    assert all(r["count"] >= EXAMPLES for r in results)
    # the generators make valid files too, so success paths run under the limit as well
    assert all(r["ok"] > 0 for r in results), results
