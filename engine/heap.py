"""glibc's malloc told to keep freed activation-sized blocks for reuse instead of handing them
back to the kernel, so a training or inference step does not page-fault its arrays in afresh.

A ResNet-style step at batch 64 allocates a dozen fresh 8 MB activations. glibc serves a block
that large with its own mmap (or trims it off the top of the heap when freed), so each new one
is 2,048 zero-filled pages faulted in again: ~0.5 ms per array, 15 % of the inference step and
10 % of the training step (46 → 40.5 ms and 160 → 143 ms on one core, measured with the
settings below given through glibc's environment variables). With the mmap threshold at glibc's
own ceiling for its sliding one (32 MB, DEFAULT_MMAP_THRESHOLD_MAX) and the trim threshold at
256 MB, freed activations stay in the heap and the next step reuses them. Setting either alone
is worse than neither: an explicit trim threshold stops the sliding mmap threshold at its 128 KB
start. A user's own MALLOC_*_THRESHOLD_ settings are left alone; other C libraries are too.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Applies the thresholds once per process; True when glibc took them."""
    if not sys.platform.startswith("linux") or any(
            os.environ.get(f"MALLOC_{name}_THRESHOLD_") for name in ("MMAP", "TRIM")):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        gnu = ctypes.CDLL(None).gnu_get_libc_version  # glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    del gnu
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
