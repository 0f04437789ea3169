"""Tests marked ``solo`` have the machine's cores to themselves when the suite runs on two
pytest-xdist workers (``-n 2``, as ``pyproject.toml`` runs it).

Most tests use one core, so two workers halve the suite's time on two cores; a few judge what a
thread does with a core of its own (``engine.handoff``'s worker claiming parts; one failed when
the other worker's test held that core). Every test holds one lock file while it runs: ordinary
tests shared, a solo test exclusive, so a solo test starts once the other worker's test has ended
and the next waits for it. The gate stops a waiting solo test's turn from being put off forever:
while it waits, no ordinary test starts.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator

FOLDER = "LAYERLOOM_TEST_LOCKS"  # the folder of the lock files, named by the xdist controller


@contextmanager
def turn(folder: str, alone: bool) -> Iterator[None]:
    """Hold the tests' lock (exclusive when ``alone``) for the with-block."""
    with open(os.path.join(folder, "gate"), "a") as gate, \
            open(os.path.join(folder, "tests"), "a") as tests:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(tests, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # the files' closing lets both locks go
