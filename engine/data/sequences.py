"""Synthetic sequence tasks with known answers, for quick checks and teaching (``seq:TASK``).

Every sample is ``length`` int64 symbols. Sequence-to-sequence tasks have a target per step
(y is N×length, for a per-step cross-entropy): ``copy`` (y_t = x_(t-delay), the blank symbol 0
before that: the model must remember), ``reverse`` (y = x backwards: it must see the whole
sequence) and ``sort`` (y = x sorted). Classification tasks have one target per sequence:
``sorted`` (is x non-decreasing? the unsorted half are the same symbols shuffled, so only the
order tells them apart) and ``parity`` (x is bits; is their sum odd?). Classes are balanced.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout

TASKS = ("copy", "reverse", "sort", "sorted", "parity")
MAX_SAMPLES = 1_000_000


def _int_option(task: str, name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DataError(f"seq:{task}: {name} must be an integer from {low} to {high:,}, got {value!r}")
    return value


def copy_task(rng, n, length, vocab, delay):
    x = rng.integers(1, vocab, size=(n, length))  # 0 is kept for the blank
    y = np.zeros_like(x)
    y[:, delay:] = x[:, :length - delay]
    return x, y


def reverse_task(rng, n, length, vocab):
    x = rng.integers(0, vocab, size=(n, length))
    return x, x[:, ::-1].copy()


def sort_task(rng, n, length, vocab):
    x = rng.integers(0, vocab, size=(n, length))
    return x, np.sort(x, axis=1)


def sorted_task(rng, n, length, vocab):
    """Half sorted; the other half the same kind of multiset, shuffled until it is not sorted."""
    x = np.sort(rng.integers(0, vocab, size=(n, length)), axis=1)
    y = np.zeros(n, dtype=np.int64)
    y[: n // 2] = 1
    for i in range(n // 2, n):
        if x[i, 0] == x[i, -1]:  # one repeated symbol cannot be unsorted: change one end
            x[i, -1] = (x[i, -1] + 1) % vocab
            x[i].sort()
        while np.all(x[i, 1:] >= x[i, :-1]):
            rng.shuffle(x[i])
    order = rng.permutation(n)
    return x[order], y[order]


def parity_task(rng, n, length, vocab):
    x = rng.integers(0, 2, size=(n, length))
    return x, x.sum(axis=1) % 2


def load_sequence_task(task: str, val_fraction: float = 0.1, seed: int = 0, *, n: int = 4000,
                       length: int = 8, vocab: int = 10, delay: int = 2) -> Dataset:
    """``seq:TASK?n=4000&length=8&vocab=10`` (``delay`` is the copy task's lag)."""
    if task not in TASKS:
        raise DataError(f"unknown sequence task {task!r}: use one of {', '.join(TASKS)}")
    n = _int_option(task, "n", n, 10, MAX_SAMPLES)
    length = _int_option(task, "length", length, 2, 10_000)
    vocab = 2 if task == "parity" else _int_option(task, "vocab", vocab, 2, 100_000)
    rng = np.random.default_rng(seed)
    if task == "copy":
        delay = _int_option(task, "delay", delay, 0, length - 1)
        x, y = copy_task(rng, n, length, vocab, delay)
    else:
        x, y = {"reverse": reverse_task, "sort": sort_task, "sorted": sorted_task,
                "parity": parity_task}[task](rng, n, length, vocab)
    train, val, test = holdout(x.astype(np.int64), y.astype(np.int64), val_fraction, seed)
    names = {"sorted": ["unsorted", "sorted"], "parity": ["even", "odd"]}.get(
        task, [str(i) for i in range(vocab)])
    what = f"{n:,} sequences of {length} symbols from {vocab}"
    return Dataset(f"seq:{task}", train, val, test, task="classification", class_names=names,
                   description=f"synthetic {task} task: {what}")
