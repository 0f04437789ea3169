"""Mini-batches prepared ahead of the training step that needs them.

A ``BatchLoader`` walks one epoch's order of samples. When a batch takes work to make — images
read from the decoded cache (``ImageArray``), augmentation — one background thread makes the
next few batches (a bounded queue, ``DEPTH`` deep) while the engine computes the current step:
the engine's kernels release the GIL, and the loader's numpy and file reads mostly do too, so
both cores stay busy and the engine's own thread count is left as it is. Images in memory
(plain arrays, an IDX file's ``ArrayRows``) without augmentation are sliced on the spot, where a
thread would only add a hand-over.

Every batch reports how long the step waited for it (``Batch.waited``): the share of step time
spent waiting on data, which the loader benchmark (tests/benchmarks/bench_loader.py) measures.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from layerloom.engine.data.images import ImageArray

DEPTH = 4  # batches made ahead: enough to ride out a slow read, few enough to bound memory
QUEUE_BYTES = 32 << 20  # ... and fewer when batches are large (big images): memory stays bounded
EVAL_BATCH_BYTES = 8 << 20  # evaluation needs no big batches: large images get smaller ones
_END = object()


@dataclass(frozen=True)
class Batch:
    index: np.ndarray  # rows of the split
    x: np.ndarray
    y: np.ndarray
    waited: float  # seconds the consumer waited for this batch


def sample_bytes(split) -> int:
    return 4 * int(np.prod(split.x.shape[1:], dtype=np.int64))


def capped_batch(split, batch_size: int) -> int:
    """``batch_size`` for evaluation, smaller when that many samples would pass EVAL_BATCH_BYTES."""
    return max(1, min(batch_size, EVAL_BATCH_BYTES // max(1, sample_bytes(split))))


def batch_seed(seed: int, epoch: int, number: int) -> np.random.Generator:
    """The generator of one batch's augmentation: the same whichever thread makes it."""
    return np.random.default_rng([seed, epoch, number])


def make_batch(split, idx: np.ndarray, augment=None, rng: np.random.Generator | None = None):
    """(x, y) of ``idx``: read, augmented when ``augment`` is on, normalised as the split says."""
    if isinstance(split.x, ImageArray):
        prep = split.x.prep
        x = split.x.unit(idx)
        if augment is not None and augment.active:
            x = augment.apply(x, rng, fill=prep.mean)
        return prep.normalise(x, in_place=True), split.y[idx]
    x = split.x[idx]
    if augment is not None and augment.active and np.ndim(x) == 4:
        x = augment.apply(x, rng, fill=0.0)
    return x, split.y[idx]


class BatchLoader:
    """Iterate the batches of ``order`` (indices into ``split``), ``batch_size`` at a time.

    Use as a context manager (or call ``close``): a training run that stops early must not leave
    a thread behind. ``augment`` is applied only here — pass it for the training split alone."""

    def __init__(self, split, order: np.ndarray, batch_size: int, augment=None, seed: int = 0,
                 epoch: int = 0, depth: int = DEPTH, background: bool | None = None):
        self.split, self.augment, self.seed, self.epoch = split, augment, seed, epoch
        order = np.asarray(order, dtype=np.int64)
        self.chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        # a generator only for augmentation: seeding one cost ~0.1 s of a LeNet-5 epoch
        self.augmenting = augment is not None and augment.active
        busy = self.augmenting or not (isinstance(split.x, np.ndarray)
                                       or getattr(split.x, "in_memory", False))
        self.background = busy if background is None else background
        fits = QUEUE_BYTES // max(1, batch_size * sample_bytes(split))
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, min(depth, fits)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.chunks)

    def _make(self, number: int) -> tuple:
        idx = self.chunks[number]
        rng = batch_seed(self.seed, self.epoch, number) if self.augmenting else None
        return (idx, *make_batch(self.split, idx, self.augment, rng))

    def __iter__(self):
        if not self.background:
            for number in range(len(self.chunks)):
                t0 = time.perf_counter()
                idx, x, y = self._make(number)
                yield Batch(idx, x, y, time.perf_counter() - t0)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="layerloom-loader", daemon=True)
            self._thread.start()
        for _ in range(len(self.chunks)):
            t0 = time.perf_counter()
            item = self._queue.get()
            waited = time.perf_counter() - t0
            if isinstance(item, BaseException):
                raise item
            yield Batch(*item, waited)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for number in range(len(self.chunks)):
                if self._stop.is_set() or not self._put(self._make(number)):
                    return
        except BaseException as err:  # handed to the consumer, which raises it in its thread
            self._put(err)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while True:  # unblock a put in progress
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "BatchLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
