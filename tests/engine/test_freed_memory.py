"""The kernels that read buffers through raw addresses (the packed tile kernel's ``gemm_at``, the
BLAS by address) hold on to those buffers until they have read them.

numba frees a local array after the last use it sees, and ``X.ctypes.data`` is one: the weight
gradient's packed dZᵀ was freed before the tile kernel read it. Freed memory mostly keeps its
values, so every test passed; a step then computed with whatever reused the memory (another
thread's data) or segfaulted where the pages had gone (CI, 2026-12-05). glibc's
``MALLOC_PERTURB_`` overwrites memory as it is freed and fills what it hands out: under it,
these kernels' own specifications must still hold. ``tests/test_architecture.py`` checks the
source for the same fault; this runs the kernels.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = ["tests/engine/test_conv_taps_packed.py", "tests/engine/test_packed.py",
         "tests/engine/test_conv_kn2row.py", "tests/engine/test_recurrent_loop.py",
         "tests/engine/test_winograd_filters.py", "tests/engine/test_conv_winograd_tile.py",
         "tests/engine/test_conv_phases_packed.py", "tests/engine/test_conv_pointwise.py",
         "tests/engine/test_point_products.py", "tests/engine/test_conv_phases_back.py"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="MALLOC_PERTURB_ is glibc's")
def test_the_address_reading_kernels_hold_under_overwritten_freed_memory():
    env = {**os.environ, "MALLOC_PERTURB_": "165"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *SPECS], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
