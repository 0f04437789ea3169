"""The learning-rate range test (Smith, 2015): train a few hundred steps from the current weights
while the rate grows exponentially, watch the loss, then put every parameter back exactly.

Picking a learning rate is the first thing a person gets wrong; the curve of loss against rate
shows where learning starts and where it blows up, and the suggestion (the steepest descent of
the smoothed loss, well before its minimum) is a sane start. The weights, buffers and dropout
generator are restored bit for bit, so looking costs nothing.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from layerloom.engine.data import Dataset
from layerloom.engine.executor import NonFiniteError
from layerloom.engine.network import Network
from layerloom.engine.optim import make_optimizer
from layerloom.engine.spec import LayerloomError
from layerloom.engine.threads import blas_only, engine_threads


@dataclass(frozen=True)
class LRPoint:
    """One step of the test (a report, so a window can draw the curve as it grows)."""

    step: int
    steps: int
    lr: float
    loss: float
    smoothed: float


@dataclass(frozen=True)
class LRRange:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: float | None  # None when the loss never fell
    stopped_early: bool  # the loss exploded (or went non-finite) before the last rate


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    """The rate where the smoothed loss falls fastest per decade of rate, before its minimum."""
    if len(lrs) < 4:
        return None
    lowest = int(np.argmin(smoothed))
    if lowest < 2:
        return None
    slope = np.gradient(smoothed[:lowest + 1], np.log10(lrs[:lowest + 1]))
    best = int(np.argmin(slope[1:])) + 1
    return float(lrs[best]) if slope[best] < 0 else None


def lr_range_test(net: Network, data: Dataset, optimizer: str = "adam", batch_size: int = 64,
                  start: float = 1e-6, end: float = 1.0, steps: int = 100, seed: int = 0,
                  momentum: float = 0.9, weight_decay: float = 0.0,
                  explode: float = 4.0) -> Iterator[LRPoint | LRRange]:
    """Yields an ``LRPoint`` per step and ends with the ``LRRange``; ``net`` is as before after
    the generator ends, is closed early, or fails."""
    from layerloom.engine.training import batches, bind

    if not (0 < start < end < math.inf) or steps < 4:
        raise LayerloomError(f"learning-rate range: need 0 < start < end and at least 4 steps, "
                             f"got {start:g}..{end:g} in {steps}")
    if len(data.train) == 0:
        raise LayerloomError("learning-rate range: the training split is empty")
    binding = bind(net)
    saved = {k: v.copy() for k, v in net.params.items()}
    saved_rng = net.rng.bit_generator.state if net.rng is not None else None
    opt = make_optimizer(optimizer, start, momentum, weight_decay)
    rng = np.random.default_rng(seed)
    lrs, losses, smooth = [], [], []
    avg, stopped = 0.0, False
    try:
        with engine_threads(blas_only(s.layer for s in net.plan.steps)):
            order: Iterator = iter(())
            for i in range(steps):
                idx = next(order, None)
                if idx is None:
                    order = batches(len(data.train), batch_size, rng)
                    idx = next(order)
                opt.lr = start * (end / start) ** (i / (steps - 1))
                try:
                    net.forward({binding.input_id: data.train.x[idx],
                                 binding.label_id: data.train.y[idx]}, training=True)
                    loss = net.loss()
                    grads = net.backward()
                except NonFiniteError:
                    stopped = True
                    break
                if not math.isfinite(loss):
                    stopped = True
                    break
                avg = 0.9 * avg + 0.1 * loss
                smoothed = avg / (1 - 0.9 ** (i + 1))  # bias-corrected running mean
                lrs.append(opt.lr)
                losses.append(loss)
                smooth.append(smoothed)
                yield LRPoint(i, steps, opt.lr, loss, smoothed)
                if i > 3 and smoothed > explode * min(smooth):
                    stopped = True
                    break
                opt.step(net.params, grads)
    finally:
        for k, v in saved.items():
            np.copyto(net.params[k], v)
        if saved_rng is not None:
            net.rng.bit_generator.state = saved_rng
    yield LRRange(tuple(lrs), tuple(losses), tuple(smooth),
                  suggest(np.array(lrs), np.array(smooth)), stopped)
