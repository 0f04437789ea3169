"""Importing the engine keeps freed activation-sized blocks in the heap: a step's 8 MB
activations, allocated again after the last step's were freed, fault no fresh pages in
(engine/heap.py). In a fresh process: the setting is process-wide, and the test run's own
allocations would blur the count."""
from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import resource, numpy as np
import layerloom.engine
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(4):
    before = faults()
    step = [np.ones(2 << 20, np.float32) for _ in range(6)]  # a step's six 8 MB activations
    counts.append(faults() - before)
    del step
print(max(counts[1:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_activation_is_reused_without_page_faults():
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                         check=True, timeout=120)
    assert int(out.stdout) < 300  # glibc's defaults: ~3,000 a round (measured)
